"""Grid generators: transformation parameters -> sampling grid for ``F.grid_sample``.

Coordinates are normalised to [-1, 1] with ``align_corners=False`` (``ALIGN_CORNERS``): -1 and 1
are the outer edges of the border pixels, so a grid of any output size covers the same extent of
the input, and the identity grid samples every pixel at its centre, which returns the input
(exactly up to the rounding of the coordinates: below 1e-5 in float32 at the suite's sizes,
1e-12 in float64). The same flag must be passed to ``F.grid_sample``.

Each family has a pure function from parameters to grid, and a small ``GridGenerator`` module
that knows its parameter count and identity parameters (the localization net's initial bias).
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stnbench.errors import StnbenchError

ALIGN_CORNERS = False
FAMILIES = ("affine", "similarity", "projective", "tps")
SIMILARITY_COMPONENTS = ("rotation", "scale", "translation")
DEFAULT_TPS_GRID = 4

GridSize = tuple[int, int, int]  # (batch, height, width) of the output


def affine_grid(params: Tensor, size: GridSize) -> Tensor:
    """``params`` [N, 6] = row-major 2x3 matrix mapping output to input coordinates."""
    n, h, w = size
    return F.affine_grid(params.view(-1, 2, 3), [n, 1, h, w], align_corners=ALIGN_CORNERS)


def identity_grid(size: GridSize, like: Tensor) -> Tensor:
    """Normalised coordinates (x, y) of the output pixel centres, [N, H, W, 2]."""
    identity = torch.eye(2, 3, dtype=like.dtype, device=like.device).reshape(1, 6)
    return affine_grid(identity.expand(size[0], 6), size)


def similarity_matrix(params: Tensor, components: tuple[str, ...]) -> Tensor:
    """[N, k] -> [N, 6] affine matrix ``scale * R(angle) | (tx, ty)``.

    The k parameters are, in this order and only those in ``components``: the rotation angle in
    radians, the isotropic scale, the translation (tx, ty). Components left out stay at the
    identity, as the ``--rot/--sca/--tra`` flags of Moodstocks' gtsrb.torch.
    """
    columns = iter(params.unbind(dim=1))
    zero = torch.zeros_like(params[:, 0])
    angle = next(columns) if "rotation" in components else zero
    scale = next(columns) if "scale" in components else zero + 1
    tx, ty = (next(columns), next(columns)) if "translation" in components else (zero, zero)
    cos, sin = scale * torch.cos(angle), scale * torch.sin(angle)
    return torch.stack([cos, -sin, tx, sin, cos, ty], dim=1)


def projective_grid(params: Tensor, size: GridSize) -> Tensor:
    """``params`` [N, 8] = the homography's first 8 entries, row-major, the ninth fixed to 1."""
    n, h, w = size
    homography = torch.cat([params, torch.ones_like(params[:, :1])], dim=1).view(-1, 3, 3)
    points = identity_grid(size, params).reshape(n, h * w, 2)
    homogeneous = torch.cat([points, torch.ones_like(points[..., :1])], dim=2)
    mapped = homogeneous @ homography.transpose(1, 2)
    depth = mapped[..., 2:]
    # A point mapped to (near) infinity: keep its sign and divide by a small number, so that it
    # lands far outside [-1, 1] and samples the zero padding instead of producing inf/nan.
    eps = 1e-6
    depth = torch.where(depth.abs() < eps, torch.full_like(depth, eps).copysign(depth), depth)
    return (mapped[..., :2] / depth).view(n, h, w, 2)


def tps_control_points(grid_size: int) -> Tensor:
    """A ``grid_size`` x ``grid_size`` regular grid of (x, y) control points spanning [-1, 1]."""
    axis = torch.linspace(-1.0, 1.0, grid_size, dtype=torch.float64)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([x.flatten(), y.flatten()], dim=1)


def tps_radial_basis(points: Tensor, control_points: Tensor) -> Tensor:
    """U(r) = r^2 log r^2 between [..., P, 2] points and [K, 2] control points -> [..., P, K]."""
    squared = (points.unsqueeze(-2) - control_points).pow(2).sum(-1)
    # U(0) = 0; the clamp only avoids log(0), the product is then exactly 0.
    return squared * torch.log(squared.clamp_min(1e-12))


def tps_solver(control_points: Tensor) -> Tensor:
    """The [K + 3, K] matrix taking control-point displacements to TPS coefficients.

    The TPS system depends on the fixed control points only, so it is inverted once, in float64,
    here; the per-sample solve is then a matrix product (kornia's ``get_tps_transform`` solves a
    new system for every sample).
    """
    k = control_points.shape[0]
    affine = torch.cat([torch.ones(k, 1, dtype=torch.float64), control_points], dim=1)
    system = torch.zeros(k + 3, k + 3, dtype=torch.float64)
    system[:k, :k] = tps_radial_basis(control_points, control_points)
    system[:k, k:] = affine
    system[k:, :k] = affine.T
    return torch.linalg.inv(system)[:, :k]


def tps_transform_points(
    points: Tensor, displacements: Tensor, control_points: Tensor, solver: Tensor
) -> Tensor:
    """Map [N, P, 2] points by the TPS that moves each control point by its displacement [N, K, 2].

    The mapping is the identity plus the interpolating thin-plate spline of the displacements,
    so zero displacements give the identity exactly.
    """
    coefficients = solver @ displacements  # [N, K + 3, 2]
    features = torch.cat(
        [tps_radial_basis(points, control_points), torch.ones_like(points[..., :1]), points], dim=-1
    )
    return points + features @ coefficients


def tps_grid(params: Tensor, size: GridSize, control_points: Tensor, solver: Tensor) -> Tensor:
    """``params`` [N, 2K] = (dx, dy) displacement of each control point, in input coordinates."""
    n, h, w = size
    points = identity_grid(size, params).reshape(n, h * w, 2)
    displacements = params.view(n, -1, 2)
    return tps_transform_points(points, displacements, control_points, solver).view(n, h, w, 2)


class GridGenerator(nn.Module):
    """Turns a localization net's output into a sampling grid; knows the identity parameters."""

    family: str
    num_params: int

    def identity(self) -> Tensor:
        raise NotImplementedError

    def forward(self, params: Tensor, size: GridSize) -> Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"params={self.num_params}"


class AffineGrid(GridGenerator):
    family = "affine"
    num_params = 6

    def identity(self) -> Tensor:
        return torch.eye(2, 3).flatten()

    def forward(self, params: Tensor, size: GridSize) -> Tensor:
        return affine_grid(params, size)


class SimilarityGrid(GridGenerator):
    family = "similarity"

    def __init__(self, components: tuple[str, ...]) -> None:
        super().__init__()
        self.components = components
        self.num_params = sum(2 if c == "translation" else 1 for c in components)

    def identity(self) -> Tensor:
        values = {"rotation": [0.0], "scale": [1.0], "translation": [0.0, 0.0]}
        return torch.tensor([v for c in self.components for v in values[c]])

    def forward(self, params: Tensor, size: GridSize) -> Tensor:
        return affine_grid(similarity_matrix(params, self.components), size)

    def extra_repr(self) -> str:
        return f"components={list(self.components)}, params={self.num_params}"


class ProjectiveGrid(GridGenerator):
    family = "projective"
    num_params = 8

    def identity(self) -> Tensor:
        return torch.eye(3).flatten()[:8]

    def forward(self, params: Tensor, size: GridSize) -> Tensor:
        return projective_grid(params, size)


class ThinPlateSplineGrid(GridGenerator):
    family = "tps"

    def __init__(self, grid_size: int) -> None:
        super().__init__()
        self.grid_size = grid_size
        self.num_params = 2 * grid_size * grid_size
        control_points = tps_control_points(grid_size)
        self.register_buffer("control_points", control_points.float(), persistent=False)
        self.register_buffer("solver", tps_solver(control_points).float(), persistent=False)

    def identity(self) -> Tensor:
        return torch.zeros(self.num_params)

    def forward(self, params: Tensor, size: GridSize) -> Tensor:
        return tps_grid(params, size, self.control_points, self.solver)

    def extra_repr(self) -> str:
        return f"grid={self.grid_size}x{self.grid_size}, params={self.num_params}"


def make_grid_generator(
    family: str,
    *,
    components: list[str] | tuple[str, ...] | None = None,
    grid_size: int | list[int] | None = None,
) -> GridGenerator:
    """The grid generator of ``family``; ``components`` for similarity, ``grid_size`` for tps."""
    if family not in FAMILIES:
        raise StnbenchError(
            f"transform: unknown family {family!r} (choose from {', '.join(FAMILIES)})"
        )
    if components is not None and family != "similarity":
        raise StnbenchError(f"components: only applies to the similarity family, not {family!r}")
    if grid_size is not None and family != "tps":
        raise StnbenchError(f"grid_size: only applies to the tps family, not {family!r}")
    if family == "affine":
        return AffineGrid()
    if family == "projective":
        return ProjectiveGrid()
    if family == "similarity":
        return SimilarityGrid(_similarity_components(components))
    return ThinPlateSplineGrid(_tps_grid_size(grid_size))


def _similarity_components(components: list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    if components is None:
        return SIMILARITY_COMPONENTS
    chosen = [components] if isinstance(components, str) else list(components)
    unknown = [c for c in chosen if c not in SIMILARITY_COMPONENTS]
    if unknown or not chosen:
        raise StnbenchError(
            f"components: {chosen!r} must be a non-empty subset of {list(SIMILARITY_COMPONENTS)}"
        )
    return tuple(c for c in SIMILARITY_COMPONENTS if c in chosen)


def _tps_grid_size(grid_size: int | list[int] | None) -> int:
    if grid_size is None:
        return DEFAULT_TPS_GRID
    sides = [grid_size] if isinstance(grid_size, int) else list(grid_size)
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in sides) or len(sides) > 2:
        raise StnbenchError(f"grid_size: {grid_size!r} must be K or [K, K] with K an integer")
    if len(set(sides)) != 1:
        raise StnbenchError(f"grid_size: the tps control-point grid {grid_size!r} is not square")
    if sides[0] < 2:
        raise StnbenchError(f"grid_size: {sides[0]} must be at least 2 control points a side")
    return sides[0]

