"""`stnbench results tables`: every table and plot, from the runs' and benchmarks' files alone;
`stnbench results compare`: a run against another run or a committee of runs, image by image."""

import argparse
import dataclasses
import json
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
    compare = actions.add_parser(
        "compare",
        help="a run against another run or a committee, on the same images: accuracies and "
        "McNemar's exact test",
        description="Compare a finished run image by image on one split, from the runs' "
        "predictions.npz, with another run or, given several, with their committee (class "
        "probabilities averaged, as IDSIA's columns): each accuracy with its 95% "
        "Clopper-Pearson interval, the images only one side gets right, and McNemar's exact "
        "test (two-sided). Any runs tested on the same images: other models, lengths or "
        "presets.",
    )
    compare.add_argument("first", type=Path, help="a run folder (holding predictions.npz)")
    compare.add_argument("second", type=Path, nargs="+",
                         help="another run folder, or several: their committee")
    compare.add_argument("--split", choices=("test", "val"), default="test",
                         help="test (default), or val: the selected epoch's validation split")
    compare.add_argument("--json", action="store_true", help="print JSON instead of text")
    compare.set_defaults(func=run_compare)


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


def run_compare(args: argparse.Namespace) -> None:
    from stnbench.results.compare import compare_runs

    pair = compare_runs(args.first, args.second, args.split)
    if args.json:
        print(json.dumps({"first": str(args.first), "second": [str(run) for run in args.second],
                          **dataclasses.asdict(pair)}, indent=2))
        return
    print(f"{pair.split} split: {pair.images:,} images, the same labels in every run")
    sides = (str(args.first), str(args.second[0]) if pair.second_columns == 1 else
             f"committee of {pair.second_columns} runs (class probabilities averaged):\n"
             + "\n".join(f"       {run}" for run in args.second))
    for mark, side, accuracy, (low, high) in zip(
        "AB", sides, pair.accuracy, pair.interval, strict=True
    ):
        print(f"  {mark}  {100 * accuracy:.2f}% (95% CI {100 * low:.2f}-{100 * high:.2f})  {side}")
    test = pair.mcnemar
    print(f"right by A only: {test.b:,}, by B only: {test.c:,}; "
          f"McNemar's exact test, two-sided: p = {test.pvalue:.3g}")


def _scale_meanings(args: argparse.Namespace) -> dict[str, str]:
    meanings = {}
    for pair in args.scale_note:
        scale, separator, text = pair.partition("=")
        if not (scale and separator and text):
            raise StnbenchError(f"--scale-note {pair!r}: expected SCALE=TEXT, e.g. demo=short runs")
        meanings[scale] = text
    return meanings
