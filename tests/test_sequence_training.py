"""Sequence models through the engine, on real MNIST: gradient clipping as the paper's code
clips, a short training that learns, the run record's sequence fields and predictions, the
cost on the canvas, and the pictures of every glimpse."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image, ImageSequence

from stnbench.bench import model_cost
from stnbench.cli import main
from stnbench.datasets import DatasetTensors
from stnbench.distortions.sequences import TASKS, make_sequences
from stnbench.engine.loop import train_epoch
from stnbench.engine.optimizers import LasagneRMSprop
from stnbench.engine.predictions import read_predictions
from stnbench.engine.record import read_record, validate_record
from stnbench.engine.spec import resolve_spec
from stnbench.errors import StnbenchError
from stnbench.models import create_model, model_input_shape
from stnbench.results.collect import collect, load_correct
from stnbench.results.tables import build_tables
from stnbench.results.viz import STEP_COLOURS, evolution_path, moving_path, write_viz

TASK = TASKS["sequence"]


def test_rnn_spn_clips_each_gradient_element_as_its_code_does(mnist: DatasetTensors) -> None:
    base = {"dataset": "mnist", "distortion": "sequence", "seed": 0, "device": "cpu"}
    rnn = resolve_spec({**base, "model": "rnn-spn"})
    assert (rnn.max_grad_value, rnn.max_grad_norm) == (1.0, 5.0)  # rnn_spn.py
    assert resolve_spec({**base, "model": "ffn-spn"}).max_grad_value is None  # ffn_spn.py
    with pytest.raises(StnbenchError, match=r"max_grad_value -1\.0: must be a finite positive"):
        resolve_spec({**base, "model": "rnn-spn", "max_grad_value": -1})
    # Plain SGD at rate 1 moves no weight by more than the clipped gradient element.
    train = make_sequences(mnist.train, TASK, 16, seed=0)
    torch.manual_seed(0)
    model = create_model("seq-cnn", in_channels=1, input_size=100, num_classes=10,
                         mean=mnist.mean, std=mnist.std)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    train_epoch(model, optimizer, scheduler, train, distortion=None, seed=0, epoch=1,
                batch_size=16, precision="fp32", channels_last=False, max_grad_value=1e-4)
    moved = max(float((p.detach() - b).abs().max()) for p, b in zip(model.parameters(), before,
                                                             strict=True))
    assert 0 < moved <= 1e-4 * 1.001  # fp32 rounding of weight + step


def test_short_training_lowers_the_loss(mnist: DatasetTensors) -> None:
    """Memorising 64 sequences with the recipe's optimiser and rate: 40 steps take the
    recurrent transformer below chance (ln 10 = 2.30 a digit, the loss being the mean over
    positions) by more than a tenth."""
    train = make_sequences(mnist.train, TASK, 64, seed=0)
    torch.manual_seed(0)
    model = create_model("rnn-spn", in_channels=1, input_size=100, num_classes=10,
                         mean=mnist.mean, std=mnist.std)
    optimizer = LasagneRMSprop(model.parameters(), lr=5e-4)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    losses = [
        train_epoch(model, optimizer, scheduler, train, distortion=None, seed=0, epoch=epoch,
                    batch_size=16, precision="fp32", channels_last=False, max_grad_norm=5.0)
        ["train_loss"]
        for epoch in range(1, 11)
    ]
    assert losses[-1] < losses[0] - 0.1, losses


def test_train_writes_sequence_fields_and_predictions(mnist: DatasetTensors, data_dir: Path,
                                                      tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"limit_train": 200, "limit_eval": 100, "threads": 1,
                                    "schedule": {"type": "constant"}}))
    out = tmp_path / "run"
    assert main(["train", "--dataset", "mnist", "--distortion", "sequence", "--model", "seq-cnn",
                 "--seed", "0", "--epochs", "1", "--out", str(out), "--data-dir", str(data_dir),
                 "--device", "cpu", "--spec", str(spec)]) == 0
    record = read_record(out / "metrics.json")
    assert record.status == "ok" and record.test_set.size == 100
    assert len(record.test_position_error) == 3
    assert record.test_element_error is not None
    assert record.test_element_error <= record.test_error
    assert sum(map(sum, record.confusion_matrix)) == 300  # every digit counted once
    predictions = read_predictions(out / "predictions.npz")["test"]
    assert predictions.predicted.shape == (100, 3)
    assert predictions.probabilities.shape == (100, 3, 10)
    errors = (predictions.predicted != predictions.label).mean(axis=0)
    np.testing.assert_allclose(errors, record.test_position_error)
    # Paired tests see one verdict per sequence: right only if every digit is.
    correct, _ = load_correct(out)
    assert correct.shape == (100,) and correct.mean() == record.test_accuracy
    # The sequence table puts the run beside the paper's digit error.
    results = collect(tmp_path)
    assert results.runs["test_element_error"].tolist() == [record.test_element_error]
    (_, display), = {table.name: table for table in build_tables(results)}["sequences"].sections
    row = display.set_index("model").loc["seq-cnn"]
    assert row["paper digit error %"] == "2.9"
    assert row["digit error %"].startswith(f"{100 * record.test_element_error:.2f} (n=1)")
    assert row["Δ pp"] == f"{100 * record.test_element_error - 2.9:+.2f}"
    assert display.set_index("model").loc["rnn-spn", "sequence error %"] == "—"
    assert row["epochs"] == "1"  # the schedule beside the figures
    with pytest.raises(StnbenchError, match="no spatial transformer"):
        write_viz(out, tmp_path / "viz.png", data_dir)
    assert "test_element_error" in json.loads((out / "metrics.json").read_text())
    # A single-label record leaves the sequence fields out, as records always did.
    single = dataclasses.replace(record, test_position_error=None, test_element_error=None)
    data = single.to_json()
    assert not {"test_position_error", "test_element_error"} & set(data)
    validate_record(data, "single-label record")


def test_sequence_models_are_benched_on_their_canvas() -> None:
    # The workflow benches each model at its data set's size; a sequence model reads the
    # task's canvas whatever the size of the digits.
    assert model_input_shape("rnn-spn", "mnist", 28) == (1, 100, 100)
    assert model_input_shape("ffn-spn", "mnist", None) == (1, 100, 100)
    assert model_input_shape("cnn", "mnist", 28) == (1, 28, 28)
    with pytest.raises(StnbenchError, match="--size 50"):
        model_input_shape("rnn-spn", "mnist", 50)
    model = create_model("rnn-spn", in_channels=1, input_size=100, num_classes=10)
    cost = model_cost(model, (1, 100, 100), 10)
    assert cost["train_flops_per_image"] > cost["flops_per_image"] > 0


def test_viz_outlines_every_glimpse_of_a_recurrent_transformer(
    mnist: DatasetTensors, data_dir: Path, tmp_path: Path
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"limit_train": 64, "limit_eval": 16, "batch_size": 32,
                                    "threads": 1, "schedule": {"type": "constant"}}))
    run = tmp_path / "run"
    assert main(["train", "--dataset", "mnist", "--distortion", "sequence", "--model", "rnn-spn",
                 "--seed", "0", "--epochs", "1", "--out", str(run), "--data-dir", str(data_dir),
                 "--device", "cpu", "--spec", str(spec)]) == 0
    out = tmp_path / "viz" / "run.png"
    assert main(["viz", "--run", str(run), "--out", str(out), "--data-dir", str(data_dir)]) == 0
    # The input row with the 3 glimpses outlined in their colours, then a row per glimpse.
    picture = np.asarray(Image.open(out).convert("RGB")).reshape(-1, 3)
    for colour in STEP_COLOURS[:3]:
        rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
        assert (np.abs(picture.astype(int) - rgb).sum(axis=1) < 30).any(), colour
    assert not moving_path(out).exists()  # the task has no severity to grow
    # Two steps of training: snapshots before the first step and after each, each frame an
    # input row and three glimpse rows.
    with Image.open(evolution_path(out)) as gif:
        frames = list(ImageSequence.Iterator(gif))
        assert len(frames) == 3
        assert gif.height >= 500  # 4 rows of 1.3 inches at 100 dpi, not the 2 of one glimpse
