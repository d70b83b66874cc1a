"""A run's record (metrics.json): the seam between the training engine, which writes it, and
the results tables, pictures and workflow, which read it. Its form is run_record_schema.json,
checked on every write and every read, so that a reader can rely on every field."""

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stnbench.errors import StnbenchError
from stnbench.io import atomic_write_json
from stnbench.schemas import load_schema, validate

SCHEMA_VERSION = 1
METRICS_NAME = "metrics.json"
SEQUENCE_FIELDS = ("test_position_error", "test_element_error")


@dataclasses.dataclass(frozen=True)
class EpochRecord:
    """One epoch of training and its validation; ``lr`` is the rate at the epoch's start."""

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    lr: float
    images_per_s: float
    train_s: float
    wall_s: float


@dataclasses.dataclass(frozen=True)
class Machine:
    """What ran the run (provenance.machine_info); ``cpu_flags`` is None in runs recorded
    before the flags were."""

    cpu: str
    cpu_flags: tuple[str, ...] | None
    cpu_count: int | None
    platform: str
    python: str
    torch: str
    cuda: str | None
    gpu: str | None
    git_commit: str
    device: str
    device_type: str


@dataclasses.dataclass(frozen=True)
class TestSet:
    """The images the test figures are measured on; ``note`` says how they differ from the
    data set's official test set, if they do."""

    name: str
    size: int
    note: str | None


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """Everything a finished run reports. Test fields and the selection are None for a run
    that diverged; ``config`` is the resolved run spec (``RunSpec.config()``)."""

    status: str
    reason: str | None
    dataset: str
    distortion: str
    severity: float
    model: str
    seed: int
    scale: str | None
    epochs: int
    epochs_completed: int
    selected_epoch: int | None
    val_accuracy: float | None
    test_accuracy: float | None
    test_error: float | None
    test_loss: float | None
    per_class_accuracy: tuple[float | None, ...] | None
    confusion_matrix: tuple[tuple[int, ...], ...] | None
    test_set: TestSet
    history: tuple[EpochRecord, ...]
    params: int
    flops: int
    train_images_per_s: float | None
    wall_s: float
    device: str
    device_type: str
    precision: str
    bit_reproducible: bool
    torch: str
    git_commit: str
    machine: Machine
    config: Mapping[str, Any]
    schema_version: int = SCHEMA_VERSION
    # Runs on a label sequence only (absent from single-label records): the test error at
    # each position, and over all positions of all sequences (``test_error`` counts a
    # sequence wrong if any position is).
    test_position_error: tuple[float, ...] | None = None
    test_element_error: float | None = None

    @property
    def distortion_version(self) -> int:
        """The definition version of the distortion family the run was trained and tested on
        (``config.distortion_version``); runs recorded before versions existed used version 1."""
        return int(self.config.get("distortion_version", 1))

    def to_json(self) -> dict[str, Any]:
        data = json.loads(json.dumps(dataclasses.asdict(self)))
        # Left out rather than null, so that a single-label record reads as it always has.
        for name in SEQUENCE_FIELDS:
            if data[name] is None:
                del data[name]
        return data

    @classmethod
    def from_json(cls, data: Any, what: str = "run record") -> "RunRecord":
        """The record in ``data`` (a parsed metrics.json); ``what`` names it in errors."""
        validate_record(data, what)
        fields = dict(data)
        fields["history"] = tuple(EpochRecord(**epoch) for epoch in data["history"])
        machine = dict(data["machine"])
        if machine["cpu_flags"] is not None:
            machine["cpu_flags"] = tuple(machine["cpu_flags"])
        fields["machine"] = Machine(**machine)
        fields["test_set"] = TestSet(**data["test_set"])
        if data["per_class_accuracy"] is not None:
            fields["per_class_accuracy"] = tuple(data["per_class_accuracy"])
        if data["confusion_matrix"] is not None:
            fields["confusion_matrix"] = tuple(map(tuple, data["confusion_matrix"]))
        if data.get("test_position_error") is not None:
            fields["test_position_error"] = tuple(data["test_position_error"])
        return cls(**fields)


def run_record_schema() -> dict[str, Any]:
    return load_schema("stnbench.engine", "run_record_schema.json")


def validate_record(data: Any, what: str) -> None:
    """Raise StnbenchError naming ``what`` and the first field that is not as the schema says;
    a record of another schema version is named as such, not as a list of field errors."""
    if isinstance(data, dict) and data.get("schema_version") != SCHEMA_VERSION:
        raise StnbenchError(
            f"{what}: schema_version {data.get('schema_version')!r}, expected {SCHEMA_VERSION} "
            "(a run record of another stnbench version)"
        )
    validate(data, run_record_schema(), what)


def write_record(path: Path, record: RunRecord) -> None:
    data = record.to_json()
    validate_record(data, str(path))
    atomic_write_json(path, data)


def read_record(path: Path) -> RunRecord:
    """The record at ``path``; a missing, unreadable, corrupt or invalid file is a one-line
    StnbenchError naming it."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as error:
        raise StnbenchError(f"{path}: cannot be read ({error.strerror or error})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise StnbenchError(f"{path}: not valid JSON ({error})") from None
    return RunRecord.from_json(data, str(path))
