"""Atomic file writes and checksums shared by every stage that writes results or caches."""

import contextlib
import glob
import hashlib
import json
import os
import pickle
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from stnbench.errors import StnbenchError

# A temporary file this old is left from a killed write, not one under way.
STALE_TEMPORARY_S = 3600
# Below this much free space a failed write is reported as a full disk.
MIN_FREE_BYTES = 256 * 2**20


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
    tmp = _temporary_beside(path)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    # torch.save reports a full disk as a RuntimeError that names neither the disk nor the file.
    except (OSError, RuntimeError) as error:
        raise StnbenchError(f"{path}: cannot be written ({_reason(error, path)})") from error
    finally:
        tmp.unlink(missing_ok=True)


def _temporary_beside(path: Path) -> Path:
    try:
        tmp = _temporary_in(path.parent, path.name)
    except OSError as error:
        raise StnbenchError(f"{path}: cannot be written ({_reason(error, path)})") from error
    # mkstemp creates 0600 files; results and caches are meant to be shared like any other file.
    tmp.chmod(0o666 & ~_current_umask())
    return tmp


def _temporary_in(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    # A process killed mid-write leaves its temporary file (up to a whole cache) behind; one
    # older than any write takes is removed by the next write of the same file.
    for stale in folder.glob(f".{glob.escape(name)}.*.tmp"):
        with contextlib.suppress(OSError):
            if time.time() - stale.stat().st_mtime > STALE_TEMPORARY_S:
                stale.unlink()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    return Path(tmp_name)


def _reason(error: BaseException, path: Path) -> str:
    """The first line of ``error``, and the free space left when the disk is (nearly) full."""
    reason = (getattr(error, "strerror", None) or str(error)).splitlines()[0]
    folder = next((p for p in (path.parent, *path.parents) if p.is_dir()), None)
    if folder is not None:
        free = shutil.disk_usage(folder).free
        if free < MIN_FREE_BYTES:
            reason += f"; {free / 2**20:.0f} MB free on the disk of {folder}"
    return reason


def ensure_writable_folder(folder: Path) -> None:
    """Create ``folder`` if needed and check that files can be written in it, so that a run
    learns of a read-only or mistaken output folder before it trains, not after an epoch."""
    folder = Path(folder)
    try:
        _temporary_in(folder, "write-check").unlink()
    except OSError as error:
        reason = _reason(error, folder / "write-check")
        raise StnbenchError(
            f"{folder}: not a folder that files can be written in ({reason})"
        ) from error


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


def load_tensors(path: Path, what: str, remedy: str) -> Any:
    """``torch.load`` of ``path`` holding tensors and plain containers only, on the CPU; every
    failure is one line naming the file, ``what`` it should be and the ``remedy``."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's own message goes on to suggest weights_only=False, which would run whatever
        # code the file holds: never advice to give about a file of unknown origin.
        raise StnbenchError(
            f"{path}: not a {what} this suite wrote (not a file of tensors alone); {remedy}"
        ) from None
    except Exception as error:  # any other failure means the same thing to the user
        reason = (str(error).splitlines() or [type(error).__name__])[0]
        raise StnbenchError(f"{path}: unreadable {what} ({reason}); {remedy}") from None


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
