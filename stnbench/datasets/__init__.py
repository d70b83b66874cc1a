"""Real MNIST and GTSRB as uint8 tensors: ``prepare_dataset`` once, then ``load_dataset`` fast."""

from pathlib import Path
from types import ModuleType
from typing import Any

from stnbench.datasets import gtsrb, mnist
from stnbench.datasets.contrast import CONTRASTS, DEFAULT_CONTRAST
from stnbench.datasets.tensors import DatasetTensors, Split
from stnbench.errors import StnbenchError

DATASETS = ("mnist", "gtsrb")

__all__ = [
    "CONTRASTS",
    "DATASETS",
    "DatasetTensors",
    "Split",
    "load_dataset",
    "prepare_dataset",
]


def _module(name: str) -> ModuleType:
    modules = {"mnist": mnist, "gtsrb": gtsrb}
    if name not in modules:
        raise StnbenchError(f"dataset {name!r}: expected one of {', '.join(DATASETS)}")
    return modules[name]


def prepare_dataset(
    name: str,
    data_dir: Path,
    *,
    archives: Path | None = None,
    size: int | None = None,
    roi_crop: bool = False,
    contrast: str = DEFAULT_CONTRAST,
) -> dict[str, Any]:
    """Obtain and cache a dataset; returns a JSON-ready summary (cache, splits, classes, source).

    ``archives`` is GTSRB's folder; MNIST ignores it (it finds or fetches its own files).
    ``contrast`` is one of ``CONTRASTS``, GTSRB only.
    """
    return _module(name).prepare(
        Path(data_dir), archives=archives, size=size, roi_crop=roi_crop, contrast=contrast
    )


def load_dataset(
    name: str,
    data_dir: Path,
    *,
    size: int | None = None,
    roi_crop: bool = False,
    contrast: str = DEFAULT_CONTRAST,
    val_fraction: float | None = None,
    split_seed: int = 0,
) -> DatasetTensors:
    """A prepared dataset's splits; when it is not prepared, the error says how to prepare it."""
    return _module(name).load(
        Path(data_dir),
        size=size,
        roi_crop=roi_crop,
        contrast=contrast,
        val_fraction=val_fraction,
        split_seed=split_seed,
    )
