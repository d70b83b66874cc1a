"""IDSIA's method (Ciresan et al. 2012): the five contrast preparations of real GTSRB, the
jitter augmentation as the training loop draws it, and the column's layers and start."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import color
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate
from torch import nn

from stnbench.cli import main
from stnbench.datasets import CONTRASTS, Split, load_dataset, prepare_dataset
from stnbench.datasets.cache import content_key
from stnbench.datasets.contrast import apply_contrast, contrast_parameters
from stnbench.datasets.gtsrb import PREPROCESSING_VERSION
from stnbench.distortions import AUGMENTATIONS, Jitter, get_augmentation
from stnbench.engine.loop import train_epoch
from stnbench.engine.spec import identity, resolve_spec
from stnbench.errors import StnbenchError
from stnbench.jobs import prepare_arguments
from stnbench.models import count_parameters, create_model
from stnbench.models.builder import InputSpec, build_model
from stnbench.models.layers import ScaledTanh
from stnbench.pipeline import Prep, build_grid

SIZE = 48
SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"


@pytest.fixture(scope="module")
def prepared(gtsrb_subset: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Each contrast of the real GTSRB subset at 48 px, ROI-cropped: (summary, all images)."""
    data_dir = tmp_path_factory.mktemp("contrasts")
    out = {}
    for contrast in CONTRASTS:
        summary = prepare_dataset(
            "gtsrb", data_dir, archives=gtsrb_subset, size=SIZE, roi_crop=True, contrast=contrast
        )
        data = load_dataset("gtsrb", data_dir, size=SIZE, roi_crop=True, contrast=contrast)
        images = torch.cat([data.train.images, data.val.images, data.test.images])
        out[contrast] = (summary, images)
    return out


def _lightness(images: torch.Tensor) -> np.ndarray:
    """[N, S, S] Lab lightness (0..100) of uint8 RGB images."""
    return color.rgb2lab(images.permute(0, 2, 3, 1).numpy() / 255)[..., 0]


def _flat(values: np.ndarray) -> np.ndarray:
    return values.reshape(len(values), -1)


def test_every_contrast_is_uint8_and_original_is_the_old_cache(prepared: dict) -> None:
    original_summary, original = prepared["original"]
    for contrast, (summary, images) in prepared.items():
        assert images.dtype == torch.uint8 and images.shape == original.shape
        assert summary["contrast"] == contrast
        if contrast != "original":
            assert not torch.equal(images, original)
    # The original contrast keeps the cache name and content key made before contrasts.
    cache = Path(original_summary["cache"])
    old_key = content_key(
        original_summary["source"]["sha256"],
        {"size": SIZE, "roi_crop": True, "resize": "bilinear, antialias",
         "version": PREPROCESSING_VERSION},
    )
    assert cache.name == f"gtsrb-48px-roi-{old_key}.pt"
    assert apply_contrast(original, "original") is original
    names = {Path(summary["cache"]).name for summary, _ in prepared.values()}
    assert len(names) == len(CONTRASTS)
    for contrast in CONTRASTS[1:]:
        name = Path(prepared[contrast][0]["cache"]).name
        assert name.startswith(f"gtsrb-48px-roi-{contrast}-") and old_key not in name
        manifest = json.loads((cache.parent / f"gtsrb-48px-roi-{contrast}.json").read_text())
        assert manifest["preprocessing"]["contrast"] == contrast
        assert manifest["preprocessing"]["contrast_library"].startswith("scikit-image ")
        # Its settings key the cache: a cache made with other settings is not read back.
        assert manifest["preprocessing"]["contrast_parameters"] == contrast_parameters(contrast)
    assert contrast_parameters("adapthisteq")["tile"] * 8 == SIZE  # the paper's 8 tiles a side


def test_imadjust_saturates_about_one_percent_at_each_end(prepared: dict) -> None:
    before = _flat(_lightness(prepared["original"][1]))
    after = _flat(_lightness(prepared["imadjust"][1]))
    low, high = after.min(axis=1), after.max(axis=1)
    assert np.median(low) < 1 and np.median(high) > 99 and np.median(before.max(1)) < 97
    at_low = (after <= low[:, None] + 0.5).mean(axis=1)
    at_high = (after >= high[:, None] - 0.5).mean(axis=1)
    assert 0.007 < np.median(at_low) < 0.02 and 0.007 < np.median(at_high) < 0.02
    # The stretch is monotonic: it keeps each image's order of lightness (up to rounding).
    rank = [np.corrcoef(np.argsort(np.argsort(b)), np.argsort(np.argsort(a)))[0, 1]
            for b, a in zip(before, after, strict=True)]
    assert np.median(rank) > 0.99


def _distance_from_uniform(lightness: np.ndarray) -> np.ndarray:
    """Per image, the largest gap between the sorted values' CDF and a uniform one."""
    values = np.sort(lightness, axis=1)
    span = values[:, -1:] - values[:, :1]
    cdf = (values - values[:, :1]) / np.maximum(span, 1e-9)
    return np.abs(cdf - np.arange(values.shape[1]) / values.shape[1]).max(axis=1)


def test_histeq_flattens_the_histogram(prepared: dict) -> None:
    before = _distance_from_uniform(_flat(_lightness(prepared["original"][1])))
    after = _distance_from_uniform(_flat(_lightness(prepared["histeq"][1])))
    assert np.median(after) < 0.05 < np.median(before)
    assert (after < before).mean() > 0.95


def _tile_contrast(lightness: np.ndarray, tile: int = 8) -> np.ndarray:
    """Per image, the mean over its tile x tile blocks of the lightness's std in the block."""
    count, size = lightness.shape[:2]
    blocks = lightness.reshape(count, size // tile, tile, size // tile, tile)
    return blocks.std(axis=(2, 4)).mean(axis=(1, 2))


def test_adapthisteq_raises_local_contrast_tile_by_tile(prepared: dict) -> None:
    original = _tile_contrast(_lightness(prepared["original"][1]))
    adaptive = _tile_contrast(_lightness(prepared["adapthisteq"][1]))
    assert (adaptive > original).mean() > 0.95
    # Local, not global: the whole image's histogram is not made uniform as histeq's is.
    assert np.median(_distance_from_uniform(_flat(_lightness(prepared["adapthisteq"][1])))) > 0.08


def test_conorm_keeps_edges_and_removes_smooth_shading(prepared: dict) -> None:
    def smooth_share(images: torch.Tensor) -> np.ndarray:
        # How much of an image's variation its 8x8 block means carry.
        pixels = images.double().mean(dim=1).numpy()
        count = len(pixels)
        means = pixels.reshape(count, 6, 8, 6, 8).mean(axis=(2, 4)).reshape(count, -1)
        return means.std(axis=1) / np.maximum(_flat(pixels).std(axis=1), 1e-9)

    before, after = smooth_share(prepared["original"][1]), smooth_share(prepared["conorm"][1])
    assert np.median(after) < 0.5 * np.median(before)
    flat = torch.full((1, 3, SIZE, SIZE), 90, dtype=torch.uint8)
    assert torch.equal(apply_contrast(flat, "conorm"), torch.full_like(flat, 128))


def test_contrast_is_checked_and_reaches_the_command_line(
    gtsrb_subset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(StnbenchError, match="contrast 'clahe': expected one of original"):
        prepare_dataset("gtsrb", tmp_path, archives=gtsrb_subset, contrast="clahe")
    with pytest.raises(StnbenchError, match="contrast 'histeq': MNIST has no contrasts"):
        load_dataset("mnist", tmp_path, contrast="histeq")
    with pytest.raises(StnbenchError, match="--contrast conorm"):
        load_dataset("gtsrb", tmp_path, contrast="conorm")
    args = ["data", "prepare", "gtsrb", "--archives", str(gtsrb_subset), "--size", "16",
            "--contrast", "histeq", "--data-dir", str(tmp_path), "--json"]
    assert main(args) == 0
    assert Path(json.loads(capsys.readouterr().out)["cache"]).name.startswith("gtsrb-16px-histeq-")
    config = {"gtsrb": {"archives": str(gtsrb_subset)}, "data_dir": None}
    arguments = prepare_arguments(config, Prep("gtsrb", 48, True, "conorm"))
    assert arguments.endswith("--size 48 --roi-crop --contrast conorm")
    assert Prep("gtsrb", 48, True, "conorm").label == "48px-roi-conorm"
    assert Prep("gtsrb", 32, False).label == "32px"


def test_an_experiment_names_its_contrast(gtsrb_subset: Path, tmp_path: Path) -> None:
    experiment = {"dataset": "gtsrb", "size": 48, "roi_crop": True, "contrast": "adapthisteq",
                  "distortions": ["none"], "models": ["idsia-mcdnn"], "seeds": 1}
    config = {"scale": "t", "results_dir": "r", "data_dir": str(tmp_path),
              "gtsrb": {"archives": str(gtsrb_subset)}, "experiments": {"a": experiment}}
    validate(config, str(SCHEMA))
    grid = build_grid(config)
    assert list(grid.preps) == ["gtsrb-48px-roi-adapthisteq"]
    (cell,) = grid.cells.index
    assert "prep~48px-roi-adapthisteq" in cell and grid.spec(cell)["contrast"] == "adapthisteq"
    # A contrast is a preparation of the experiment's data, not a per-model training setting.
    in_train = {**experiment, "train": {"contrast": "histeq"}}
    with pytest.raises(WorkflowError, match="contrast"):
        validate({**config, "experiments": {"a": in_train}}, str(SCHEMA))
    on_mnist = {**experiment, "dataset": "mnist", "size": None, "roi_crop": False,
                "models": ["cnn"]}
    config = {**config, "experiments": {"a": on_mnist}}
    validate(config, str(SCHEMA))
    with pytest.raises(StnbenchError, match=r"experiments\.a: contrast 'adapthisteq': MNIST"):
        build_grid(config)


# ------------------------------------------------------------------------------ run spec

BASE = {"dataset": "gtsrb", "distortion": "none", "severity": 0.0, "model": "idsia-mcdnn",
        "seed": 0, "device": "cpu"}


def test_spec_fields_are_validated_and_old_runs_keep_their_identity() -> None:
    spec = resolve_spec({**BASE, "contrast": "adapthisteq"})
    assert spec.contrast == "adapthisteq" and spec.augmentation == "idsia"  # the column's recipe
    assert resolve_spec({**BASE, "model": "idsia"}).augmentation is None  # the simplified one
    assert resolve_spec({**BASE, "model": "moodstocks-nost"}).augmentation is None
    for fields, message in (
        ({"contrast": "clahe"}, "contrast 'clahe': expected one of original, imadjust"),
        ({"dataset": "mnist", "model": "cnn", "contrast": "histeq"}, "contrast 'histeq': GTSRB"),
        ({"augmentation": "elastic"}, "augmentation 'elastic': expected one of idsia"),
    ):
        with pytest.raises(StnbenchError, match=message):
            resolve_spec({**BASE, **fields})
    # A run recorded before these fields existed is the same run as one at their defaults.
    config = resolve_spec({**BASE, "model": "moodstocks-nost"}).config()
    old = {key: value for key, value in config.items() if key not in ("contrast", "augmentation")}
    assert identity(old) == identity(config)
    assert identity(old) != identity({**config, "contrast": "histeq"})


# ------------------------------------------------------------------------------ jitter


def test_jitter_draws_within_the_paper_bounds() -> None:
    jitter = AUGMENTATIONS["idsia"]
    assert (jitter.translation, jitter.rotation, jitter.scale) == (0.10, 5.0, (0.9, 1.1))
    angle, factor, shift = jitter.draw(20_000, SIZE, torch.Generator().manual_seed(0))
    assert angle.abs().max() <= 5 and angle.abs().max() > 4.99
    assert factor.min() >= 0.9 and factor.max() <= 1.1 and factor.max() - factor.min() > 0.199
    assert shift.abs().max() <= 4.8 and shift.abs().max() > 4.79  # 10% of 48 px
    assert get_augmentation(None) is None and get_augmentation("idsia") is jitter


def test_jitter_is_the_identity_at_zero_bounds_and_moves_by_its_shift(prepared: dict) -> None:
    images = prepared["original"][1][:16].float() / 255
    still = Jitter(translation=0.0, rotation=0.0, scale=(1.0, 1.0))
    assert torch.allclose(still(images, torch.Generator().manual_seed(1)), images, atol=1e-5)
    # One bright pixel: a pure translation moves its centre of mass by the drawn shift.
    dot = torch.zeros(8, 1, SIZE, SIZE)
    dot[:, :, 20, 27] = 1.0
    shifter = Jitter(translation=0.1, rotation=0.0, scale=(1.0, 1.0))
    _, _, shift = shifter.draw(8, SIZE, torch.Generator().manual_seed(2))
    moved = shifter(dot, torch.Generator().manual_seed(2))[:, 0]
    grid = torch.arange(SIZE, dtype=torch.float32)
    mass = moved.sum(dim=(1, 2))
    centre_x = (moved.sum(dim=1) * grid).sum(dim=1) / mass
    centre_y = (moved.sum(dim=2) * grid).sum(dim=1) / mass
    assert torch.allclose(mass, torch.ones(8), atol=1e-4)
    expected = torch.tensor([27.0, 20.0]) + shift.float()
    assert torch.allclose(torch.stack([centre_x, centre_y], dim=1), expected, atol=1e-3)


class _Recorder(nn.Module):
    """A linear classifier that keeps every batch it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3 * SIZE * SIZE, 43)
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return self.linear(x.flatten(1))


def _epoch_batches(train: Split, epochs: list[int], augmentation: Jitter | None) -> list:
    model = _Recorder()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    batches = []
    for epoch in epochs:
        model.seen = []
        train_epoch(model, optimizer, scheduler, train, distortion=None, augmentation=augmentation,
                    seed=7, epoch=epoch, batch_size=64, precision="fp32", channels_last=False)
        batches.append(torch.cat(model.seen))
    return batches


def test_training_batches_are_jittered_per_epoch_and_resume_identically(prepared: dict) -> None:
    images = prepared["original"][1][:150]
    train = Split(images, torch.arange(len(images)) % 43)
    first, second = _epoch_batches(train, [1, 2], AUGMENTATIONS["idsia"])
    torch.manual_seed(123)  # whatever the global generator holds, as after a restart
    (resumed,) = _epoch_batches(train, [2], AUGMENTATIONS["idsia"])
    assert torch.equal(resumed, second)
    (again,) = _epoch_batches(train, [1], AUGMENTATIONS["idsia"])
    assert torch.equal(again, first)
    # The same images in the same order as without jitter, moved differently each epoch.
    (plain,) = _epoch_batches(train, [1], None)
    assert not torch.equal(first, plain)
    difference = (first - plain).abs().mean(dim=(1, 2, 3))
    assert (difference > 0.01).float().mean() > 0.9
    (plain_two,) = _epoch_batches(train, [2], None)
    assert not torch.equal(second - plain_two, first - plain)


# ------------------------------------------------------------------------------ the column


def test_idsia_column_has_scaled_tanh_and_the_uniform_start() -> None:
    torch.manual_seed(0)
    column = create_model("idsia-mcdnn", in_channels=3, input_size=SIZE, num_classes=43)
    assert count_parameters(column) == 1_543_443
    activations = [m for m in column.modules() if isinstance(m, ScaledTanh)]
    assert len(activations) == 4 and not any(isinstance(m, nn.Tanh) for m in column.modules())
    assert math.isclose(float(ScaledTanh()(torch.tensor(1.0))), 1.0, abs_tol=1e-4)
    for parameter in column.parameters():
        assert parameter.abs().max() <= 0.05
        assert parameter.abs().max() > 0.04  # uniform on the whole interval, not PyTorch's
    torch.manual_seed(0)
    again = create_model("idsia-mcdnn", in_channels=3, input_size=SIZE, num_classes=43)
    assert all(torch.equal(a, b) for a, b in zip(column.parameters(), again.parameters(),
                                                  strict=True))


def test_init_is_checked_and_spares_the_transformers_identity_start() -> None:
    layers = [{"st": {"transform": "affine", "localization": [{"linear": 8}, "scaled_tanh"]}},
              {"conv": {"out": 4, "kernel": 3}}, "scaled_tanh", {"linear": "classes"}]
    definition = {"name": "x", "datasets": ["gtsrb"], "recipe": "idsia", "layers": layers,
                  "init": {"uniform": 0.1}}
    spec = InputSpec(3, 16, 43, None, None)
    model = build_model(definition, "x.yaml", spec, {})
    transformer = model.body[0]
    assert torch.equal(transformer.regressor.weight, torch.zeros_like(transformer.regressor.weight))
    assert torch.equal(transformer.regressor.bias, torch.tensor([1.0, 0, 0, 0, 1, 0]))
    assert model.body[1].weight.abs().max() <= 0.1
    for bad in ({"uniform": 0}, {"normal": 0.1}, 0.05):
        with pytest.raises(StnbenchError, match="init must be"):
            build_model({**definition, "init": bad}, "x.yaml", spec, {})
