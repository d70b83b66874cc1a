"""`stnbench viz`: pictures of what a finished run's spatial transformers do."""

import argparse
from pathlib import Path

from stnbench.cli.common import add_data_dir_argument


def register(subparsers: argparse._SubParsersAction, name: str, help_line: str) -> None:
    parser = subparsers.add_parser(
        name,
        help=help_line,
        description="Draw, for each spatial transformer of a finished run, the region it samples "
        "on clean and distorted test images beside its output (FILE), and an animated GIF of one "
        "test image under growing distortion (FILE's stem + '-moving.gif'), and one of a fixed "
        "validation batch over training (FILE's stem + '-evolution.gif').",
    )
    parser.add_argument("--run", required=True, type=Path,
                        help="run folder with metrics.json, checkpoint.pt and evolution.npz")
    parser.add_argument("--out", required=True, type=Path, help="picture to write (.png or .pdf)")
    add_data_dir_argument(parser)
    parser.set_defaults(func=run_viz)


def run_viz(args: argparse.Namespace) -> None:
    # Imported here so that `stnbench --help` does not pay for matplotlib.
    from stnbench.results.viz import write_viz

    for path in write_viz(args.run, args.out, args.data_dir):
        print(path)
