"""Distorted evaluation splits generated once and kept on disk."""

import contextlib
import hashlib
import sys
from pathlib import Path

import torch

from stnbench.datasets import DatasetTensors, Split
from stnbench.distortions.distortion import Distortion, distort_split
from stnbench.errors import StnbenchError
from stnbench.io import atomic_write, load_tensors

SPLITS = ("train", "val", "test")
# Part of every cache key, with the family's definition version (Distortion.version): raise
# it when the file's format changes.
FORMAT_VERSION = 1


def split_digest(split: Split) -> str:
    """sha256 of a split's image and label bytes: its identity, however it was derived."""
    digest = hashlib.sha256()
    for tensor in (split.images, split.labels):
        digest.update(str((tuple(tensor.shape), tensor.dtype)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def cache_path(
    data: DatasetTensors, split_name: str, distortion: Distortion, seed: int, cache_dir: Path
) -> Path:
    split: Split = getattr(data, split_name)
    size = distortion.output_size(split.images.shape[-1])
    # Definition version 1 keeps the name it had before definitions were versioned, so that
    # its caches stay valid.
    definition = f"-def{distortion.version}" if distortion.version != 1 else ""
    name = (
        f"{distortion.family}-s{distortion.severity!r}-{size}px-seed{seed}"
        f"-v{FORMAT_VERSION}{definition}.pt"
    )
    folder = f"{split_name}-{split_digest(split)[:24]}"
    return Path(cache_dir) / "distorted" / data.name / folder / name


def cached_distorted_split(
    data: DatasetTensors, split_name: str, distortion: Distortion, seed: int, cache_dir: Path
) -> Split:
    """``distort_split`` of ``data``'s split, read from ``cache_dir`` or generated and saved there.

    The file is keyed by the source split's sha256, the family and its definition version,
    severity, output size and seed, and written atomically, so concurrent runs at worst
    generate it twice. A folder that cannot take it (read-only, full) gets a one-line warning
    and the split is used uncached.
    """
    if split_name not in SPLITS:
        raise StnbenchError(f"split {split_name!r}: expected one of {', '.join(SPLITS)}")
    if data.name != distortion.dataset:
        raise StnbenchError(
            f"distortion {distortion.family!r} was made for {distortion.dataset}, "
            f"not for the {data.name} data"
        )
    split: Split = getattr(data, split_name)
    if distortion.is_identity(split.images.shape[-1]):
        return split
    path = cache_path(data, split_name, distortion, seed, cache_dir)
    if path.is_file():
        # A file cut short (a full disk, a killed copy) is generated again: it is derived data.
        with contextlib.suppress(StnbenchError):
            images = load_tensors(path, "distorted split", "it is generated again")
            if isinstance(images, torch.Tensor) and len(images) == len(split.labels):
                return Split(images=images, labels=split.labels)
    distorted = distort_split(split, distortion, seed)
    try:
        atomic_write(path, lambda tmp: torch.save(distorted.images, tmp))
    except StnbenchError as error:
        # A shared read-only (or full) data folder costs only this regeneration next time;
        # refusing would throw away the split just computed.
        print(f"stnbench: warning: {error}; using the split uncached", file=sys.stderr)
    return distorted
