"""`stnbench data gallery`: what the models are given, family by family and level by level."""

import argparse
from pathlib import Path

from stnbench.cli.common import add_data_dir_argument
from stnbench.datasets import DATASETS, load_dataset
from stnbench.distortions import FAMILIES
from stnbench.distortions.gallery import draw_gallery, gallery_rows
from stnbench.distortions.sequences import TASKS
from stnbench.errors import StnbenchError
from stnbench.paths import resolve_data_dir


def add_gallery_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "gallery",
        help="draw distorted test images per family and severity into a PNG",
        description="Draw the same test images under each distortion family and severity, "
        "one row each, at their true pixel sizes. Graded families get one row per severity; "
        "none, the paper's families (R, RTS, P, E) and cluttered have one level and one row.",
    )
    parser.add_argument("--dataset", required=True, choices=DATASETS)
    parser.add_argument(
        "--families", required=True,
        help=f"comma-separated, from: {', '.join((*FAMILIES, *TASKS))}",
    )
    parser.add_argument(
        "--severities", default="1", help="comma-separated levels in [0, 1] (default: 1)"
    )
    parser.add_argument("--samples", type=int, default=8, help="images per row (default: 8)")
    parser.add_argument("--seed", type=int, default=0, help="picks the images and the distortions")
    parser.add_argument("--size", type=int, default=None, help="GTSRB image size (default: 32)")
    add_data_dir_argument(parser)
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.set_defaults(func=run_gallery)


def _severities(text: str) -> list[float]:
    try:
        return [float(item) for item in text.split(",")]
    except ValueError:
        raise StnbenchError(f"--severities {text!r}: expected comma-separated numbers") from None


def run_gallery(args: argparse.Namespace) -> None:
    families = [name.strip() for name in args.families.split(",") if name.strip()]
    severities = _severities(args.severities)
    if args.samples < 1:
        raise StnbenchError(f"--samples {args.samples}: must be at least 1")
    gallery_rows(families, severities, args.dataset)
    data = load_dataset(args.dataset, resolve_data_dir(args.data_dir), size=args.size)
    draw_gallery(data, families, severities, Path(args.out), samples=args.samples, seed=args.seed)
    print(f"wrote {args.out}")
