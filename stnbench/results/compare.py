"""Paired comparisons on the same images: each spatial-transformer model with its baseline
over seeds (the significance table), and any run with another run or a committee of runs
(`stnbench results compare`)."""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stnbench.engine.predictions import PREDICTIONS_NAME, check_split, read_predictions
from stnbench.errors import StnbenchError
from stnbench.results.collect import CONDITION, correct_per_item, load_correct
from stnbench.results.committee import committee_predictions
from stnbench.results.stats import (
    McNemar,
    binomial_interval,
    mcnemar_exact,
    mcnemar_pooled,
    paired_t,
    wilcoxon,
)

COMPARISON_COLUMNS = (
    *CONDITION,
    "split",
    "model",
    "baseline",
    "n_pairs",
    "seeds",
    "accuracy",
    "baseline_accuracy",
    "difference_pp",
    "mcnemar_per_seed",
    "mcnemar_b",
    "mcnemar_c",
    "mcnemar_p",
    "paired_t_p",
    "wilcoxon_p",
    "unpaired",
)


def compare_with_baselines(
    runs: pd.DataFrame,
    split: str = "test",
    load: Callable[[str, str], tuple[np.ndarray, np.ndarray]] = load_correct,
) -> pd.DataFrame:
    """One row per (condition, model) whose baseline ran on the same condition, compared on
    ``split`` ("test", or "val": the selected epoch's validation predictions). A model's
    baseline is the one its definition declares (``baseline:``), as recorded in its runs.

    Runs pair up by seed; a seed where either run diverged or has no predictions of ``split``
    is left out of the tests and counted in ``unpaired``, as is a seed whose two runs saw
    different labels (then they were not tested on the same images).
    """
    check_split(split)
    ok = runs[runs["status"] == "ok"]
    rows = []
    for condition, group in runs.groupby(list(CONDITION), sort=True):
        models = set(group["model"])
        declared = group.dropna(subset=["baseline"]).groupby("model")["baseline"].first()
        for model, baseline in sorted(declared.items()):
            if baseline not in models:
                continue
            rows.append(_compare(dict(zip(CONDITION, condition, strict=True)), split, model,
                                 baseline, group, ok, load))
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))


def _compare(condition, split, model, baseline, group, ok, load) -> dict:
    in_condition = np.ones(len(ok), bool)
    for name, value in condition.items():
        in_condition &= (ok[name] == value).to_numpy()
    mine = ok[in_condition & (ok["model"] == model).to_numpy()].set_index("seed")
    theirs = ok[in_condition & (ok["model"] == baseline).to_numpy()].set_index("seed")
    all_seeds = set(group.loc[group["model"].isin([model, baseline]), "seed"])
    seeds, tests, accuracy, baseline_accuracy = [], [], [], []
    has_predictions = f"has_{split}_predictions"
    for seed in sorted(set(mine.index) & set(theirs.index)):
        if not (mine.at[seed, has_predictions] and theirs.at[seed, has_predictions]):
            continue
        correct, labels = load(mine.at[seed, "run_dir"], split)
        baseline_correct, baseline_labels = load(theirs.at[seed, "run_dir"], split)
        if labels.shape != baseline_labels.shape or not np.array_equal(labels, baseline_labels):
            continue
        seeds.append(int(seed))
        tests.append(mcnemar_exact(correct, baseline_correct))
        accuracy.append(float(mine.at[seed, f"{split}_accuracy"]))
        baseline_accuracy.append(float(theirs.at[seed, f"{split}_accuracy"]))
    pooled = mcnemar_pooled(tests) if tests else McNemar(0, 0, math.nan)
    mean, baseline_mean = np.mean(accuracy or [math.nan]), np.mean(baseline_accuracy or [math.nan])
    return {
        **condition,
        "split": split,
        "model": model,
        "baseline": baseline,
        "n_pairs": len(seeds),
        "seeds": seeds,
        "accuracy": mean,
        "baseline_accuracy": baseline_mean,
        "difference_pp": 100 * (mean - baseline_mean),
        "mcnemar_per_seed": tests,
        "mcnemar_b": pooled.b,
        "mcnemar_c": pooled.c,
        "mcnemar_p": pooled.pvalue,
        "paired_t_p": paired_t(accuracy, baseline_accuracy),
        "wilcoxon_p": wilcoxon(accuracy, baseline_accuracy),
        "unpaired": len(all_seeds) - len(seeds),
    }



@dataclass(frozen=True)
class RunPair:
    """A run and a run or committee on the same images of one split: each one's accuracy with
    its Clopper-Pearson interval, and McNemar's exact test (``mcnemar.b``: right by the first
    only)."""

    split: str
    images: int
    second_columns: int
    accuracy: tuple[float, float]
    interval: tuple[tuple[float, float], tuple[float, float]]
    mcnemar: McNemar


def compare_runs(first: Path, second: Sequence[Path], split: str = "test") -> RunPair:
    """A finished run (a folder holding predictions.npz) compared image by image on ``split``
    with another, or with a committee of several (their class probabilities averaged, as
    ``committee.py`` forms IDSIA's), whatever their models, lengths or presets; refused unless
    all saw the same labels in the same order, the one sign they were tested on the same
    images."""
    check_split(split)
    if not second:
        raise StnbenchError("compare: no run to compare with")
    correct, labels = load_correct(first, split)
    if len(second) == 1:
        other_correct, other_labels = load_correct(second[0], split)
    else:
        other_correct, other_labels = _committee_correct([str(run) for run in second], split)
    if labels.shape != other_labels.shape or not np.array_equal(labels, other_labels):
        raise StnbenchError(
            f"{first} and {second[0]}: their {split} labels differ ({len(labels):,} and "
            f"{len(other_labels):,} images), so they were not tested on the same images"
        )
    accuracy = (float(correct.mean()), float(other_correct.mean()))
    return RunPair(
        split, len(labels), len(second), accuracy,
        tuple(binomial_interval(value, len(labels)) for value in accuracy),  # type: ignore[arg-type]
        mcnemar_exact(correct, other_correct),
    )


def _committee_correct(run_dirs: list[str], split: str) -> tuple[np.ndarray, np.ndarray]:
    stored = {run: read_predictions(Path(run) / PREDICTIONS_NAME) for run in run_dirs}
    for run, splits in stored.items():
        if split not in splits:
            raise StnbenchError(f"{Path(run) / PREDICTIONS_NAME}: no {split} predictions")
        if splits[split].probabilities is None:
            raise StnbenchError(f"{Path(run) / PREDICTIONS_NAME}: no class probabilities "
                                "stored, so the run cannot join a committee")
    voted = committee_predictions(run_dirs, split, stored)
    assert voted is not None  # every member's probabilities were checked above
    return correct_per_item(voted), voted.label
