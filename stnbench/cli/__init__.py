"""The ``stnbench`` command; each subcommand module defines ``register(subparsers)``.

Only the module of the command being run is imported: the others cost torch, torchvision and
matplotlib at start-up (about 5 s), which ``stnbench --help`` and ``stnbench train --help``
should not pay.
"""

import argparse
import importlib
import sys
from collections.abc import Sequence

from stnbench import __version__
from stnbench.errors import StnbenchError

# name: (module, the one line that `stnbench --help` shows for it)
COMMANDS = {
    "data": ("stnbench.cli.data", "prepare datasets; draw distortion galleries"),
    "models": ("stnbench.cli.models", "list and describe the model zoo"),
    "train": (
        "stnbench.cli.train",
        "train one model on one distorted data set, select on validation, test once",
    ),
    "bench": ("stnbench.cli.bench", "measure a model's inference and training cost"),
    "results": ("stnbench.cli.results", "tables and plots from finished runs"),
    "viz": ("stnbench.cli.viz", "pictures of a trained run's spatial transformers"),
}
# What a usage error exits with (argparse's convention); an error found at run time exits 1.
RUNTIME_ERROR = 1


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser, with the full arguments of the command named in ``argv`` (every command's
    when ``argv`` is None) and a one-line entry for each of the others."""
    parser = argparse.ArgumentParser(
        prog="stnbench",
        description="Spatial Transformer Network benchmarks on distorted MNIST and GTSRB.",
    )
    version = f"stnbench {__version__}"
    parser.add_argument("--version", action="version", version=version)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = None if argv is None else next((a for a in argv if not a.startswith("-")), "")
    for name, (module, help_line) in COMMANDS.items():
        if chosen is None or chosen == name:
            importlib.import_module(module).register(subparsers, name, help_line)
        else:
            subparsers.add_parser(name, help=help_line)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    try:
        return args.func(args) or 0
    except StnbenchError as error:
        print(f"stnbench: error: {error}", file=sys.stderr)
        return RUNTIME_ERROR
    except KeyboardInterrupt:
        print("stnbench: interrupted", file=sys.stderr)
        return 130
