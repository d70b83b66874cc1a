"""`stnbench train`: determinism, resume after SIGKILL, divergence, selection, metrics."""

import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from stnbench import provenance
from stnbench.cli import main
from stnbench.datasets import DatasetTensors
from stnbench.engine import loop
from stnbench.engine.checkpoint import CHECKPOINT_NAME, SAVED
from stnbench.engine.divergence import CollapseCheck, Diverged
from stnbench.engine.evolution import EVOLUTION_FRAMES, EVOLUTION_NAME, EVOLUTION_SAMPLES
from stnbench.engine.predictions import read_predictions
from stnbench.engine.recipes import ScheduleFactor, get_recipe
from stnbench.engine.record import read_record
from stnbench.engine.spec import identity, resolve_spec
from stnbench.errors import StnbenchError
from stnbench.models import create_model, spatial_transformers

REPO = Path(__file__).resolve().parents[1]
TINY_ST = str(REPO / "tests" / "data" / "tiny-st-cnn.yaml")
TINY_CNN = str(REPO / "tests" / "data" / "tiny-cnn.yaml")
# Small enough for seconds per run on one thread, large enough to learn something.
TINY = {
    "limit_train": 1024,
    "limit_eval": 300,
    "batch_size": 32,
    "lr": 0.05,
    "momentum": 0.9,
    "schedule": {"type": "constant"},
    "localization_lr_multiplier": 0.1,
    "threads": 1,
}


def write_spec(path: Path, **fields) -> Path:
    path.write_text(yaml.safe_dump({**TINY, **fields}))
    return path


def train_args(
    out: Path,
    data_dir: Path,
    spec: Path,
    model: str = TINY_ST,
    distortion: str = "RTS",
    epochs: int = 2,
    *extra: str,
) -> list[str]:
    return [
        "train",
        "--dataset",
        "mnist",
        "--distortion",
        distortion,
        "--severity",
        "1",
        "--model",
        model,
        "--seed",
        "0",
        "--epochs",
        str(epochs),
        "--out",
        str(out),
        "--data-dir",
        str(data_dir),
        "--device",
        "cpu",
        "--spec",
        str(spec),
        *extra,
    ]


def without_timing(metrics: dict) -> dict:
    """Everything but the fields that measure time, and the checkout's commit (which moves
    when the tree is committed between two runs)."""
    kept = {
        key: value
        for key, value in metrics.items()
        if key not in {"wall_s", "train_images_per_s", "git_commit"}
    }
    kept["machine"] = {
        key: value for key, value in metrics["machine"].items() if key != "git_commit"
    }
    kept["history"] = [
        {
            key: value
            for key, value in entry.items()
            if key not in {"wall_s", "images_per_s", "train_s"}
        }
        for entry in metrics["history"]
    ]
    return kept


@pytest.fixture(scope="module")
def prepared(mnist: DatasetTensors, data_dir: Path) -> Path:
    return data_dir


@pytest.fixture(scope="module")
def reference_run(prepared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted tiny run, shared by the tests that compare against it."""
    folder = tmp_path_factory.mktemp("reference")
    spec = write_spec(folder / "spec.yaml")
    assert main(train_args(folder / "run", prepared, spec, TINY_ST, "RTS", 3)) == 0
    return folder / "run"


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
        np.testing.assert_allclose(split.probabilities.astype(np.float64).sum(axis=1), 1.0,
                                   atol=1e-2)
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
        torch.eye(2, 3).expand(EVOLUTION_SAMPLES, 2, 3), [EVOLUTION_SAMPLES, 1, 42, 42],
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


def test_same_command_twice_gives_identical_metrics(
    reference_run: Path, prepared: Path, tmp_path: Path
) -> None:
    spec = write_spec(tmp_path / "spec.yaml")
    assert main(train_args(tmp_path / "run", prepared, spec, TINY_ST, "RTS", 3)) == 0
    first = json.loads((reference_run / "metrics.json").read_text())
    second = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert without_timing(first) == without_timing(second)
    assert (
        np.load(reference_run / "predictions.npz")["predicted"]
        == np.load(tmp_path / "run" / "predictions.npz")["predicted"]
    ).all()


def test_finished_run_is_not_retrained(reference_run: Path, prepared: Path, tmp_path: Path) -> None:
    before = (reference_run / "metrics.json").stat().st_mtime_ns
    spec = write_spec(tmp_path / "spec.yaml", threads=2)  # runtime-only: still the same run
    assert main(train_args(reference_run, prepared, spec, TINY_ST, "RTS", 3)) == 0
    assert (reference_run / "metrics.json").stat().st_mtime_ns == before
    # A different run in the same folder is an error, not a silent overwrite.
    spec = write_spec(tmp_path / "other.yaml", lr=0.5)
    assert main(train_args(reference_run, prepared, spec, TINY_ST, "RTS", 3)) == 1
    assert (reference_run / "metrics.json").stat().st_mtime_ns == before


def test_checkpoint_of_another_run_names_the_field_that_differs(
    reference_run: Path, prepared: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # A run stopped mid-way (its checkpoint without a record) asked for again at another
    # learning rate: refused in one line that says which field to ask for to resume it.
    out = tmp_path / "run"
    out.mkdir()
    shutil.copy(reference_run / CHECKPOINT_NAME, out / CHECKPOINT_NAME)
    before = (out / CHECKPOINT_NAME).read_bytes()
    spec = write_spec(tmp_path / "other.yaml", lr=0.5)
    assert main(train_args(out, prepared, spec, TINY_ST, "RTS", 3)) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]  # after the run's banner line
    assert str(out / CHECKPOINT_NAME) in error
    assert "belongs to a different run (its 'lr' is 0.05, this run's 0.5)" in error
    assert (out / CHECKPOINT_NAME).read_bytes() == before


def test_sigkill_at_any_moment_then_resume_gives_identical_metrics(
    reference_run: Path, prepared: Path, tmp_path: Path
) -> None:
    spec = write_spec(tmp_path / "spec.yaml")
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "stnbench",
        *train_args(out, prepared, spec, TINY_ST, "RTS", 3),
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    checkpoint = out / CHECKPOINT_NAME

    def kill_when(ready) -> None:
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        while process.poll() is None and not ready():
            time.sleep(0.005)
        assert process.poll() is None, process.stderr.read().decode()
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert not (out / "metrics.json").exists()  # nothing that looks finished
        leftovers = [path.name for path in out.iterdir()]
        assert all(name == CHECKPOINT_NAME or name.endswith(".tmp") for name in leftovers)

    # Killed mid-epoch 2, right after epoch 1's checkpoint landed; then while starting up
    # again; then right after the next checkpoint replaced that one (mid-epoch 3).
    kill_when(checkpoint.exists)
    started = time.monotonic()
    kill_when(lambda: time.monotonic() - started > 1.0)
    first = checkpoint.stat().st_mtime_ns
    kill_when(lambda: checkpoint.stat().st_mtime_ns != first)
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "resuming after epoch" in result.stderr
    resumed = json.loads((out / "metrics.json").read_text())
    uninterrupted = json.loads((reference_run / "metrics.json").read_text())
    assert without_timing(resumed) == without_timing(uninterrupted)
    # The transformer's snapshots taken before the kills survive in the checkpoint.
    with np.load(out / EVOLUTION_NAME) as mine, np.load(reference_run / EVOLUTION_NAME) as theirs:
        for key in ("steps", "grids", "images"):
            np.testing.assert_array_equal(mine[key], theirs[key])


def test_forced_nan_ends_as_diverged_with_exit_0(prepared: Path, tmp_path: Path) -> None:
    # A learning rate of 1e30 overflows the weights after one step: the loss becomes NaN/inf.
    spec = write_spec(tmp_path / "spec.yaml")
    out = tmp_path / "run"
    assert main(train_args(out, prepared, spec, TINY_CNN, "RTS", 2, "--lr", "1e30")) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "diverged"
    assert "non-finite" in metrics["reason"]
    assert metrics["test_accuracy"] is None and metrics["test_error"] is None
    assert metrics["epochs_completed"] == 0 and metrics["selected_epoch"] is None
    assert not (out / "predictions.npz").exists()


def test_collapsing_transformer_is_detected(mnist: DatasetTensors) -> None:
    torch.manual_seed(0)
    model = create_model(
        "st-cnn-affine",
        in_channels=1,
        input_size=42,
        num_classes=10,
        mean=mnist.mean,
        std=mnist.std,
    )
    transformer = spatial_transformers(model)[0]
    check = CollapseCheck(model, max_param=100.0, min_extent=0.02, min_inside=0.05)
    images = mnist.train.images[:8].float().div(255)
    images = torch.nn.functional.pad(images, (7, 7, 7, 7))
    cases = {
        (0.001, 0.0, 0.0): "shrinking to nothing",  # zoomed in on a point
        (1.0, 0.0, 5.0): "leaving the image",  # translated far outside
        (500.0, 0.0, 0.0): "parameters exploding",
    }
    for (scale, shear, shift), reason in cases.items():
        with torch.no_grad():
            transformer.regressor.bias.copy_(torch.tensor([scale, shear, shift, 0.0, scale, 0.0]))
        model(images)
        with pytest.raises(Diverged, match=reason):
            check(1, 0)
    with torch.no_grad():
        transformer.regressor.bias.copy_(torch.tensor([0.7, 0.1, 0.2, -0.1, 0.8, 0.1]))
    model(images)
    check(1, 0)  # an ordinary zoom, rotation and shift


def test_test_split_is_read_once_after_selection(
    prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
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
    assert main(train_args(out, prepared, spec, TINY_ST, "RTS", 3)) == 0
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
