"""The model zoo: every model at every size, parameter counts, YAML variants, FLOPs, errors."""

import csv
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from stnbench.cli import main
from stnbench.dataset_registry import DATASETS
from stnbench.datasets import DatasetTensors
from stnbench.engine import targets
from stnbench.engine.recipes import list_recipes
from stnbench.errors import StnbenchError
from stnbench.models import (
    count_flops,
    count_parameters,
    create_model,
    list_models,
    model_info,
    model_sizes,
    spatial_transformers,
)
from stnbench.models.registry import DEFINITIONS_DIR
from stnbench.models.spatial_transformer import SpatialTransformer
from stnbench.models.transformations import AffineGrid

TESTS = Path(__file__).resolve().parent
ZOO = {
    "fcn",
    "cnn",
    "rnn-spn",
    "ffn-spn",
    "seq-cnn",
    "st-fcn-affine",
    "st-fcn-projective",
    "st-fcn-tps",
    "st-cnn-affine",
    "st-cnn-projective",
    "st-cnn-tps",
    "idsia",
    "idsia-mcdnn",
    "idsia-committee",
    "moodstocks-1st",
    "moodstocks-2st",
    "moodstocks-nost",
    "tutorial-stn",
}


# Quick single-threaded checks; the fixture lives in conftest.py.
pytestmark = pytest.mark.usefixtures("one_thread")


def real_batch(data: DatasetTensors, size: int, count: int = 2) -> tuple:
    """Real training images at ``size`` px: MNIST digits centred on a larger black canvas
    (as the RTS and cluttered variants place them), GTSRB signs resized."""
    images = data.train.images[:count].float() / 255
    labels = data.train.labels[:count]
    if data.name == "mnist":
        before = (size - images.shape[-1]) // 2
        after = size - images.shape[-1] - before
        return F.pad(images, (before, after, before, after)), labels
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True), labels


def test_the_zoo_has_every_named_model_and_each_file_is_named_after_it():
    assert set(list_models()) == ZOO
    for name in ZOO:
        info = model_info(name)
        assert info["name"] == name
        assert info["recipe"] in list_recipes()
        assert info["description"] and info["source"]
        assert set(info["datasets"]) <= set(DATASETS)
        raw = yaml.safe_load((DEFINITIONS_DIR / f"{name}.yaml").read_text())
        assert info["definition"] == raw


ZOO_CASES = [
    (name, dataset, size)
    for name in sorted(ZOO)
    for dataset in model_info(name)["datasets"]
    for size in model_sizes(name, dataset)
]


@pytest.mark.parametrize(("name", "dataset", "size"), ZOO_CASES)
def test_every_model_runs_forward_and_backward_at_every_size(name, dataset, size, request):
    data: DatasetTensors = request.getfixturevalue(dataset)
    images, labels = real_batch(data, size)
    # Two committee columns run the same code as 25 (whose size has its own test) in 1/12 the time.
    overrides = {"columns": 2} if name == "idsia-committee" else {}
    torch.manual_seed(0)
    model = create_model(
        name,
        in_channels=data.channels,
        input_size=size,
        num_classes=data.num_classes,
        mean=data.mean,
        std=data.std,
        **overrides,
    )
    logits = model(images)
    positions = model_info(name)["definition"].get("sequence")
    if positions is not None:
        # Any labels give gradients; a sequence model scores each position.
        labels = labels[:, None].expand(-1, positions)
    assert logits.shape == (*labels.shape, data.num_classes)
    loss = targets.loss(logits, labels)
    loss.backward()
    assert math.isfinite(loss.item())
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    for st in spatial_transformers(model):
        assert st.last_grid.shape[1:3] == st.output_size


def test_idsia_column_and_committee_parameter_counts():
    column = create_model("idsia", in_channels=3, input_size=48, num_classes=43)
    assert count_parameters(column) == 1_543_443
    committee = create_model("idsia-committee", in_channels=3, input_size=48, num_classes=43)
    assert count_parameters(committee) == 25 * 1_543_443
    five = create_model("idsia-committee", in_channels=3, input_size=48, num_classes=43, columns=5)
    assert count_parameters(five) == 5 * 1_543_443


def test_committee_output_is_the_log_of_the_mean_column_probability(gtsrb):
    images, _ = real_batch(gtsrb, 32)
    torch.manual_seed(0)
    committee = create_model(
        "idsia-committee", in_channels=3, input_size=32, num_classes=43, columns=3
    ).eval()
    columns = committee.body.columns
    mean_probability = torch.stack([c(images).softmax(1) for c in columns]).mean(0)
    torch.testing.assert_close(committee(images).exp(), mean_probability)


def test_moodstocks_2st_recount_matches_the_published_breakdown():
    model = create_model("moodstocks-2st", in_channels=3, input_size=48, num_classes=43)
    input_st, second_st = (count_parameters(st) for st in spatial_transformers(model))
    total = count_parameters(model)
    assert (total, input_st, second_st) == (10_271_405, 3_676_906, 1_336_356)
    classifier = create_model("moodstocks-nost", in_channels=3, input_size=48, num_classes=43)
    assert count_parameters(classifier) == total - input_st - second_st == 5_258_143


def test_a_yaml_copy_of_st_cnn_affine_is_the_same_network(mnist):
    images, _ = real_batch(mnist, 28)
    torch.manual_seed(0)
    named = create_model("st-cnn-affine", in_channels=1, input_size=28, num_classes=10)
    torch.manual_seed(0)
    copy = create_model(
        str(TESTS / "data" / "st-cnn-affine-copy.yaml"),
        in_channels=1,
        input_size=28,
        num_classes=10,
    )
    assert copy.name == "st-cnn-affine-copy"
    assert count_parameters(copy) == count_parameters(named) == 207_078
    torch.testing.assert_close(copy(images), named(images))


@pytest.mark.parametrize("transform", ["affine", "projective", "tps"])
def test_the_paper_localization_nets(transform):
    # ST-CNN: the localization net's first convolution reads the input downsampled 2x;
    # ST-FCN: three fully connected layers of 32 before the regressor.
    for size in (28, 42, 60):
        cnn = create_model(f"st-cnn-{transform}", in_channels=1, input_size=size, num_classes=10)
        transformer = next(m for m in cnn.modules() if isinstance(m, SpatialTransformer))
        first_conv = next(m for m in transformer.localization if isinstance(m, nn.Conv2d))
        features = transformer.localization[: list(transformer.localization).index(first_conv)]
        assert features(torch.rand(2, 1, size, size)).shape[-2:] == (size // 2, size // 2)
    fcn = create_model(f"st-fcn-{transform}", in_channels=1, input_size=28, num_classes=10)
    transformer = next(m for m in fcn.modules() if isinstance(m, SpatialTransformer))
    hidden = [m.out_features for m in transformer.localization.modules()
              if isinstance(m, nn.Linear)]
    assert hidden == [32, 32, 32]


def test_overrides_change_the_transformers_and_are_recorded():
    model = create_model(
        "st-cnn-affine", in_channels=1, input_size=28, num_classes=10, transform="tps", grid_size=3
    )
    (st,) = spatial_transformers(model)
    assert st.grid_generator.family == "tps" and st.regressor.out_features == 18
    assert model.definition["layers"][0]["st"]["transform"] == "tps"
    model = create_model(
        "moodstocks-2st",
        in_channels=3,
        input_size=32,
        num_classes=43,
        transform="similarity",
        components=["rotation", "scale"],
    )
    assert [st.regressor.out_features for st in spatial_transformers(model)] == [2, 2]


@pytest.mark.parametrize(
    ("name", "overrides", "message"),
    [
        ("cnn", {"transform": "tps"}, "override 'transform' needs a spatial transformer"),
        ("idsia", {"columns": 5}, "override 'columns' needs a committee model"),
        ("st-cnn-tps", {"grid": 4}, "unknown override 'grid'"),
        ("st-cnn-tps", {"grid_size": [4, 5]}, r"layers\[0\]\.st\.grid_size: .* not square"),
        ("idsia-committee", {"columns": 0}, "committee.columns 0 must be a positive integer"),
    ],
)
def test_bad_overrides_are_one_line_errors(name, overrides, message):
    with pytest.raises(StnbenchError, match=message) as error:
        create_model(name, in_channels=3, input_size=32, num_classes=43, **overrides)
    assert "\n" not in str(error.value)


def test_flops_of_a_single_conv_layer_equal_the_hand_count():
    # 16 output maps of 28x28, each value a 3x5x5 dot product: 2 FLOPs per multiply-add.
    conv = nn.Sequential(nn.Conv2d(3, 16, kernel_size=5))
    assert count_flops(conv, (3, 32, 32)) == 2 * (16 * 28 * 28) * (3 * 5 * 5)


def test_flops_of_a_bare_transformer_equal_the_hand_count():
    # regressor [1, 300] x [300, 6]; affine_grid: 10x10 points x [3] x [3, 2];
    # bilinear sampling: 4 multiply-adds per output value of each of the 3 channels.
    st = SpatialTransformer(nn.Identity(), 3 * 10 * 10, AffineGrid(), (10, 10))
    expected = 2 * 300 * 6 + 2 * 100 * 3 * 2 + 2 * 4 * 3 * 100
    assert count_flops(st, (3, 10, 10)) == expected


def write_definition(tmp_path: Path, layers: list, **top) -> str:
    definition = {"datasets": ["mnist"], "recipe": "stn-paper-mnist", "layers": layers, **top}
    path = tmp_path / "variant.yaml"
    path.write_text(yaml.safe_dump(definition))
    return str(path)


LOC = [{"linear": 8}, "relu"]
CLASSIFIER = [{"linear": "classes"}]


@pytest.mark.parametrize(
    ("layers", "top", "message"),
    [
        ([{"convolution": 8}, *CLASSIFIER], {}, r"layers\[0\]: unknown layer type 'convolution'"),
        (
            [{"linear": 8}, {"st": {"transform": "affine", "localization": LOC}}],
            {},
            r"layers\[1\]: a spatial transformer cannot be the last layer",
        ),
        (
            [{"st": {"transform": "tps", "grid_size": [4, 3], "localization": LOC}}, *CLASSIFIER],
            {},
            r"layers\[0\]\.st\.grid_size: the tps control-point grid \[4, 3\] is not square",
        ),
        (
            [
                {"conv": {"out": 8, "kernel": 9}},
                {"maxpool": 2},
                {"conv": {"out": 8, "kernel": 7}},
                {"maxpool": 2},
                {"conv": {"out": 8, "kernel": 5}},
                *CLASSIFIER,
            ],
            {},
            r"layers\[4\]: conv kernel 5 does not fit its 8x2x2 input \(input size 28\)",
        ),
        (
            [
                {
                    "st": {
                        "transform": "affine",
                        "localization": [{"conv": {"out": 4, "kernel": 40}}],
                    }
                },
                *CLASSIFIER,
            ],
            {},
            r"layers\[0\]\.st\.localization\[0\]: conv kernel 40 does not fit",
        ),
        (
            [{"st": {"transform": "affine", "padding": "edge", "localization": LOC}},
             *CLASSIFIER],
            {},
            r"layers\[0\]\.st\.padding: 'edge' must be one of zeros, border, reflection",
        ),
        (
            [{"conv": {"out": 8, "kernel": 3, "dilation": 2}}, *CLASSIFIER],
            {},
            r"layers\[0\]: conv has no argument 'dilation'",
        ),
        ([{"linear": 64}], {}, r"ends with shape 64, expected 10 class scores"),
        (CLASSIFIER, {"recipe": "adam"}, r"recipe 'adam' is not one of"),
        (CLASSIFIER, {"datasets": ["cifar"]}, r"datasets \['cifar'\] must list some of"),
        (CLASSIFIER, {"optimizer": "sgd"}, r"unknown key 'optimizer'"),
        (CLASSIFIER, {"baseline": ["cnn"]}, r"baseline must be the name of a model"),
    ],
)
def test_malformed_definitions_name_the_field(tmp_path, layers, top, message):
    path = write_definition(tmp_path, layers, **top)
    with pytest.raises(StnbenchError, match=message) as error:
        create_model(path, in_channels=1, input_size=28, num_classes=10)
    assert "\n" not in str(error.value)
    assert str(error.value).startswith(path)


def test_a_model_too_deep_for_the_input_size_names_the_layer():
    with pytest.raises(StnbenchError, match=r"model cnn: layers\[3\]: conv kernel 7 does not fit"):
        create_model("cnn", in_channels=1, input_size=20, num_classes=10)


def test_unknown_model_names_list_close_matches():
    with pytest.raises(
        StnbenchError, match="unknown model 'st-cnn-afine'; did you mean st-cnn-affine"
    ):
        create_model("st-cnn-afine", in_channels=1, input_size=28, num_classes=10)
    with pytest.raises(StnbenchError, match="does not exist"):
        model_info("no/such/model.yaml")


def test_invalid_yaml_is_a_one_line_error(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("layers: [conv: {out: 8\n")
    with pytest.raises(StnbenchError, match=r"broken.yaml: not valid YAML") as error:
        create_model(str(path), in_channels=1, input_size=28, num_classes=10)
    assert "\n" not in str(error.value)


def test_cli_describe_and_list(capsys):
    assert (
        main(["models", "describe", "idsia", "--dataset", "gtsrb", "--size", "48", "--json"]) == 0
    )
    described = json.loads(capsys.readouterr().out)
    assert described["name"] == "idsia"
    assert described["params"] == 1_543_443
    assert described["flops"] == count_flops(
        create_model("idsia", in_channels=3, input_size=48, num_classes=43), (3, 48, 48)
    )
    assert main(["models", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {m["name"] for m in listed} == ZOO
    assert main(["models", "describe", "idsia", "--dataset", "gtsrb", "--size", "40"]) == 1
    assert "--size 40" in capsys.readouterr().err


def test_committed_zoo_table_is_current():
    with open(TESTS.parent / "results" / "models" / "models.csv", newline="") as handle:
        rows = {(r["name"], r["dataset"], int(r["size"])): r for r in csv.DictReader(handle)}
    assert set(rows) == set(ZOO_CASES)
    model = create_model("st-cnn-tps", in_channels=1, input_size=42, num_classes=10)
    assert int(rows[("st-cnn-tps", "mnist", 42)]["params"]) == count_parameters(model)
    assert int(rows[("st-cnn-tps", "mnist", 42)]["flops"]) == count_flops(model, (1, 42, 42))
