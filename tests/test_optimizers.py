"""The optimisers a recipe can name, against their definitions."""

import copy
import math

import pytest
import torch

from stnbench.engine.optimizers import LasagneRMSprop
from stnbench.engine.spec import resolve_spec
from stnbench.errors import StnbenchError

LR = 5e-4


def lasagne_steps(gradients: list[float], lr: float = LR, rho: float = 0.9,
                  eps: float = 1e-6) -> float:
    """Lasagne's rmsprop on one weight starting at 0, written out (lasagne/updates.py)."""
    weight, accumulated = 0.0, 0.0
    for grad in gradients:
        accumulated = rho * accumulated + (1 - rho) * grad**2
        weight -= lr * grad / math.sqrt(accumulated + eps)
    return weight


def run(optimizer_class, gradients: list[float], **options) -> float:
    weight = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = optimizer_class([weight], lr=LR, **options)
    for grad in gradients:
        weight.grad = torch.tensor([grad], dtype=torch.float64)
        optimizer.step()
    return float(weight.detach())


@pytest.mark.parametrize("gradients", [[1.0, 0.5, -2.0], [1e-4, 3e-4, -1e-5], [0.0, 1e-3]])
def test_lasagne_rmsprop_follows_lasagnes_update(gradients: list[float]) -> None:
    assert run(LasagneRMSprop, gradients) == pytest.approx(lasagne_steps(gradients), rel=1e-12)


def test_pytorchs_rmsprop_is_another_optimiser_for_small_gradients() -> None:
    # Why the recurrent transformer's recipe needs Lasagne's form: at a gradient of 1e-4 the
    # two steps differ thirtyfold, at 1 they agree within a tenth of a percent.
    small, large = [1e-4], [1.0]
    torch_small = run(torch.optim.RMSprop, small, alpha=0.9, eps=1e-6)
    assert abs(torch_small) > 25 * abs(lasagne_steps(small))
    assert run(torch.optim.RMSprop, large, alpha=0.9, eps=1e-6) == pytest.approx(
        lasagne_steps(large), rel=1e-3)


def test_lasagne_rmsprop_resumes_from_its_state() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    optimizer = LasagneRMSprop(model.parameters(), lr=LR)
    inputs = torch.randn(8, 4)

    def step(optimizer: torch.optim.Optimizer) -> None:
        optimizer.zero_grad()
        model(inputs).square().sum().backward()
        optimizer.step()

    step(optimizer)
    # Copies: a state dict holds the live tensors, as a checkpoint on disk does not.
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    step(optimizer)
    after_two = [p.detach().clone() for p in model.parameters()]
    model.load_state_dict(saved_model)
    resumed = LasagneRMSprop(model.parameters(), lr=LR)
    resumed.load_state_dict(saved_optimizer)
    step(resumed)
    assert all(torch.equal(a, p) for a, p in zip(after_two, model.parameters(), strict=True))


def test_sequence_recipes_train_with_lasagnes_rmsprop_and_refuse_momentum() -> None:
    base = {"dataset": "mnist", "distortion": "sequence", "seed": 0, "device": "cpu"}
    for model in ("rnn-spn", "ffn-spn", "seq-cnn"):
        assert resolve_spec({**base, "model": model}).optimizer == "lasagne-rmsprop"
    with pytest.raises(StnbenchError, match=r"^momentum 0\.9: lasagne-rmsprop has none"):
        resolve_spec({**base, "model": "rnn-spn", "momentum": 0.9})
