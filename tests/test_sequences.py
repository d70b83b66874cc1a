"""The sequence models and their scores on cluttered MNIST sequences, on real MNIST (the task
itself: tests/test_sequence_task.py; training and pictures: tests/test_sequence_training.py)."""

import dataclasses
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from stnbench.datasets import Split
from stnbench.distortions import run_input_size
from stnbench.distortions.sequences import TASKS
from stnbench.engine import targets
from stnbench.engine.evaluate import evaluate
from stnbench.engine.spec import resolve_spec
from stnbench.errors import StnbenchError
from stnbench.models import create_model, spatial_transformers
from stnbench.models.builder import InputSpec, build_model

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
