"""Statistics over seeds and paired tests between models evaluated on the same test images."""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

CONFIDENCE = 0.95
# With n paired seeds the smallest two-sided Wilcoxon signed-rank p-value is 2 / 2**n:
# 0.0625 at n = 5, so below 6 seeds the test cannot reach p < 0.05 and is not reported.
WILCOXON_MIN_PAIRS = 6


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation and Student-t confidence interval of n values."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float


def summarize(values: Sequence[float], confidence: float = CONFIDENCE) -> Summary:
    """NaN for what n cannot give: everything at n = 0, the std and CI at n = 1."""
    array = np.asarray(values, dtype=float)
    n = len(array)
    if n == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(array.mean())
    if n == 1:
        return Summary(1, mean, math.nan, math.nan, math.nan)
    std = float(array.std(ddof=1))
    if std == 0.0:
        return Summary(n, mean, 0.0, mean, mean)
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=std / math.sqrt(n))
    return Summary(n, mean, std, float(low), float(high))


def binomial_interval(accuracy: float, images: int,
                      confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Clopper-Pearson interval of one model's (or committee's) accuracy over its test
    images: the interval where one run gives no spread over seeds."""
    correct = round(accuracy * images)
    result = stats.binomtest(correct, images).proportion_ci(confidence, method="exact")
    return float(result.low), float(result.high)


@dataclass(frozen=True)
class McNemar:
    """Exact McNemar test: b = images only model A got right, c = only model B got right."""

    b: int
    c: int
    pvalue: float


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> McNemar:
    """Two-sided exact McNemar test on per-image correctness of two models on the same images."""
    correct_a, correct_b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if correct_a.shape != correct_b.shape:
        raise ValueError("McNemar's test needs the same test images for both models")
    b = int(np.sum(correct_a & ~correct_b))
    c = int(np.sum(~correct_a & correct_b))
    return mcnemar_from_counts(b, c)


def mcnemar_from_counts(b: int, c: int) -> McNemar:
    # Under the null each discordant image is equally likely to favour either model.
    pvalue = 1.0 if b + c == 0 else float(stats.binomtest(b, b + c, 0.5).pvalue)
    return McNemar(b, c, pvalue)


def mcnemar_pooled(tests: Sequence[McNemar]) -> McNemar:
    """Discordant pairs summed over seeds.

    The seeds share their test images, so the pooled pairs are not independent: the pooled
    p-value is optimistic and stands beside the per-seed tests and the paired t-test over seeds.
    """
    return mcnemar_from_counts(sum(test.b for test in tests), sum(test.c for test in tests))


def paired_t(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided paired t-test p-value over seeds; NaN below 2 pairs or for constant differences."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or np.all(a - b == (a - b)[0]):
        return math.nan
    return float(stats.ttest_rel(a, b).pvalue)


def wilcoxon(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value over seeds; NaN below ``WILCOXON_MIN_PAIRS``."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < WILCOXON_MIN_PAIRS or np.all(a == b):
        return math.nan
    return float(stats.wilcoxon(a, b).pvalue)


CELL_COLUMNS = ("n_expected", "n_ok", "n_diverged", "n_set_aside", "n_missing", "mean", "std",
                "ci_low", "ci_high")


def _by_cell(runs: pd.DataFrame, cell_keys: Sequence[str]) -> dict[tuple, pd.DataFrame]:
    return {key if isinstance(key, tuple) else (key,): group
            for key, group in runs.groupby(list(cell_keys), dropna=False)}


def summarize_cells(
    runs: pd.DataFrame,
    cell_keys: Sequence[str],
    condition_keys: Sequence[str],
    value: str = "test_accuracy",
    grid: pd.DataFrame | None = None,
    set_aside: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per cell (a model on a condition) with its counts and summary over seeds.

    The seeds expected in a cell are all seeds run for its condition by any model, so a seed
    that one model lacks shows up as missing, or as set aside where ``set_aside`` (the
    out-of-date runs that collect() kept out of ``runs``) holds the cell's run of that seed.
    Diverged runs are counted, never averaged in. ``grid`` lists cells that must appear even
    without a single run (then all missing).
    """
    expected = runs.groupby(list(condition_keys), dropna=False)["seed"].nunique()
    by_cell = _by_cell(runs, cell_keys)
    aside = _by_cell(set_aside, cell_keys) if set_aside is not None else {}
    cells = runs[list(cell_keys)].drop_duplicates()
    if grid is not None:
        cells = pd.concat([grid[list(cell_keys)], cells]).drop_duplicates()
    rows = []
    for cell in cells.itertuples(index=False, name=None):
        key = dict(zip(cell_keys, cell, strict=True))
        members = by_cell.get(cell, runs.iloc[:0])
        condition = tuple(key[name] for name in condition_keys)
        n_expected = int(expected.get(condition if len(condition) > 1 else condition[0], 0))
        summary = summarize(members.loc[members["status"] == "ok", value].to_numpy())
        aside_seeds = set(aside[cell]["seed"]) if cell in aside else set()
        n_set_aside = len(aside_seeds - set(members["seed"]))
        rows.append({
            **key,
            "n_expected": max(n_expected, len(members) + n_set_aside),
            "n_ok": summary.n,
            "n_diverged": int((members["status"] == "diverged").sum()),
            "n_set_aside": n_set_aside,
            "n_missing": max(n_expected - len(members) - n_set_aside, 0),
            "mean": summary.mean,
            "std": summary.std,
            "ci_low": summary.ci_low,
            "ci_high": summary.ci_high,
        })
    return pd.DataFrame(rows, columns=[*cell_keys, *CELL_COLUMNS])
