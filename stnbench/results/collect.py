"""Read what the runs and benchmarks wrote into pandas frames.

Everything is read from the files' contents (metrics.json, predictions.npz, bench JSON),
never from their paths, so runs may be laid out, moved or merged freely.
"""

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from stnbench.dataset_registry import DATASETS
from stnbench.distortions import distortion_version, run_input_size
from stnbench.engine.predictions import (
    PREDICTIONS_NAME,
    SPLITS,
    SplitPredictions,
    read_predictions,
    stored_splits,
)
from stnbench.engine.recipes import get_recipe
from stnbench.engine.record import METRICS_NAME, RunRecord, read_record
from stnbench.engine.spec import ADDED_FIELDS, identity
from stnbench.errors import StnbenchError
from stnbench.models import model_info
from stnbench.preparation import Prep
from stnbench.provenance import device_label

UNSPECIFIED_SCALE = "unspecified"
# The run spec that the workflow writes beside each run's record: what the run asked for
# beyond its recipe.
RUN_SPEC_NAME = "spec.yaml"
# A condition is what a model is trained and tested on, a sweep one family's conditions over
# its severities; a cell is one model on a condition, a run one cell at one seed. Lists, not
# tuples: pandas reads a tuple as a single label.
SWEEP = ["scale", "dataset", "preparation", "distortion"]
CONDITION = [*SWEEP, "severity"]
CELL = [*CONDITION, "model"]
RUN_KEY = (*CELL, "seed")
RUN_COLUMNS = (
    *RUN_KEY,
    "status",
    "reason",
    "distortion_version",
    "model_definition_current",
    "recipe_changes",
    "test_accuracy",
    "val_accuracy",
    "test_element_error",
    "params",
    "flops",
    "train_images_per_s",
    "wall_s",
    "device",
    "device_type",
    "precision",
    "epochs",
    "epochs_completed",
    "limit_train",
    "input_size",
    "roi_crop",
    "contrast",
    "augmentation",
    "test_set_name",
    "test_set_size",
    "test_set_note",
    "has_test_predictions",
    "has_val_predictions",
    "has_st",
    "baseline",
    "description",
    "ensemble",
    "run_dir",
)
HISTORY_COLUMNS = (
    *RUN_KEY,
    "epoch",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "lr",
)


@dataclass(frozen=True)
class Results:
    """runs: one row per metrics.json (duplicates of a run key dropped, see ``duplicates``;
    superseded runs set aside, see ``superseded``); history: one row per run and epoch;
    bench: one row per benchmark measurement."""

    runs: pd.DataFrame
    history: pd.DataFrame
    bench: pd.DataFrame
    duplicates: tuple[Path, ...]
    runs_dir: Path
    superseded: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=RUN_COLUMNS))


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise StnbenchError(f"{path}: cannot read JSON ({error})") from error
    if not isinstance(data, dict):
        raise StnbenchError(f"{path}: expected a JSON object")
    return data


def _run_row(path: Path, record: RunRecord) -> dict[str, Any]:
    config = record.config
    info = config["model_definition"]
    definition = info["definition"]
    splits = stored_splits(path.parent / PREDICTIONS_NAME)
    return {
        "scale": record.scale or UNSPECIFIED_SCALE,
        "dataset": record.dataset,
        "preparation": Prep.of_run(record.dataset, config).label,
        "distortion": record.distortion,
        "severity": float(record.severity),
        # The definition's name, as the run's folder has it: a variant's run records the path
        # of its YAML file as its model.
        "model": info.get("name", record.model),
        "seed": record.seed,
        "status": record.status,
        "reason": record.reason,
        "distortion_version": record.distortion_version,
        "model_definition_current": _model_definition_current(record),
        "recipe_changes": _recipe_changes(record, path.parent / RUN_SPEC_NAME),
        "test_accuracy": record.test_accuracy,
        "val_accuracy": record.val_accuracy,
        "test_element_error": record.test_element_error,
        "params": record.params,
        "flops": record.flops,
        "train_images_per_s": record.train_images_per_s,
        # Every epoch's time and the test's, summed over the processes that resumed the run.
        "wall_s": record.wall_s,
        "device": device_label(record.device, record.device_type, record.machine.cpu_flags),
        "device_type": record.device_type,
        "precision": record.precision,
        "epochs": record.epochs,
        "epochs_completed": record.epochs_completed,
        "limit_train": config["limit_train"],
        "input_size": _input_size(record),
        "roi_crop": bool(config["roi_crop"]),
        "contrast": config["contrast"],
        "augmentation": config["augmentation"],
        "test_set_name": record.test_set.name,
        "test_set_size": record.test_set.size,
        "test_set_note": record.test_set.note,
        **{f"has_{split}_predictions": split in splits for split in SPLITS},
        "has_st": _has_spatial_transformer(definition.get("layers", [])),
        "baseline": definition.get("baseline"),
        "description": info.get("description") or None,
        "ensemble": (definition.get("committee") or {}).get("columns", 1),
        "run_dir": str(path.parent),
    }


def _input_size(record: RunRecord) -> int | None:
    """The side of the images the model saw, to match the run with benchmarks of that input."""
    if record.dataset not in DATASETS:
        return None
    try:
        return run_input_size(record.config)
    except StnbenchError:
        return None


@functools.cache
def _current_definition(model: str) -> dict | None:
    """The network a model's definition describes now, as a run's identity compares it;
    None where the definition cannot be read here (a variant's file elsewhere)."""
    try:
        info = json.loads(json.dumps(model_info(model)))
    except (StnbenchError, OSError):
        return None
    return identity({"model_definition": info})["model_definition"]


def _model_definition_current(record: RunRecord) -> bool | None:
    """Whether the run's model is the network its definition describes now (None: unknown)."""
    current = _current_definition(record.model)
    if current is None:
        return None
    return identity({"model_definition": record.config["model_definition"]}) == {
        "model_definition": current
    }


def _recipe_changes(record: RunRecord, spec_path: Path) -> tuple[str, ...] | None:
    """The fields that the run took from its recipe (its spec.yaml does not set them) and
    that the recipe has changed since; None where that cannot be told (no spec.yaml beside
    the record, or a recipe that no longer exists)."""
    try:
        asked = yaml.safe_load(spec_path.read_text()) or {}
        recipe = get_recipe(record.config["recipe"])
    except (OSError, yaml.YAMLError, StnbenchError):
        return None
    return tuple(sorted(
        key for key, value in recipe.items()
        if key not in asked and record.config.get(key, ADDED_FIELDS.get(key)) != value
    ))


def _has_spatial_transformer(layers: Any) -> bool:
    """Whether a model definition's layers (nested lists and mappings) contain an ``st`` layer."""
    if isinstance(layers, dict):
        return "st" in layers or any(_has_spatial_transformer(item) for item in layers.values())
    if isinstance(layers, list):
        return any(_has_spatial_transformer(item) for item in layers)
    return False


def load_runs(runs_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, tuple[Path, ...]]:
    """Every ``**/metrics.json`` under ``runs_dir``, each checked against the run record's
    schema: (runs, history, duplicate run dirs).

    A run key seen twice (the same run copied or trained twice) is counted once, from the
    first path in sorted order; the others are returned so that the tables can name them.
    The key includes the preparation, so a model at two sizes, cropped and uncropped, or at
    two contrasts is two runs. An absent folder reads as no runs: the tables then say so.
    """
    records, history, seen, duplicates = [], [], {}, []
    for path in sorted(Path(runs_dir).rglob(METRICS_NAME)):
        run = read_record(path)
        record = _run_row(path, run)
        key = tuple(record[name] for name in RUN_KEY)
        if key in seen:
            duplicates.append(path.parent)
            continue
        seen[key] = record
        records.append(record)
        for epoch in run.history:
            history.append(
                {**{name: record[name] for name in RUN_KEY},
                 **{name: getattr(epoch, name) for name in HISTORY_COLUMNS[len(RUN_KEY):]}}
            )
    runs = pd.DataFrame(records, columns=list(RUN_COLUMNS))
    for column in ("test_accuracy", "val_accuracy", "test_element_error", "params", "flops",
                   "train_images_per_s", "wall_s"):
        runs[column] = pd.to_numeric(runs[column])
    return runs, pd.DataFrame(history, columns=list(HISTORY_COLUMNS)), tuple(duplicates)


def load_correct(run_dir: str | Path, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """(correct, label) per image of a run's ``split``, in split order, from its
    predictions.npz; ``correct`` is one bool per image, also for label sequences."""
    path = Path(run_dir) / PREDICTIONS_NAME
    splits = read_predictions(path)
    if split not in splits:
        raise StnbenchError(f"{path}: no {split} predictions")
    return correct_per_item(splits[split]), splits[split].label


def correct_per_item(predictions: SplitPredictions) -> np.ndarray:
    """One bool per image: whether its prediction is right."""
    correct = predictions.predicted == predictions.label
    # A label sequence ([N, positions]) is right only if every position is.
    return correct.reshape(len(correct), -1).all(axis=1)


BENCH_COLUMNS = ("model", "dataset", "input_size", "device", "device_type", "precision",
                 "compile", "batch_size", "phase", "images_per_s", "path")
BENCH_PHASES = ("inference", "train_step")


def empty_bench() -> pd.DataFrame:
    return pd.DataFrame(columns=list(BENCH_COLUMNS))


def load_bench(bench_dir: Path) -> pd.DataFrame:
    """Every ``stnbench bench`` JSON under ``bench_dir``: one row per batch size and phase, with
    the median images/s."""
    rows = []
    for path in sorted(Path(bench_dir).rglob("*.json")):
        data = read_json(path)
        try:
            for measurement in data["results"]:
                for phase in BENCH_PHASES:
                    rows.append({
                        "model": data["model"],
                        "dataset": data["dataset"],
                        "input_size": data["input_shape"][-1],
                        # Bench schema 1 leaves `machine` free-form: older files have no cpu_flags.
                        "device": device_label(data["device"], data["device_type"],
                                               (data.get("machine") or {}).get("cpu_flags")),
                        "device_type": data["device_type"],
                        "precision": data.get("precision"),
                        "compile": data.get("compile"),
                        "batch_size": measurement["batch_size"],
                        "phase": phase,
                        "images_per_s": measurement[phase]["images_per_s"]["median"],
                        "path": str(path),
                    })
        except (KeyError, TypeError, IndexError) as error:
            raise StnbenchError(f"{path}: not a benchmark result (missing {error})") from error
    return pd.DataFrame(rows, columns=list(BENCH_COLUMNS))


def older_definitions(runs: pd.DataFrame) -> dict[str, pd.Series]:
    """Per run, whether it trained on an earlier definition of its distortion, its model and
    its recipe than the current one."""
    return {
        "distortion": runs["distortion_version"] < runs["distortion"].map(distortion_version),
        "model": runs["model_definition_current"].eq(False),
        "recipe": runs["recipe_changes"].map(bool, na_action="ignore").eq(True),
    }


def out_of_date(runs: pd.DataFrame) -> pd.Series:
    """Runs trained on an earlier definition of their distortion, model or recipe."""
    older = older_definitions(runs)
    return older["distortion"] | older["model"] | older["recipe"]


def superseded(runs: pd.DataFrame) -> pd.Series:
    """Out-of-date runs in a cell that also has runs of the current definitions: a cell's mean
    over seeds is of one definition, so these are set aside while the others count. A cell
    whose runs are all out of date keeps them, marked so in the tables' notes."""
    stale = out_of_date(runs)
    has_current = (~stale).groupby([runs[name] for name in CELL], dropna=False).transform("any")
    return stale & has_current


def collect(runs_dir: Path, bench_dir: Path | None = None) -> Results:
    runs, history, duplicates = load_runs(runs_dir)
    bench = load_bench(bench_dir) if bench_dir is not None else empty_bench()
    set_aside = superseded(runs)
    kept = runs[~set_aside].reset_index(drop=True)
    history = history.merge(kept[list(RUN_KEY)], on=list(RUN_KEY))
    return Results(kept, history, bench, duplicates, Path(runs_dir),
                   runs[set_aside].reset_index(drop=True))
