"""The result tables, each declared as a ``TableSpec`` and built from the collected runs by
``build_table`` (written by ``table_format``)."""

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from stnbench.dataset_registry import MNIST
from stnbench.results import published
from stnbench.results.collect import CELL, CONDITION, SWEEP, Results
from stnbench.results.committee import COMMITTEE_TABLE
from stnbench.results.compare import compare_with_baselines
from stnbench.results.gtsrb_table import GTSRB_TABLE
from stnbench.results.notes import (
    COUNTING_NOTE,
    NOT_RUN,
    NOT_RUN_NOTE,
    SIGNIFICANCE_NOTE,
    scales,
    section_heading,
    significance_marks,
)
from stnbench.results.run_text import inference_text, throughput_text
from stnbench.results.sequences import SEQUENCES_TABLE
from stnbench.results.stats import WILCOXON_MIN_PAIRS, summarize_cells
from stnbench.results.table_format import (
    Table,
    format_cell,
    format_count,
    format_number,
    format_pvalue,
    write_table,
)
from stnbench.results.table_spec import (
    Inputs,
    Place,
    Sections,
    TableSpec,
    build_table,
    no_runs,
)

# The splits as predictions.npz, the metrics' ``{split}_accuracy`` and the CSVs name them.
SPLIT_NAMES = {"test": "test", "val": "validation"}
MNIST_PREPARATION = MNIST.native().label
# ---------------------------------------------------------------- the STN paper's Table 1


def _table1_runs(inputs: Inputs) -> pd.DataFrame:
    runs = inputs.results.runs
    return runs[(runs["dataset"] == MNIST.name)
                & runs["distortion"].isin(published.STN_TABLE1_DISTORTIONS)
                & (runs["severity"] == 1.0)]


def _table1_sections(runs: pd.DataFrame, inputs: Inputs) -> Sections:
    distortions = published.STN_TABLE1_DISTORTIONS
    paper = published.stn_table1().set_index(["model", "distortion"])["error_pct"]
    paper_names = published.stn_table1().groupby("model")["paper_model"].first()
    models = [*published.STN_TABLE1_MODELS,
              *sorted(set(runs["model"]) - set(published.STN_TABLE1_MODELS))]
    marks = significance_marks(inputs.comparisons)
    sections, data = [], []
    for scale in scales(runs):
        at_scale = runs[runs["scale"] == scale]
        grid = pd.DataFrame([
            {"scale": scale, "dataset": MNIST.name, "preparation": MNIST_PREPARATION,
             "distortion": distortion, "severity": 1.0, "model": model}
            for distortion in distortions for model in models
        ])
        cells = summarize_cells(at_scale.assign(test_error=1 - at_scale["test_accuracy"]),
                                CELL, CONDITION, value="test_error", grid=grid,
                                set_aside=inputs.results.superseded)
        cells["paper_error_pct"] = [
            paper.get((model, distortion), math.nan)
            for model, distortion in zip(cells["model"], cells["distortion"], strict=True)
        ]
        cells["difference_pp"] = 100 * cells["mean"] - cells["paper_error_pct"]
        data.append(cells)
        display = []
        ran = set(zip(at_scale["model"], at_scale["distortion"], strict=True))
        for model in models:
            row = {"model": model, "paper name": paper_names.get(model, "—")}
            for distortion in distortions:
                cell = cells[(cells["model"] == model)
                             & (cells["distortion"] == distortion)].iloc[0]
                key = (scale, MNIST.name, MNIST_PREPARATION, distortion, 1.0, model)
                row[f"{distortion}: ours"] = (
                    format_cell(cell) + marks.get(key, "")
                    if (model, distortion) in ran else NOT_RUN
                )
                row[f"{distortion}: paper"] = format_number(cell["paper_error_pct"], 1)
                row[f"{distortion}: Δ"] = ("—" if math.isnan(cell["difference_pp"])
                                           else f"{cell['difference_pp']:+.2f}")
            display.append(row)
        sections.append((section_heading(scale, at_scale), pd.DataFrame(display)))
    return sections, pd.concat(data, ignore_index=True)


TABLE1 = TableSpec(
    name="table1",
    title="Distorted MNIST: test error % (STN paper Table 1 and cluttered MNIST)",
    notes=(
        f"paper: published figures, {published.STN_PAPER.citation} <{published.STN_PAPER.url}>;"
        f" cluttered: {published.STN_PAPER_CLUTTERED.citation}. " + published.CLUTTERED_NOTE,
        "ours: test error % over seeds at severity 1; Δ = ours - paper in percentage points.",
        Place.EMPTY, Place.SCALES, Place.TEST_SETS, COUNTING_NOTE, NOT_RUN_NOTE, SIGNIFICANCE_NOTE,
        Place.DUPLICATES,
    ),
    rows=_table1_runs,
    sections=_table1_sections,
)
# ---------------------------------------------------------------- robustness


def _all_runs(inputs: Inputs) -> pd.DataFrame:
    return inputs.results.runs


def _robustness_sections(runs: pd.DataFrame, inputs: Inputs) -> Sections:
    # Every model of a family at every severity that family ran, so that a severity one model
    # has not reached yet reads as missing rather than as a blank.
    grid = runs[[*SWEEP, "model"]].drop_duplicates().merge(runs[CONDITION].drop_duplicates(),
                                                          on=SWEEP)
    cells = pd.concat([summarize_cells(runs, CELL, CONDITION, value=f"{split}_accuracy",
                                       grid=grid, set_aside=inputs.results.superseded)
                       .assign(split=split) for split in SPLIT_NAMES], ignore_index=True)
    sections = []
    # A section per preparation: runs of one model and seed at two input sizes or contrasts are
    # two runs, and one row for both would show either. Each test section, then its validation
    # one; the preparation is named where a data set has several.
    preparations = cells.groupby(["scale", "dataset"])["preparation"].nunique()
    ordered = cells.sort_values(["scale", "dataset", "preparation"], kind="stable")
    for (scale, dataset, preparation, split), group in ordered.groupby(
            ["scale", "dataset", "preparation", "split"], sort=False):
        if split != "test" and not (group["n_ok"] > 0).any():
            continue
        severities = sorted(set(group["severity"]))
        display = []
        for (distortion, model), rows in group.groupby(["distortion", "model"], sort=True):
            row = {"family": distortion, "model": model}
            for severity in severities:
                at = rows[rows["severity"] == severity]
                row[f"severity {severity:g}"] = format_cell(at.iloc[0]) if not at.empty else "—"
            display.append(row)
        data = f"{dataset} {preparation}" if preparations[(scale, dataset)] > 1 else dataset
        sections.append((f"{data}, {scale} scale, {SPLIT_NAMES[split]} accuracy %",
                         pd.DataFrame(display)))
    return sections, cells


ROBUSTNESS = TableSpec(
    name="robustness",
    title="Robustness: accuracy % against distortion severity",
    notes=(
        "Each run is trained and tested at one family and severity.",
        "test sections: accuracy on the test set. validation sections: the selected "
        "epoch's accuracy on the validation split, the split that selected that epoch, "
        "so optimistic for every model alike; where the test set is a small subset "
        "(see the test set notes) they are the more precise comparison.",
        "— : the family was not run at this severity.",
        Place.EMPTY, Place.SCALES, Place.TEST_SETS, COUNTING_NOTE, Place.DUPLICATES,
    ),
    rows=_all_runs,
    sections=_robustness_sections,
)
# ---------------------------------------------------------------- cost


def _top_severity_runs(inputs: Inputs) -> pd.DataFrame:
    runs = inputs.results.runs
    return runs[runs["severity"] == runs.groupby(SWEEP)["severity"].transform("max")]


def _cost_sections(runs: pd.DataFrame, inputs: Inputs) -> Sections:
    cells = summarize_cells(runs, CELL, CONDITION, set_aside=inputs.results.superseded)
    first = runs.groupby(CELL)[["params", "flops"]].first().reset_index()
    cells = cells.merge(first, on=CELL, how="left")
    cells["accuracy_per_mparam"] = 100 * cells["mean"] / (cells["params"] / 1e6)
    # By the whole cell key: a model at two preparations (32 and 48 px, two contrasts) is two
    # rows, each with its own runs' speed.
    runs_by_cell = dict(iter(runs.groupby(CELL, dropna=False)))
    sections = []
    for scale, group in cells.groupby("scale", sort=True):
        display = []
        for cell in group.itertuples(index=False):
            model_runs = runs_by_cell.get(tuple(getattr(cell, name) for name in CELL), runs[:0])
            display.append({
                "dataset": cell.dataset,
                "preparation": cell.preparation,
                "family": cell.distortion,
                "model": cell.model,
                "params": format_count(cell.params),
                "FLOPs": format_count(cell.flops),
                "training images/s": throughput_text(model_runs),
                "inference images/s": inference_text(inputs.results.bench, model_runs),
                "accuracy %": format_cell(pd.Series(cell._asdict())),
                "accuracy % per M params": format_number(cell.accuracy_per_mparam),
            })
        sections.append((f"{scale} scale", pd.DataFrame(display)))
    return sections, cells


COST = TableSpec(
    name="cost",
    title="Cost: parameters, FLOPs, throughput and accuracy per million parameters",
    notes=(
        "One row per model and condition at each family's highest severity (the paper's "
        "conditions). FLOPs: forward, per image. Training images/s: mean over the runs on "
        "each device; inference images/s: benchmark median, as device: images/s @batch "
        "size.",
        Place.EMPTY, Place.SCALES, COUNTING_NOTE, Place.DUPLICATES,
    ),
    rows=_top_severity_runs,
    sections=_cost_sections,
)
# ---------------------------------------------------------------- significance


def _significance_rows(inputs: Inputs) -> pd.DataFrame:
    return inputs.significance


def _no_comparisons(inputs: Inputs) -> str:
    if inputs.results.runs.empty:
        return no_runs(inputs)
    return "No ST model has a finished baseline on the same condition yet."


def _significance_sections(comparisons: pd.DataFrame, inputs: Inputs) -> Sections:
    sections = []
    for scale, group in comparisons.groupby("scale", sort=True):
        display = [{
            "dataset": row.dataset,
            "family": row.distortion,
            "severity": f"{row.severity:g}",
            "model": row.model,
            "baseline": row.baseline,
            "split": SPLIT_NAMES[row.split],
            "seeds": row.n_pairs,
            "accuracy %": format_number(100 * row.accuracy),
            "baseline %": format_number(100 * row.baseline_accuracy),
            "Δ pp": format_number(row.difference_pp),
            "McNemar per seed (b/c, p)": "; ".join(
                f"s{seed}: {test.b}/{test.c}, {format_pvalue(test.pvalue)}"
                for seed, test in zip(row.seeds, row.mcnemar_per_seed, strict=True)),
            "McNemar pooled (b/c, p)": f"{row.mcnemar_b}/{row.mcnemar_c}, "
                                       f"{format_pvalue(row.mcnemar_p)}",
            "paired t p": format_pvalue(row.paired_t_p),
            "Wilcoxon p": (format_pvalue(row.wilcoxon_p) if row.n_pairs >= WILCOXON_MIN_PAIRS
                           else f"n<{WILCOXON_MIN_PAIRS}"),
            "unpaired": row.unpaired,
        } for row in group.itertuples(index=False)]
        sections.append((f"{scale} scale", pd.DataFrame(display)))
    data = comparisons.assign(
        seeds=comparisons["seeds"].map(lambda seeds: " ".join(map(str, seeds))),
        mcnemar_per_seed=comparisons["mcnemar_per_seed"].map(
            lambda tests: " ".join(f"{t.b}/{t.c}/{t.pvalue:.6g}" for t in tests)),
    )
    return sections, data


SIGNIFICANCE = TableSpec(
    name="significance",
    title="Spatial transformer vs its baseline on the same images",
    notes=(
        "McNemar: exact two-sided test on the discordant images (b = only the ST model "
        "right, c = only the baseline right), per seed and pooled over seeds; pooled pairs "
        "share images, so the pooled p-value is optimistic.",
        "Paired t: two-sided, over seeds' accuracies; Wilcoxon only with 6 or more seeds "
        "(below that it cannot reach p < 0.05).",
        "validation rows: the selected epoch's predictions on the validation split, the "
        "split that selected that epoch for each model, so they favour both models; the "
        "test rows are the unbiased comparison. Runs that kept no validation predictions "
        "have test rows only.",
        "unpaired: seeds left out because either run diverged, is missing or has no "
        "predictions of that split.",
        Place.EMPTY, Place.DUPLICATES,
    ),
    rows=_significance_rows,
    sections=_significance_sections,
    empty_note=_no_comparisons,
)
TABLES = (GTSRB_TABLE, TABLE1, ROBUSTNESS, COST, SIGNIFICANCE, COMMITTEE_TABLE, SEQUENCES_TABLE)
# ---------------------------------------------------------------- every table


def build_tables(
    results: Results, notes: Sequence[str] = (), scale_meanings: Mapping[str, str] | None = None
) -> list[Table]:
    """Every table; ``notes`` (such as what the workflow left out) are added to each, and
    ``scale_meanings`` (the presets' scale_note by scale) to each scale's line."""
    comparisons = compare_with_baselines(results.runs, "test")
    val_comparisons = compare_with_baselines(results.runs, "val")
    inputs = Inputs(results, comparisons, _test_then_val(comparisons, val_comparisons),
                    scale_meanings or {})
    tables = [build_table(spec, inputs) for spec in TABLES]
    for table in tables:
        table.notes += notes
    return tables


def _test_then_val(test: pd.DataFrame, val: pd.DataFrame) -> pd.DataFrame:
    """Each comparison's test row, then its validation row where any seed has one."""
    val = val[val["n_pairs"] > 0]
    if val.empty:
        return test
    rows = pd.concat([test, val], ignore_index=True)
    return rows.sort_values(CELL, kind="stable", ignore_index=True)


def write_tables(
    results: Results,
    out_dir: Path,
    notes: Sequence[str] = (),
    scale_meanings: Mapping[str, str] | None = None,
) -> list[Path]:
    return [path for table in build_tables(results, notes, scale_meanings)
            for path in write_table(table, out_dir)]
