"""Notes and headings that several tables share: the scale, the test set, what is counted, what
was not run, duplicates, and the marks for significant differences."""

from collections.abc import Mapping

import pandas as pd

from stnbench.distortions import distortion_version
from stnbench.results.collect import CELL, UNSPECIFIED_SCALE, Results, older_definitions

SIGNIFICANCE_LEVEL = 0.05
# What each preset's scale means is the preset's own `scale_note` (config/*.yaml), passed in
# by the workflow; this one is no preset's.
UNSPECIFIED_NOTE = "the runs record no scale"
NO_RUNS = "No runs yet under {runs_dir}."
NOT_RUN = "not run"
NOT_RUN_NOTE = (f"{NOT_RUN}: no run of this model on this family at this scale: not in the "
                "grid that produced these results (unlike missing: a seed that other models "
                "finished).")
COUNTING_NOTE = ("Cells: mean ± sample std over seeds (n = finished seeds); a seed that any model "
                 "ran on the condition but this model did not finish is shown as diverged or "
                 "missing, never averaged in.")


def scale_notes(runs: pd.DataFrame, meanings: Mapping[str, str]) -> list[str]:
    """A line per scale of ``runs``: what it means (``meanings``: each preset's scale_note),
    its planned epochs and training subsets."""
    return [scale_note(scale, runs[runs["scale"] == scale], meanings)
            for scale in sorted(set(runs["scale"]))]


def scale_note(scale: str, runs: pd.DataFrame, meanings: Mapping[str, str]) -> str:
    meaning = UNSPECIFIED_NOTE if scale == UNSPECIFIED_SCALE else meanings.get(scale)
    note = f"{scale}" + (f" ({meaning})" if meaning else "")
    epochs = sorted({int(value) for value in runs["epochs"].dropna()})
    if epochs:
        note += f"; planned epochs: {', '.join(map(str, epochs))}"
    limits = sorted({int(value) for value in runs["limit_train"].dropna()})
    if limits:
        note += f"; trained on the first {', '.join(f'{limit:,}' for limit in limits)} images"
    return f"Scale: {note}."


def test_set_notes(runs: pd.DataFrame) -> list[str]:
    notes = []
    for (dataset, size, note), _ in runs.groupby(
        ["dataset", "test_set_size", "test_set_note"], dropna=False
    ):
        if isinstance(note, str) and note:
            size_text = "" if pd.isna(size) else f" ({int(size):,} images)"
            notes.append(f"Test set ({dataset}): {note}{size_text}.")
    return notes


def duplicate_note(results: Results) -> list[str]:
    if not results.duplicates:
        return []
    return [f"Counted once: {len(results.duplicates)} duplicate run(s) of the same key ignored: "
            + ", ".join(str(path) for path in results.duplicates) + "."]


def superseded_note(superseded: pd.DataFrame) -> list[str]:
    """The out-of-date runs set aside because their cells have runs of the current
    definitions (collect.superseded)."""
    if superseded.empty:
        return []
    counts = []
    for (model, distortion), group in superseded.groupby(["model", "distortion"], sort=True):
        seeds = ", ".join(str(seed) for seed in sorted(set(group["seed"])))
        counts.append(f"{model} on {distortion} (seed {seeds})")
    return [f"Set aside: {len(superseded)} out-of-date run(s) whose cells also have runs of the "
            f"current definitions, not averaged with them until retrained: {'; '.join(counts)}."]


def older_definition_notes(runs: pd.DataFrame) -> list[str]:
    """Runs trained on an earlier definition of their distortion, of their model or of their
    recipe than the current one."""
    notes = []
    older_definition = older_definitions(runs)
    older = runs[older_definition["distortion"]]
    if not older.empty:
        counts = []
        for family, group in older.groupby("distortion"):
            versions = ", ".join(map(str, sorted(set(group["distortion_version"]))))
            counts.append(f"{len(group)} of {family} (version {versions}, "
                          f"now {distortion_version(family)})")
        notes.append(f"Out of date: run(s) trained on an earlier definition of their "
                     f"distortion, {'; '.join(counts)}: not comparable with the current "
                     "definition's runs until retrained (docs/data.md, distortion versions).")
    older = runs[older_definition["model"]]
    if not older.empty:
        counts = [f"{len(group)} of {model}" for model, group in older.groupby("model")]
        notes.append(f"Out of date: run(s) trained on an earlier definition of their model, "
                     f"{'; '.join(counts)}: the network now defined is another one until "
                     "retrained.")
    older = runs[older_definition["recipe"]]
    if not older.empty:
        counts = []
        for model, group in older.groupby("model"):
            fields = sorted(set().union(*group["recipe_changes"]))
            counts.append(f"{len(group)} of {model} ({', '.join(fields)})")
        notes.append(f"Out of date: run(s) trained with an earlier version of their recipe "
                     f"(stnbench/engine/recipes.yaml), {'; '.join(counts)}: the recipe now "
                     "trains another run until retrained.")
    return notes


def scales(runs: pd.DataFrame) -> list[str]:
    return sorted(set(runs["scale"])) or [UNSPECIFIED_SCALE]


def section_heading(scale: str, runs: pd.DataFrame) -> str:
    return f"{scale} scale" if not runs.empty else "no runs"


BETTER_MARK, WORSE_MARK = " *", " †"


def significance_marks(comparisons: pd.DataFrame) -> dict[tuple, str]:
    """A mark for a model whose McNemar test against its baseline has p < 0.05 at every seed,
    all in one direction: ``*`` where it was right on more images than its baseline at every
    seed, ``†`` where on fewer. A model significantly worse than its baseline is as much a
    finding as one better, and a single mark for both would read as a win."""
    marks = {}
    for row in comparisons.itertuples(index=False):
        tests = row.mcnemar_per_seed
        if not tests or not all(test.pvalue < SIGNIFICANCE_LEVEL for test in tests):
            continue
        cell = tuple(getattr(row, name) for name in CELL)
        if all(test.b > test.c for test in tests):
            marks[cell] = BETTER_MARK
        elif all(test.b < test.c for test in tests):
            marks[cell] = WORSE_MARK
    return marks


SIGNIFICANCE_NOTE = ("* : better than its baseline (right on more test images) with McNemar's "
                     "exact test p < 0.05 at every paired seed; † : worse than its baseline, "
                     "likewise at every paired seed (see the significance table).")
