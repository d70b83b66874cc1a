"""`stnbench train`: recipes, the run record and its predictions, snapshots, selection before
the test set. Determinism, resume and divergence: test_train_resume.py."""

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from train_helpers import TINY, TINY_CNN, TINY_ST, train_args, write_spec

from stnbench import provenance
from stnbench.cli import main
from stnbench.engine import loop
from stnbench.engine.checkpoint import CHECKPOINT_NAME, SAVED
from stnbench.engine.evolution import EVOLUTION_FRAMES, EVOLUTION_NAME, EVOLUTION_SAMPLES
from stnbench.engine.predictions import read_predictions
from stnbench.engine.recipes import ScheduleFactor, get_recipe
from stnbench.engine.record import read_record
from stnbench.engine.spec import identity, resolve_spec
from stnbench.errors import StnbenchError


def test_recipes_come_from_the_model_and_every_field_is_overridable(tmp_path: Path) -> None:
    spec = resolve_spec(
        {
            "dataset": "mnist",
            "distortion": "none",
            "severity": 0.0,
            "model": "tutorial-stn",
            "seed": 1,
            "device": "cpu",
        }
    )
    assert (spec.recipe, spec.lr, spec.batch_size, spec.epochs) == ("tutorial", 0.01, 64, 20)
    assert spec.momentum == 0.0 and spec.precision == "fp32"
    path = tmp_path / "run.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "dataset": "mnist",
                "distortion": "RTS",
                "severity": 1,
                "model": "tutorial-stn",
                "seed": 3,
                "recipe": "moodstocks",
                "lr": 0.05,
                "localization_lr_multiplier": 0.1,
                "schedule": {"type": "exponential", "gamma": 0.9},
                "train_distortion": "fixed",
            }
        )
    )
    spec = resolve_spec({"lr": 0.2, "seed": None, "device": "cpu"}, path)
    assert spec.recipe == "moodstocks" and spec.batch_size == 50 and spec.epochs == 14
    assert spec.lr == 0.2  # the flag beats the spec file, which beats the recipe
    assert spec.localization_lr_multiplier == 0.1 and spec.seed == 3
    assert spec.schedule == {"type": "exponential", "gamma": 0.9}
    assert spec.severity == 1.0 and isinstance(spec.severity, float)
    path.write_text(yaml.safe_dump({"dataset": "mnist", "learning_rate": 0.1}))
    with pytest.raises(StnbenchError, match="learning_rate"):
        resolve_spec({}, path)
    with pytest.raises(StnbenchError, match="seed"):
        resolve_spec({"dataset": "mnist", "distortion": "R", "severity": 1.0, "model": "cnn"})


def test_step_schedule_keeps_its_shape_when_the_run_is_shortened() -> None:
    schedule = get_recipe("stn-paper-mnist")["schedule"]
    for epochs in (768, 3):
        factor = ScheduleFactor(schedule, steps_per_epoch=196, epochs=epochs)
        total = 196 * epochs
        assert factor(0) == 1.0 and factor(total // 3 - 1) == 1.0
        assert factor(total // 3 + 1) == pytest.approx(0.1)
        assert factor(total - 1) == pytest.approx(0.01)
    exponential = ScheduleFactor({"type": "exponential", "gamma": 0.95}, 10, 30)
    assert exponential(9) == 1.0 and exponential(25) == pytest.approx(0.95**2)


def test_record_follows_the_schema_and_predictions_match(reference_run: Path) -> None:
    record = read_record(reference_run / "metrics.json")
    assert record.schema_version == 1
    assert record.status == "ok" and record.reason is None
    assert record.epochs == record.epochs_completed == len(record.history) == 3
    best = max(record.history, key=lambda entry: entry.val_accuracy)
    assert record.selected_epoch == best.epoch
    assert record.val_accuracy == best.val_accuracy
    assert record.test_error == pytest.approx(1 - record.test_accuracy)
    assert record.bit_reproducible is True and record.device_type == "cpu"
    assert set(record.machine.cpu_flags) <= set(provenance.SPEED_FLAGS)
    assert record.config["limit_train"] == 1024 and record.config["recipe"] == "stn-paper-mnist"
    assert record.test_set.size == 300
    predictions = read_predictions(reference_run / "predictions.npz")
    test, val = predictions["test"], predictions["val"]
    assert test.predicted.dtype == np.int64 and test.predicted.shape == (300,)
    assert (test.predicted == test.label).mean() == pytest.approx(record.test_accuracy)
    # The selected epoch's validation predictions, not the last epoch's.
    assert (val.predicted == val.label).mean() == pytest.approx(record.val_accuracy)
    # Class probabilities for committees: one distribution per image, in half precision,
    # whose most likely class is the prediction (up to float16 ties).
    for split in (test, val):
        assert split.probabilities.dtype == np.float16
        assert split.probabilities.shape == (len(split.label), 10)
        np.testing.assert_allclose(
            split.probabilities.astype(np.float64).sum(axis=1), 1.0, atol=1e-2
        )
        assert (split.probabilities.argmax(axis=1) == split.predicted).mean() > 0.99
    confusion = np.array(record.confusion_matrix)
    assert confusion.shape == (10, 10) and confusion.sum() == 300
    assert np.trace(confusion) / 300 == pytest.approx(record.test_accuracy)
    # The run learned, it did not just run.
    assert record.history[-1].train_loss < record.history[0].train_loss - 0.05
    state = torch.load(reference_run / CHECKPOINT_NAME, weights_only=True)
    assert set(state) == set(SAVED)


def test_train_on_a_folder_with_a_corrupt_record_fails_in_one_line_before_any_data(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out, data_dir = tmp_path / "run", tmp_path / "data"
    out.mkdir()
    data_dir.mkdir()
    (out / "metrics.json").write_text('{"status": "ok", "test_accuracy": 0.9')  # cut short
    spec = write_spec(tmp_path / "spec.yaml")
    assert main(train_args(out, data_dir, spec, TINY_CNN, "RTS", 1)) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error
    assert f"{out / 'metrics.json'}: not valid JSON" in error
    # Nothing was prepared or loaded, and the folder is as it was.
    assert list(data_dir.iterdir()) == [] and [path.name for path in out.iterdir()] == [
        "metrics.json"
    ]
    # Valid JSON that is not a run record is named with the field that is wrong.
    (out / "metrics.json").write_text(json.dumps({"schema_version": 1, "status": "done"}))
    assert main(train_args(out, data_dir, spec, TINY_CNN, "RTS", 1)) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"{out / 'metrics.json'}: field " in error
    assert list(data_dir.iterdir()) == []


def test_transformer_snapshots_span_the_run(reference_run: Path) -> None:
    with np.load(reference_run / EVOLUTION_NAME) as evolution:
        steps, grids, images = evolution["steps"], evolution["grids"], evolution["images"]
        epochs = evolution["epochs"]
    steps_per_epoch = TINY["limit_train"] // TINY["batch_size"]
    assert steps[0] == 0 and steps[-1] == 3 * steps_per_epoch
    assert len(steps) == EVOLUTION_FRAMES + 1 and (np.diff(steps) > 0).all()
    np.testing.assert_allclose(epochs, steps / steps_per_epoch)
    assert images.shape == (EVOLUTION_SAMPLES, 1, 42, 42) and images.dtype == np.uint8
    assert grids.shape == (len(steps), EVOLUTION_SAMPLES, 42, 42, 2)
    # Untrained, the transformer is the identity; trained, it has moved.
    identity = torch.nn.functional.affine_grid(
        torch.eye(2, 3).expand(EVOLUTION_SAMPLES, 2, 3),
        [EVOLUTION_SAMPLES, 1, 42, 42],
        align_corners=False,
    )
    np.testing.assert_allclose(grids[0], identity.numpy(), atol=2e-3)
    assert np.abs(grids[-1] - grids[0]).max() > 0.01


def test_the_model_and_recipe_documentation_is_not_part_of_the_run(reference_run: Path) -> None:
    config = json.loads((reference_run / "metrics.json").read_text())["config"]
    documented = copy.deepcopy(config)
    documented["model_definition"]["source"] = "a corrected source"
    documented["model_definition"]["definition"]["baseline"] = "tiny-cnn"
    # A recipe's corrected source note leaves its runs, and their checkpoints, as they were.
    documented["recipe_source"] = "a corrected note on the recipe's source"
    assert identity(documented) == identity(config)
    widened = copy.deepcopy(config)
    widened["model_definition"]["definition"]["layers"][1]["conv"]["out"] = 9
    assert identity(widened) != identity(config)


def test_test_split_is_read_once_after_selection(
    mnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple] = []
    real_load, real_evaluate = loop.load_eval_split, loop.evaluate
    test_splits: list = []

    def load_eval_split(data, name, distortion, spec):
        split = real_load(data, name, distortion, spec)
        events.append(("load", name))
        if name == "test":
            test_splits.append(split)
        return split

    def evaluate(model, split, **kwargs):
        is_test = any(split is test for test in test_splits)
        weights = {key: value.clone() for key, value in model.state_dict().items()}
        events.append(("evaluate", "test" if is_test else "val", weights))
        return real_evaluate(model, split, **kwargs)

    monkeypatch.setattr(loop, "load_eval_split", load_eval_split)
    monkeypatch.setattr(loop, "evaluate", evaluate)
    spec = write_spec(tmp_path / "spec.yaml")
    out = tmp_path / "run"
    assert main(train_args(out, mnist_dir, spec, TINY_ST, "RTS", 3)) == 0
    names = [event[:2] for event in events]
    assert names.count(("load", "test")) == 1 and names.count(("evaluate", "test")) == 1
    # After every epoch's validation; then the selected weights' validation predictions.
    assert names[-3:] == [("load", "test"), ("evaluate", "test"), ("evaluate", "val")]
    assert names.count(("evaluate", "val")) == 3 + 1
    selected = json.loads((out / "metrics.json").read_text())["selected_epoch"]
    best = torch.load(out / CHECKPOINT_NAME, weights_only=True)["best"]
    assert best["epoch"] == selected
    for tested_weights in (events[-2][2], events[-1][2]):
        assert all(torch.equal(tested_weights[key], best["model"][key]) for key in tested_weights)
