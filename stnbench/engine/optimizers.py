"""The optimisers a recipe can name, built over the model's parameter groups."""

import torch

from stnbench.engine.spec import RunSpec
from stnbench.models import parameter_groups

# Lasagne's rmsprop defaults (rho 0.9, epsilon 1e-6), which the recurrent transformer
# paper's code trained with.
RMSPROP_ALPHA = 0.9
RMSPROP_EPS = 1e-6


class LasagneRMSprop(torch.optim.Optimizer):
    """RMSprop as Lasagne (and TensorFlow 1) define it: each step is
    ``lr * g / sqrt(r + eps)``, r the running mean of g², starting at zero.

    Written here because no well-kept PyTorch library has this form: ``torch.optim.RMSprop``
    divides by ``sqrt(r) + eps``, and timm's ``RMSpropTF`` starts r at one. The placement of
    epsilon is not a detail: with eps 1e-6 inside the root every gradient element below about
    1e-3 moves its weight by about ``lr * g / 1e-3``, plain SGD at 1000 times the rate, where
    PyTorch's form moves it by the full ``lr`` whatever its size. With a total gradient norm
    of at most 5 over more than a million weights, most elements are that small."""

    def __init__(self, params, lr: float, alpha: float = RMSPROP_ALPHA,
                 eps: float = RMSPROP_EPS, weight_decay: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps,
                                  "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad
                if group["weight_decay"]:
                    grad = grad.add(param, alpha=group["weight_decay"])
                state = self.state[param]
                if not state:
                    state["square_avg"] = torch.zeros_like(param)
                square_avg = state["square_avg"]
                square_avg.mul_(group["alpha"]).addcmul_(grad, grad, value=1 - group["alpha"])
                param.addcdiv_(grad, (square_avg + group["eps"]).sqrt_(), value=-group["lr"])
        return loss


def build_optimizer(spec: RunSpec, model: torch.nn.Module) -> torch.optim.Optimizer:
    groups = parameter_groups(model, spec.lr, spec.localization_lr_multiplier)
    if spec.optimizer == "lasagne-rmsprop":
        return LasagneRMSprop(groups, lr=spec.lr, weight_decay=spec.weight_decay)
    if spec.optimizer == "rmsprop":
        # PyTorch's form, with Lasagne's constants: the first sequence runs trained with it.
        return torch.optim.RMSprop(groups, lr=spec.lr, alpha=RMSPROP_ALPHA, eps=RMSPROP_EPS,
                                   momentum=spec.momentum, weight_decay=spec.weight_decay)
    return torch.optim.SGD(groups, lr=spec.lr, momentum=spec.momentum,
                           weight_decay=spec.weight_decay)
