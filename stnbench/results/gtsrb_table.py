"""The GTSRB table: IDSIA and Moodstocks as published, beside the reproduced models, one column
each, at every scale and preparation that ran."""

import math

import pandas as pd

from stnbench.dataset_registry import GTSRB
from stnbench.results import published
from stnbench.results.collect import CELL, CONDITION
from stnbench.results.notes import (
    COUNTING_NOTE,
    NOT_RUN,
    NOT_RUN_NOTE,
    SIGNIFICANCE_NOTE,
    scales,
    section_heading,
    significance_marks,
)
from stnbench.results.run_text import (
    contrast_text,
    ensemble_text,
    first_text,
    hours_text,
    inference_text,
    jitter_text,
    throughput_text,
)
from stnbench.results.stats import binomial_interval, summarize_cells
from stnbench.results.table_format import format_cell, format_count, format_number
from stnbench.results.table_spec import Inputs, Place, Sections, TableSpec

# Listed in the data set's own preparation even before they run; IDSIA's committee has a table
# of its own (committee.py), assembled from trained columns.
GTSRB_MODELS = ("moodstocks-2st", "moodstocks-1st", "moodstocks-nost")
GTSRB_PREPARATION = GTSRB.native().label
DISPLAY_ROWS = (
    "augmentations", "jittering", "network weights (published)", "network weights (counted)",
    "test accuracy % (published)", "test accuracy % (reproduced, mean ± std)", "95% CI",
    "validation accuracy % (reproduced, mean ± std)", "architecture / ensemble", "model",
    "FLOPs per image", "training images/s", "hours per run (training and test)",
    "inference images/s",
)


def _runs(inputs: Inputs) -> pd.DataFrame:
    runs = inputs.results.runs
    return runs[(runs["dataset"] == GTSRB.name) & (runs["distortion"] == "none")]


def _sections(runs: pd.DataFrame, inputs: Inputs) -> Sections:
    marks = significance_marks(inputs.comparisons)
    sections, data_rows = [], []
    for scale in scales(runs):
        at_scale = runs[runs["scale"] == scale]
        preparations = sorted(set(at_scale["preparation"]), key=_preparation_order)
        for preparation in preparations or [GTSRB_PREPARATION]:
            ran = at_scale[at_scale["preparation"] == preparation]
            # The data set's own preparation lists every published model, run or not.
            listed = GTSRB_MODELS if preparation == GTSRB_PREPARATION else ()
            models = [*listed, *sorted(set(ran["model"]) - set(listed))]
            grid = pd.DataFrame([
                {"scale": scale, "dataset": GTSRB.name, "preparation": preparation,
                 "distortion": "none", "severity": severity, "model": model}
                for severity in (sorted(set(ran["severity"])) or [0.0]) for model in models
            ])
            aside = inputs.results.superseded
            cells = summarize_cells(ran, CELL, CONDITION, grid=grid, set_aside=aside)
            val_cells = summarize_cells(ran, CELL, CONDITION, value="val_accuracy", grid=grid,
                                        set_aside=aside)
            display = _display(cells, val_cells, ran, inputs.results.bench, marks)
            heading = section_heading(scale, ran)
            if len(preparations) > 1:
                heading += f", {preparation}"
            sections.append((heading, display))
            val_columns = val_cells[[*CELL, "mean", "std"]].rename(
                columns={"mean": "val_mean", "std": "val_std"})
            data_rows.append(cells.merge(val_columns, on=CELL, how="left").assign(
                accuracy_published_pct=cells["model"].map(
                    lambda model: published.GTSRB_MODEL_ACCURACY.get(model, (math.nan,))[0]),
                params=cells["model"].map(ran.groupby("model")["params"].first()),
                flops=cells["model"].map(ran.groupby("model")["flops"].first()),
            ))
    published_rows = pd.DataFrame([
        {"scale": "published", "dataset": GTSRB.name, "model": pipeline.name,
         "accuracy_published_pct": pipeline.accuracy_pct, "params": pipeline.weights_counted}
        for pipeline in published.GTSRB_PIPELINES
    ])
    return sections, pd.concat([published_rows, *data_rows], ignore_index=True)


def _display(cells: pd.DataFrame, val_cells: pd.DataFrame, runs: pd.DataFrame,
             bench: pd.DataFrame, marks: dict) -> pd.DataFrame:
    columns = {}
    for pipeline in published.GTSRB_PIPELINES:
        columns[f"{pipeline.name} (published)"] = [
            pipeline.augmentations, pipeline.jittering, pipeline.weights_published,
            f"{format_count(pipeline.weights_counted)} ({pipeline.weights_counted_note})",
            f"{pipeline.accuracy_pct:.2f}", "—", "—", "—", pipeline.ensemble, pipeline.model,
            "—", "—", "—", "—",
        ]
    val_by_cell = val_cells.set_index(CELL)
    for cell in cells.itertuples(index=False):
        model_runs = runs[runs["model"] == cell.model]
        cell_series = pd.Series(cell._asdict())
        key = tuple(getattr(cell, name) for name in CELL)
        columns[cell.model] = [
            contrast_text(model_runs),
            jitter_text(model_runs),
            "—",
            format_count(model_runs["params"].max()),
            format_number(published.GTSRB_MODEL_ACCURACY.get(cell.model, (math.nan,))[0]),
            (format_cell(cell_series) + marks.get(key, "")) if not model_runs.empty else NOT_RUN,
            _interval_text(cell, model_runs),
            format_cell(val_by_cell.loc[key]) if not model_runs.empty else NOT_RUN,
            ensemble_text(model_runs),
            first_text(model_runs["description"]),
            format_count(model_runs["flops"].max()),
            throughput_text(model_runs),
            hours_text(model_runs),
            inference_text(bench, model_runs),
        ]
    return pd.DataFrame({"": list(DISPLAY_ROWS), **columns})


def _interval_text(cell: tuple, model_runs: pd.DataFrame) -> str:
    """t over seeds; for one finished run, Clopper-Pearson over its test images."""
    if not math.isnan(cell.ci_low):
        return f"{100 * cell.ci_low:.2f} to {100 * cell.ci_high:.2f}"
    ok = model_runs[model_runs["status"] == "ok"]
    if len(ok) != 1:
        return "—"
    run = ok.iloc[0]
    low, high = binomial_interval(run["test_accuracy"], int(run["test_set_size"]))
    return (f"{100 * low:.2f} to {100 * high:.2f} (one run: Clopper-Pearson over its "
            f"{int(run['test_set_size']):,} test images)")


def _preparation_order(preparation: str) -> tuple[int, str]:
    """The data set's own preparation first, then by size and name."""
    return (preparation != GTSRB_PREPARATION, f"{int(preparation.split('px')[0]):04d}{preparation}")


GTSRB_TABLE = TableSpec(
    name="gtsrb",
    title="GTSRB: IDSIA vs Moodstocks as published, beside the reproduced models",
    notes=(
        "Published columns and rows marked published are the sources' figures: "
        + "; ".join(f"{source.citation} <{source.url}>" for source in (
            published.TORCH_BLOG, published.IDSIA_PAPER, published.GTSRB_TORCH)) + ".",
        f"Human performance (published): {published.GTSRB_HUMAN_ACCURACY[0]}% "
        f"({published.GTSRB_HUMAN_ACCURACY[1].citation}).",
        published.GTSRB_MODEL_ACCURACY_NOTE,
        Place.EMPTY, Place.SCALES, Place.TEST_SETS, COUNTING_NOTE, NOT_RUN_NOTE, SIGNIFICANCE_NOTE,
        Place.DUPLICATES,
    ),
    rows=_runs,
    sections=_sections,
)
