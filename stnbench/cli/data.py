"""`stnbench data`: not yet written."""

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="(not yet available)")
    parser.set_defaults(func=lambda args: parser.error("not yet available"))
