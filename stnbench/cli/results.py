"""`stnbench results tables`: every table and plot, from the runs' and benchmarks' files alone."""

import argparse
from pathlib import Path

from stnbench.errors import StnbenchError


def register(subparsers: argparse._SubParsersAction, name: str, help_line: str) -> None:
    parser = subparsers.add_parser(name, help=help_line)
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    tables = actions.add_parser(
        "tables",
        help="write OUT/tables/*.{md,csv,tex} and OUT/plots/*.{png,pdf}",
        description="Read every metrics.json (with predictions.npz) under --runs and every "
        "benchmark JSON under --bench; write the tables and plots. Never trains.",
    )
    tables.add_argument("--runs", required=True, type=Path, help="folder searched for metrics.json")
    tables.add_argument("--bench", type=Path, default=None, help="folder of benchmark JSONs")
    tables.add_argument("--out", required=True, type=Path, help="output folder")
    tables.add_argument("--note", action="append", default=[],
                        help="a line added to every table's notes (repeatable)")
    tables.add_argument("--scale-note", action="append", default=[], metavar="SCALE=TEXT",
                        help="what a scale means, shown beside it in the notes (repeatable; the "
                        "workflow passes its preset's scale_note)")
    tables.set_defaults(func=run_tables)


def run_tables(args: argparse.Namespace) -> None:
    # Imported here so that `stnbench --help` does not pay for pandas, scipy and matplotlib.
    from stnbench.results.collect import collect
    from stnbench.results.plots import write_plots
    from stnbench.results.tables import write_tables

    results = collect(args.runs, args.bench)
    written = write_tables(results, args.out / "tables", args.note, _scale_meanings(args))
    written += write_plots(results, args.out / "plots")
    print(f"{len(results.runs)} runs, {len(results.bench)} benchmark rows: "
          f"wrote {len(written)} files under {args.out}")


def _scale_meanings(args: argparse.Namespace) -> dict[str, str]:
    meanings = {}
    for pair in args.scale_note:
        scale, separator, text = pair.partition("=")
        if not (scale and separator and text):
            raise StnbenchError(f"--scale-note {pair!r}: expected SCALE=TEXT, e.g. demo=short runs")
        meanings[scale] = text
    return meanings
