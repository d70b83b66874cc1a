"""A definition's ``init`` key: how a built network's weights start, when not PyTorch's way.

- ``init: {uniform: a}``: every conv and linear weight and bias drawn uniformly from [-a, a]
  (IDSIA's column).
- ``init: lasagne``: Lasagne's defaults as the recurrent transformer paper's code sets them:
  conv and linear weights Glorot-uniform, their biases zero; a recurrent cell's weights normal
  with std 0.1 and its biases zero (Lasagne's ``Gate``).

Either way the spatial transformers' regressors keep their identity start.
"""

from typing import Any

from torch import nn

from stnbench.errors import StnbenchError
from stnbench.models.spatial_transformer import SpatialTransformer

UNIFORM = "uniform"
LASAGNE = "lasagne"
LASAGNE_RECURRENT_STD = 0.1


def check_init(init: Any, source: str) -> None:
    """Refuse an ``init`` value that is neither ``{uniform: a}`` with a > 0 nor ``lasagne``."""
    if init == LASAGNE:
        return
    if (
        isinstance(init, dict) and set(init) == {UNIFORM}
        and isinstance(init[UNIFORM], int | float)
        and not isinstance(init[UNIFORM], bool) and init[UNIFORM] > 0
    ):
        return
    raise StnbenchError(
        f"{source}: init must be {{{UNIFORM}: a}} with a > 0 or {LASAGNE}, got {init!r}"
    )


def initialise(body: nn.Module, init: dict | str) -> None:
    """Draw ``body``'s weights as ``init`` (checked by :func:`check_init`) says."""
    regressors = {id(m.regressor) for m in body.modules() if isinstance(m, SpatialTransformer)}
    for module in body.modules():
        if id(module) in regressors:
            continue
        if init == LASAGNE:
            _lasagne_initialise(module)
        elif isinstance(module, nn.Conv2d | nn.Linear):
            for parameter in (module.weight, module.bias):
                if parameter is not None:
                    nn.init.uniform_(parameter, -init[UNIFORM], init[UNIFORM])


def _lasagne_initialise(module: nn.Module) -> None:
    if isinstance(module, nn.RNNBase):
        for name, parameter in module.named_parameters():
            if name.startswith("weight"):
                nn.init.normal_(parameter, std=LASAGNE_RECURRENT_STD)
            else:
                nn.init.zeros_(parameter)
    elif isinstance(module, nn.Conv2d | nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
