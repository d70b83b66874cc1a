"""Arguments shared by several subcommands, defined once so that they read the same everywhere."""

import argparse

from stnbench.device import DEVICE_CHOICES
from stnbench.paths import ARCHIVES_ENV, DATA_DIR_ENV


def add_data_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        default=None,
        help=f"data and cache folder (default: ${DATA_DIR_ENV}, else ./data)",
    )


def add_archives_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--archives",
        default=None,
        help=(
            "folder with the GTSRB archives or their extracted trees, or Kaggle's layout "
            f"(a folder or its zip) (default: ${ARCHIVES_ENV})"
        ),
    )


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES)


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
