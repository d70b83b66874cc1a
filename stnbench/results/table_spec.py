"""A table declared: the rows it is built from, its notes in order, and what its sections show;
``build_table`` does the rest alike for every table."""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

import pandas as pd

from stnbench.results.collect import Results
from stnbench.results.notes import (
    NO_RUNS,
    duplicate_note,
    older_definition_notes,
    scale_notes,
    superseded_note,
    test_set_notes,
)
from stnbench.results.table_format import Table


@dataclass(frozen=True)
class Inputs:
    """What every table may read: the collected runs, each ST model's comparison with its
    baseline on the test set, those comparisons' test and validation rows, and what each
    scale means (its preset's scale_note)."""

    results: Results
    comparisons: pd.DataFrame
    significance: pd.DataFrame
    scale_meanings: Mapping[str, str]


class Place(Enum):
    """Where, among a table's notes, the lines that depend on its rows go."""

    EMPTY = "the table's empty_note, when it has no rows"
    SCALES = "what each scale of the rows is"
    TEST_SETS = "the rows' test sets"
    DUPLICATES = "the duplicate runs counted once"


Note = str | Place
Sections = tuple[list[tuple[str, pd.DataFrame]], pd.DataFrame]


def no_runs(inputs: Inputs) -> str:
    return NO_RUNS.format(runs_dir=inputs.results.runs_dir)


@dataclass(frozen=True)
class TableSpec:
    """One table: ``rows`` selects what it is built from (runs, comparisons, committees);
    ``notes`` come in order, fixed text or a ``Place`` for lines drawn from the rows;
    ``sections`` turns the rows into headed display frames and the numbers for CSV."""

    name: str
    title: str
    notes: Sequence[Note]
    rows: Callable[[Inputs], pd.DataFrame]
    sections: Callable[[pd.DataFrame, Inputs], Sections]
    empty_note: Callable[[Inputs], str] = no_runs


def build_table(spec: TableSpec, inputs: Inputs) -> Table:
    rows = spec.rows(inputs)
    table = Table(spec.name, spec.title)
    for note in spec.notes:
        table.notes += [note] if isinstance(note, str) else _lines(note, spec, rows, inputs)
    # Every table ends its own notes with the runs it shows that are out of date, and those it
    # leaves out for runs of the current definitions.
    table.notes += older_definition_notes(_runs_shown(rows, inputs.results.runs))
    table.notes += superseded_note(_runs_on_conditions(rows, inputs.results.superseded))
    table.sections, table.data = spec.sections(rows, inputs)
    return table


def _lines(place: Place, spec: TableSpec, rows: pd.DataFrame, inputs: Inputs) -> list[str]:
    if place is Place.EMPTY:
        return [spec.empty_note(inputs)] if rows.empty else []
    if place is Place.SCALES:
        return scale_notes(rows, inputs.scale_meanings)
    if place is Place.TEST_SETS:
        return test_set_notes(rows)
    return duplicate_note(inputs.results)


def _runs_shown(rows: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The rows where they are runs; else the runs on the conditions that they show (a
    comparison's two models, a committee's columns), so that a table's out-of-date notes
    speak of its own runs only."""
    if "distortion_version" in rows.columns:
        return rows
    return _runs_on_conditions(rows, runs)


def _runs_on_conditions(rows: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    keys = [key for key in ("scale", "dataset", "preparation", "distortion")
            if key in rows.columns and key in runs.columns]
    if rows.empty or not keys:
        return runs.iloc[:0]
    return runs.merge(rows[keys].drop_duplicates(), on=keys)
