"""Where data, caches and GTSRB archives live: flag, then environment variable, then default."""

import os
from pathlib import Path

DATA_DIR_ENV = "STNBENCH_DATA_DIR"
ARCHIVES_ENV = "STNBENCH_GTSRB_ARCHIVES"
DEFAULT_DATA_DIR = Path("data")


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data folder: ``data_dir`` if given, else ``$STNBENCH_DATA_DIR``, else ``data/``."""
    if data_dir is not None:
        return Path(data_dir)
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV])
    return DEFAULT_DATA_DIR


def resolve_archives(archives: str | os.PathLike | None = None) -> Path | None:
    """The GTSRB archives folder: ``archives`` if given, else ``$STNBENCH_GTSRB_ARCHIVES``."""
    if archives is not None:
        return Path(archives)
    if os.environ.get(ARCHIVES_ENV):
        return Path(os.environ[ARCHIVES_ENV])
    return None


def cache_dir(data_dir: Path) -> Path:
    """Prepared tensors and generated test sets, keyed by their sources and preprocessing."""
    return data_dir / "cache"
