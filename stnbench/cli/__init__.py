"""The ``stnbench`` command; each subcommand module defines ``register(subparsers)``."""

import argparse
import sys
from collections.abc import Sequence

from stnbench import __version__
from stnbench.cli import bench, data, models, results, train, viz
from stnbench.errors import StnbenchError

SUBCOMMAND_MODULES = (data, models, train, bench, results, viz)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stnbench",
        description="Spatial Transformer Network benchmarks on distorted MNIST and GTSRB.",
    )
    version = f"stnbench {__version__}"
    parser.add_argument("--version", action="version", version=version)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except StnbenchError as error:
        print(f"stnbench: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stnbench: interrupted", file=sys.stderr)
        return 130
