"""Writing a table: its cells formatted for reading, then Markdown, CSV and LaTeX.

A table is kept twice: ``data`` (numbers, one column per quantity, for CSV) and ``sections``
(formatted cells such as ``99.12 ± 0.05 (n=2 of 3; 1 diverged)`` for reading).
"""

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from stnbench.io import atomic_write_text


@dataclass
class Table:
    name: str
    title: str
    notes: list[str] = field(default_factory=list)
    sections: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    data: pd.DataFrame = field(default_factory=pd.DataFrame)


# ---------------------------------------------------------------- cell formatting


def format_number(value: float | None, digits: int = 2) -> str:
    if value is None or math.isnan(value):
        return "—"
    return f"{value:,.{digits}f}"


def format_count(value: float | None) -> str:
    """Parameters, FLOPs: 1.54M, 38.59M, 2.10G."""
    if value is None or math.isnan(value):
        return "—"
    for factor, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.2f}{unit}"
    return f"{value:.0f}"


def format_pvalue(p: float) -> str:
    if math.isnan(p):
        return "—"
    return f"{p:.2g}" if p >= 1e-4 else "<1e-4"


def format_cell(cell: pd.Series, factor: float = 100.0, digits: int = 2) -> str:
    """A cell's mean ± std over seeds with its counts; never a number for a cell without one.

    ``(n=3)`` when every expected seed finished; ``(n=2 of 3; 1 diverged)`` otherwise (or
    ``1 set aside``: an out-of-date run not averaged in); ``3 diverged`` or ``missing`` when no
    seed finished.
    """
    n_ok, n_expected = int(cell["n_ok"]), int(cell["n_expected"])
    problems = [f"{int(cell[column])} {word}" for column, word in
                (("n_diverged", "diverged"), ("n_set_aside", "set aside"),
                 ("n_missing", "missing")) if cell[column]]
    if n_ok == 0:
        return ", ".join(problems) if problems else "missing"
    text = f"{cell['mean'] * factor:.{digits}f}"
    if n_ok > 1:
        text += f" ± {cell['std'] * factor:.{digits}f}"
    if n_ok == n_expected:
        return f"{text} (n={n_ok})"
    return f"{text} (n={n_ok} of {n_expected}; {', '.join(problems)})"


def to_markdown(table: Table) -> str:
    parts = [f"# {table.title}", ""]
    parts += [f"- {note}" for note in table.notes]
    for heading, frame in table.sections:
        parts += ["", f"## {heading}", "",
                  tabulate(frame, headers="keys", tablefmt="pipe", showindex=False,
                           disable_numparse=True)]
    return "\n".join(parts) + "\n"


def to_latex(table: Table) -> str:
    """Bare ``tabular`` blocks, to ``\\input`` inside the reader's own table environment; the
    title and notes ride along as comments so that they need no escaping."""
    parts = [f"% {table.title}"] + [f"% {note}" for note in table.notes]
    for heading, frame in table.sections:
        body = tabulate(frame, headers="keys", tablefmt="latex_booktabs", showindex=False,
                        disable_numparse=True)
        # tabulate escapes LaTeX's special characters but leaves these as Unicode.
        body = body.replace("±", r"$\pm$").replace("Δ", r"$\Delta$").replace("†", r"$\dagger$")
        parts += ["", f"% {heading}", body]
    return "\n".join(parts) + "\n"


def write_table(table: Table, out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    paths = [out_dir / f"{table.name}.{ext}" for ext in ("md", "csv", "tex")]
    atomic_write_text(paths[0], to_markdown(table))
    atomic_write_text(paths[1], table.data.to_csv(index=False))
    atomic_write_text(paths[2], to_latex(table))
    return paths
