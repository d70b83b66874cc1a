"""Statistics over seeds and paired tests, against answers worked out by hand."""

import math

import numpy as np
import pandas as pd
import pytest

from stnbench.results.stats import (
    mcnemar_exact,
    mcnemar_pooled,
    paired_t,
    summarize,
    summarize_cells,
    wilcoxon,
)


def test_summary_mean_std_and_student_t_interval():
    summary = summarize([0.90, 0.92, 0.94])
    assert summary.n == 3
    assert summary.mean == pytest.approx(0.92)
    assert summary.std == pytest.approx(0.02)
    # t(0.975, 2 dof) = 4.302653; half width = 4.302653 * 0.02 / sqrt(3).
    half = 4.302653 * 0.02 / math.sqrt(3)
    assert summary.ci_low == pytest.approx(0.92 - half, abs=1e-6)
    assert summary.ci_high == pytest.approx(0.92 + half, abs=1e-6)


def test_summary_of_one_or_no_value_has_no_spread():
    one = summarize([0.5])
    assert (one.n, one.mean) == (1, 0.5)
    assert math.isnan(one.std) and math.isnan(one.ci_low)
    assert summarize([]).n == 0 and math.isnan(summarize([]).mean)


def test_mcnemar_exact_counts_and_pvalue():
    # 10 images only A gets right, 2 only B: p = 2 * P(X <= 2 | 12, 1/2) = 2 * 79 / 4096.
    a = np.array([True] * 10 + [False] * 2 + [True] * 50 + [False] * 5)
    b = np.array([False] * 10 + [True] * 2 + [True] * 50 + [False] * 5)
    test = mcnemar_exact(a, b)
    assert (test.b, test.c) == (10, 2)
    assert test.pvalue == pytest.approx(158 / 4096)
    assert mcnemar_exact(a, a).pvalue == 1.0


def test_mcnemar_pooled_sums_discordant_pairs():
    a = np.array([True] * 5 + [False])
    b = np.array([False] * 5 + [True])
    pooled = mcnemar_pooled([mcnemar_exact(a, b), mcnemar_exact(a, b)])
    # b = 10, c = 2 once more.
    assert (pooled.b, pooled.c) == (10, 2)
    assert pooled.pvalue == pytest.approx(158 / 4096)


def test_paired_t_and_wilcoxon_need_enough_seeds():
    a, b = [0.95, 0.96, 0.97], [0.90, 0.92, 0.91]
    # Differences 0.05, 0.04, 0.06: t = 0.05 / (0.01 / sqrt(3)) = 8.66, 2 dof: p = 0.01307.
    assert paired_t(a, b) == pytest.approx(0.013072, abs=1e-5)
    assert math.isnan(paired_t([0.9], [0.8]))
    assert math.isnan(wilcoxon(a, b))
    six_better = wilcoxon([0.9 + i / 100 for i in range(6)], [0.8] * 6)
    # All six differences positive: exact two-sided p = 2 / 2**6.
    assert six_better == pytest.approx(2 / 64)


def test_cells_count_diverged_and_missing_seeds_without_averaging_them():
    runs = pd.DataFrame([
        {"condition": "R", "model": "cnn", "seed": seed, "status": "ok", "test_accuracy": acc}
        for seed, acc in enumerate((0.90, 0.92, 0.94))
    ] + [
        {"condition": "R", "model": "st", "seed": 0, "status": "ok", "test_accuracy": 0.98},
        {"condition": "R", "model": "st", "seed": 1, "status": "diverged", "test_accuracy": None},
    ])
    cells = summarize_cells(runs, ["condition", "model"], ["condition"]).set_index("model")
    assert cells.at["cnn", "n_ok"] == 3 and cells.at["cnn", "mean"] == pytest.approx(0.92)
    assert cells.at["st", "n_ok"] == 1 and cells.at["st", "mean"] == pytest.approx(0.98)
    assert cells.at["st", "n_diverged"] == 1
    assert cells.at["st", "n_missing"] == 1
    assert cells.at["st", "n_expected"] == 3
