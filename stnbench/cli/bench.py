"""`stnbench bench`: not yet written."""

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="(not yet available)")
    parser.set_defaults(func=lambda args: parser.error("not yet available"))
