"""Run folders as the training engine leaves them, written by hand so that the tables'
tests know every figure the tables should show."""

import json
from pathlib import Path

import numpy as np

TEST_IMAGES = 100


def write_run(root: Path, *, model: str, seed: int, accuracy: float | None, dataset="mnist",
              distortion="R", severity=1.0, scale="demo", wrong: np.ndarray | None = None,
              params=10_000, note=None, baseline: str | None = None,
              val_wrong: np.ndarray | None = None, config: dict | None = None) -> Path:
    """A run folder as the training engine leaves it: metrics.json and predictions.npz.

    ``wrong`` lists the test images the model gets wrong; by default the first ones.
    ``val_wrong``, where given, the validation images (as many as test images) it gets wrong;
    without it the run has test predictions only, as runs written before validation ones.
    ``baseline`` defaults to the one the registered ST models declare. ``config``: run fields
    that replace the defaults (a preparation's size, ROI crop and contrast, say).
    """
    # A variant's run records the path of its YAML file as its model, and its name inside.
    name = Path(model).stem
    run = root / f"{dataset}-{distortion}-{severity}-{name}-{seed}"
    run.mkdir(parents=True)
    label = np.arange(TEST_IMAGES) % 10
    status = "ok" if accuracy is not None else "diverged"
    has_st = model.startswith("st-") or model.endswith(("1st", "2st"))
    if baseline is None and has_st:
        baseline = model.split("-")[1] if model.startswith("st-") else "moodstocks-nost"
    if accuracy is not None:
        if wrong is None:
            wrong = np.arange(round((1 - accuracy) * TEST_IMAGES))
        predicted = label.copy()
        predicted[wrong] = (label[wrong] + 1) % 10
        arrays = {"predicted": predicted, "label": label}
        val_accuracy = accuracy = float(np.mean(predicted == label))
        if val_wrong is not None:
            val_predicted = label.copy()
            val_predicted[val_wrong] = (label[val_wrong] + 1) % 10
            arrays.update(val_predicted=val_predicted, val_label=label)
            val_accuracy = float(np.mean(val_predicted == label))
        np.savez(run / "predictions.npz", **arrays)
    else:
        val_accuracy = None
    run_config = {"scale": scale, "model": model, "dataset": dataset, "distortion": distortion,
                  "severity": severity, "seed": seed, "size": None, "roi_crop": False,
                  "contrast": "original", "augmentation": None,
                  "eval_seed": 0, "limit_train": None, "data_dir": None, "val_fraction": None,
                  "model_definition": {
                      "name": name,
                      "description": f"{model} for tests",
                      "definition": {"layers": [{"st": {"transform": "affine"}}] if has_st else [],
                                     **({"baseline": baseline} if baseline else {})},
                  }} | (config or {})
    metrics = {
        "schema_version": 1,
        "status": status, "reason": None if accuracy is not None else "theta exploded",
        "dataset": dataset, "distortion": distortion, "severity": severity, "model": model,
        "seed": seed, "scale": scale, "epochs": 2, "epochs_completed": 2, "selected_epoch": 2,
        "test_accuracy": accuracy, "test_error": None if accuracy is None else 1 - accuracy,
        "test_loss": None if accuracy is None else 0.5, "per_class_accuracy": None,
        "confusion_matrix": None, "val_accuracy": val_accuracy, "params": params,
        "flops": 20 * params, "train_images_per_s": 1000.0, "wall_s": 2.0,
        "device": "test cpu", "device_type": "cpu", "precision": "fp32",
        "bit_reproducible": True, "torch": "2", "git_commit": "0" * 40,
        "machine": {"cpu": "test cpu", "cpu_flags": None, "cpu_count": 2, "platform": "Linux",
                    "python": "3", "torch": "2", "cuda": None, "gpu": None,
                    "git_commit": "0" * 40, "device": "test cpu", "device_type": "cpu"},
        "history": [{"epoch": epoch, "train_loss": 1.0 / epoch, "train_accuracy": 0.5,
                     "val_loss": 1.0, "val_accuracy": 0.5 + 0.1 * epoch, "lr": 0.01,
                     "images_per_s": 1000.0, "train_s": 1.0, "wall_s": 1.0}
                    for epoch in (1, 2)],
        "config": run_config,
        "test_set": {"name": f"{dataset} test", "size": TEST_IMAGES, "note": note},
    }
    if accuracy is not None:
        confusion = np.zeros((10, 10), np.int64)
        np.add.at(confusion, (label, predicted), 1)
        metrics.update(confusion_matrix=confusion.tolist(),
                       per_class_accuracy=(confusion.diagonal() / confusion.sum(1)).tolist())
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


def table(tables, name):
    return next(item for item in tables if item.name == name)
