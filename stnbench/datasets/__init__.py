"""Real MNIST and GTSRB as uint8 tensors: ``prepare_dataset`` once, then ``load_dataset`` fast."""

from pathlib import Path
from typing import Any

from stnbench.dataset_registry import DATASETS, get_dataset
from stnbench.datasets import gtsrb, mnist
from stnbench.datasets.tensors import DatasetTensors, Split
from stnbench.preparation import CONTRASTS, ORIGINAL_CONTRAST

__all__ = [
    "CONTRASTS",
    "DATASETS",
    "DatasetTensors",
    "Split",
    "load_dataset",
    "prepare_dataset",
]

_MODULES = {"mnist": mnist, "gtsrb": gtsrb}


def prepare_dataset(
    name: str,
    data_dir: Path,
    *,
    archives: Path | None = None,
    size: int | None = None,
    roi_crop: bool = False,
    contrast: str = ORIGINAL_CONTRAST,
) -> dict[str, Any]:
    """Obtain and cache a dataset; returns a JSON-ready summary (cache, splits, classes, source).

    ``archives`` is GTSRB's folder; MNIST ignores it (it finds or fetches its own files).
    ``contrast`` is one of ``CONTRASTS``, GTSRB only.
    """
    prep = get_dataset(name).prep(size, roi_crop, contrast)
    if name == "gtsrb":
        return gtsrb.prepare(Path(data_dir), prep, archives)
    return mnist.prepare(Path(data_dir), prep)


def load_dataset(
    name: str,
    data_dir: Path,
    *,
    size: int | None = None,
    roi_crop: bool = False,
    contrast: str = ORIGINAL_CONTRAST,
    val_fraction: float | None = None,
    split_seed: int = 0,
) -> DatasetTensors:
    """A prepared dataset's splits; when it is not prepared, the error says how to prepare it."""
    prep = get_dataset(name).prep(size, roi_crop, contrast)
    return _MODULES[name].load(Path(data_dir), prep, val_fraction, split_seed)
