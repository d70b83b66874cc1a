"""The result tables, built from collected runs (written by ``table_format``)."""

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from stnbench.dataset_registry import GTSRB, MNIST
from stnbench.preparation import ORIGINAL_CONTRAST
from stnbench.results import published
from stnbench.results.collect import CELL, CONDITION, SWEEP, Results
from stnbench.results.committee import committee_table
from stnbench.results.compare import compare_with_baselines
from stnbench.results.notes import (
    COUNTING_NOTE,
    NO_RUNS,
    NOT_RUN,
    NOT_RUN_NOTE,
    SIGNIFICANCE_NOTE,
    duplicate_note,
    scale_notes,
    scales,
    section_heading,
    significance_marks,
    test_set_notes,
)
from stnbench.results.stats import WILCOXON_MIN_PAIRS, summarize_cells
from stnbench.results.table_format import (
    Table,
    format_cell,
    format_count,
    format_number,
    format_pvalue,
    write_table,
)

# The splits as predictions.npz, the metrics' ``{split}_accuracy`` and the CSVs name them.
SPLIT_NAMES = {"test": "test", "val": "validation"}
# Listed in the data set's own preparation even before they run; IDSIA's committee has a table
# of its own (committee.py), assembled from trained columns.
GTSRB_MODELS = ("moodstocks-2st", "moodstocks-1st", "moodstocks-nost")
GTSRB_PREPARATION = GTSRB.native().label
MNIST_PREPARATION = MNIST.native().label
# ---------------------------------------------------------------- table 1: GTSRB


def gtsrb_table(results: Results, comparisons: pd.DataFrame) -> Table:
    table = Table(
        "gtsrb",
        "GTSRB: IDSIA vs Moodstocks as published, beside the reproduced models",
        notes=[
            "Published columns and rows marked published are the sources' figures: "
            + "; ".join(f"{source.citation} <{source.url}>" for source in (
                published.TORCH_BLOG, published.IDSIA_PAPER, published.GTSRB_TORCH)) + ".",
            f"Human performance (published): {published.GTSRB_HUMAN_ACCURACY[0]}% "
            f"({published.GTSRB_HUMAN_ACCURACY[1].citation}).",
            published.GTSRB_MODEL_ACCURACY_NOTE,
        ],
    )
    runs = results.runs
    runs = runs[(runs["dataset"] == "gtsrb") & (runs["distortion"] == "none")]
    if runs.empty:
        table.notes.append(NO_RUNS.format(runs_dir=results.runs_dir))
    table.notes += scale_notes(runs)
    table.notes += [*test_set_notes(runs), COUNTING_NOTE, NOT_RUN_NOTE, SIGNIFICANCE_NOTE,
                    *duplicate_note(results)]
    marks = significance_marks(comparisons)
    data_rows = []
    for scale in scales(runs):
        at_scale = runs[runs["scale"] == scale]
        preparations = sorted(set(at_scale["preparation"]), key=_preparation_order)
        for preparation in preparations or [GTSRB_PREPARATION]:
            ran = at_scale[at_scale["preparation"] == preparation]
            # The data set's own preparation lists every published model, run or not.
            listed = GTSRB_MODELS if preparation == GTSRB_PREPARATION else ()
            models = [*listed, *sorted(set(ran["model"]) - set(listed))]
            grid = pd.DataFrame([
                {"scale": scale, "dataset": "gtsrb", "preparation": preparation,
                 "distortion": "none", "severity": severity, "model": model}
                for severity in (sorted(set(ran["severity"])) or [0.0]) for model in models
            ])
            cells = summarize_cells(ran, CELL, CONDITION, grid=grid)
            val_cells = summarize_cells(ran, CELL, CONDITION, value="val_accuracy", grid=grid)
            display = _gtsrb_display(cells, val_cells, ran, results.bench, marks)
            heading = section_heading(scale, ran)
            if len(preparations) > 1:
                heading += f", {preparation}"
            table.sections.append((heading, display))
            val_columns = val_cells[[*CELL, "mean", "std"]].rename(
                columns={"mean": "val_mean", "std": "val_std"})
            data_rows.append(cells.merge(val_columns, on=CELL, how="left").assign(
                accuracy_published_pct=cells["model"].map(
                    lambda model: published.GTSRB_MODEL_ACCURACY.get(model, (math.nan,))[0]),
                params=cells["model"].map(ran.groupby("model")["params"].first()),
                flops=cells["model"].map(ran.groupby("model")["flops"].first()),
            ))
    published_rows = pd.DataFrame([
        {"scale": "published", "dataset": "gtsrb", "model": pipeline.name,
         "accuracy_published_pct": pipeline.accuracy_pct, "params": pipeline.weights_counted}
        for pipeline in published.GTSRB_PIPELINES
    ])
    table.data = pd.concat([published_rows, *data_rows], ignore_index=True)
    return table


def _gtsrb_display(cells: pd.DataFrame, val_cells: pd.DataFrame, runs: pd.DataFrame,
                   bench: pd.DataFrame, marks: dict) -> pd.DataFrame:
    rows = ["augmentations", "jittering", "network weights (published)",
            "network weights (counted)", "test accuracy % (published)",
            "test accuracy % (reproduced, mean ± std)", "95% CI",
            "validation accuracy % (reproduced, mean ± std)", "architecture / ensemble",
            "model", "FLOPs per image", "training images/s", "inference images/s"]
    columns = {}
    for pipeline in published.GTSRB_PIPELINES:
        columns[f"{pipeline.name} (published)"] = [
            pipeline.augmentations, pipeline.jittering, pipeline.weights_published,
            f"{format_count(pipeline.weights_counted)} ({pipeline.weights_counted_note})",
            f"{pipeline.accuracy_pct:.2f}", "—", "—", "—", pipeline.ensemble, pipeline.model,
            "—", "—", "—",
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
            ("—" if math.isnan(cell.ci_low)
             else f"{100 * cell.ci_low:.2f} to {100 * cell.ci_high:.2f}"),
            format_cell(val_by_cell.loc[key]) if not model_runs.empty else NOT_RUN,
            ensemble_text(model_runs),
            first_text(model_runs["description"]),
            format_count(model_runs["flops"].max()),
            throughput_text(model_runs),
            inference_text(bench, model_runs),
        ]
    return pd.DataFrame({"": rows, **columns})


def _preparation_order(preparation: str) -> tuple[int, str]:
    """The data set's own preparation first, then by size and name."""
    return (preparation != GTSRB_PREPARATION, f"{int(preparation.split('px')[0]):04d}{preparation}")


def contrast_text(model_runs: pd.DataFrame) -> str:
    """A column's own preprocessing, where it is one of IDSIA's contrasts (the committee table
    combines the columns of several)."""
    if model_runs.empty:
        return "—"
    contrasts = sorted(set(model_runs["contrast"]) - {ORIGINAL_CONTRAST})
    return f"one preprocessing ({', '.join(contrasts)})" if contrasts else "no"


def jitter_text(model_runs: pd.DataFrame) -> str:
    """Whether the runs trained with a per-batch augmentation (IDSIA's jitter), and which."""
    if model_runs.empty:
        return "—"
    names = sorted({name for name in model_runs["augmentation"] if isinstance(name, str)})
    return f"yes ({', '.join(names)})" if names else "no"


def first_text(values: pd.Series) -> str:
    values = values.dropna()
    return str(values.iloc[0]) if not values.empty else "—"


def ensemble_text(model_runs: pd.DataFrame) -> str:
    if model_runs.empty:
        return "—"
    columns = int(model_runs["ensemble"].max())
    return "1 network" if columns == 1 else f"{columns} networks"


def throughput_text(model_runs: pd.DataFrame) -> str:
    ok = model_runs[model_runs["train_images_per_s"].notna()]
    if ok.empty:
        return "—"
    by_device = ok.groupby("device")["train_images_per_s"].mean()
    return "; ".join(f"{rate:,.0f} ({device})" for device, rate in by_device.items())


def inference_text(bench: pd.DataFrame, model_runs: pd.DataFrame) -> str:
    """Benchmarked inference throughput of the runs' model on the runs' input geometry."""
    if model_runs.empty:
        return "—"
    run = model_runs.iloc[0]
    rows = bench[(bench["phase"] == "inference") & (bench["model"] == run["model"])
                 & (bench["dataset"] == run["dataset"])
                 & (bench["input_size"] == run["input_size"])]
    if rows.empty:
        return "—"
    return "; ".join(
        f"{device}: " + ", ".join(f"{row.images_per_s:,.0f} @{row.batch_size}"
                                  for row in group.sort_values("batch_size").itertuples())
        for device, group in rows.groupby("device")
    )


# ---------------------------------------------------------------- table 2: the STN paper's Table 1


def stn_table1(results: Results, comparisons: pd.DataFrame) -> Table:
    distortions = published.STN_TABLE1_DISTORTIONS
    table = Table(
        "table1",
        "Distorted MNIST: test error % (STN paper Table 1 and cluttered MNIST)",
        notes=[
            f"paper: published figures, {published.STN_PAPER.citation} <{published.STN_PAPER.url}>;"
            f" cluttered: {published.STN_PAPER_CLUTTERED.citation}. "
            + published.CLUTTERED_NOTE,
            "ours: test error % over seeds at severity 1; Δ = ours - paper in percentage points.",
        ],
    )
    runs = results.runs[(results.runs["dataset"] == "mnist")
                        & results.runs["distortion"].isin(distortions)
                        & (results.runs["severity"] == 1.0)]
    if runs.empty:
        table.notes.append(NO_RUNS.format(runs_dir=results.runs_dir))
    table.notes += scale_notes(runs)
    table.notes += [*test_set_notes(runs), COUNTING_NOTE, NOT_RUN_NOTE, SIGNIFICANCE_NOTE,
                    *duplicate_note(results)]
    paper = published.stn_table1().set_index(["model", "distortion"])["error_pct"]
    paper_names = published.stn_table1().groupby("model")["paper_model"].first()
    models = [*published.STN_TABLE1_MODELS,
              *sorted(set(runs["model"]) - set(published.STN_TABLE1_MODELS))]
    marks = significance_marks(comparisons)
    data = []
    for scale in scales(runs):
        at_scale = runs[runs["scale"] == scale]
        grid = pd.DataFrame([
            {"scale": scale, "dataset": "mnist", "preparation": MNIST_PREPARATION,
             "distortion": distortion, "severity": 1.0, "model": model}
            for distortion in distortions for model in models
        ])
        cells = summarize_cells(at_scale.assign(test_error=1 - at_scale["test_accuracy"]),
                                CELL, CONDITION, value="test_error", grid=grid)
        cells["paper_error_pct"] = [
            paper.get((model, distortion), math.nan)
            for model, distortion in zip(cells["model"], cells["distortion"], strict=True)
        ]
        cells["difference_pp"] = 100 * cells["mean"] - cells["paper_error_pct"]
        data.append(cells)
        display = []
        ran_models, ran_families = set(at_scale["model"]), set(at_scale["distortion"])
        for model in models:
            row = {"model": model, "paper name": paper_names.get(model, "—")}
            for distortion in distortions:
                cell = cells[(cells["model"] == model)
                             & (cells["distortion"] == distortion)].iloc[0]
                key = (scale, "mnist", MNIST_PREPARATION, distortion, 1.0, model)
                row[f"{distortion}: ours"] = (
                    format_cell(cell) + marks.get(key, "")
                    if model in ran_models and distortion in ran_families else NOT_RUN
                )
                row[f"{distortion}: paper"] = format_number(cell["paper_error_pct"], 1)
                row[f"{distortion}: Δ"] = ("—" if math.isnan(cell["difference_pp"])
                                           else f"{cell['difference_pp']:+.2f}")
            display.append(row)
        table.sections.append((section_heading(scale, at_scale), pd.DataFrame(display)))
    table.data = pd.concat(data, ignore_index=True)
    return table


# ---------------------------------------------------------------- table 3: robustness


def robustness_table(results: Results) -> Table:
    table = Table(
        "robustness", "Robustness: accuracy % against distortion severity",
        notes=["Each run is trained and tested at one family and severity.",
               "test sections: accuracy on the test set. validation sections: the selected "
               "epoch's accuracy on the validation split, the split that selected that epoch, "
               "so optimistic for every model alike; where the test set is a small subset "
               "(see the test set notes) they are the more precise comparison.",
               "— : the family was not run at this severity."],
    )
    runs = results.runs
    if runs.empty:
        table.notes.append(NO_RUNS.format(runs_dir=results.runs_dir))
    table.notes += scale_notes(runs)
    table.notes += [*test_set_notes(runs), COUNTING_NOTE, *duplicate_note(results)]
    # Every model of a family at every severity that family ran, so that a severity one model
    # has not reached yet reads as missing rather than as a blank.
    grid = runs[[*SWEEP, "model"]].drop_duplicates().merge(runs[CONDITION].drop_duplicates(),
                                                          on=SWEEP)
    cells = pd.concat([summarize_cells(runs, CELL, CONDITION, value=f"{split}_accuracy",
                                       grid=grid).assign(split=split) for split in SPLIT_NAMES],
                      ignore_index=True)
    # Each data set's test section, then its validation one.
    ordered = cells.sort_values(["scale", "dataset"], kind="stable")
    for (scale, dataset, split), group in ordered.groupby(["scale", "dataset", "split"],
                                                          sort=False):
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
        table.sections.append((f"{dataset}, {scale} scale, {SPLIT_NAMES[split]} accuracy %",
                               pd.DataFrame(display)))
    table.data = cells
    return table


# ---------------------------------------------------------------- table 4: cost


def cost_table(results: Results) -> Table:
    table = Table(
        "cost",
        "Cost: parameters, FLOPs, throughput and accuracy per million parameters",
        notes=["One row per model and condition at each family's highest severity (the paper's "
               "conditions). FLOPs: forward, per image. Training images/s: mean over the runs on "
               "each device; inference images/s: benchmark median, as device: images/s @batch "
               "size."],
    )
    runs = results.runs
    if runs.empty:
        table.notes.append(NO_RUNS.format(runs_dir=results.runs_dir))
    top = runs.groupby(SWEEP)["severity"].transform("max")
    runs = runs[runs["severity"] == top]
    table.notes += scale_notes(runs)
    table.notes += [COUNTING_NOTE, *duplicate_note(results)]
    cells = summarize_cells(runs, CELL, CONDITION)
    first = runs.groupby(CELL)[["params", "flops"]].first().reset_index()
    cells = cells.merge(first, on=CELL, how="left")
    cells["accuracy_per_mparam"] = 100 * cells["mean"] / (cells["params"] / 1e6)
    for scale, group in cells.groupby("scale", sort=True):
        display = []
        for cell in group.itertuples(index=False):
            model_runs = runs[(runs["scale"] == scale) & (runs["dataset"] == cell.dataset)
                              & (runs["distortion"] == cell.distortion)
                              & (runs["model"] == cell.model)]
            display.append({
                "dataset": cell.dataset,
                "family": cell.distortion,
                "model": cell.model,
                "params": format_count(cell.params),
                "FLOPs": format_count(cell.flops),
                "training images/s": throughput_text(model_runs),
                "inference images/s": inference_text(results.bench, model_runs),
                "accuracy %": format_cell(pd.Series(cell._asdict())),
                "accuracy % per M params": format_number(cell.accuracy_per_mparam),
            })
        table.sections.append((f"{scale} scale", pd.DataFrame(display)))
    table.data = cells
    return table


# ---------------------------------------------------------------- significance


def significance_table(results: Results, comparisons: pd.DataFrame) -> Table:
    """``comparisons``: test and validation rows of ``compare_with_baselines``."""
    table = Table(
        "significance",
        "Spatial transformer vs its baseline on the same images",
        notes=[
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
        ],
    )
    if comparisons.empty:
        table.notes.append(
            NO_RUNS.format(runs_dir=results.runs_dir) if results.runs.empty
            else "No ST model has a finished baseline on the same condition yet."
        )
    table.notes += duplicate_note(results)
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
        table.sections.append((f"{scale} scale", pd.DataFrame(display)))
    table.data = comparisons.assign(
        seeds=comparisons["seeds"].map(lambda seeds: " ".join(map(str, seeds))),
        mcnemar_per_seed=comparisons["mcnemar_per_seed"].map(
            lambda tests: " ".join(f"{t.b}/{t.c}/{t.pvalue:.6g}" for t in tests)),
    )
    return table


def build_tables(results: Results, notes: Sequence[str] = ()) -> list[Table]:
    """Every table; ``notes`` (such as what the workflow left out) are added to each."""
    comparisons = compare_with_baselines(results.runs, "test")
    val_comparisons = compare_with_baselines(results.runs, "val")
    tables = [
        gtsrb_table(results, comparisons),
        stn_table1(results, comparisons),
        robustness_table(results),
        cost_table(results),
        significance_table(results, _significance_rows(comparisons, val_comparisons)),
        committee_table(results),
    ]
    for table in tables:
        table.notes += notes
    return tables


def _significance_rows(test: pd.DataFrame, val: pd.DataFrame) -> pd.DataFrame:
    """Each comparison's test row, then its validation row where any seed has one."""
    val = val[val["n_pairs"] > 0]
    if val.empty:
        return test
    rows = pd.concat([test, val], ignore_index=True)
    return rows.sort_values(CELL, kind="stable", ignore_index=True)


def write_tables(results: Results, out_dir: Path, notes: Sequence[str] = ()) -> list[Path]:
    return [path for table in build_tables(results, notes)
            for path in write_table(table, out_dir)]
