"""Finding GTSRB at a path and reading its records, in the official or in Kaggle's layout.

The official layout has three parts (training set, test images, test labels). Each is read
from its official zip when that is in the folder, else from an extracted tree anywhere below
it: the official trees (``GTSRB/Final_Training/Images``, ``GTSRB/Final_Test/Images``,
``GT-final_test.csv``) and torchvision's ``gtsrb/`` layout (``GTSRB/Training``) look alike
from here, so one set of patterns finds both. Without the official zips, Kaggle's layout
(see gtsrb_kaggle) is looked for in the folder's tree, then in the zips it holds; a path to
a zip is Kaggle's.
"""

import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from stnbench.datasets.archives import DirSource, FileSource, ZipSource
from stnbench.datasets.gtsrb_kaggle import TEST_CSV, TRAIN_CSV, find_root, read_kaggle
from stnbench.datasets.gtsrb_records import (
    TRACK_STRIDE,
    GtsrbSet,
    Record,
    check_present,
    parse_csv,
    record,
)
from stnbench.errors import StnbenchError

TRAIN_ZIP = "GTSRB_Final_Training_Images.zip"
TEST_IMAGES_ZIP = "GTSRB_Final_Test_Images.zip"
TEST_LABELS_ZIP = "GTSRB_Final_Test_GT.zip"
KAGGLE_FILES = f"Kaggle's {TRAIN_CSV}, {TEST_CSV}, Train/ and Test/ (or its zip)"

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


@contextmanager
def open_gtsrb(path: Path) -> Iterator[GtsrbSet]:
    """GTSRB's records at ``path`` (a folder, or Kaggle's zip), or a one-line error saying
    which files to put there."""
    path = Path(path)
    with ExitStack() as stack:
        if path.is_file():
            yield _kaggle_zip(stack.enter_context(ZipSource(path)))
            return
        if not path.is_dir():
            raise StnbenchError(f"{path}: no such folder or zip for GTSRB")
        zips = {
            name: stack.enter_context(ZipSource(path / name))
            for name, _ in _PARTS.values()
            if (path / name).is_file()
        }
        tree = DirSource(path, TREE_DEPTH) if len(zips) < 3 else None
        kaggle = None if zips else _find_kaggle(path, tree, stack)
        yield kaggle if kaggle is not None else _official(path, zips, tree)


def _kaggle_zip(source: ZipSource) -> GtsrbSet:
    root = find_root(source)
    if root is None:
        raise StnbenchError(
            f"{source.label}: no GTSRB in this zip: expected {KAGGLE_FILES}; pass the official "
            "archives' folder instead of one archive"
        )
    return read_kaggle(source, root)


def _find_kaggle(folder: Path, tree: DirSource, stack: ExitStack) -> GtsrbSet | None:
    """Kaggle's layout in the folder's tree, else in the one zip below it that holds it."""
    root = find_root(tree)
    if root is not None:
        return read_kaggle(tree, root)
    found = []
    for zip_path in sorted(folder.glob("*.zip")):
        source = stack.enter_context(ZipSource(zip_path))
        root = find_root(source)
        if root is not None:
            found.append((source, root))
    if len(found) > 1:
        names = ", ".join(source.path.name for source, _ in found)
        raise StnbenchError(f"{folder}: several zips with Kaggle's GTSRB layout: {names}")
    return read_kaggle(*found[0]) if found else None


def _official(folder: Path, zips: dict[str, FileSource], tree: DirSource | None) -> GtsrbSet:
    parts = {
        part: _find(zips, zip_name, tree, pattern) for part, (zip_name, pattern) in _PARTS.items()
    }
    missing = [_PARTS[part][0] for part, found in parts.items() if found is None]
    if len(missing) == 3:
        raise StnbenchError(
            f"{folder}: no GTSRB here: put {TRAIN_ZIP}, {TEST_IMAGES_ZIP} and "
            f"{TEST_LABELS_ZIP} in it (or their extracted trees, or torchvision's gtsrb/, "
            f"or {KAGGLE_FILES})"
        )
    if missing:
        raise StnbenchError(
            f"{folder}: incomplete GTSRB: put {' and '.join(missing)} in it (or extracted)"
        )
    train_part, images, labels = parts["train"], parts["test_images"], parts["test_labels"]
    if len(labels.names) > 1:
        raise StnbenchError(f"{folder}: several GT-final_test.csv: {', '.join(labels.names)}")
    train = read_train_records(train_part)
    test = read_test_records(images, labels)
    checked = {
        "train": (train_part.source, train_part.names + [r.name for r in train]),
        "test_images": (images.source, [r.name for r in test]),
        "test_labels": (labels.source, labels.names),
    }
    return GtsrbSet(train, test, train_part.source, images.source, checked)


def _parse_official(source: FileSource, name: str) -> Iterator[tuple[int, list[int], str]]:
    return parse_csv(source, name, delimiter=";", name_column="Filename")


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
        for line, values, filename in _parse_official(part.source, csv_name):
            class_id = values[-1]
            if class_id != int(folder.name):
                raise StnbenchError(
                    f"{where} line {line}: ClassId {class_id} in folder {folder.name}"
                )
            match = _TRACK_FRAME.match(filename)
            if match is None:
                raise StnbenchError(f"{where} line {line}: {filename!r} is not TTTTT_FFFFF.ppm")
            name = f"{folder.as_posix()}/{filename}"
            check_present(part.source, available, where, line, name)
            track = class_id * TRACK_STRIDE + int(match.group(1))
            records.append(record(values, name, track))
    return sorted(records, key=lambda r: r.name)


def read_test_records(images: Part, labels: Part) -> list[Record]:
    """The labelled test images, in the order of GT-final_test.csv."""
    folder = PurePosixPath(images.names[0]).parent
    available = set(images.names)
    csv_name = labels.names[0]
    where = f"{labels.source.label}: {csv_name}"
    records = []
    for line, values, filename in _parse_official(labels.source, csv_name):
        name = f"{folder.as_posix()}/{filename}"
        check_present(images.source, available, where, line, name)
        records.append(record(values, name, -1))
    return records
