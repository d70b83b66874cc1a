"""Batched geometry with one set of parameters per image; nothing random happens here.

Coordinates are pixel coordinates with pixel centres on integers, (x, y) order, the
convention of kornia's matrix warps (``align_corners=True``). torchvision's v2 functional
``affine``/``perspective``/``elastic`` apply one parameter set to a whole batch, so per-image
matrices and homographies come from kornia and are sampled with F.grid_sample.
"""

import functools

import kornia.geometry as kg
import kornia.geometry.transform as kgt
import torch
import torch.nn.functional as F
from kornia.geometry.conversions import normalize_homography


def pad_to_canvas(images: torch.Tensor, canvas: int) -> torch.Tensor:
    """Images [N, C, S, S] centred on a black canvas [N, C, canvas, canvas], without resampling."""
    size = images.shape[-1]
    if canvas == size:
        return images
    before = frame_offset(size, canvas)
    after = canvas - size - before
    return F.pad(images, (before, after, before, after))


def frame_offset(size: int, canvas: int) -> int:
    """Where ``pad_to_canvas`` put the image's top-left pixel on the canvas."""
    return (canvas - size) // 2


def similarity_matrices(
    angle: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, size: int, canvas: int
) -> torch.Tensor:
    """[N, 3, 3] image-to-canvas maps: rotate by ``angle`` degrees and scale about the image
    centre, place the image where ``pad_to_canvas`` puts it, then move it by ``shift`` [N, 2]."""
    count = angle.shape[0]
    centre = torch.full((count, 2), (size - 1) / 2, dtype=angle.dtype, device=angle.device)
    placement = shift + frame_offset(size, canvas)
    return kgt.get_affine_matrix2d(placement, centre, scale[:, None].expand(-1, 2), angle)


def affine_grid(theta: torch.Tensor, size: int) -> torch.Tensor:
    """``F.affine_grid(theta, [N, C, size, size], align_corners=True)``, computed faster.

    Each grid coordinate is a row term plus a column term, added in one broadcast; on the
    CPU F.affine_grid's batched matmul with an inner size of 3 (and kornia's elementwise
    grid) take longer than the sampling itself. The tests check it against F.affine_grid.
    """
    base = torch.linspace(-1, 1, size, dtype=theta.dtype, device=theta.device)
    rows = theta[:, :, 1, None] * base + theta[:, :, 2, None]  # [N, 2, H]
    cols = theta[:, :, 0, None] * base  # [N, 2, W]
    return rows.transpose(1, 2)[:, :, None, :] + cols.transpose(1, 2)[:, None, :, :]


def warp_affine(images: torch.Tensor, matrices: torch.Tensor, canvas: int) -> torch.Tensor:
    """Each image warped onto a ``canvas`` by its own image-to-canvas matrix [N, 3, 3]; zeros
    outside. Same images as kornia.warp_affine (tested), with a cheaper grid."""
    height, width = images.shape[-2:]
    normalized = normalize_homography(matrices.float(), (height, width), (canvas, canvas))
    theta = torch.linalg.inv(normalized)[:, :2].to(images.dtype)
    return F.grid_sample(images, affine_grid(theta, canvas), align_corners=True)


def warp_perspective(
    images: torch.Tensor, source_points: torch.Tensor, target_points: torch.Tensor, canvas: int
) -> torch.Tensor:
    """Each image warped onto a ``canvas`` by the homography taking its 4 ``source_points``
    (image pixels) to ``target_points`` (canvas pixels)."""
    homographies = kgt.get_perspective_transform(source_points, target_points)
    warped = kgt.warp_perspective(images, homographies.to(images.dtype), (canvas, canvas))
    # kornia's warp divides by the homography's third coordinate unguarded, so a canvas pixel
    # exactly on the line that the inverse map sends to infinity comes out NaN (a 40-epoch P
    # run met one in its first 1.2 x 10^9 training pixels). That line lies outside the image of
    # the source, whose pixels there are the zero padding: 0 is the exact value.
    return warped.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)


def convex_quadrilaterals(points: torch.Tensor) -> torch.Tensor:
    """[...] True where the quadrilaterals [..., 4, 2] are strictly convex and keep the
    orientation of (top-left, top-right, bottom-right, bottom-left) in image coordinates.

    A homography onto any other quadrilateral folds the image over itself.
    """
    edges = points.roll(-1, dims=-2) - points
    following = edges.roll(-1, dims=-2)
    cross = edges[..., 0] * following[..., 1] - edges[..., 1] * following[..., 0]
    return (cross > 0).all(dim=-1)


def well_shaped_quadrilaterals(
    points: torch.Tensor, max_angle: float, min_side: float
) -> torch.Tensor:
    """[...] True where the quadrilaterals [..., 4, 2] are ``convex_quadrilaterals`` with every
    interior angle at most ``max_angle`` degrees and every side at least ``min_side`` pixels.

    An angle near 180 deg or a side near 0 squashes part of the image into a line or a point.
    """
    edges = points.roll(-1, dims=-2) - points
    sides = edges.norm(dim=-1)
    following, following_sides = edges.roll(-1, dims=-2), sides.roll(-1, dims=-1)
    # The interior angle at a corner is 180 deg less the turn between its two sides.
    cosine = (edges * following).sum(dim=-1) / (sides * following_sides).clamp_min(1e-12)
    interior = 180.0 - torch.rad2deg(torch.acos(cosine.clamp(-1, 1)))
    shaped = (interior <= max_angle).all(dim=-1) & (sides >= min_side).all(dim=-1)
    return convex_quadrilaterals(points) & shaped


def content_boxes(images: torch.Tensor) -> torch.Tensor:
    """[N, 4] (x0, y0, x1, y1): the first and last rows and columns holding any non-zero pixel.

    An empty image gets the whole frame, so that it is treated as if it filled it.
    """
    ink = images.amax(dim=1) > 0
    rows, cols = ink.any(dim=2), ink.any(dim=1)
    height, width = ink.shape[-2:]

    def first_last(mask: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.arange(length, device=mask.device)
        first = torch.where(mask, index, length).amin(dim=1)
        last = torch.where(mask, index, -1).amax(dim=1)
        empty = last < 0
        return first.masked_fill(empty, 0), last.masked_fill(empty, length - 1)

    x0, x1 = first_last(cols, width)
    y0, y1 = first_last(rows, height)
    return torch.stack([x0, y0, x1, y1], dim=1).to(images.dtype)


def transformed_extent(boxes: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """[N, 4] extent (x0, y0, x1, y1) of the pixel areas of ``boxes`` mapped by ``matrices``.

    The box covers whole pixels (centres +-0.5); its mapped corners bound the mapped content,
    since an affine map takes the box to a parallelogram spanned by those corners.
    """
    x0, y0, x1, y1 = (boxes - torch.tensor([0.5, 0.5, -0.5, -0.5], device=boxes.device)).unbind(1)
    corners = torch.stack(
        [torch.stack(pair, dim=1) for pair in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))], dim=1
    )
    mapped = kg.transform_points(matrices, corners)
    return torch.cat([mapped.amin(dim=1), mapped.amax(dim=1)], dim=1)


def control_grid(points: int, size: int, canvas: int, device: torch.device) -> torch.Tensor:
    """[points**2, 2] evenly spaced control points spanning the image's frame on the canvas."""
    offset = frame_offset(size, canvas)
    line = torch.linspace(offset, offset + size - 1, points, dtype=torch.float64, device=device)
    ys, xs = torch.meshgrid(line, line, indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)


def _tps_kernel(squared_distance: torch.Tensor) -> torch.Tensor:
    # U(r) = r^2 log r, written on r^2 as kornia does; U(0) = 0.
    return 0.5 * squared_distance * torch.log(squared_distance.clamp_min(1e-30))


@functools.lru_cache(maxsize=16)
def tps_basis(points: int, size: int, canvas: int, device: torch.device) -> torch.Tensor:
    """[canvas**2, points**2]: how each output pixel's sampling position moves per control point.

    A thin-plate spline with its centres fixed on the regular control grid is linear in the
    control points' displacements d: sampling position = pixel + basis @ d. Written here rather
    than with kornia's get_tps_transform/warp_image_tps because those solve a linear system per
    image and evaluate the spline per pixel and image (several seconds for 70,000 MNIST images
    on two CPU cores); this basis is solved once and every batch is then a single matmul.
    This is Bookstein's spline with centres on the grid; kornia's puts them on the moved
    points, which agrees to first order in the displacements. Tested against kornia's spline
    and the spline's invariants (interpolation, affine precision).
    """
    centres = control_grid(points, size, canvas, device)
    count = centres.shape[0]
    ones = torch.ones(count, 1, dtype=torch.float64, device=device)
    affine = torch.cat([ones, centres], dim=1)
    system = torch.zeros(count + 3, count + 3, dtype=torch.float64, device=device)
    system[:count, :count] = _tps_kernel(torch.cdist(centres, centres).square())
    system[:count, count:] = affine
    system[count:, :count] = affine.T
    coordinates = torch.arange(canvas, dtype=torch.float64, device=device)
    ys, xs = torch.meshgrid(coordinates, coordinates, indexing="ij")
    pixels = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)
    pixel_terms = torch.cat(
        [
            _tps_kernel(torch.cdist(pixels, centres).square()),
            torch.ones(pixels.shape[0], 1, dtype=torch.float64, device=device),
            pixels,
        ],
        dim=1,
    )
    return (pixel_terms @ torch.linalg.inv(system)[:, :count]).float()


def warp_tps(
    images: torch.Tensor, displacements: torch.Tensor, points: int, size: int
) -> torch.Tensor:
    """Thin-plate-spline warp: the output at control point k shows the input at k + displacement.

    ``displacements`` [N, points**2, 2] in pixels, for the control grid of ``control_grid``.
    """
    count, _, height, width = images.shape
    basis = tps_basis(points, size, width, images.device).to(images.dtype)
    # Pixels to grid_sample's [-1, 1] (align_corners=True) before the matmul: the tiny
    # displacements are scaled instead of the whole grid, and all images share one matmul.
    scaled = displacements.to(images.dtype) * (2 / (width - 1))
    offsets = scaled.transpose(1, 2).reshape(count * 2, -1) @ basis.T
    identity = affine_grid(torch.eye(2, 3, dtype=images.dtype, device=images.device)[None], width)
    grid = offsets.view(count, 2, height, width).permute(0, 2, 3, 1) + identity
    return F.grid_sample(images, grid, align_corners=True)


def paste(
    canvas: torch.Tensor,
    patches: torch.Tensor,
    batch_index: torch.Tensor,
    top: torch.Tensor,
    left: torch.Tensor,
    *,
    accumulate: bool,
) -> torch.Tensor:
    """Put each patch [C, h, w] onto ``canvas[batch_index]`` at integer (top, left), in place;
    ``accumulate`` adds overlapping patches up instead of overwriting.

    Placing at whole-pixel positions copies pixels exactly, as the cluttered MNIST generator
    does.
    """
    _, height, width = patches.shape[1:]
    device = canvas.device
    rows = top[:, None] + torch.arange(height, device=device)
    cols = left[:, None] + torch.arange(width, device=device)
    channels_last = canvas.permute(0, 2, 3, 1)
    channels_last.index_put_(
        (batch_index[:, None, None], rows[:, :, None], cols[:, None, :]),
        patches.permute(0, 2, 3, 1),
        accumulate=accumulate,
    )
    return canvas


def crops(
    images: torch.Tensor,
    batch_index: torch.Tensor,
    top: torch.Tensor,
    left: torch.Tensor,
    size: int,
) -> torch.Tensor:
    """[M, C, size, size] windows of ``images[batch_index]`` at integer (top, left)."""
    device = images.device
    rows = top[:, None] + torch.arange(size, device=device)
    cols = left[:, None] + torch.arange(size, device=device)
    windows = images.permute(0, 2, 3, 1)[
        batch_index[:, None, None], rows[:, :, None], cols[:, None, :]
    ]
    return windows.permute(0, 3, 1, 2)
