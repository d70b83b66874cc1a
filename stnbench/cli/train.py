"""`stnbench train`: one cell of the grid (data set, distortion, severity, model, seed)."""

import argparse
from pathlib import Path

from stnbench.cli.common import (
    add_archives_argument,
    add_data_dir_argument,
    add_device_argument,
    add_threads_argument,
)
from stnbench.device import PRECISIONS

# Flags that map one to one onto run spec fields; None means "not given".
SPEC_FLAGS = (
    "dataset",
    "distortion",
    "severity",
    "model",
    "seed",
    "epochs",
    "batch_size",
    "lr",
    "device",
    "threads",
    "precision",
    "size",
    "data_dir",
    "archives",
    "scale",
)


def register(subparsers: argparse._SubParsersAction, name: str, help_line: str) -> None:
    parser = subparsers.add_parser(
        name,
        help=help_line,
        description=(
            "Train one run and write OUT/metrics.json, OUT/predictions.npz and "
            "OUT/checkpoint.pt. Settings come from the model's recipe, then --spec, then "
            "flags. An interrupted run resumes from its last epoch; a finished one is not "
            "retrained. Exit status 0 also for a run that diverged (see metrics.json)."
        ),
    )
    parser.add_argument("--dataset", help="mnist or gtsrb")
    parser.add_argument("--distortion", help="distortion family (see stnbench data gallery)")
    parser.add_argument("--severity", type=float,
                        help="distortion level, 0-1; 1 = the family's maximum (MNIST: the "
                        "paper's); distortion none takes none")
    parser.add_argument("--model", help="registered model name or path to a model YAML")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--out", required=True, type=Path, help="run folder")
    parser.add_argument("--epochs", type=int, help="default: the recipe's")
    parser.add_argument("--batch-size", type=int, help="default: the recipe's")
    parser.add_argument("--lr", type=float, help="base learning rate; default: the recipe's")
    add_device_argument(parser)
    parser.set_defaults(device=None)
    add_threads_argument(parser)
    parser.add_argument(
        "--precision", choices=PRECISIONS, help="bf16 autocast or fp32 (default: fp32)"
    )
    parser.add_argument("--size", type=int, help="image size (GTSRB: 32 or 48)")
    add_data_dir_argument(parser)
    add_archives_argument(parser)
    parser.add_argument("--scale", help="label recorded in the config (e.g. demo, full)")
    parser.add_argument(
        "--spec",
        type=Path,
        help="YAML run spec: any run field (recipe, momentum, schedule, "
        "localization_lr_multiplier, train_distortion, limit_train, ...); "
        "flags override it",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from stnbench.engine.loop import run
    from stnbench.engine.spec import check_model, resolve_spec
    from stnbench.io import ensure_writable_folder

    spec = resolve_spec({name: getattr(args, name) for name in SPEC_FLAGS}, args.spec)
    check_model(spec)
    ensure_writable_folder(args.out)
    run(spec, args.out)
    return 0
