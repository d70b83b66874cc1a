"""The spatial transformer: localization net -> grid generator -> bilinear sampler."""

import torch.nn.functional as F
from torch import Tensor, nn

from stnbench.models.transformations import ALIGN_CORNERS, GridGenerator


class SpatialTransformer(nn.Module):
    """Warps its input by a transformation predicted from that input (Jaderberg et al., 2015).

    ``localization`` maps the input to a feature vector of ``features`` values; a linear
    regressor, initialised with zero weights and the identity parameters as bias, turns it into
    the transformation parameters, so that an untrained transformer returns its input unchanged.
    The output has the input's channels and ``output_size`` (height, width). Sampling is bilinear
    with zero padding, ``align_corners=False`` (see ``transformations``).
    """

    def __init__(
        self,
        localization: nn.Module,
        features: int,
        grid_generator: GridGenerator,
        output_size: tuple[int, int],
    ) -> None:
        super().__init__()
        self.localization = localization
        self.regressor = nn.Linear(features, grid_generator.num_params)
        nn.init.zeros_(self.regressor.weight)
        self.regressor.bias.data.copy_(grid_generator.identity())
        self.grid_generator = grid_generator
        self.output_size = tuple(output_size)
        # Detached copies from the last forward pass, for pictures and divergence checks.
        self.last_params: Tensor | None = None
        self.last_grid: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        features = self.localization(x).flatten(1)
        params = self.regressor(features)
        grid = self.grid_generator(params, (x.shape[0], *self.output_size))
        self.last_params = params.detach()
        self.last_grid = grid.detach()
        return F.grid_sample(
            x, grid, mode="bilinear", padding_mode="zeros", align_corners=ALIGN_CORNERS
        )

    def extra_repr(self) -> str:
        return f"family={self.grid_generator.family}, output_size={self.output_size}"


def spatial_transformers(model: nn.Module) -> list[SpatialTransformer]:
    """Every spatial transformer in ``model``, in module order."""
    return [m for m in model.modules() if isinstance(m, SpatialTransformer)]


def parameter_groups(
    model: nn.Module, lr: float, localization_lr_multiplier: float = 1.0
) -> list[dict]:
    """``torch.optim`` parameter groups: the localization nets (regressors included) at
    ``lr * localization_lr_multiplier``, everything else at ``lr``. Empty groups are left out."""
    localization = {id(p): p for st in spatial_transformers(model) for p in st.parameters()}
    rest = [p for p in model.parameters() if id(p) not in localization]
    groups = [
        {"name": "classifier", "params": rest, "lr": lr},
        {
            "name": "localization",
            "params": list(localization.values()),
            "lr": lr * localization_lr_multiplier,
        },
    ]
    return [g for g in groups if g["params"]]
