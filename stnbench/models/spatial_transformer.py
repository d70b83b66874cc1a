"""The spatial transformer: localization net -> grid generator -> bilinear sampler."""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stnbench.models.transformations import ALIGN_CORNERS, GridGenerator

PADDINGS = ("zeros", "border", "reflection")


class SpatialTransformer(nn.Module):
    """Warps its input by a transformation predicted from that input (Jaderberg et al., 2015).

    ``localization`` maps the input to a feature vector of ``features`` values; a linear
    regressor, initialised with zero weights and the identity parameters as bias, turns it into
    the transformation parameters, so that an untrained transformer returns its input unchanged.
    A localization net that returns k rows per image (a recurrent one, ``recurrent.py``) gets
    k glimpses of that image, image-major: the output then has k times the input's rows.
    The output has the input's channels and ``output_size`` (height, width). Sampling is bilinear
    with ``align_corners=False`` (see ``transformations``); ``padding`` says what a sample outside
    the input reads: ``zeros`` (the default), ``border`` (the nearest edge pixel) or
    ``reflection`` (``grid_sample``'s padding modes).

    The regressor, the grid and the sampling run in float32 even under bf16 autocast: bf16 keeps
    8 bits of mantissa, so a bf16 grid moves an identity transformer's samples by up to 0.17 px
    at 60 px and lets a learnt warp move only in coarse steps. The output is float32; the next
    layer under autocast casts it again.
    """

    def __init__(
        self,
        localization: nn.Module,
        features: int,
        grid_generator: GridGenerator,
        output_size: tuple[int, int],
        padding: str = "zeros",
    ) -> None:
        super().__init__()
        self.localization = localization
        self.regressor = nn.Linear(features, grid_generator.num_params)
        nn.init.zeros_(self.regressor.weight)
        self.regressor.bias.data.copy_(grid_generator.identity())
        self.grid_generator = grid_generator
        self.output_size = tuple(output_size)
        self.padding = padding
        # Detached copies from the last forward pass, for pictures and divergence checks.
        self.last_params: Tensor | None = None
        self.last_grid: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        features = self.localization(x).flatten(1)
        if features.shape[0] != x.shape[0]:
            x = x.repeat_interleave(features.shape[0] // x.shape[0], dim=0)
        with torch.autocast(x.device.type, enabled=False):
            params = self.regressor(_full_precision(features))
            grid = self.grid_generator(params, (x.shape[0], *self.output_size))
            self.last_params = params.detach()
            self.last_grid = grid.detach()
            return F.grid_sample(
                _full_precision(x),
                grid,
                mode="bilinear",
                padding_mode=self.padding,
                align_corners=ALIGN_CORNERS,
            )

    def extra_repr(self) -> str:
        return (f"family={self.grid_generator.family}, output_size={self.output_size}, "
                f"padding={self.padding}")


def _full_precision(x: Tensor) -> Tensor:
    """``x`` in float32 when autocast left it in a half-precision type; float64 stays."""
    return x.float() if x.dtype in (torch.bfloat16, torch.float16) else x


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
