"""`stnbench data`: prepare the real datasets, draw galleries of their distortions, and carry
a prepared cache to another machine in parts."""

import argparse
import json
from pathlib import Path

from stnbench.cli.common import add_archives_argument, add_data_dir_argument
from stnbench.cli.gallery import add_gallery_parser
from stnbench.datasets import CONTRASTS, DATASETS, cache_parts, prepare_dataset
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

    pack = data_subparsers.add_parser(
        "pack",
        help="write a prepared cache as parts of bounded size",
        description="Write a prepared cache (images as PNG, lossless) as parts of at most "
        "--part-mib each, for a machine reached through transfers of bounded size; "
        "`stnbench data unpack` rebuilds it there.",
    )
    pack.add_argument("cache", help="the cache's name, its preparation: e.g. gtsrb-48px")
    pack.add_argument("--out", type=Path, required=True, help="folder of the parts")
    pack.add_argument("--part-mib", type=int, default=48, help="largest part (default: 48)")
    add_data_dir_argument(pack)
    pack.set_defaults(func=run_pack)

    unpack = data_subparsers.add_parser(
        "unpack",
        help="rebuild a cache from the parts `stnbench data pack` wrote",
        description="Rebuild a prepared cache from its parts, each checked against what "
        "was packed; a cache of the same content already there is kept.",
    )
    unpack.add_argument("parts", type=Path, help="folder of the parts")
    add_data_dir_argument(unpack)
    unpack.set_defaults(func=run_unpack)


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


def run_pack(args: argparse.Namespace) -> None:
    files = cache_parts.pack(
        resolve_data_dir(args.data_dir), args.cache, args.out, args.part_mib << 20
    )
    total = sum(path.stat().st_size for path in files)
    print(f"{args.cache}: {len(files) - 2} parts in {args.out}, {total / 2**20:.1f} MiB in all")


def run_unpack(args: argparse.Namespace) -> None:
    manifest = cache_parts.unpack(args.parts, resolve_data_dir(args.data_dir))
    print(f"{args.parts}: cache {manifest['tensors']} ready")
