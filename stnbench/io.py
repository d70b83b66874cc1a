"""Atomic file writes and checksums shared by every stage that writes results or caches."""

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it onto ``path``.

    A reader (or a concurrent writer) therefore sees either the old file or the whole new
    one, never a half-written one, even if the process is killed mid-write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600 files; results and caches are meant to be shared like any other file.
    tmp.chmod(0o666 & ~_current_umask())
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def atomic_write_npz(path: Path, *, compressed: bool = False, **arrays: np.ndarray) -> None:
    """``arrays`` saved by ``np.savez`` (``np.savez_compressed``) to ``path``, atomically."""
    save = np.savez_compressed if compressed else np.savez

    def write(tmp: Path) -> None:
        # A file handle, because np.savez would append ".npz" to the temporary file's name.
        with open(tmp, "wb") as handle:
            save(handle, **arrays)

    atomic_write(path, write)


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
