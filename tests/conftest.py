"""Session fixtures with the real datasets, prepared once into a persistent data folder.

``data_dir`` is ``$STNBENCH_TEST_DATA_DIR`` or the repository's git-ignored ``data/``, so the
prepared caches survive between test runs.
"""

import os
import zipfile
from pathlib import Path

import pytest
import torch
from train_helpers import TINY_ST, train_args, write_spec

from stnbench.cli import main
from stnbench.datasets import DatasetTensors, load_dataset, prepare_dataset
from stnbench.paths import ARCHIVES_ENV

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return Path(os.environ.get("STNBENCH_TEST_DATA_DIR") or REPO / "data")


@pytest.fixture(scope="session")
def gtsrb_archives() -> Path:
    """The real GTSRB archives: $STNBENCH_GTSRB_ARCHIVES, else the development data beside the
    checkout (../shared/data/gtsrb-32px)."""
    path = Path(os.environ.get(ARCHIVES_ENV) or SHARED_DATA / "gtsrb-32px")
    if not (path / "GTSRB_Final_Training_Images.zip").is_file():
        pytest.skip(
            f"real GTSRB archives not found in {path} (set ${ARCHIVES_ENV}, or see "
            "../shared/data/README.md)"
        )
    return path


@pytest.fixture(scope="session")
def mnist(data_dir: Path) -> DatasetTensors:
    prepare_dataset("mnist", data_dir)
    return load_dataset("mnist", data_dir)


@pytest.fixture(scope="session")
def gtsrb(data_dir: Path, gtsrb_archives: Path) -> DatasetTensors:
    prepare_dataset("gtsrb", data_dir, archives=gtsrb_archives)
    return load_dataset("gtsrb", data_dir)


def _write_gtsrb_subset(archives: Path, out: Path, classes: int, tracks: int) -> None:
    """The official archives cut down to ``classes`` classes of ``tracks`` tracks each."""
    out.mkdir(parents=True)
    keep_classes = {f"{c:05d}" for c in range(classes)}
    keep_tracks = {f"{t:05d}" for t in range(tracks)}
    with (
        zipfile.ZipFile(archives / "GTSRB_Final_Training_Images.zip") as source,
        zipfile.ZipFile(out / "GTSRB_Final_Training_Images.zip", "w", zipfile.ZIP_DEFLATED) as dest,
    ):
        for name in source.namelist():
            parts = name.split("/")
            if len(parts) < 5 or parts[3] not in keep_classes or name.endswith("/"):
                continue
            data = source.read(name)
            if name.endswith(".csv"):
                lines = data.decode().split("\r\n")
                rows = [line for line in lines[1:] if line[:5] in keep_tracks]
                data = "\r\n".join([lines[0], *rows, ""]).encode()
            elif parts[4][:5] not in keep_tracks:
                continue
            dest.writestr(name, data)
    with zipfile.ZipFile(archives / "GTSRB_Final_Test_GT.zip") as source:
        lines = source.read("GT-final_test.csv").decode().split("\r\n")
    rows = [line for line in lines[1:] if line and int(line.rsplit(";", 1)[1]) < classes]
    with zipfile.ZipFile(out / "GTSRB_Final_Test_GT.zip", "w", zipfile.ZIP_DEFLATED) as dest:
        dest.writestr("GT-final_test.csv", "\r\n".join([lines[0], *rows, ""]))
    wanted = {f"GTSRB/Final_Test/Images/{row.split(';', 1)[0]}" for row in rows}
    with (
        zipfile.ZipFile(archives / "GTSRB_Final_Test_Images.zip") as source,
        zipfile.ZipFile(out / "GTSRB_Final_Test_Images.zip", "w", zipfile.ZIP_DEFLATED) as dest,
    ):
        for name in source.namelist():
            if name in wanted or name.endswith(".test.csv"):
                dest.writestr(name, source.read(name))


@pytest.fixture(scope="session")
def gtsrb_subset(gtsrb_archives: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the three official archives holding real GTSRB classes 0-2, two tracks each
    (180 training images) and their 30 test images: small enough to prepare in a second."""
    out = tmp_path_factory.mktemp("gtsrb") / "archives"
    _write_gtsrb_subset(gtsrb_archives, out, classes=3, tracks=2)
    return out


@pytest.fixture
def one_thread():
    """Run a test on one torch thread, restoring the previous count after it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def mnist_dir(mnist: DatasetTensors, data_dir: Path) -> Path:
    """The data folder, with MNIST prepared in it."""
    return data_dir


@pytest.fixture(scope="session")
def reference_run(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted tiny run, shared by the tests that compare against it."""
    folder = tmp_path_factory.mktemp("reference")
    spec = write_spec(folder / "spec.yaml")
    assert main(train_args(folder / "run", mnist_dir, spec, TINY_ST, "RTS", 3)) == 0
    return folder / "run"
