"""Writing into a read-only folder, a file, or a full disk: one line, before training where it
can come first, and nothing left behind. Read-only and full file systems are real tmpfs mounts
(root only; skipped elsewhere)."""

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from stnbench.cli import main
from stnbench.errors import StnbenchError
from stnbench.io import atomic_write, ensure_writable_folder

REPO = Path(__file__).resolve().parents[1]
TINY_CNN = str(REPO / "tests" / "data" / "tiny-cnn.yaml")


def _mount_tmpfs(target: Path, options: str) -> Iterator[Path]:
    target.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield target
    finally:
        # Lazily: a handle that torch.save left open on a failed write may hold it busy.
        subprocess.run(["umount", "--lazy", str(target)], check=True)


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    yield from _mount_tmpfs(tmp_path / "read-only", "size=1m,ro")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    yield from _mount_tmpfs(tmp_path / "small", "size=1m")


def _train(out: Path, data_dir: Path) -> list[str]:
    return ["train", "--dataset", "mnist", "--distortion", "R", "--severity", "1",
            "--model", TINY_CNN, "--seed", "0", "--device", "cpu",
            "--data-dir", str(data_dir), "--out", str(out)]  # fmt: skip


@pytest.mark.parametrize("where", ["read-only", "a file", "below a file"])
def test_train_refuses_an_unwritable_out_before_loading_data(
    where: str, read_only_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    a_file = tmp_path / "metrics-by-mistake.txt"
    a_file.write_text("kept\n")
    out = {"read-only": read_only_folder / "run", "a file": a_file, "below a file": a_file / "run"}
    data_dir = tmp_path / "data"
    assert main(_train(out[where], data_dir)) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("stnbench: error:") and len(error.splitlines()) == 1
    assert "not a folder that files can be written in" in error
    # Nothing was prepared: the check came before the data, and the file is untouched.
    assert not data_dir.exists()
    assert a_file.read_text() == "kept\n"


def test_full_disk_names_the_file_and_the_free_space(small_disk: Path) -> None:
    target = small_disk / "checkpoint.pt"
    target.write_bytes(b"previous epoch")
    with pytest.raises(StnbenchError) as error:
        atomic_write(target, lambda tmp: torch.save(torch.zeros(1 << 20), tmp))
    message = str(error.value)
    assert message.startswith(f"{target}: cannot be written (") and "\n" not in message
    assert "MB free on the disk of" in message
    # The previous file survives and no temporary file is stranded.
    assert target.read_bytes() == b"previous epoch"
    assert os.listdir(small_disk) == ["checkpoint.pt"]


def test_writable_folder_is_created_and_left_clean(tmp_path: Path) -> None:
    folder = tmp_path / "new" / "run"
    ensure_writable_folder(folder)
    assert folder.is_dir() and os.listdir(folder) == []


def test_a_killed_write_leaves_nothing_after_the_next_one(tmp_path: Path) -> None:
    target = tmp_path / "checkpoint.pt"
    stale = tmp_path / ".checkpoint.pt.abc123.tmp"
    recent = tmp_path / ".checkpoint.pt.def456.tmp"
    other = tmp_path / ".metrics.json.ghi789.tmp"
    for path in (stale, recent, other):
        path.write_bytes(b"half written")
    hours_ago = time.time() - 2 * 3600
    for path in (stale, other):
        os.utime(path, (hours_ago, hours_ago))
    atomic_write(target, lambda tmp: tmp.write_bytes(b"whole"))
    # The stale one of this file goes; one that may still be written, and other files', stay.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [target.name, recent.name, other.name]
    )


@pytest.fixture
def read_only_data_dir(mnist, data_dir: Path, tmp_path: Path) -> Iterator[Path]:
    """A read-only data folder holding the prepared MNIST and no distorted split."""
    for folder in _mount_tmpfs(tmp_path / "shared-data", "size=200m"):
        (folder / "cache").mkdir()
        for prepared in (data_dir / "cache").glob("mnist-28px*"):
            shutil.copy(prepared, folder / "cache")
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        yield folder


def test_read_only_data_folder_trains_with_the_distortion_uncached(
    read_only_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    spec = tmp_path / "short.yaml"
    spec.write_text("limit_train: 256\nlimit_eval: 256\nepochs: 1\n")
    out = tmp_path / "run"
    assert main([*_train(out, read_only_data_dir), "--spec", str(spec)]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    # One line per split that could not be cached, naming the file and why; the run finished.
    assert warnings and all(
        line.startswith("stnbench: warning: ")
        and "Read-only file system" in line
        and line.endswith("using the split uncached")
        for line in warnings
    )
    assert (out / "metrics.json").is_file()
