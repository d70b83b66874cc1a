"""What every data set does with its cache alike: read a preparation back, say how to make it
when it is missing, assemble its splits, and summarise a fresh one."""

from pathlib import Path
from typing import Any

import torch

from stnbench.dataset_registry import Dataset, get_dataset
from stnbench.datasets.cache import read_manifest, read_tensors
from stnbench.datasets.tensors import DatasetTensors, Split, channel_stats
from stnbench.errors import StnbenchError
from stnbench.preparation import Prep


def read_prepared(
    cache_dir: Path, prep: Prep, version: int, what: str, command: str
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The manifest and tensors of ``prep``; when they are missing or older than ``version``,
    the error says that ``what`` is not prepared and gives the ``command`` that prepares it."""
    manifest = read_manifest(cache_dir, prep.id)
    if manifest is None or manifest["preprocessing"].get("version") != version:
        raise StnbenchError(f"{what} not prepared in {cache_dir}: run `{command}`")
    return manifest, read_tensors(cache_dir, manifest)


def assemble(
    prep: Prep,
    cache_dir: Path,
    manifest: dict[str, Any],
    tensors: dict[str, torch.Tensor],
    train_indices: torch.Tensor | slice,
    val_indices: torch.Tensor | slice,
    val_split: dict[str, Any],
    test_set: dict[str, Any],
) -> DatasetTensors:
    """The prepared training images split into train and val, and the test set; mean and std
    are the train split's."""
    images, labels = tensors["train_images"], tensors["train_labels"]
    dataset = get_dataset(prep.dataset)
    mean, std = channel_stats(tensors["train_moments"][train_indices], prep.size * prep.size)
    return DatasetTensors(
        name=dataset.name,
        train=Split(_take(images, train_indices), labels[train_indices]),
        val=Split(_take(images, val_indices), labels[val_indices]),
        test=Split(tensors["test_images"], tensors["test_labels"]),
        num_classes=dataset.num_classes,
        channels=dataset.channels,
        image_size=prep.size,
        mean=mean,
        std=std,
        info={
            "cache": str(cache_dir / manifest["tensors"]),
            "source": manifest["source"],
            "preprocessing": manifest["preprocessing"],
            "val_split": val_split,
            "test_set": test_set,
        },
    )


def _take(images: torch.Tensor, indices: torch.Tensor | slice) -> torch.Tensor:
    # index_select is several times faster than advanced indexing on large uint8 tensors.
    return images[indices] if isinstance(indices, slice) else images.index_select(0, indices)


def summary(
    dataset: type[Dataset],
    prep: Prep,
    cache_dir: Path,
    manifest: dict[str, Any],
    splits: dict[str, int],
    test_set: dict[str, Any],
) -> dict[str, Any]:
    """What ``prepare`` returns: a JSON-ready account of the cache it made or found."""
    return {
        "dataset": dataset.name,
        "cache": str(cache_dir / manifest["tensors"]),
        "splits": splits,
        "classes": dataset.num_classes,
        "image_size": prep.size,
        "channels": dataset.channels,
        "roi_crop": prep.roi_crop,
        "contrast": prep.contrast,
        "source": manifest["source"],
        "test_set": test_set,
    }
