"""The sequence models and their scores on cluttered MNIST sequences, on real MNIST (the task
itself: tests/test_sequence_task.py)."""

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image, ImageSequence
from torch import nn

from stnbench.bench import model_cost
from stnbench.cli import main
from stnbench.datasets import DatasetTensors, Split
from stnbench.distortions import run_input_size
from stnbench.distortions.sequences import TASKS, make_sequences
from stnbench.engine import targets
from stnbench.engine.evaluate import evaluate
from stnbench.engine.loop import train_epoch
from stnbench.engine.optimizers import LasagneRMSprop
from stnbench.engine.predictions import read_predictions
from stnbench.engine.record import read_record, validate_record
from stnbench.engine.spec import resolve_spec
from stnbench.errors import StnbenchError
from stnbench.models import create_model, model_input_shape, spatial_transformers
from stnbench.models.builder import InputSpec, build_model
from stnbench.results.collect import collect, load_correct
from stnbench.results.tables import build_tables
from stnbench.results.viz import STEP_COLOURS, evolution_path, moving_path, write_viz

TASK = TASKS["sequence"]


@pytest.mark.parametrize("name", ["rnn-spn", "ffn-spn", "seq-cnn"])
def test_sequence_models_score_every_position(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, in_channels=1, input_size=100, num_classes=10)
    assert model(torch.rand(4, 1, 100, 100)).shape == (4, 3, 10)


def test_recurrent_transformer_takes_one_glimpse_per_step() -> None:
    torch.manual_seed(0)
    model = create_model("rnn-spn", in_channels=1, input_size=100, num_classes=10)
    (transformer,) = spatial_transformers(model)
    images = torch.rand(2, 1, 100, 100)
    glimpses = transformer(images)
    assert glimpses.shape == (6, 1, 33, 33)
    assert transformer.last_params.shape == (6, 6)
    # Untrained, every step is the identity: each glimpse is its own image, down-sampled.
    expected = F.interpolate(images, size=33, mode="bilinear", align_corners=False,
                             antialias=False)
    for step in range(3):
        torch.testing.assert_close(glimpses[step::3], glimpses[0::3])
    assert (glimpses[0::3] - expected).abs().mean() < 0.05
    # The steps differ once the regressor reads the recurrent state.
    torch.nn.init.normal_(transformer.regressor.weight, std=0.1)
    moved = transformer(images).view(2, 3, 1, 33, 33)
    assert not torch.allclose(moved[:, 0], moved[:, 1])


def test_a_variant_is_a_yaml_file(tmp_path: Path) -> None:
    definition = yaml.safe_load(
        (Path(__file__).resolve().parents[1] / "stnbench/models/definitions/rnn-spn.yaml")
        .read_text()
    )
    st = definition["layers"][0]["st"]
    st["recurrent"] = {"cell": "lstm", "units": 32}
    st["transform"] = "similarity"
    definition["sequence"] = 5
    path = tmp_path / "rnn-lstm-5.yaml"
    path.write_text(yaml.safe_dump(definition))
    model = create_model(str(path), in_channels=1, input_size=100, num_classes=10)
    assert model(torch.rand(2, 1, 100, 100)).shape == (2, 5, 10)
    assert spatial_transformers(model)[0].last_params.shape == (10, 4)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("sequence"), r"needs the model's `sequence`"),
        (lambda d: d.update(sequence=0), r"sequence 0 must be a positive number"),
        (lambda d: d["layers"][0]["st"].update(recurrent={"cell": "rnn", "units": 8}),
         r"expected \{cell: gru or lstm, units: N\}"),
        (lambda d: d["layers"].insert(1, d["layers"][0]), r"one recurrent transformer"),
    ],
)
def test_malformed_sequence_models_are_named(tmp_path: Path, change, message: str) -> None:
    definition = yaml.safe_load(
        (Path(__file__).resolve().parents[1] / "stnbench/models/definitions/rnn-spn.yaml")
        .read_text()
    )
    definition["layers"][0]["st"]["output_size"] = 100
    change(definition)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(definition))
    with pytest.raises(StnbenchError, match=message):
        create_model(str(path), in_channels=1, input_size=100, num_classes=10)


def test_sequence_models_and_tasks_go_together() -> None:
    base = {"dataset": "mnist", "seed": 0, "device": "cpu"}
    spec = resolve_spec({**base, "distortion": "sequence", "model": "rnn-spn"})
    assert (spec.severity, spec.optimizer, spec.batch_size, spec.max_grad_norm) == (
        1.0, "lasagne-rmsprop", 100, 5.0
    )
    assert run_input_size(dataclasses.asdict(spec)) == 100
    with pytest.raises(StnbenchError, match="train it on a sequence task"):
        resolve_spec({**base, "distortion": "none", "model": "rnn-spn"})
    with pytest.raises(StnbenchError, match="needs a model with `sequence`"):
        resolve_spec({**base, "distortion": "sequence", "model": "cnn"})
    with pytest.raises(StnbenchError, match="takes no severity"):
        resolve_spec({**base, "distortion": "sequence", "model": "rnn-spn", "severity": 0.5})


def test_a_model_scores_as_many_positions_as_the_task_has_digits(tmp_path: Path) -> None:
    definition = yaml.safe_load(
        (Path(__file__).resolve().parents[1] / "stnbench/models/definitions/seq-cnn.yaml")
        .read_text()
    )
    definition["sequence"] = 4
    path = tmp_path / "four.yaml"
    path.write_text(yaml.safe_dump(definition))
    with pytest.raises(StnbenchError, match=r"scores 4 positions, but .* has 3 digits"):
        resolve_spec({"dataset": "mnist", "seed": 0, "device": "cpu", "distortion": "sequence",
                      "model": str(path)})


def test_sequence_scores_on_a_hand_made_case() -> None:
    labels = torch.tensor([[1, 2, 3], [4, 5, 6], [7, 8, 9], [0, 0, 0]])
    predicted = torch.tensor([[1, 2, 3], [4, 0, 6], [7, 8, 0], [1, 1, 0]])
    assert targets.all_right(predicted, labels).tolist() == [True, False, False, False]
    assert targets.position_errors(predicted, labels) == [0.25, 0.5, 0.25]
    assert targets.element_error(predicted, labels) == 4 / 12
    logits = torch.randn(4, 3, 10)
    per_position = [F.cross_entropy(logits[:, p], labels[:, p]) for p in range(3)]
    # The mean over every digit of the batch, as the paper's code takes it.
    torch.testing.assert_close(targets.loss(logits, labels), sum(per_position) / 3)
    torch.testing.assert_close(targets.loss(logits, labels, "sum"), 4 * sum(per_position) / 3)
    assert torch.equal(targets.predict(F.one_hot(predicted, 10).float()), predicted)
    # One label per image: plain cross-entropy, as before.
    flat = torch.randn(5, 10)
    flat_labels = torch.arange(5)
    assert torch.equal(targets.loss(flat, flat_labels), F.cross_entropy(flat, flat_labels))


class ReadsItsPixel(torch.nn.Module):
    """Image n (every pixel n, as uint8) predicts the digits (n, n, 0)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = (x[:, 0, 0, 0] * 255).round().long()
        return F.one_hot(torch.stack([n, n, n * 0], dim=1), 10).float() * 10


def test_evaluate_counts_a_sequence_right_only_if_every_digit_is() -> None:
    images = torch.arange(4, dtype=torch.uint8).view(4, 1, 1, 1).expand(4, 1, 2, 2).contiguous()
    labels = torch.tensor([[0, 0, 0], [1, 1, 0], [2, 2, 1], [3, 0, 0]])
    model = ReadsItsPixel()
    result = evaluate(model, Split(images, labels), device=torch.device("cpu"), batch_size=3,
                      precision="fp32", channels_last=False)
    assert result.accuracy == 0.5
    assert result.predicted.shape == (4, 3) and result.probabilities.shape == (4, 3, 10)


def test_sequence_models_start_as_the_papers_code_does() -> None:
    torch.manual_seed(0)
    model = create_model("rnn-spn", in_channels=1, input_size=100, num_classes=10)
    (transformer,) = spatial_transformers(model)
    assert torch.equal(transformer.regressor.weight,
                       torch.zeros_like(transformer.regressor.weight))
    assert torch.equal(transformer.regressor.bias, torch.tensor([1.0, 0, 0, 0, 1, 0]))
    gru = transformer.localization.cell
    # Lasagne's GRU gates: normal weights of std 0.1, zero biases; PyTorch's would be
    # uniform within 1/16 for 256 units.
    weights = gru.weight_ih_l0.detach(), gru.weight_hh_l0.detach()
    assert all(0.09 < float(weight.std()) < 0.11 for weight in weights)
    assert not gru.bias_ih_l0.any() and not gru.bias_hh_l0.any()
    layers = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)
              and m is not transformer.regressor]
    for layer in layers:  # Glorot-uniform: within sqrt(6 / (fan_in + fan_out)), zero bias
        fan_in, fan_out = layer.weight[0].numel(), layer.weight[:, 0].numel()
        bound = math.sqrt(6 / (fan_in + fan_out))
        assert bound * 0.9 < float(layer.weight.detach().abs().max()) <= bound
        assert not layer.bias.any()
    for bad in ("glorot", {"lasagne": True}, None):
        with pytest.raises(StnbenchError, match="init must be"):
            build_model({**model.definition, "init": bad}, "x.yaml",
                        InputSpec(1, 100, 10, None, None), {})


def test_sequence_models_read_the_raw_canvas_as_the_papers_code_does() -> None:
    # Standardised, the background would be -mean/std and the digits several times brighter
    # than the code's [0, 1] canvas, which Lasagne's initial weights were not drawn for.
    canvas = torch.rand(2, 1, 100, 100)
    for name in ("rnn-spn", "ffn-spn", "seq-cnn"):
        torch.manual_seed(0)
        model = create_model(name, in_channels=1, input_size=100, num_classes=10,
                             mean=[0.5], std=[0.1])
        torch.manual_seed(0)
        raw = create_model(name, in_channels=1, input_size=100, num_classes=10)
        assert torch.equal(model(canvas), raw(canvas)), name
    definition = {**model.definition, "standardize": "no"}
    with pytest.raises(StnbenchError, match="standardize must be true or false, got 'no'"):
        build_model(definition, "x.yaml", InputSpec(1, 100, 10, None, None), {})


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
