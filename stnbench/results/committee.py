"""Committees of trained columns, as Ciresan et al. (2012) formed their multi-column DNN: the
columns' class probabilities averaged image by image, the committee's class the most probable.

A committee is assembled from the columns' predictions.npz, never trained as one network, so a
table can set 1 column, one column per preparation (IDSIA's five contrasts) and every column
side by side at no cost beyond the columns. The columns of a model are its finished runs on one
condition at two or more preparations that differ in contrast only (one input size and crop),
tested on one test set; a committee of one column per preparation is formed for each seed that
every preparation finished.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stnbench.engine.predictions import PREDICTIONS_NAME, SplitPredictions, read_predictions
from stnbench.errors import StnbenchError
from stnbench.results import published
from stnbench.results.collect import CONDITION
from stnbench.results.stats import binomial_interval, summarize
from stnbench.results.table_format import format_number
from stnbench.results.table_spec import Inputs, Place, Sections, TableSpec

# The committee key: a condition without its preparation, the model, and what makes columns
# comparable image by image: one input size and crop, one test set. So a model trained at 32 and
# at 48 px forms no committee of the two; only contrasts, as IDSIA's preprocessings, combine.
COLUMNS_OF = [name for name in CONDITION if name != "preparation"] + [
    "model", "input_size", "roi_crop", "test_set_name", "test_set_size", "test_set_note",
]
KINDS = ("1 column", "1 column per preparation", "every column")
_ACCURACY_COLUMNS = ("test_mean", "test_std", "test_ci_low", "test_ci_high", "val_mean",
                     "val_std", "test_images")


@dataclass(frozen=True)
class Vote:
    """A committee's accuracy on one split, and how many images it was counted on."""

    accuracy: float
    images: int


def committee_vote(
    run_dirs: list[str], split: str, stored: Mapping[str, dict[str, SplitPredictions]]
) -> Vote | None:
    """The accuracy of the mean of the runs' class probabilities on ``split`` (``stored``: each
    run's predictions.npz, read once); None when a run has none stored (runs written before
    probabilities were kept)."""
    voted = committee_predictions(run_dirs, split, stored)
    if voted is None:
        return None
    return Vote(float(np.mean(voted.predicted == voted.label)), len(voted.label))


def committee_predictions(
    run_dirs: list[str], split: str, stored: Mapping[str, dict[str, SplitPredictions]]
) -> SplitPredictions | None:
    """The committee's class per image (the most probable under the runs' mean class
    probabilities), with the labels and those mean probabilities; None as for
    ``committee_vote``."""
    probabilities, labels = [], None
    for run_dir in run_dirs:
        path = Path(run_dir) / PREDICTIONS_NAME
        predictions = stored[run_dir].get(split)
        if predictions is None or predictions.probabilities is None:
            return None
        if labels is None:
            labels = predictions.label
        elif not np.array_equal(labels, predictions.label):
            raise StnbenchError(
                f"{path}: its {split} images differ from {run_dirs[0]}'s; a committee needs "
                "its columns tested on the same images"
            )
        probabilities.append(predictions.probabilities.astype(np.float32))
    mean = np.mean(probabilities, axis=0)
    return SplitPredictions(mean.argmax(axis=-1), labels, mean)


def committee_rows(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per model, condition and committee kind (``KINDS``): columns, preparations,
    committees formed, and test and validation accuracy (mean and std over committees)."""
    ok = runs[runs["status"] == "ok"]
    rows = []
    for key, columns in ok.groupby(COLUMNS_OF, sort=True, dropna=False):
        preparations = sorted(set(columns["preparation"]))
        if len(preparations) < 2:
            continue
        seeds = [
            seed for seed, group in columns.groupby("seed")
            if set(group["preparation"]) == set(preparations)
        ]
        committees = {
            KINDS[0]: [[run_dir] for run_dir in columns["run_dir"]],
            KINDS[1]: [list(columns[columns["seed"] == seed]["run_dir"]) for seed in seeds],
            KINDS[2]: [list(columns["run_dir"])],
        }
        # Every column's file is read once, whatever number of committees it sits in.
        stored = {run_dir: read_predictions(Path(run_dir) / PREDICTIONS_NAME)
                  for run_dir in columns["run_dir"]}
        for kind, members in committees.items():
            rows.append({
                **dict(zip(COLUMNS_OF, key, strict=True)),
                "committee": kind,
                "columns": len(members[0]) if members else 0,
                "preparations": " ".join(preparations),
                "n_committees": len(members),
                **_accuracies(members, stored),
            })
    return pd.DataFrame(rows, columns=[*COLUMNS_OF, "committee", "columns", "preparations",
                                       "n_committees", *_ACCURACY_COLUMNS])


def _accuracies(
    committees: list[list[str]], stored: Mapping[str, dict[str, SplitPredictions]]
) -> dict[str, float]:
    values: dict[str, float] = {}
    for split in ("test", "val"):
        votes = [committee_vote(members, split, stored) for members in committees]
        votes = [vote for vote in votes if vote is not None]
        summary = summarize([vote.accuracy for vote in votes])
        values[f"{split}_mean"], values[f"{split}_std"] = summary.mean, summary.std
        if split == "test":
            # One committee: its binomial interval over the test images; several: over them.
            low, high = (binomial_interval(votes[0].accuracy, votes[0].images)
                         if len(votes) == 1
                         else (summary.ci_low, summary.ci_high))
            values["test_ci_low"], values["test_ci_high"] = low, high
            values["test_images"] = votes[0].images if votes else math.nan
    return values


def _rows(inputs: Inputs) -> pd.DataFrame:
    return committee_rows(inputs.results.runs)


def _no_committee(inputs: Inputs) -> str:
    return ("No committee yet: no model has finished runs at two or more contrasts of one "
            f"condition, input size and test set under {inputs.results.runs_dir}.")


def _sections(rows: pd.DataFrame, inputs: Inputs) -> Sections:
    return [(f"{scale} scale", _display(group))
            for scale, group in rows.groupby("scale", sort=True)], rows


def _display(rows: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "model": rows["model"],
        "data": rows["dataset"] + " " + rows["distortion"],
        "preparations": rows["preparations"],
        "committee": rows["committee"],
        "columns": rows["columns"].map(str),
        "committees": rows["n_committees"].map(str),
        "test accuracy %": [
            _mean_std(mean, std) for mean, std in zip(rows["test_mean"], rows["test_std"],
                                                      strict=True)
        ],
        "95% interval": [
            "—" if math.isnan(low) else f"{100 * low:.2f} to {100 * high:.2f}"
            for low, high in zip(rows["test_ci_low"], rows["test_ci_high"], strict=True)
        ],
        "validation accuracy %": [
            _mean_std(mean, std) for mean, std in zip(rows["val_mean"], rows["val_std"],
                                                      strict=True)
        ],
    })


def _mean_std(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "no probabilities stored"
    return format_number(100 * mean) + ("" if math.isnan(std) else f" ± {100 * std:.2f}")


_IDSIA_ACCURACY, _IDSIA_SOURCE = published.GTSRB_MODEL_ACCURACY["idsia-committee"]
# Committees of each model trained at several preparations, beside IDSIA's published
# 25-column committee.
COMMITTEE_TABLE = TableSpec(
    name="committee",
    title="Committees of trained columns (class probabilities averaged), beside IDSIA's",
    notes=(
        f"Published: IDSIA's 25-column committee, {_IDSIA_ACCURACY:.2f}% on the official "
        f"test set ({_IDSIA_SOURCE.citation} <{_IDSIA_SOURCE.url}>): five columns for each of "
        "five preprocessings.",
        "A model's columns are its finished runs on one condition at two or more "
        "preparations that differ in contrast only, tested on one test set; a committee of "
        "one column per preparation is formed for each seed that every preparation finished. "
        "Mean ± sample std over committees; 95% interval: Clopper-Pearson over the test "
        "images for one committee, t over committees for several.",
        Place.TEST_SETS, Place.EMPTY,
    ),
    rows=_rows,
    sections=_sections,
    empty_note=_no_committee,
)
