"""Finding GTSRB's three parts (training set, test images, test labels) and parsing their CSVs.

Each part is read from its official zip when that is in the folder, else from an extracted
tree anywhere below it: the official trees (``GTSRB/Final_Training/Images``,
``GTSRB/Final_Test/Images``, ``GT-final_test.csv``) and torchvision's ``gtsrb/`` layout
(``GTSRB/Training``) look alike from here, so one set of patterns finds both.
"""

import csv
import hashlib
import io
import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from stnbench.datasets.archives import DirSource, FileSource, ZipSource
from stnbench.errors import StnbenchError

NUM_CLASSES = 43
TRAIN_ZIP = "GTSRB_Final_Training_Images.zip"
TEST_IMAGES_ZIP = "GTSRB_Final_Test_Images.zip"
TEST_LABELS_ZIP = "GTSRB_Final_Test_GT.zip"
CSV_COLUMNS = ("Filename", "Width", "Height", "Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2", "ClassId")

_TRAIN_CSV = re.compile(r"(?:^|/)(\d{5})/GT-\1\.csv$")
_TEST_IMAGE = re.compile(r"(?:^|/)Final_Test/Images/\d{5}\.ppm$")
_TEST_LABELS = re.compile(r"(?:^|/)GT-final_test\.csv$")
# Each part's official archive, and the pattern its files match inside that or a tree.
_PARTS = {
    "train": (TRAIN_ZIP, _TRAIN_CSV),
    "test_images": (TEST_IMAGES_ZIP, _TEST_IMAGE),
    "test_labels": (TEST_LABELS_ZIP, _TEST_LABELS),
}
_TRACK_FRAME = re.compile(r"^(\d{5})_\d{5}\.ppm$")
# The deepest files of the layouts found: gtsrb/GTSRB/Training/00000/GT-00000.csv.
TREE_DEPTH = 4
# Track numbers restart in every class folder; this makes them unique across classes.
TRACK_STRIDE = 100_000


@dataclass(frozen=True)
class Record:
    """One image: where it is in its source, its annotation, and its track (-1 in the test set)."""

    name: str
    width: int
    height: int
    roi: tuple[int, int, int, int]  # x1, y1, x2, y2 in the original image's pixels, x2/y2 exclusive
    label: int
    track: int


@dataclass(frozen=True)
class Part:
    source: FileSource
    names: list[str]  # the entries of ``source`` this part consists of


def _find(
    sources: dict[str, FileSource], zip_name: str, tree: DirSource | None, pattern: re.Pattern
) -> Part | None:
    if zip_name in sources:
        source = sources[zip_name]
    elif tree is not None:
        source = tree
    else:
        return None
    names = [name for name in source.names() if pattern.search(name)]
    return Part(source, names) if names else None


@dataclass(frozen=True)
class GtsrbFiles:
    train: Part
    test_images: Part
    test_labels: Part

    def describe(self, train: list[Record], test: list[Record]) -> dict:
        """The sources' locations and a checksum over everything the dataset was built from."""
        used = {
            "train": (self.train.source, self.train.names + [r.name for r in train]),
            "test_images": (self.test_images.source, [r.name for r in test]),
            "test_labels": (self.test_labels.source, self.test_labels.names),
        }
        parts = {
            part: {"location": source.label, "sha256": source.sha256(names)}
            for part, (source, names) in used.items()
        }
        combined = "".join(parts[part]["sha256"] for part in sorted(parts))
        return {"parts": parts, "sha256": hashlib.sha256(combined.encode()).hexdigest()}


@contextmanager
def open_gtsrb(folder: Path) -> Iterator[GtsrbFiles]:
    """GTSRB's three parts in ``folder``, or a one-line error saying which files to put there."""
    folder = Path(folder)
    if not folder.is_dir():
        raise StnbenchError(f"{folder}: no such folder for the GTSRB archives")
    with ExitStack() as stack:
        zips = {
            name: stack.enter_context(ZipSource(folder / name))
            for name, _ in _PARTS.values()
            if (folder / name).is_file()
        }
        tree = DirSource(folder, TREE_DEPTH) if len(zips) < 3 else None
        parts = {
            part: _find(zips, zip_name, tree, pattern)
            for part, (zip_name, pattern) in _PARTS.items()
        }
        missing = [_PARTS[part][0] for part, found in parts.items() if found is None]
        if len(missing) == 3:
            raise StnbenchError(
                f"{folder}: no GTSRB here: put {TRAIN_ZIP}, {TEST_IMAGES_ZIP} and "
                f"{TEST_LABELS_ZIP} in it (or their extracted trees, or torchvision's gtsrb/)"
            )
        if missing:
            raise StnbenchError(
                f"{folder}: incomplete GTSRB: put {' and '.join(missing)} in it (or extracted)"
            )
        if len(parts["test_labels"].names) > 1:
            raise StnbenchError(
                f"{folder}: several GT-final_test.csv: {', '.join(parts['test_labels'].names)}"
            )
        yield GtsrbFiles(**parts)


def _parse_csv(source: FileSource, name: str) -> Iterator[tuple[int, list[int], str]]:
    """(line number, the integer columns in CSV_COLUMNS[1:] order, Filename) per CSV row."""
    where = f"{source.label}: {name}"
    try:
        text = source.read(name).decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise StnbenchError(f"{where}: not a text CSV ({error})") from error
    reader = csv.reader(io.StringIO(text), delimiter=";")
    header = next(reader, [])
    missing = [column for column in CSV_COLUMNS if column not in header]
    if missing:
        raise StnbenchError(f"{where}: missing column {', '.join(missing)}")
    filename_at = header.index("Filename")
    value_at = [header.index(column) for column in CSV_COLUMNS[1:]]
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        try:
            values = [int(row[i]) for i in value_at]
            filename = row[filename_at]
        except (IndexError, ValueError):
            raise StnbenchError(
                f"{where} line {line}: expected integers in {';'.join(row)!r}"
            ) from None
        width, height, x1, y1, x2, y2, class_id = values
        if not 0 <= class_id < NUM_CLASSES:
            raise StnbenchError(
                f"{where} line {line}: ClassId {class_id} outside 0..{NUM_CLASSES - 1}"
            )
        if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
            raise StnbenchError(f"{where} line {line}: Roi.* lies outside the Width x Height image")
        yield line, values, filename


def _record(values: list[int], name: str, track: int) -> Record:
    width, height, x1, y1, x2, y2, class_id = values
    return Record(name, width, height, (x1, y1, x2, y2), class_id, track)


def _check_present(part: Part, names: set[str], where: str, line: int, name: str) -> None:
    if name not in names:
        raise StnbenchError(f"{where} line {line}: {name} is not in {part.source.label}")


def read_train_records(part: Part) -> list[Record]:
    """Every training image listed in the per-class CSVs, ordered by class and file name."""
    available = set(part.source.names())
    seen: dict[str, str] = {}
    records = []
    for csv_name in part.names:
        folder = PurePosixPath(csv_name).parent
        if folder.name in seen:
            raise StnbenchError(
                f"{part.source.label}: class {folder.name} twice: {seen[folder.name]}, {csv_name}"
            )
        seen[folder.name] = csv_name
        where = f"{part.source.label}: {csv_name}"
        for line, values, filename in _parse_csv(part.source, csv_name):
            class_id = values[-1]
            if class_id != int(folder.name):
                raise StnbenchError(
                    f"{where} line {line}: ClassId {class_id} in folder {folder.name}"
                )
            match = _TRACK_FRAME.match(filename)
            if match is None:
                raise StnbenchError(f"{where} line {line}: {filename!r} is not TTTTT_FFFFF.ppm")
            name = f"{folder.as_posix()}/{filename}"
            _check_present(part, available, where, line, name)
            track = class_id * TRACK_STRIDE + int(match.group(1))
            records.append(_record(values, name, track))
    return sorted(records, key=lambda record: record.name)


def read_test_records(images: Part, labels: Part) -> list[Record]:
    """The labelled test images, in the order of GT-final_test.csv."""
    folder = PurePosixPath(images.names[0]).parent
    available = set(images.names)
    csv_name = labels.names[0]
    where = f"{labels.source.label}: {csv_name}"
    records = []
    for line, values, filename in _parse_csv(labels.source, csv_name):
        name = f"{folder.as_posix()}/{filename}"
        _check_present(images, available, where, line, name)
        records.append(_record(values, name, -1))
    return records
