"""The sequence table: cluttered MNIST sequences, ours beside the recurrent ST paper's figures."""

import math

import pandas as pd

from stnbench.distortions.sequences import TASKS
from stnbench.results import published
from stnbench.results.collect import CELL, CONDITION
from stnbench.results.notes import (
    COUNTING_NOTE,
    SIGNIFICANCE_NOTE,
    scales,
    section_heading,
    significance_marks,
)
from stnbench.results.stats import summarize_cells
from stnbench.results.table_format import format_cell, format_number
from stnbench.results.table_spec import Inputs, Place, Sections, TableSpec


def _sequence_runs(inputs: Inputs) -> pd.DataFrame:
    return inputs.results.runs[inputs.results.runs["distortion"].isin(list(TASKS))]


def _sequence_sections(runs: pd.DataFrame, inputs: Inputs) -> Sections:
    """Per model and scale: sequence error (a sequence wrong if any digit is) and digit error
    over seeds, the paper's digit error and the difference."""
    models = [*published.SEQUENCE_DIGIT_ERROR,
              *sorted(set(runs["model"]) - set(published.SEQUENCE_DIGIT_ERROR))]
    marks = significance_marks(inputs.comparisons)
    sections, data = [], []
    for scale in scales(runs):
        at_scale = runs[runs["scale"] == scale].assign(
            test_error=lambda frame: 1 - frame["test_accuracy"]
        )
        aside = inputs.results.superseded
        sequence = summarize_cells(at_scale, CELL, CONDITION, value="test_error",
                                   set_aside=aside)
        digit = summarize_cells(at_scale, CELL, CONDITION, value="test_element_error",
                                set_aside=aside)
        rows = []
        for model in models:
            label, paper = published.SEQUENCE_DIGIT_ERROR.get(model, ("—", math.nan))
            ours = sequence[sequence["model"] == model]
            ours_digit = digit[digit["model"] == model]
            mark = "" if ours.empty else marks.get(tuple(ours.iloc[0][CELL]), "")
            digit_mean = math.nan if ours_digit.empty else 100 * ours_digit.iloc[0]["mean"]
            model_runs = at_scale[at_scale["model"] == model]
            rows.append({
                "scale": scale, "model": model, "paper name": label,
                "epochs": _epochs_text(model_runs),
                "sequence error %": "—" if ours.empty else format_cell(ours.iloc[0]) + mark,
                "digit error %": "—" if ours_digit.empty else format_cell(ours_digit.iloc[0]),
                "paper digit error %": format_number(paper, 1),
                "Δ pp": "—" if math.isnan(digit_mean - paper) else f"{digit_mean - paper:+.2f}",
            })
            data.append({"scale": scale, "model": model, "paper_digit_error_pct": paper,
                         "sequence_error_mean": math.nan if ours.empty else ours.iloc[0]["mean"],
                         "digit_error_mean": digit_mean / 100})
        display = pd.DataFrame(rows).drop(columns="scale")
        sections.append((section_heading(scale, at_scale), display))
    return sections, pd.DataFrame(data)


def _epochs_text(model_runs: pd.DataFrame) -> str:
    """The schedule the runs were trained for, and how far the unfinished ones got."""
    if model_runs.empty:
        return "—"
    planned = ", ".join(str(epochs) for epochs in sorted(set(model_runs["epochs"])))
    short = model_runs[model_runs["epochs_completed"] < model_runs["epochs"]]
    return planned + (f" ({len(short)} run(s) stopped early)" if len(short) else "")


SEQUENCES_TABLE = TableSpec(
    name="sequences",
    title="Cluttered MNIST sequences: test error % (recurrent spatial transformer paper)",
    notes=(
        f"paper: published single digit errors, {published.RNN_SPN_PAPER.citation} "
        f"<{published.RNN_SPN_PAPER.url}>; the paper's CNN is not in its public code, so "
        "seq-cnn is this suite's stand-in (docs/sequences.md).",
        "ours: sequence error % (a sequence is wrong if any digit is) and digit error % "
        "over seeds; Δ = our digit error - the paper's, in percentage points.",
        "epochs: the length our runs were trained for; the paper's code trains up to 300 "
        "epochs with an early stop (the rnn-spn recipe, stnbench/engine/recipes.yaml), so "
        "shorter runs are not comparable with its figures.",
        Place.EMPTY, Place.SCALES, Place.TEST_SETS, COUNTING_NOTE, SIGNIFICANCE_NOTE,
    ),
    rows=_sequence_runs,
    sections=_sequence_sections,
)
