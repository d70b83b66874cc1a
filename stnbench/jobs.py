"""What each workflow job is given beside its files: the device and threads it runs with, its
command-line arguments, and the check before a finished cell is trained again."""

import os
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from stnbench.pipeline import Grid, gtsrb_folder
from stnbench.preparation import ORIGINAL_CONTRAST, Prep


def job_device(config: Mapping[str, Any]) -> str:
    """``cuda`` or ``cpu``: where training and bench jobs run, fixed when the workflow starts
    so that jobs can request a GPU and bench results are filed by device."""
    if config["device"] != "auto":
        return config["device"]
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def check_finished_cell(metrics_path: Path, spec: Mapping[str, Any], device: str) -> None:
    """Refuses, before any job starts, a cell whose finished run is not the run its spec now
    describes (another schedule, model definition or device): Snakemake deletes a job's
    output before running it, so training the cell again would lose that run.

    Whether a finished cell is up to date is decided here, by content, rather than by file
    times: a fresh clone writes the committed spec.yaml files after their metrics.json.
    """
    if not metrics_path.exists():
        return
    # Imported here: the model registry loads torch, which `snakemake tables` does without.
    from stnbench.engine.spec import finished_run, resolve_spec

    finished_run(metrics_path, resolve_spec({**spec, "device": device}).config())


def prepare_arguments(config: Mapping[str, Any], prep: Prep) -> str:
    """``stnbench data prepare`` arguments for one preprocessing of one data set."""
    if prep.dataset == "mnist":
        return "mnist"
    archives = shlex.quote(str(gtsrb_folder(config)))
    args = [prep.dataset, "--archives", archives, "--size", str(prep.size)]
    args += ["--roi-crop"] if prep.roi_crop else []
    args += ["--contrast", prep.contrast] if prep.contrast != ORIGINAL_CONTRAST else []
    return " ".join(args)


def bench_arguments(config: Mapping[str, Any], bench: pd.Series) -> str:
    settings = config["bench"]
    args = [
        "--model", shlex.quote(bench["model_arg"]), "--dataset", bench["dataset"],
        "--size", str(bench["size"]), "--repeats", str(settings["repeats"]),
        "--batch-sizes", ",".join(map(str, settings["batch_sizes"])),
    ]
    return " ".join(args + [flag for flag in ("--amp", "--compile") if settings[flag[2:]]])


def gallery_arguments(grid: Grid, prep_id: str) -> str:
    """The distortions and severities a data set meets in the grid, four samples of each."""
    prep = grid.preps[prep_id]
    cells = grid.cells[(grid.cells["dataset"] == prep.dataset) & (grid.cells["prep"] == prep.label)]
    severities = sorted(set(cells["severity"]) | {0.0})
    args = [
        "--dataset", prep.dataset, "--families", ",".join(sorted(set(cells["distortion"]))),
        "--severities", ",".join(map(str, severities)), "--samples", "4",
    ]
    return " ".join(args + (["--size", str(prep.size)] if prep.dataset != "mnist" else []))


def bench_threads(config: Mapping[str, Any], cores: int) -> int:
    """A bench job's threads: the config's, else every core the workflow has, up to the
    machine's, so that it measures alone (Snakemake runs nothing beside a job with all cores)."""
    return config["bench"]["threads"] or min(cores, os.cpu_count() or cores)
