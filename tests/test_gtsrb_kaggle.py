"""GTSRB in Kaggle's layout, built here from the real 32 px official archives (classes 0-2, two
tracks each), read as a folder and as a zip, against the official archives' tensors."""

import csv
import hashlib
import io
import re
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image

from stnbench.cli import main
from stnbench.datasets import load_dataset, prepare_dataset
from stnbench.datasets.gtsrb import describe_test_set
from stnbench.errors import StnbenchError

TRAIN_ZIP = "GTSRB_Final_Training_Images.zip"
TEST_ZIP = "GTSRB_Final_Test_Images.zip"
GT_ZIP = "GTSRB_Final_Test_GT.zip"
KAGGLE_COLUMNS = ["Width", "Height", "Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2", "ClassId", "Path"]
TOP = "gtsrb-german-traffic-sign"
STORED = 32  # the shared archives' image size


def _official_rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode()), delimiter=";"))


def _scaled(start: str, stop: str, original: str) -> tuple[int, int]:
    """An official ROI span in the stored 32 px image's pixels."""
    scale = STORED / int(original)
    first = min(round(int(start) * scale), STORED - 1)
    return first, min(max(round(int(stop) * scale), first + 1), STORED)


def _kaggle_row(row: dict[str, str], path: str) -> list:
    x1, x2 = _scaled(row["Roi.X1"], row["Roi.X2"], row["Width"])
    y1, y2 = _scaled(row["Roi.Y1"], row["Roi.Y2"], row["Height"])
    return [STORED, STORED, x1, y1, x2, y2, int(row["ClassId"]), path]


def _write_png(ppm: bytes, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.open(io.BytesIO(ppm)).save(path, format="PNG")


def _write_csv(path: Path, rows: list[list]) -> None:
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([KAGGLE_COLUMNS, *rows])


def _write_kaggle(official: Path, out: Path) -> None:
    """``official``'s images in Kaggle's layout under ``out``: PNG files, Train.csv (rows in
    reverse order, as Kaggle's are not in file order) and Test.csv in the official order."""
    train_rows = []
    with zipfile.ZipFile(official / TRAIN_ZIP) as archive:
        for csv_name in [n for n in archive.namelist() if n.endswith(".csv")]:
            folder = csv_name.rsplit("/", 1)[0]
            for row in _official_rows(archive.read(csv_name)):
                class_id, filename = int(row["ClassId"]), row["Filename"]
                path = f"Train/{class_id}/{class_id:05d}_{filename[:11]}.png"
                _write_png(archive.read(f"{folder}/{filename}"), out / path)
                train_rows.append(_kaggle_row(row, path))
    _write_csv(out / "Train.csv", train_rows[::-1])
    test_rows = []
    with (
        zipfile.ZipFile(official / GT_ZIP) as labels,
        zipfile.ZipFile(official / TEST_ZIP) as images,
    ):
        for row in _official_rows(labels.read("GT-final_test.csv")):
            path = f"Test/{row['Filename'][:5]}.png"
            _write_png(images.read(f"GTSRB/Final_Test/Images/{row['Filename']}"), out / path)
            test_rows.append(_kaggle_row(row, path))
    _write_csv(out / "Test.csv", test_rows)


@pytest.fixture(scope="module")
def kaggle(gtsrb_subset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The official subset (180 training, 30 test images) as an extracted Kaggle folder."""
    out = tmp_path_factory.mktemp("kaggle") / "gtsrb"
    _write_kaggle(gtsrb_subset, out)
    return out


@pytest.fixture(scope="module")
def kaggle_zip(kaggle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Kaggle folder as a download zip: under one top folder, with Meta.csv, Meta/ and a
    lower-case test/ that no CSV names (a broken image there must go unread)."""
    path = tmp_path_factory.mktemp("kaggle-zip") / "archive.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(kaggle.rglob("*")):
            if file.is_file():
                archive.write(file, f"{TOP}/{file.relative_to(kaggle).as_posix()}")
        archive.writestr(f"{TOP}/Meta.csv", "Path,ClassId\nMeta/0.png,0\n")
        archive.write(kaggle / _path_on(kaggle, "Test.csv", 2), f"{TOP}/Meta/0.png")
        archive.writestr(f"{TOP}/test/00000.png", b"not an image")
    return path


def _cached(summary: dict) -> dict[str, torch.Tensor]:
    return torch.load(summary["cache"], weights_only=True)


@pytest.mark.parametrize("form", ["folder", "zip", "folder holding the zip"])
def test_kaggle_layout_gives_the_official_tensors(
    form: str, kaggle: Path, kaggle_zip: Path, gtsrb_subset: Path, tmp_path: Path
) -> None:
    given = {"folder": kaggle, "zip": kaggle_zip, "folder holding the zip": kaggle_zip.parent}
    official = prepare_dataset("gtsrb", tmp_path / "official", archives=gtsrb_subset)
    summary = prepare_dataset("gtsrb", tmp_path / "kaggle", archives=given[form])
    assert summary["splits"] == official["splits"] and sum(summary["splits"].values()) == 210
    expected, tensors = _cached(official), _cached(summary)
    assert set(tensors) == set(expected)
    for name in expected:  # images pixel for pixel, labels, tracks, moments
        assert torch.equal(tensors[name], expected[name]), name
    where = kaggle if form == "folder" else kaggle_zip
    assert {part["location"] for part in summary["source"]["parts"].values()} == {str(where)}
    assert summary["source"]["sha256"] != official["source"]["sha256"]


def _track_of_pixels(kaggle: Path) -> dict[bytes, str]:
    """Each training image's RGB bytes -> its track "CCCCC/TTTTT", from the file names."""
    return {
        Image.open(path).convert("RGB").tobytes(): f"{path.name[:5]}/{path.name[6:11]}"
        for path in (kaggle / "Train").rglob("*.png")
    }


def test_track_split_holds_out_whole_tracks(kaggle: Path, tmp_path: Path) -> None:
    prepare_dataset("gtsrb", tmp_path, archives=kaggle)
    data = load_dataset("gtsrb", tmp_path)
    track_of = _track_of_pixels(kaggle)

    def tracks(images: torch.Tensor) -> set[str]:
        return {track_of[image.permute(1, 2, 0).contiguous().numpy().tobytes()] for image in images}

    train, val = tracks(data.train.images), tracks(data.val.images)
    assert train.isdisjoint(val) and len(train | val) == 6
    assert val == set(data.info["val_split"]["val_tracks"])
    assert sorted(t[:5] for t in val) == ["00000", "00001", "00002"]  # one track per class


@pytest.mark.parametrize("roi_crop", [False, True])
def test_prepare_and_load_at_48px(
    roi_crop: bool, kaggle_zip: Path, gtsrb_subset: Path, tmp_path: Path
) -> None:
    options = {"size": 48, "roi_crop": roi_crop}
    prepare_dataset("gtsrb", tmp_path / "kaggle", archives=kaggle_zip, **options)
    prepare_dataset("gtsrb", tmp_path / "official", archives=gtsrb_subset, **options)
    data = load_dataset("gtsrb", tmp_path / "kaggle", **options)
    official = load_dataset("gtsrb", tmp_path / "official", **options)
    assert data.train.images.shape[1:] == (3, 48, 48) and len(data.test) == 30
    assert data.info["preprocessing"]["roi_crop"] is roi_crop
    # The CSV's ROIs are the official ones in stored pixels, so cropping at scale 1 cuts the
    # same pixels as the official path's scaled ROI.
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(data, split).images, getattr(official, split).images), split
    assert "30-image subset" in data.info["test_set"]["note"]


def test_test_set_note_names_the_missing_image() -> None:
    official = [f"Test/{i:05d}.png" for i in range(12_630)]
    less_00662 = describe_test_set([n for n in official if n != "Test/00662.png"])
    assert less_00662["size"] == 12_629
    assert re.search(
        r"complete official GTSRB test set less image 00662 \(label 2\)", less_00662["note"]
    )
    assert "full official" in describe_test_set(official)["note"]
    less_other = describe_test_set(official[1:])
    assert less_other["note"].startswith("12,629-image subset")
    assert "a development figure" in describe_test_set(official[:430])["note"]


def _edit_csv(path: Path, edit: Callable[[list[list[str]]], None]) -> None:
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    edit(rows)
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)


def _cell(path: Path, line: int, column: str, value: str) -> None:
    def edit(rows: list[list[str]]) -> None:
        rows[line - 1][rows[0].index(column)] = value

    _edit_csv(path, edit)


def _drop_column(path: Path, column: str) -> None:
    def edit(rows: list[list[str]]) -> None:
        at = rows[0].index(column)
        for row in rows:
            del row[at]

    _edit_csv(path, edit)


def _path_on(folder: Path, csv_file: str, line: int) -> str:
    with (folder / csv_file).open(newline="") as handle:
        return list(csv.DictReader(handle))[line - 2]["Path"]


def _missing_column(folder: Path) -> str:
    _drop_column(folder / "Train.csv", "Roi.Y2")
    return r"gtsrb: Train\.csv: missing column Roi\.Y2$"


def _path_up(folder: Path) -> str:
    _cell(folder / "Test.csv", 2, "Path", "../x.png")
    return r"Test\.csv line 2: Path '\.\./x\.png' lies outside .*gtsrb$"


def _absolute_path(folder: Path) -> str:
    _cell(folder / "Train.csv", 3, "Path", "/etc/hostname")
    return r"Train\.csv line 3: Path '/etc/hostname' lies outside .*gtsrb$"


def _missing_image(folder: Path) -> str:
    victim = _path_on(folder, "Test.csv", 3)
    (folder / victim).unlink()
    return rf"Test\.csv line 3: {re.escape(victim)} is not in .*gtsrb$"


def _undecodable(folder: Path) -> str:
    victim = _path_on(folder, "Train.csv", 2)
    (folder / victim).write_bytes(b"not a PNG at all")
    return rf"gtsrb: {re.escape(victim)}: image does not decode \(not an image format PIL reads\)$"


def _truncated(folder: Path) -> str:
    victim = _path_on(folder, "Test.csv", 4)
    data = (folder / victim).read_bytes()
    (folder / victim).write_bytes(data[: len(data) // 2])
    return rf"gtsrb: {re.escape(victim)}: image does not decode"


def _class_out_of_range(folder: Path) -> str:
    _cell(folder / "Test.csv", 2, "ClassId", "43")
    return r"Test\.csv line 2: ClassId 43 outside 0\.\.42$"


def _class_not_the_file_names(folder: Path) -> str:
    victim = _path_on(folder, "Train.csv", 2)  # class 2: the rows run in reverse order
    _cell(folder / "Train.csv", 2, "ClassId", "1")
    return rf"Train\.csv line 2: ClassId 1 but {re.escape(victim)} is named for class 2$"


def _unlabelled_test_csv(folder: Path) -> str:
    _drop_column(folder / "Test.csv", "ClassId")
    return r"gtsrb: Test\.csv: missing column ClassId \(no labels"


BREAKAGES = {
    "missing column": _missing_column,
    "path up": _path_up,
    "absolute path": _absolute_path,
    "missing image": _missing_image,
    "undecodable image": _undecodable,
    "truncated image": _truncated,
    "classid out of range": _class_out_of_range,
    "classid not the file name's": _class_not_the_file_names,
    "test csv without labels": _unlabelled_test_csv,
}


def _files(folder: Path) -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in folder.iterdir()
        if path.is_file()
    }


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_bad_kaggle_input_fails_in_one_line_and_writes_nothing(
    breakage: str, kaggle: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "gtsrb"
    shutil.copytree(kaggle, folder)
    data_dir = tmp_path / "data"
    argv = ["data", "prepare", "gtsrb", "--archives", str(folder), "--data-dir", str(data_dir)]
    assert main(argv) == 0  # a valid cache, which the failed prepare must leave as it was
    cache = data_dir / "cache"
    before = _files(cache)
    expected = BREAKAGES[breakage](folder)
    capsys.readouterr()
    assert main(argv) == 1
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("stnbench: error: "), captured.err
    assert re.search(expected, lines[0]), lines[0]
    assert "BytesIO" not in lines[0]
    assert _files(cache) == before


def test_missing_image_in_the_zip_names_the_zip(
    kaggle: Path, kaggle_zip: Path, tmp_path: Path
) -> None:
    victim = f"{TOP}/{_path_on(kaggle, 'Test.csv', 5)}"
    broken = tmp_path / "archive.zip"
    with zipfile.ZipFile(kaggle_zip) as source, zipfile.ZipFile(broken, "w") as dest:
        for name in source.namelist():
            if name != victim:
                dest.writestr(name, source.read(name))
    with pytest.raises(StnbenchError) as error:
        prepare_dataset("gtsrb", tmp_path / "data", archives=broken)
    zip_name = re.escape(str(broken))
    expected = rf"{zip_name}: {TOP}/Test\.csv line 5: {re.escape(victim)} is not in {zip_name}"
    assert re.fullmatch(expected, str(error.value)), error.value
    assert not list((tmp_path / "data" / "cache").glob("*.pt"))


def test_a_zip_without_kaggles_layout_is_refused(gtsrb_subset: Path, tmp_path: Path) -> None:
    with pytest.raises(StnbenchError, match=r"GTSRB_Final_Test_GT\.zip: no GTSRB in this zip"):
        prepare_dataset("gtsrb", tmp_path, archives=gtsrb_subset / GT_ZIP)
