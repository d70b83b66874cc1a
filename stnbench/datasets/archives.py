"""Reading dataset files from a zip archive or an extracted folder through one interface.

Every failure (a truncated or corrupt archive, an entry that would escape the archive's
folder, an unreadable file) becomes a one-line ``StnbenchError`` naming the file.
"""

import hashlib
import os
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Self

from stnbench.errors import StnbenchError
from stnbench.io import sha256_file


def verify_sha256(path: Path, expected: str) -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise StnbenchError(f"{path}: checksum mismatch (sha256 {actual}, expected {expected})")


def is_unsafe(name: str) -> bool:
    """True for an entry that extraction would place outside its folder (zip slip)."""
    path = PurePosixPath(name.replace("\\", "/"))
    return path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0])


class _ClosingSource:
    """``with source:`` closes it, for the zip and folder sources alike."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class ZipSource(_ClosingSource):
    """The files of one zip archive, checked for unsafe entry names when opened."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.label = str(self.path)
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            raise StnbenchError(
                f"{self.path}: not a readable zip archive, truncated or corrupt ({error})"
            ) from error
        for name in self._zip.namelist():
            if is_unsafe(name):
                self._zip.close()
                raise StnbenchError(
                    f"{self.path}: entry {name!r} would land outside the extraction folder"
                )
        self._names = [info.filename for info in self._zip.infolist() if not info.is_dir()]

    def names(self) -> list[str]:
        return self._names

    def read(self, name: str) -> bytes:
        try:
            return self._zip.read(name)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:
            raise StnbenchError(f"{self.path}: entry {name} is corrupt ({error})") from error

    def sha256(self, names: list[str]) -> str:
        # The archive's own checksum is what users can compare with published ones.
        return sha256_file(self.path)

    def close(self) -> None:
        self._zip.close()


class DirSource(_ClosingSource):
    """The files under an extracted folder, named by their paths relative to it."""

    def __init__(self, root: Path, max_depth: int) -> None:
        """Files at most ``max_depth`` folders below ``root`` (a bound that keeps a mistaken
        ``root``, such as a home folder, from being searched to the bottom)."""
        self.path = Path(root)
        self.label = str(self.path)
        self._names = []
        for folder, subfolders, files in os.walk(self.path):
            relative = Path(folder).relative_to(self.path)
            if len(relative.parts) >= max_depth:
                subfolders.clear()
            self._names += [(relative / name).as_posix() for name in files]
        self._names.sort()

    def names(self) -> list[str]:
        return self._names

    def read(self, name: str) -> bytes:
        try:
            return (self.path / name).read_bytes()
        except OSError as error:
            raise StnbenchError(f"{self.path / name}: unreadable ({error})") from error

    def sha256(self, names: list[str]) -> str:
        """A checksum of the given files' paths and contents (a folder has none of its own)."""
        digest = hashlib.sha256()
        for name in sorted(names):
            digest.update(name.encode() + b"\0" + hashlib.sha256(self.read(name)).digest())
        return digest.hexdigest()

    def close(self) -> None:
        pass


FileSource = ZipSource | DirSource
