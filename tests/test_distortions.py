"""Distortion families against their definitions, on synthetic markers and real MNIST/GTSRB."""

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import stats

from stnbench.cli import main
from stnbench.datasets import DatasetTensors, Split
from stnbench.distortions import (
    FAMILIES,
    GRADED_FAMILIES,
    PAPER_FAMILIES,
    cached_distorted_split,
    distort_split,
    distortion_version,
    get_distortion,
)
from stnbench.distortions import cluttered as cluttered_mnist
from stnbench.distortions import functional as fn
from stnbench.distortions.gallery import draw_gallery
from stnbench.errors import StnbenchError


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def marker_images(count: int) -> torch.Tensor:
    """A 2x2 dot centred 9 px straight above the centre (13.5, 13.5) of a 28 px frame."""
    images = torch.zeros(count, 1, 28, 28)
    images[:, :, 4:6, 13:15] = 1.0
    return images


def centroids(images: torch.Tensor) -> torch.Tensor:
    """[N, 2] intensity-weighted (x, y) centroid of each single-channel image."""
    size = images.shape[-1]
    coords = torch.arange(size, dtype=images.dtype)
    mass = images.sum(dim=(1, 2, 3))
    x = (images.sum(dim=(1, 2)) * coords).sum(dim=1) / mass
    y = (images.sum(dim=(1, 3)) * coords).sum(dim=1) / mass
    return torch.stack([x, y], dim=1)


def subset(split: Split, count: int) -> Split:
    return Split(images=split.images[:count], labels=split.labels[:count])


def test_family_names_are_the_interface():
    assert set(FAMILIES) == {
        "none", "R", "RTS", "P", "E", "cluttered",
        "rotation", "scale", "translation", "rts", "perspective", "elastic",
    }  # fmt: skip
    assert set(PAPER_FAMILIES.values()) <= set(GRADED_FAMILIES)


@pytest.mark.parametrize("family", ["R", "rotation"])
def test_rotation_angles_stay_within_90_degrees_and_cover_the_range(family):
    images = marker_images(2000)
    out = get_distortion(family, 1.0)(images, generator(1))
    offset = centroids(out) - 13.5
    radius = offset.norm(dim=1)
    assert torch.allclose(radius, torch.full_like(radius, 9.0), atol=0.3)  # rotated, not moved
    angles = torch.rad2deg(torch.atan2(offset[:, 0], -offset[:, 1]))  # 0 = straight up
    assert angles.abs().max() <= 90.5
    assert angles.min() < -85 and angles.max() > 85
    assert stats.kstest(angles.numpy(), stats.uniform(-90, 180).cdf).pvalue > 1e-3


def test_graded_rotation_halves_the_range_and_keeps_the_draw():
    images = marker_images(1000)
    full = centroids(get_distortion("rotation", 1.0)(images, generator(2))) - 13.5
    half = centroids(get_distortion("rotation", 0.5)(images, generator(2))) - 13.5
    full_angles = torch.atan2(full[:, 0], -full[:, 1])
    half_angles = torch.atan2(half[:, 0], -half[:, 1])
    assert torch.rad2deg(half_angles).abs().max() <= 45.5
    assert torch.allclose(half_angles, full_angles / 2, atol=math.radians(1.0))


def test_paper_families_are_the_graded_ones_at_severity_one(mnist):
    split = subset(mnist.test, 300)
    for paper, graded in PAPER_FAMILIES.items():
        assert torch.equal(
            distort_split(split, get_distortion(paper), seed=3).images,
            distort_split(split, get_distortion(graded, 1.0), seed=3).images,
        ), paper


def test_rts_places_the_whole_digit_inside_the_42px_canvas():
    # A solid square keeps mass = 12 * variance along each axis under any rotation and
    # scale; a square cut by the canvas edge breaks that balance.
    images = torch.zeros(600, 1, 28, 28)
    images[:, :, 4:24, 4:24] = 1.0
    out = get_distortion("RTS")(images, generator(4))
    assert out.shape == (600, 1, 42, 42)
    mass = out.sum(dim=(1, 2, 3))
    centre = centroids(out)
    coords = torch.arange(42.0)
    variance_x = (out.sum(dim=(1, 2)) * (coords - centre[:, :1]) ** 2).sum(1) / mass
    variance_y = (out.sum(dim=(1, 3)) * (coords - centre[:, 1:]) ** 2).sum(1) / mass
    assert torch.allclose(12 * variance_x / mass, torch.ones(600), rtol=0.03)
    assert torch.allclose(12 * variance_y / mass, torch.ones(600), rtol=0.03)
    side = mass.sqrt() / 20  # the scale factor
    assert side.min() > 0.69 and side.max() < 1.21
    assert side.min() < 0.73 and side.max() > 1.17
    # Placed anywhere: the squares' centres spread over most of the canvas.
    assert centre.min() < 14 and centre.max() > 27


def test_rts_keeps_real_digits_bounding_boxes_inside(mnist):
    # Each real digit replaced by its filled bounding box: RTS places it exactly as the digit
    # (placement depends on the box alone). For a w x h rectangle under any rotation and
    # scale, (var_x + var_y) / mass = (w^2 + h^2) / (12 w h); a rectangle cut by the canvas
    # edge breaks that.
    digits = mnist.test.images[:500].float() / 255
    boxes = fn.content_boxes(digits)
    coords = torch.arange(28.0)
    inside_x = (coords >= boxes[:, None, 0]) & (coords <= boxes[:, None, 2])
    inside_y = (coords >= boxes[:, None, 1]) & (coords <= boxes[:, None, 3])
    rectangles = (inside_y[:, :, None] & inside_x[:, None, :]).float()[:, None]
    out = get_distortion("RTS")(rectangles, generator(5))
    assert out.shape == (500, 1, 42, 42)
    mass = out.sum(dim=(1, 2, 3))
    centre = centroids(out)
    canvas = torch.arange(42.0)
    variance = (
        (out.sum(dim=(1, 2)) * (canvas - centre[:, :1]) ** 2).sum(1)
        + (out.sum(dim=(1, 3)) * (canvas - centre[:, 1:]) ** 2).sum(1)
    ) / mass
    width, height = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
    expected = (width**2 + height**2) / (12 * width * height)
    assert torch.allclose(variance / mass, expected, rtol=0.03)


@pytest.mark.parametrize("dataset, size, channels", [("mnist", 28, 1), ("gtsrb", 32, 3)])
def test_severity_zero_returns_the_input(dataset, size, channels):
    images = torch.rand(16, channels, size, size)
    for family in ["none", *GRADED_FAMILIES]:
        distortion = get_distortion(family, 0.0, dataset=dataset)
        out = distortion(images, generator())
        canvas = distortion.output_size(size)
        offset = (canvas - size) // 2
        assert torch.equal(out[:, :, offset : offset + size, offset : offset + size], images)
        assert torch.count_nonzero(out) == torch.count_nonzero(images)  # black around it
        assert distortion.is_identity(size) == (canvas == size)


def test_small_severities_stay_close_to_the_input(mnist):
    digits = mnist.test.images[:64].float() / 255
    for family in ["rotation", "scale", "perspective", "elastic"]:
        slight = get_distortion(family, 0.02)(digits, generator())
        strong = get_distortion(family, 1.0)(digits, generator())
        assert (slight - digits).abs().mean() < 0.2 * (strong - digits).abs().mean(), family


@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "none"])
def test_same_seed_same_bytes_other_seed_other_bytes(mnist, family):
    split = subset(mnist.test, 200)
    distortion = get_distortion(family, 1.0)
    first = distort_split(split, distortion, seed=7)
    assert first.images.dtype == torch.uint8
    assert torch.equal(first.images, distort_split(split, distortion, seed=7).images)
    assert not torch.equal(first.images, distort_split(split, distortion, seed=8).images)
    assert torch.equal(first.labels, split.labels)


def test_batches_and_splits_draw_the_same_parameters(mnist):
    # distort_split's chunks take their parameters from one generator in order: one call on
    # the whole batch gives the same images.
    split = subset(mnist.test, 300)
    distortion = get_distortion("rts", 0.7)
    whole = distortion(split.images.float() / 255, generator(9))
    assert torch.equal(
        distort_split(split, distortion, seed=9).images, whole.mul(255).round().byte()
    )


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "none"])
def test_a_gpu_batch_gets_the_same_draws(mnist, family):
    # Parameters come from the CPU generator; only float rounding in the sampling differs.
    split = subset(mnist.test, 256)
    distortion = get_distortion(family, 1.0)
    cpu = distort_split(split, distortion, seed=1).images.int()
    gpu = distort_split(split, distortion, seed=1, device="cuda").images.int()
    difference = (cpu - gpu).abs()
    assert difference.max() <= 1 and (difference > 0).float().mean() < 0.01


def test_cluttered_canvas_holds_the_digit_and_distractors(mnist):
    digits = mnist.test.images[:64].float() / 255
    out = get_distortion("cluttered")(digits, generator(10))
    assert out.shape == (64, 1, 60, 60)
    assert out.min() >= 0 and out.max() <= 1
    # Every 28x28 window position: the digit is where a window holds at least all its ink.
    windows = F.unfold(out, kernel_size=28)  # [N, 784, 33 * 33]
    covers = (windows >= digits.reshape(64, 784, 1) - 1e-6).all(dim=1)
    assert covers.any(dim=1).all()
    extra = out.sum(dim=(1, 2, 3)) - digits.sum(dim=(1, 2, 3))
    assert (extra > 0).float().mean() > 0.8  # some crops fall on blank corners of a digit
    # Distractors are crops of at most 6x6 px: no more than 6 * 36 extra pixels.
    lit = (out > 0).sum(dim=(1, 2, 3)) - (digits > 0).sum(dim=(1, 2, 3))
    assert lit.max() <= 6 * 36


def test_cluttered_adds_six_distractors_of_6x6_px():
    # All-white frames, before the caller's clipping: the canvas holds the 28x28 frame plus
    # exactly six 6x6 crops, however they overlap.
    frames = torch.ones(16, 1, 28, 28)
    out = cluttered_mnist.clutter(frames, generator(3), 60)
    assert torch.equal(out.sum(dim=(1, 2, 3)), torch.full((16,), 28.0**2 + 6 * 6**2))


def test_perspective_never_folds_the_image():
    ones = torch.ones(400, 1, 28, 28)
    out = get_distortion("P")(ones, generator(11))
    mask = out > 0.5
    # The image of a convex quadrilateral: on each row the lit pixels form one run.
    runs = (mask[..., 1:] & ~mask[..., :-1]).sum(dim=-1) + mask[..., 0].long()
    assert runs.max() <= 1
    area = mask.sum(dim=(1, 2, 3)).float() / 28**2
    assert area.min() > 0.05 and area.mean() < 0.9


def test_perspective_is_finite_where_the_inverse_map_reaches_infinity():
    # A P draw met at epoch 31 of a 40-epoch run: the line that the inverse homography sends
    # to infinity passes exactly through canvas pixel (5, 25), where the warp divided by zero.
    last = 27
    square = torch.tensor([[[0, 0], [last, 0], [last, last], [0, last]]], dtype=torch.float32)
    quad = torch.tensor([[[8.497430801391602, 4.869862079620361],
                          [19.506919860839844, 9.633078575134277],
                          [25.627544403076172, 21.121980667114258],
                          [5.439261436462402, 23.3131160736084]]])
    out = fn.warp_perspective(torch.rand(1, 1, 28, 28, generator=generator(0)), square, quad, 28)
    assert torch.isfinite(out).all()
    assert out[0, 0, 5, 25] == 0  # outside the warped image: the zero padding


def test_perspective_keeps_real_digits_ink(mnist):
    # A nearly degenerate corner draw squashes a digit into a line: at version 1 about 1.3%
    # of these digits kept under a tenth of their ink.
    digits = mnist.test.images[:600].float() / 255
    out = get_distortion("P")(digits, generator(0))
    kept = out.sum(dim=(1, 2, 3)) / digits.sum(dim=(1, 2, 3))
    assert (kept < 0.1).sum() == 0
    assert (kept < 0.25).float().mean() < 0.03


def test_every_family_names_its_source_and_version():
    for family in FAMILIES:
        distortion = get_distortion(family, 0.5 if family in GRADED_FAMILIES else 1.0)
        assert len(distortion.source) > 20 and distortion.version >= 1
    # The paper's families are their graded families' definitions.
    assert get_distortion("P").version == distortion_version("perspective") == 2
    assert distortion_version("cluttered") == 2
    assert distortion_version("R") == distortion_version("E") == 1
    with pytest.raises(StnbenchError, match="distortion 'Q'"):
        distortion_version("Q")


def test_a_changed_definition_has_its_own_cache(mnist, tmp_path):
    data = small_mnist(mnist, 8)
    for family in ("P", "R"):
        cached_distorted_split(data, "test", get_distortion(family), 0, tmp_path)
    names = sorted(path.name for path in tmp_path.rglob("*.pt"))
    # Version 1 keeps its unversioned name, so that caches made before versions stay valid.
    assert names == ["P-s1.0-28px-seed0-v1-def2.pt", "R-s1.0-28px-seed0-v1.pt"]


def test_elastic_moves_pixels_by_about_the_paper_sigma(mnist):
    digits = mnist.test.images[:200].float() / 255
    out = get_distortion("E")(digits, generator(12))
    assert out.shape == digits.shape
    # Local stretching and squeezing change the ink by up to a third, on average nothing.
    ratio = out.sum(dim=(1, 2, 3)) / digits.sum(dim=(1, 2, 3))
    assert 0.95 < ratio.mean() < 1.05 and ratio.std() > 0.02
    moved = centroids(out) - centroids(digits)
    assert 0.1 < moved.norm(dim=1).median() < 1.5


def test_graded_families_on_real_gtsrb(gtsrb):
    signs = gtsrb.test.images[:32].float() / 255
    for family in GRADED_FAMILIES:
        out = get_distortion(family, 1.0, dataset="gtsrb")(signs, generator(13))
        assert out.shape == signs.shape, family
        assert out.min() >= 0 and out.max() <= 1
        assert (out - signs).abs().mean() > 0.01, family


@pytest.mark.parametrize(
    "arguments, message",
    [
        (("spin",), "expected one of"),
        (("rotation", 1.5), "must lie in [0, 1]"),
        (("rotation", -0.1), "must lie in [0, 1]"),
        (("rotation", float("nan")), "must lie in [0, 1]"),
        (("R", 0.5), "fixed level"),
        (("cluttered", 0.5), "one level"),
        (("R", 1.0, "gtsrb"), "defined for mnist only"),
        (("cluttered", 1.0, "gtsrb"), "defined for mnist only"),
        (("rotation", 1.0, "svhn"), "expected one of"),
    ],
)
def test_bad_parameters_are_errors(arguments, message):
    family, *rest = arguments
    severity = rest[0] if rest else 1.0
    dataset = rest[1] if len(rest) > 1 else "mnist"
    with pytest.raises(StnbenchError, match=message.replace("[", r"\[").replace("]", r"\]")):
        get_distortion(family, severity, dataset=dataset)


def test_a_canvas_smaller_than_the_image_is_an_error_before_any_work():
    distortion = get_distortion("rts", 1.0, canvas=20)
    with pytest.raises(StnbenchError, match="smaller than the 28 px"):
        distortion.output_size(28)
    images = torch.zeros(4, 1, 28, 28, dtype=torch.uint8)
    with pytest.raises(StnbenchError, match="smaller than the 28 px"):
        distort_split(Split(images, torch.zeros(4, dtype=torch.int64)), distortion, seed=0)
    state = generator().get_state()
    with pytest.raises(StnbenchError, match="smaller than the 28 px"):
        distortion(images.float(), gen := generator())
    assert torch.equal(gen.get_state(), state)  # no random numbers drawn


def small_mnist(mnist: DatasetTensors, count: int = 300) -> DatasetTensors:
    return dataclasses.replace(mnist, val=subset(mnist.val, count), test=subset(mnist.test, count))


def test_cached_distorted_split_generates_once(mnist, tmp_path):
    data = small_mnist(mnist)
    distortion = get_distortion("rotation", 0.5)
    first = cached_distorted_split(data, "test", distortion, 0, tmp_path)
    files = list((tmp_path / "distorted" / "mnist").rglob("*.pt"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    again = cached_distorted_split(data, "test", distortion, 0, tmp_path)
    assert torch.equal(first.images, again.images) and files[0].stat().st_mtime_ns == stamp
    assert torch.equal(first.images, distort_split(data.test, distortion, 0).images)
    cached_distorted_split(data, "test", distortion, 1, tmp_path)
    cached_distorted_split(data, "val", distortion, 0, tmp_path)
    assert len(list(tmp_path.rglob("*.pt"))) == 3
    assert not list(tmp_path.rglob("*.tmp"))
    assert cached_distorted_split(data, "test", get_distortion("none"), 0, tmp_path) is data.test
    with pytest.raises(StnbenchError, match="made for gtsrb"):
        cached_distorted_split(
            data, "test", get_distortion("rotation", dataset="gtsrb"), 0, tmp_path
        )
    with pytest.raises(StnbenchError, match="split 'dev'"):
        cached_distorted_split(data, "dev", distortion, 0, tmp_path)


@pytest.mark.parametrize("damage", ["truncated", "other images"])
def test_a_damaged_cached_split_is_generated_again(mnist, tmp_path, damage):
    data = small_mnist(mnist)
    distortion = get_distortion("rotation", 0.5)
    first = cached_distorted_split(data, "test", distortion, 0, tmp_path)
    (path,) = (tmp_path / "distorted" / "mnist").rglob("*.pt")
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
    else:
        torch.save(first.images[:10], path)
    again = cached_distorted_split(data, "test", distortion, 0, tmp_path)
    assert torch.equal(again.images, first.images)
    assert torch.equal(torch.load(path, weights_only=True), first.images)


def test_gallery_draws_every_row(mnist, tmp_path):
    out = tmp_path / "gallery.png"
    draw_gallery(small_mnist(mnist), ["none", "RTS", "rotation"], [0.0, 1.0], out, samples=3)
    with Image.open(out) as image:
        width, height = image.size
    # Rows: none, RTS, rotation 0, rotation 1 -> 28 + 42 + 28 + 28 px plus gaps, 4 screen px each.
    assert height > 4 * (28 + 42 + 28 + 28)
    assert width > 4 * 3 * 42


def test_gallery_command(data_dir, mnist, tmp_path, capsys):
    out = tmp_path / "g.png"
    argv = ["data", "gallery", "--dataset", "mnist", "--families", "R,scale", "--severities",
            "0.5,1", "--samples", "2", "--data-dir", str(data_dir), "--out", str(out)]  # fmt: skip
    assert main(argv) == 0 and out.is_file()
    bad = [*argv[:4], "--families", "R,wobble", "--out", str(tmp_path / "bad.png")]
    assert main(bad) == 1
    assert "distortion 'wobble'" in capsys.readouterr().err
    assert not (tmp_path / "bad.png").exists()
