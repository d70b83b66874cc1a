"""Prepared datasets on disk: a tensor file named by its content key and a manifest pointing to it.

``prepare`` writes the tensor file, then the manifest, each by atomic rename, and never
deletes an older tensor file, so a reader that has just read an older manifest still finds
its tensors. A file lock per manifest keeps concurrent prepares (parallel workflow jobs)
from doing the same work twice.
"""

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock

from stnbench.errors import StnbenchError
from stnbench.io import atomic_write, atomic_write_json, load_tensors
from stnbench.preparation import ORIGINAL_CONTRAST, Prep


def cache_stem(
    name: str, size: int, roi_crop: bool = False, contrast: str = ORIGINAL_CONTRAST
) -> str:
    """The name of one dataset's caches at one preparation, e.g. ``gtsrb-48px-roi-histeq``: the
    preparation's own id, so that the caches and the workflow's run folders name it alike."""
    return Prep(name, size, roi_crop, contrast).id


def content_key(source_sha256: str, preprocessing: dict[str, Any]) -> str:
    """A short key that changes whenever the source data or the preprocessing changes."""
    text = json.dumps({"source": source_sha256, "preprocessing": preprocessing}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@contextmanager
def prepare_lock(cache_dir: Path, stem: str) -> Iterator[None]:
    cache_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(cache_dir / f"{stem}.lock"):
        yield


def read_manifest(cache_dir: Path, stem: str) -> dict[str, Any] | None:
    """The manifest of ``stem`` if it and the tensor file it names exist, else None."""
    path = cache_dir / f"{stem}.json"
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise StnbenchError(f"{path}: not a valid cache manifest ({error}); delete it") from error
    tensors = cache_dir / manifest["tensors"]
    # A tensor file cut short (a full disk, a copy interrupted) is no cache: prepare rebuilds it.
    if not tensors.is_file() or tensors.stat().st_size != manifest.get("tensors_bytes"):
        return None
    return manifest


def write_cache(
    cache_dir: Path, stem: str, key: str, tensors: dict[str, torch.Tensor], manifest: dict
) -> dict[str, Any]:
    """Write ``tensors`` as ``{stem}-{key}.pt``, then the manifest ``{stem}.json`` naming it."""
    filename = f"{stem}-{key}.pt"
    atomic_write(cache_dir / filename, lambda tmp: torch.save(tensors, tmp))
    size = (cache_dir / filename).stat().st_size
    manifest = {**manifest, "tensors": filename, "tensors_bytes": size, "key": key}
    atomic_write_json(cache_dir / f"{stem}.json", manifest)
    return manifest


def read_tensors(cache_dir: Path, manifest: dict[str, Any]) -> dict[str, torch.Tensor]:
    path = cache_dir / manifest["tensors"]
    return load_tensors(path, "cache", "delete it and prepare again")
