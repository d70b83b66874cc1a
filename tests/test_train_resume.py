"""`stnbench train`: the same command twice gives the same run; a run killed at any moment
resumes to the same record; a finished or foreign run is left alone; divergence ends a run
with a record that says so."""

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
from train_helpers import TINY_CNN, TINY_ST, train_args, without_timing, write_spec

from stnbench.cli import main
from stnbench.datasets import DatasetTensors
from stnbench.engine.checkpoint import CHECKPOINT_NAME
from stnbench.engine.divergence import CollapseCheck, Diverged
from stnbench.engine.evolution import EVOLUTION_NAME
from stnbench.models import create_model, spatial_transformers


def test_same_command_twice_gives_identical_metrics(
    reference_run: Path, mnist_dir: Path, tmp_path: Path
) -> None:
    spec = write_spec(tmp_path / "spec.yaml")
    assert main(train_args(tmp_path / "run", mnist_dir, spec, TINY_ST, "RTS", 3)) == 0
    first = json.loads((reference_run / "metrics.json").read_text())
    second = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert without_timing(first) == without_timing(second)
    assert (
        np.load(reference_run / "predictions.npz")["predicted"]
        == np.load(tmp_path / "run" / "predictions.npz")["predicted"]
    ).all()


def test_finished_run_is_not_retrained(
    reference_run: Path, mnist_dir: Path, tmp_path: Path
) -> None:
    before = (reference_run / "metrics.json").stat().st_mtime_ns
    spec = write_spec(tmp_path / "spec.yaml", threads=2)  # runtime-only: still the same run
    assert main(train_args(reference_run, mnist_dir, spec, TINY_ST, "RTS", 3)) == 0
    assert (reference_run / "metrics.json").stat().st_mtime_ns == before
    # A different run in the same folder is an error, not a silent overwrite.
    spec = write_spec(tmp_path / "other.yaml", lr=0.5)
    assert main(train_args(reference_run, mnist_dir, spec, TINY_ST, "RTS", 3)) == 1
    assert (reference_run / "metrics.json").stat().st_mtime_ns == before


def test_checkpoint_of_another_run_names_the_field_that_differs(
    reference_run: Path, mnist_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # A run stopped mid-way (its checkpoint without a record) asked for again at another
    # learning rate: refused in one line that says which field to ask for to resume it.
    out = tmp_path / "run"
    out.mkdir()
    shutil.copy(reference_run / CHECKPOINT_NAME, out / CHECKPOINT_NAME)
    before = (out / CHECKPOINT_NAME).read_bytes()
    spec = write_spec(tmp_path / "other.yaml", lr=0.5)
    assert main(train_args(out, mnist_dir, spec, TINY_ST, "RTS", 3)) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]  # after the run's banner line
    assert str(out / CHECKPOINT_NAME) in error
    assert "belongs to a different run (its 'lr' is 0.05, this run's 0.5)" in error
    assert (out / CHECKPOINT_NAME).read_bytes() == before


def test_sigkill_at_any_moment_then_resume_gives_identical_metrics(
    reference_run: Path, mnist_dir: Path, tmp_path: Path
) -> None:
    spec = write_spec(tmp_path / "spec.yaml")
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "stnbench",
        *train_args(out, mnist_dir, spec, TINY_ST, "RTS", 3),
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


def test_forced_nan_ends_as_diverged_with_exit_0(mnist_dir: Path, tmp_path: Path) -> None:
    # A learning rate of 1e30 overflows the weights after one step: the loss becomes NaN/inf.
    spec = write_spec(tmp_path / "spec.yaml")
    out = tmp_path / "run"
    assert main(train_args(out, mnist_dir, spec, TINY_CNN, "RTS", 2, "--lr", "1e30")) == 0
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
