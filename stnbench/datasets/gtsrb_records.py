"""GTSRB's annotations as records, whichever layout they come from, and the CSV parser for both.

The official CSVs are ``;``-separated and name images by ``Filename`` relative to the CSV's
folder; Kaggle's are comma-separated and name them by ``Path`` relative to the dataset's
root. Both carry the same integer columns, checked here once.
"""

import csv
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass

from stnbench.dataset_registry import GTSRB
from stnbench.datasets.archives import FileSource
from stnbench.errors import StnbenchError

NUM_CLASSES = GTSRB.num_classes
VALUE_COLUMNS = ("Width", "Height", "Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2", "ClassId")
# Track numbers restart in every class; this makes them unique across classes.
TRACK_STRIDE = 100_000


@dataclass(frozen=True)
class Record:
    """One image: where it is in its source, its annotation, and its track (-1 in the test set)."""

    name: str
    width: int
    height: int
    roi: tuple[int, int, int, int]  # x1, y1, x2, y2 in Width x Height pixels, x2/y2 exclusive
    label: int
    track: int


def record(values: list[int], name: str, track: int) -> Record:
    """A record from ``parse_csv``'s integer columns."""
    width, height, x1, y1, x2, y2, class_id = values
    return Record(name, width, height, (x1, y1, x2, y2), class_id, track)


def parse_csv(
    source: FileSource, name: str, *, delimiter: str, name_column: str
) -> Iterator[tuple[int, list[int], str]]:
    """(line number, the integers of VALUE_COLUMNS in order, the ``name_column`` text) per row."""
    where = f"{source.label}: {name}"
    try:
        text = source.read(name).decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise StnbenchError(f"{where}: not a text CSV ({error})") from error
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = next(reader, [])
    missing = [column for column in (name_column, *VALUE_COLUMNS) if column not in header]
    if missing:
        unlabelled = " (no labels: every image needs its class)" if "ClassId" in missing else ""
        raise StnbenchError(f"{where}: missing column {', '.join(missing)}{unlabelled}")
    name_at = header.index(name_column)
    value_at = [header.index(column) for column in VALUE_COLUMNS]
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        try:
            values = [int(row[i]) for i in value_at]
            filename = row[name_at]
        except (IndexError, ValueError):
            raise StnbenchError(
                f"{where} line {line}: expected integers in {delimiter.join(row)!r}"
            ) from None
        width, height, x1, y1, x2, y2, class_id = values
        if not 0 <= class_id < NUM_CLASSES:
            raise StnbenchError(
                f"{where} line {line}: ClassId {class_id} outside 0..{NUM_CLASSES - 1}"
            )
        if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
            raise StnbenchError(f"{where} line {line}: Roi.* lies outside the Width x Height image")
        yield line, values, filename


def check_present(source: FileSource, names: set[str], where: str, line: int, name: str) -> None:
    if name not in names:
        raise StnbenchError(f"{where} line {line}: {name} is not in {source.label}")


@dataclass(frozen=True)
class GtsrbSet:
    """GTSRB's labelled training and test images as read from one layout.

    ``checked`` names, per part, the source and the entries whose checksum identifies the
    data; it is what ``describe`` sums up for the cache key and the manifest.
    """

    train: list[Record]  # ordered by class, track and frame
    test: list[Record]  # in the order of the test CSV
    train_source: FileSource
    test_source: FileSource
    checked: dict[str, tuple[FileSource, list[str]]]

    def describe(self) -> dict:
        """The sources' locations and a checksum over everything the dataset was built from."""
        parts = {
            part: {"location": source.label, "sha256": source.sha256(names)}
            for part, (source, names) in self.checked.items()
        }
        combined = "".join(parts[part]["sha256"] for part in sorted(parts))
        return {"parts": parts, "sha256": hashlib.sha256(combined.encode()).hexdigest()}
