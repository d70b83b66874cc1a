"""Telling a run that has gone wrong (non-finite loss, collapsing transformer) from one that
is merely learning slowly, so that the grid records it instead of averaging it in."""

import torch

from stnbench.models import spatial_transformers


class Diverged(Exception):
    """Training cannot go on; ``str(error)`` is the reason recorded in metrics.json."""


def check_loss(loss: torch.Tensor, epoch: int, step: int) -> None:
    if not torch.isfinite(loss):
        raise Diverged(
            f"non-finite training loss ({float(loss.detach())}) at epoch {epoch}, step {step}"
        )


class CollapseCheck:
    """Inspects every spatial transformer's last parameters and sampling grid.

    The grid is in normalised coordinates, where the image spans [-1, 1] on each axis.
    """

    def __init__(
        self, model: torch.nn.Module, max_param: float, min_extent: float, min_inside: float
    ) -> None:
        self.transformers = spatial_transformers(model)
        self.max_param = max_param
        self.min_extent = min_extent
        self.min_inside = min_inside

    def __call__(self, epoch: int, step: int) -> None:
        where = f"at epoch {epoch}, step {step}"
        for index, transformer in enumerate(self.transformers):
            name = f"spatial transformer {index}"
            params, grid = transformer.last_params, transformer.last_grid
            if params is not None:
                largest = float(params.float().abs().max())
                if not largest <= self.max_param:  # also catches NaN
                    raise Diverged(
                        f"{name}: parameters exploding (max |theta| {largest:.3g}) {where}"
                    )
            if grid is None:
                continue
            points = grid.float().flatten(1, 2)  # [N, H*W, 2]
            if not torch.isfinite(points).all():
                raise Diverged(f"{name}: non-finite sampling grid {where}")
            side = (points.amax(dim=1) - points.amin(dim=1)).amin(dim=1) / 2
            extent = float(side.median())
            if extent < self.min_extent:
                raise Diverged(
                    f"{name}: sampled region shrinking to nothing "
                    f"(median side {extent:.3g} of the image) {where}"
                )
            inside = float((points.abs() <= 1).all(dim=2).float().mean())
            if inside < self.min_inside:
                raise Diverged(
                    f"{name}: sampled region leaving the image "
                    f"({inside:.1%} of sampling points inside) {where}"
                )
