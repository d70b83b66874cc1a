"""The spatial transformer: identity start, known warps, TPS algebra, gradients, lr groups."""

import math

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from stnbench.datasets import DatasetTensors
from stnbench.errors import StnbenchError
from stnbench.models import (
    SpatialTransformer,
    create_model,
    parameter_groups,
    spatial_transformers,
)
from stnbench.models.layers import LocalContrastNorm
from stnbench.models.transformations import (
    affine_grid,
    identity_grid,
    make_grid_generator,
    projective_grid,
    tps_control_points,
    tps_solver,
    tps_transform_points,
)

FAMILY_OPTIONS = [
    ("affine", {}),
    ("similarity", {}),
    ("similarity", {"components": ["rotation"]}),
    ("similarity", {"components": ["scale", "translation"]}),
    ("projective", {}),
    ("tps", {}),
    ("tps", {"grid_size": 3}),
]


# Quick single-threaded checks; the fixture lives in conftest.py.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def mnist_images(mnist: DatasetTensors) -> torch.Tensor:
    return mnist.train.images[:8].float() / 255


@pytest.fixture(scope="module")
def gtsrb_images(gtsrb: DatasetTensors) -> torch.Tensor:
    return gtsrb.train.images[::4000][:8].float() / 255


def make_st(images: torch.Tensor, family: str, output_size=None, **options) -> SpatialTransformer:
    """A transformer with a small (randomly initialised) fully connected localization net."""
    channels, height, width = images.shape[1:]
    localization = nn.Sequential(nn.Flatten(), nn.Linear(channels * height * width, 16), nn.ReLU())
    generator = make_grid_generator(family, **options)
    return SpatialTransformer(localization, 16, generator, output_size or (height, width))


@pytest.mark.parametrize(("family", "options"), FAMILY_OPTIONS)
@pytest.mark.parametrize("dataset", ["mnist", "gtsrb"])
def test_identity_at_initialisation_returns_the_input(family, options, dataset, request):
    images = request.getfixturevalue(f"{dataset}_images")
    st = make_st(images, family, **options)
    out = st(images)
    assert out.shape == images.shape
    # float32 rounds the normalised pixel-centre coordinates by up to about size * 2^-24 of a
    # pixel; in float64 the identity is exact to far below 1e-6.
    assert (out - images).abs().max().item() < 1e-5
    assert (st.double()(images.double()) - images.double()).abs().max().item() < 1e-6
    identity = st.grid_generator.identity().double()
    assert torch.equal(st.last_params, identity.expand_as(st.last_params))
    assert st.last_grid.shape == (len(images), *images.shape[2:], 2)
    assert not st.last_params.requires_grad and not st.last_grid.requires_grad


def test_identity_to_half_size_averages_pixel_pairs(mnist_images):
    # align_corners=False puts output pixel centres between input pixels: a 2x2 average.
    st = make_st(mnist_images, "affine", output_size=(14, 14))
    out = st(mnist_images)
    torch.testing.assert_close(out, F.avg_pool2d(mnist_images, 2), atol=1e-6, rtol=0)


def test_translation_by_one_pixel_shifts_the_image(gtsrb_images):
    width = gtsrb_images.shape[-1]
    params = torch.tensor([[1, 0, 2 / width, 0, 1, 0]]).expand(len(gtsrb_images), 6)
    grid = affine_grid(params, (len(gtsrb_images), width, width))
    out = F.grid_sample(gtsrb_images, grid, align_corners=False)
    torch.testing.assert_close(out[..., :-1], gtsrb_images[..., 1:], atol=1e-5, rtol=0)
    assert out[..., -1].abs().max() == 0  # zero padding enters on the right


def test_similarity_rotation_by_a_right_angle_is_rot90(mnist_images):
    generator = make_grid_generator("similarity", components=["rotation"])
    params = torch.full((len(mnist_images), 1), math.pi / 2)
    grid = generator(params, (len(mnist_images), 28, 28))
    out = F.grid_sample(mnist_images, grid, align_corners=False)
    torch.testing.assert_close(out, torch.rot90(mnist_images, 1, (2, 3)), atol=1e-5, rtol=0)


def test_projective_with_affine_parameters_equals_affine():
    affine = torch.randn(5, 6) * 0.3 + torch.eye(2, 3).flatten()
    params = torch.cat([affine, torch.zeros(5, 2)], dim=1)
    torch.testing.assert_close(projective_grid(params, (5, 9, 7)), affine_grid(affine, (5, 9, 7)))


def test_projective_perspective_row_changes_the_depth():
    params = torch.tensor([[1.0, 0, 0, 0, 1, 0, 0.5, 0]])
    grid = projective_grid(params, (1, 4, 4))
    base = identity_grid((1, 4, 4), params)
    torch.testing.assert_close(grid, base / (1 + 0.5 * base[..., :1]))


def test_tps_interpolates_the_control_point_displacements():
    points = tps_control_points(4).float()
    solver = tps_solver(tps_control_points(4)).float()
    displacements = torch.randn(3, 16, 2) * 0.1
    mapped = tps_transform_points(points.expand(3, 16, 2), displacements, points, solver)
    torch.testing.assert_close(mapped, points + displacements, atol=1e-5, rtol=0)


def test_tps_reproduces_an_affine_map_everywhere():
    points = tps_control_points(4).float()
    matrix = torch.tensor([[1.1, 0.2, 0.05], [-0.1, 0.9, -0.1]])
    displacements = (points @ matrix[:, :2].T + matrix[:, 2] - points).unsqueeze(0)
    generator = make_grid_generator("tps")
    grid = generator(displacements.flatten(1), (1, 11, 13))
    torch.testing.assert_close(grid, affine_grid(matrix.flatten()[None], (1, 11, 13)),
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("family", "options", "field"),
    [
        ("tps", {"grid_size": [4, 3]}, "grid_size"),
        ("tps", {"grid_size": 1}, "grid_size"),
        ("similarity", {"components": ["shear"]}, "components"),
        ("affine", {"grid_size": 4}, "grid_size"),
        ("bspline", {}, "transform"),
    ],
)
def test_bad_transform_options_name_the_field(family, options, field):
    with pytest.raises(StnbenchError, match=f"^{field}: ") as error:
        make_grid_generator(family, **options)
    assert "\n" not in str(error.value)


def test_gradients_reach_every_localization_net(gtsrb_images):
    torch.manual_seed(0)
    model = create_model("moodstocks-2st", in_channels=3, input_size=32, num_classes=43,
                         mean=(0.34, 0.31, 0.32), std=(0.27, 0.26, 0.27))
    labels = torch.arange(len(gtsrb_images))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for step in range(2):
        optimizer.zero_grad()
        F.cross_entropy(model(gtsrb_images), labels).backward()
        transformers = spatial_transformers(model)
        assert len(transformers) == 2
        for st in transformers:
            # The regressor's zero weights block the gradient to the layers below it at the
            # first step only; after one update every layer of every localization net learns.
            layers = [st.regressor] if step == 0 else [st.localization, st.regressor]
            for layer in layers:
                for name, param in layer.named_parameters():
                    assert param.grad is not None and param.grad.abs().sum() > 0, name
        optimizer.step()


def test_parameter_groups_split_localization_from_the_rest():
    model = create_model("moodstocks-2st", in_channels=3, input_size=32, num_classes=43)
    groups = parameter_groups(model, lr=0.01, localization_lr_multiplier=0.1)
    by_name = {g["name"]: g for g in groups}
    assert by_name["classifier"]["lr"] == 0.01
    assert by_name["localization"]["lr"] == pytest.approx(0.001)
    grouped = [id(p) for g in groups for p in g["params"]]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())
    localization = {id(p) for st in spatial_transformers(model) for p in st.parameters()}
    assert {id(p) for p in by_name["localization"]["params"]} == localization
    plain = create_model("cnn", in_channels=1, input_size=28, num_classes=10)
    assert [g["name"] for g in parameter_groups(plain, 0.01)] == ["classifier"]


def test_input_transformer_reads_the_raw_image_so_padding_is_black(mnist_images):
    model = create_model("st-cnn-affine", in_channels=1, input_size=28, num_classes=10,
                         mean=(0.13,), std=(0.31,))
    st = spatial_transformers(model)[0]
    st.regressor.bias.data = torch.tensor([1.0, 0, 0.5, 0, 1, 0])  # shift a quarter width
    seen = {}
    standardize = model.body[1]
    standardize.register_forward_hook(lambda module, args, out: seen.update(x=args[0], y=out))
    model(mnist_images)
    padded = seen["x"][..., -6:]  # the columns shifted in from outside the image
    assert padded.abs().max() == 0
    torch.testing.assert_close(seen["y"][..., -6:], torch.full_like(padded, -0.13 / 0.31))
    assert type(st.localization[0]).__name__ == "Standardize"


@pytest.mark.parametrize("padding", ["border", "zeros"])
def test_padding_says_what_samples_past_the_edge_read(padding, tmp_path):
    # `padding: border` repeats the edge pixel, as Lasagne's early transformer clipped its
    # coordinates; MNIST's edges are blank, so the image is one with a lit edge.
    layers = [
        {"st": {"transform": "affine", "padding": padding, "localization": [{"linear": 8}]}},
        {"linear": "classes"},
    ]
    path = tmp_path / "st-padding.yaml"
    path.write_text(yaml.safe_dump({"datasets": ["mnist"], "recipe": "stn-paper-mnist",
                                    "layers": layers}))
    model = create_model(str(path), in_channels=1, input_size=28, num_classes=10)
    st = spatial_transformers(model)[0]
    st.regressor.bias.data = torch.tensor([1.0, 0, 0.5, 0, 1, 0])  # shift a quarter width
    images = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0)) + 0.5
    out = st(images)
    # Output column j reads input column j + 7: from column 21 on, past the edge.
    torch.testing.assert_close(out[..., :21], images[..., 7:], atol=1e-5, rtol=0)
    last_column = images[..., -1:].expand(-1, -1, -1, 7)
    past_edge = last_column if padding == "border" else torch.zeros_like(last_column)
    torch.testing.assert_close(out[..., 21:], past_edge, atol=1e-5, rtol=0)


def test_local_contrast_norm_matches_torch7_formula(gtsrb_images):
    lcn = LocalContrastNorm(size=9, kernel="box")
    x = gtsrb_images[:3]

    def window_mean(t, include_pad):
        return F.avg_pool2d(t, 9, stride=1, padding=4, count_include_pad=include_pad)

    # Torch7: edge-corrected local mean over all channels, then std / (window overlap).
    centred = x - window_mean(x.mean(1, keepdim=True), include_pad=False)
    overlap = window_mean(torch.ones_like(x[:, :1]), include_pad=True)
    std = window_mean(centred.square().mean(1, keepdim=True), include_pad=True).sqrt() / overlap
    expected = centred / std.clamp_min(1e-4)
    torch.testing.assert_close(lcn(x), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(("family", "options"), FAMILY_OPTIONS)
def test_grid_and_sampling_stay_float32_under_bf16_autocast(family, options, gtsrb_images):
    # A bf16 grid moved an identity transformer's samples by up to 0.17 px at 60 px.
    st = make_st(gtsrb_images, family, **options)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = st(gtsrb_images)
    assert st.last_params.dtype == st.last_grid.dtype == out.dtype == torch.float32
    assert (out - gtsrb_images).abs().max().item() < 1e-5


def test_second_transformer_under_autocast_samples_bf16_features_in_float32(gtsrb_images):
    model = create_model("moodstocks-2st", in_channels=3, input_size=32, num_classes=43)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(gtsrb_images)
    assert logits.dtype == torch.bfloat16
    for st in spatial_transformers(model):
        assert st.last_grid.dtype == torch.float32
        identity = st.grid_generator.identity()
        assert torch.equal(st.last_params, identity.expand_as(st.last_params))
