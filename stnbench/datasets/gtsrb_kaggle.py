"""GTSRB in Kaggle's layout, in a folder or a zip, at its root or under one top folder:
``Train.csv``, ``Test.csv``, ``Train/<class>/<class>_<track>_<frame>.png``, ``Test/NNNNN.png``.

Kaggle's download also holds ``Meta.csv``, ``Meta/`` and lower-case copies of the folders:
only the images the two CSVs name are read. The CSVs give sizes and ROIs in the stored
images' own pixels, and each ``Path`` relative to the folder holding the CSV.
"""

import re
from pathlib import PurePosixPath

from stnbench.datasets.archives import FileSource, is_unsafe
from stnbench.datasets.gtsrb_records import (
    TRACK_STRIDE,
    GtsrbSet,
    Record,
    check_present,
    parse_csv,
    record,
)
from stnbench.errors import StnbenchError

TRAIN_CSV = "Train.csv"
TEST_CSV = "Test.csv"
_TRAIN_FILE = re.compile(r"^(\d+)_(\d+)_\d+\.\w+$")  # class, track, frame


def find_root(source: FileSource) -> str | None:
    """The prefix ('' or 'top/') under which ``source`` holds Train.csv and Test.csv, or None."""
    names = set(source.names())
    roots = sorted(
        name.removesuffix(TRAIN_CSV)
        for name in names
        if PurePosixPath(name).name == TRAIN_CSV and name.count("/") <= 1
    )
    if not roots:
        return None
    if len(roots) > 1:
        found = ", ".join(root + TRAIN_CSV for root in roots)
        raise StnbenchError(f"{source.label}: several Kaggle GTSRB layouts: {found}")
    if roots[0] + TEST_CSV not in names:
        raise StnbenchError(f"{source.label}: {roots[0]}{TRAIN_CSV} has no {TEST_CSV} beside it")
    return roots[0]


def _file_name(path: str) -> str:
    # str.rpartition rather than PurePosixPath: this runs for every one of 50,000 rows.
    return path.rpartition("/")[2]


def _read(source: FileSource, root: str, csv_file: str, available: set[str]) -> list[Record]:
    """The rows of ``root + csv_file``; training rows get their track from the file name."""
    training = csv_file == TRAIN_CSV
    csv_name = root + csv_file
    where = f"{source.label}: {csv_name}"
    records = []
    for line, values, path in parse_csv(source, csv_name, delimiter=",", name_column="Path"):
        name = root + path
        # Every name a source lists lies inside it, so only a missing one needs the slower check.
        if name not in available:
            if is_unsafe(path):
                raise StnbenchError(
                    f"{where} line {line}: Path {path!r} lies outside {source.label}"
                )
            check_present(source, available, where, line, name)
        track = -1
        if training:
            class_id = values[-1]
            match = _TRAIN_FILE.match(_file_name(path))
            if match is None:
                raise StnbenchError(
                    f"{where} line {line}: {path!r} is not named <class>_<track>_<frame>.png"
                )
            if int(match[1]) != class_id:
                raise StnbenchError(
                    f"{where} line {line}: ClassId {class_id} but {path} is named for class "
                    f"{int(match[1])}"
                )
            track = class_id * TRACK_STRIDE + int(match[2])
        records.append(record(values, name, track))
    return records


def read_kaggle(source: FileSource, root: str) -> GtsrbSet:
    """Every image the two CSVs name: training ordered by class, track and frame, as the
    official archives' are; test in the order of Test.csv."""
    available = set(source.names())
    train = _read(source, root, TRAIN_CSV, available)
    train.sort(key=lambda r: (r.label, _file_name(r.name)))
    test = _read(source, root, TEST_CSV, available)
    checked = {
        "train": (source, [root + TRAIN_CSV] + [r.name for r in train]),
        "test": (source, [root + TEST_CSV] + [r.name for r in test]),
    }
    return GtsrbSet(train, test, source, source, checked)
