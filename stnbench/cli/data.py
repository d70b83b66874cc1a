"""`stnbench data`: prepare the real datasets (and draw galleries of their distortions)."""

import argparse
import json

from stnbench.cli.common import add_archives_argument, add_data_dir_argument
from stnbench.cli.gallery import add_gallery_parser
from stnbench.datasets import CONTRASTS, DATASETS, prepare_dataset
from stnbench.paths import resolve_archives, resolve_data_dir
from stnbench.preparation import ORIGINAL_CONTRAST


def register(subparsers: argparse._SubParsersAction, name: str, help_line: str) -> None:
    parser = subparsers.add_parser(name, help=help_line)
    data_subparsers = parser.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    prepare = data_subparsers.add_parser(
        "prepare",
        help="obtain a dataset and cache it as tensors",
        description="Obtain MNIST (offline if need be) or read GTSRB from its archives, and "
        "cache them as uint8 tensors that every later command loads.",
    )
    prepare.add_argument("dataset", choices=DATASETS)
    add_data_dir_argument(prepare)
    add_archives_argument(prepare)
    prepare.add_argument(
        "--size", type=int, default=None, help="GTSRB square image size in pixels (default: 32)"
    )
    prepare.add_argument(
        "--roi-crop", action="store_true", help="GTSRB: crop each image to its annotated sign first"
    )
    prepare.add_argument(
        "--contrast",
        choices=CONTRASTS,
        default=ORIGINAL_CONTRAST,
        help="GTSRB: normalise each image's contrast after resizing, as Ciresan et al. 2012 did "
        "(imadjust, histeq, adapthisteq, conorm; default: original)",
    )
    prepare.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    prepare.set_defaults(func=run_prepare)

    add_gallery_parser(data_subparsers)


def run_prepare(args: argparse.Namespace) -> None:
    summary = prepare_dataset(
        args.dataset,
        resolve_data_dir(args.data_dir),
        archives=resolve_archives(args.archives),
        size=args.size,
        roi_crop=args.roi_crop,
        contrast=args.contrast,
    )
    if args.json:
        print(json.dumps(summary, sort_keys=True))
        return
    splits = summary["splits"]
    print(f"{summary['dataset']} ready: {summary['cache']}")
    print(
        f"  {summary['image_size']} px, {summary['classes']} classes; train {splits['train']:,}, "
        f"val {splits['val']:,}, test {splits['test']:,} ({summary['test_set']['note']})"
    )
