"""The optimisers a recipe can name, built over the model's parameter groups."""

import torch

from stnbench.engine.spec import RunSpec
from stnbench.models import parameter_groups

# Lasagne's rmsprop defaults (rho 0.9, epsilon 1e-6), which the recurrent transformer
# paper's code trained with; Lasagne adds epsilon inside the square root, PyTorch outside it.
RMSPROP_ALPHA = 0.9
RMSPROP_EPS = 1e-6


def build_optimizer(spec: RunSpec, model: torch.nn.Module) -> torch.optim.Optimizer:
    groups = parameter_groups(model, spec.lr, spec.localization_lr_multiplier)
    if spec.optimizer == "rmsprop":
        return torch.optim.RMSprop(groups, lr=spec.lr, alpha=RMSPROP_ALPHA, eps=RMSPROP_EPS,
                                   momentum=spec.momentum, weight_decay=spec.weight_decay)
    return torch.optim.SGD(groups, lr=spec.lr, momentum=spec.momentum,
                           weight_decay=spec.weight_decay)
