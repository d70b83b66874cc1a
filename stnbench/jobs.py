"""What each workflow job is given beside its files: the device and threads it runs with, its
command-line arguments, and the check before a finished cell is trained again."""

import os
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from stnbench.errors import StnbenchError
from stnbench.pipeline import Grid, gtsrb_folder
from stnbench.preparation import ORIGINAL_CONTRAST, Prep


def job_device(config: Mapping[str, Any]) -> str:
    """``cuda`` or ``cpu``: where training and bench jobs run, fixed when the workflow starts
    so that jobs can request a GPU and bench results are filed by device."""
    if config["device"] != "auto":
        return config["device"]
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def check_finished_cell(
    metrics_path: Path,
    spec: Mapping[str, Any],
    device: str,
    grid_specs: Callable[[], Mapping[str, Mapping[str, Any]]] | None = None,
    list_path: Path | None = None,
) -> None:
    """Refuses, before any job starts, a cell whose finished run is not the run its spec now
    describes (another schedule, model definition or device): Snakemake deletes a job's
    output before running it, so training the cell again would lose that run.

    Whether a finished cell is up to date is decided here, by content, rather than by file
    times: a fresh clone writes the committed spec.yaml files after their metrics.json.

    When it is not, and ``grid_specs`` gives every cell's spec by cell name, the grid's other
    finished runs are compared too and ``list_path`` lists every one out of date with the first
    setting that differs: after a definition changes, the runs to move aside are found at once
    rather than one per attempt. Cells that are up to date are not compared with the rest, so
    a run targeted alone trains while others are out of date.
    """
    if not metrics_path.exists():
        return
    # Imported here: the model registry loads torch, which `snakemake tables` does without.
    from stnbench.engine.spec import OutOfDateRun, finished_run

    try:
        finished_run(metrics_path, _run_config(spec, device))
    except OutOfDateRun as error:
        if grid_specs is None or list_path is None:
            raise
        stale = out_of_date_runs(grid_specs(), metrics_path.parent.parent, device)
        if len(stale) < 2:
            raise
        list_path.parent.mkdir(parents=True, exist_ok=True)
        list_path.write_text("".join(f"{folder}\t{key}\n" for folder, key in stale))
        raise StnbenchError(
            f"{error}; the grid holds {len(stale)} such runs in all: {list_path} lists each "
            "with the first setting that differs"
        ) from None


def out_of_date_runs(
    specs: Mapping[str, Mapping[str, Any]], runs_dir: Path, device: str
) -> list[tuple[Path, str]]:
    """Every finished run under ``runs_dir`` of the cells in ``specs`` that is not the run its
    spec describes: its folder and the first setting (by name) that differs."""
    from stnbench.engine.spec import OutOfDateRun, finished_run

    stale = []
    for cell, spec in specs.items():
        metrics = runs_dir / cell / "metrics.json"
        try:
            finished_run(metrics, _run_config(spec, device))
        except OutOfDateRun as error:
            stale.append((metrics.parent, error.key))
    return stale


def _run_config(spec: Mapping[str, Any], device: str) -> dict[str, Any]:
    from stnbench.engine.spec import resolve_spec

    return resolve_spec({**spec, "device": device}).config()


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
