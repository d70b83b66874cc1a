"""`stnbench models`: list the zoo, and describe a model's parameters and FLOPs."""

import argparse
import json

from tabulate import tabulate

from stnbench import models
from stnbench.dataset_registry import DATASETS
from stnbench.errors import StnbenchError
from stnbench.models.summary import write_zoo_table


def register(subparsers: argparse._SubParsersAction, name: str, help_line: str) -> None:
    parser = subparsers.add_parser(name, help=help_line)
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="registered models, their data sets and recipes")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(func=run_list)

    describe = actions.add_parser(
        "describe",
        help="parameters and forward FLOPs per image (FLOPs = 2 x multiply-adds)",
        description="Parameters and forward FLOPs per image of a model (a registered name or a "
        "YAML file). FLOPs follow torch.utils.flop_counter: 2 per multiply-add.",
    )
    describe.add_argument("name", nargs="?", help="model name or path to a model YAML")
    describe.add_argument("--dataset", choices=sorted(DATASETS))
    describe.add_argument("--size", type=int, default=None,
                          help="input size in px (default: the data set's first size)")
    describe.add_argument("--all", action="store_true",
                          help="every model on each of its data sets at every size")
    describe.add_argument("--out", default=None,
                          help="with --all: folder to write models.md and models.csv into")
    describe.add_argument("--json", action="store_true", help="print JSON")
    describe.set_defaults(func=run_describe)


def run_list(args: argparse.Namespace) -> None:
    infos = [models.model_info(name) for name in models.list_models()]
    if args.json:
        keys = ("name", "datasets", "recipe", "description")
        print(json.dumps([{k: info[k] for k in keys} for info in infos], indent=2))
        return
    rows = [[i["name"], ",".join(i["datasets"]), i["recipe"], i["description"]] for i in infos]
    print(tabulate(rows, headers=["model", "datasets", "recipe", "description"],
                   maxcolwidths=[None, None, None, 70]))


def run_describe(args: argparse.Namespace) -> None:
    if args.all:
        if args.name or args.dataset or args.size:
            raise StnbenchError("describe --all: give no model name, --dataset or --size")
        rows = models.describe_zoo()
        if args.out:
            for path in write_zoo_table(rows, args.out):
                print(f"wrote {path}")
    else:
        if not args.name or not args.dataset:
            raise StnbenchError("describe: give a model NAME and --dataset (or --all)")
        if args.out:
            raise StnbenchError("describe --out: only with --all")
        rows = [models.describe_model(args.name, args.dataset, args.size)]
    if args.json:
        print(json.dumps(rows if args.all else rows[0], indent=2))
    elif not args.out:
        print(tabulate(rows, headers="keys", intfmt=","))
