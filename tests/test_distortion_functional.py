"""The distortions' geometry (``stnbench.distortions.functional``) on synthetic shapes, against
kornia where it has the same operation."""

import kornia.geometry.transform as kgt
import pytest
import torch
import torch.nn.functional as F

from stnbench.distortions import functional as fn


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_well_shaped_quadrilaterals():
    square = torch.tensor([[0.0, 0], [27, 0], [27, 27], [0, 27]])
    flat = square.clone()
    flat[2] = torch.tensor([15.0, 15])  # an interior angle of about 167 deg there
    pinched = square.clone()
    pinched[2] = torch.tensor([27.0, 4])  # a side of 4 px
    kite = torch.tensor([[0.0, 0], [27, 0], [27, 27], [0, 27]]) + torch.tensor(
        [[3.0, 0], [0, 0], [-3, 0], [0, 0]]
    )
    shapes = torch.stack([square, flat, pinched, kite, square.flip(0)])
    assert fn.well_shaped_quadrilaterals(shapes, 150, 27 / 4).tolist() == [
        True, False, False, True, False
    ]
    # The angle bound alone, then the side bound alone, decide.
    assert fn.well_shaped_quadrilaterals(flat, 175, 1)
    assert fn.well_shaped_quadrilaterals(pinched, 150, 3)


def test_convex_quadrilaterals():
    square = torch.tensor([[0.0, 0], [27, 0], [27, 27], [0, 27]])
    dent = square.clone()
    dent[2] = torch.tensor([5.0, 5])
    assert fn.convex_quadrilaterals(square)
    assert not fn.convex_quadrilaterals(square.flip(0))  # mirrored
    assert not fn.convex_quadrilaterals(dent)
    assert not fn.convex_quadrilaterals(square[[0, 2, 1, 3]])  # bow tie


def test_affine_warp_matches_kornia():
    images = torch.rand(8, 3, 28, 28)
    angle, scale = torch.linspace(-45, 45, 8), torch.linspace(0.7, 1.2, 8)
    matrices = fn.similarity_matrices(
        angle, scale, torch.randn(8, 2, generator=generator()), 28, 42
    )
    expected = kgt.warp_affine(images, matrices[:, :2], (42, 42))
    assert torch.allclose(fn.warp_affine(images, matrices, 42), expected, atol=1e-4)
    theta = torch.randn(5, 2, 3, generator=generator())
    reference = F.affine_grid(theta, [5, 1, 17, 17], align_corners=True)
    assert torch.allclose(fn.affine_grid(theta, 17), reference, atol=1e-5)


def test_thin_plate_spline_invariants_and_kornia():
    device = torch.device("cpu")
    basis = fn.tps_basis(4, 28, 28, device)
    centres = fn.control_grid(4, 28, 28, device).float()
    at_centres = (centres[:, 1] * 28 + centres[:, 0]).long()
    displacements = torch.randn(16, 2, generator=generator())
    # Interpolation: each control point moves by exactly its displacement.
    assert torch.allclose((basis @ displacements)[at_centres], displacements, atol=1e-4)
    # Affine precision: displacements from an affine map give that map everywhere.
    matrix, shift = torch.tensor([[0.05, -0.1], [0.08, 0.02]]), torch.tensor([1.0, -2.0])
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    pixels = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)
    field = basis @ (centres @ matrix.T + shift)
    assert torch.allclose(field, pixels @ matrix.T + shift, atol=1e-3)
    # kornia's spline has its centres on the moved points rather than the grid: the two
    # agree to first order, so for tiny displacements they match.
    tiny = 0.01 * displacements
    kernel, affine = kgt.get_tps_transform(centres[None].double(), (centres + tiny)[None].double())
    theirs = kgt.warp_points_tps(
        pixels[None].double(), (centres + tiny)[None].double(), kernel, affine
    )
    ours = pixels + basis @ tiny
    assert (ours - theirs[0].float()).norm(dim=1).max() < 0.01 * tiny.norm(dim=1).max()


def test_paste_and_crops_place_exact_pixels():
    images = torch.rand(3, 2, 5, 5)
    canvas = torch.zeros(3, 2, 9, 9)
    top, left = torch.tensor([0, 4, 2]), torch.tensor([4, 0, 1])
    fn.paste(canvas, images, torch.arange(3), top, left, accumulate=False)
    for i in range(3):
        assert torch.equal(canvas[i, :, top[i] : top[i] + 5, left[i] : left[i] + 5], images[i])
    assert canvas.sum() == pytest.approx(images.sum().item(), rel=1e-6)
    windows = fn.crops(canvas, torch.tensor([2, 0]), torch.tensor([2, 0]), torch.tensor([1, 4]), 5)
    assert torch.equal(windows[0], images[2]) and torch.equal(windows[1], images[0])
