"""Train a preset's runs on a GPU machine that has no Snakemake, within a time budget.

The workflow writes the runs' specs here (`snakemake results/runs/<cell>/spec.yaml
--configfile config/config.yaml`, committed); on the GPU machine this script trains each spec
in --runs that has no metrics.json yet with `stnbench train --device cuda`, one after another,
the pairs that a table compares first (every model of a seed before the next seed, in the order
of --models). A run stopped at the budget resumes from its last epoch's checkpoint at the next
call, while the machine is kept. The finished runs (metrics.json, predictions.npz) and their
logs (logs/gpu/train/) come back as one tar, the runs under --archive-as: unpacked in the
repository's root here (`tar -xzf gpu_runs.tar.gz`), the workflow takes them as finished runs
(`make gpu-train`, docs/development.md).

Usage: python3 benchmarks/gpu_train.py --runs DIR [--archive-as results/runs] [--models a,b]
    [--minutes 8] [--threads 8] [--data-dir data] [--device cuda] --out $OUT/gpu_runs.tar.gz
"""

import argparse
import sys
import tarfile
import time
from pathlib import Path

import yaml
from gpu_check import run
from tabulate import tabulate

from stnbench.engine.predictions import PREDICTIONS_NAME
from stnbench.engine.record import METRICS_NAME, read_record

LOGS = Path("logs") / "gpu" / "train"


def ordered_specs(runs: Path, models: list[str]) -> list[Path]:
    """Spec files, by seed, then by the model's place in ``models`` (others after, by name)."""
    def key(path: Path) -> tuple:
        spec = yaml.safe_load(path.read_text())
        rank = models.index(spec["model"]) if spec["model"] in models else len(models)
        return spec["seed"], rank, spec["model"], str(path)

    return sorted(runs.glob("*/spec.yaml"), key=key)


def train(spec: Path, args: argparse.Namespace, deadline: float) -> int:
    folder = spec.parent
    log = LOGS.resolve() / f"{folder.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "stnbench", "train", "--spec", str(spec.resolve()),
               "--out", str(folder.resolve()), "--device", args.device, "--threads",
               str(args.threads), "--data-dir", str(args.data_dir.resolve())]
    with log.open("a") as stream:
        return run(command, deadline, stream=stream)


def summary(finished: list[Path]) -> str:
    rows = []
    for folder in finished:
        record = read_record(folder / METRICS_NAME)
        test = record.test_accuracy
        rows.append([folder.name.split("model~")[-1], record.status,
                     "" if test is None else f"{100 * test:.2f}", f"{record.wall_s / 60:.1f}"])
    return tabulate(rows, headers=["run", "status", "test acc %", "minutes"],
                    disable_numparse=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, required=True,
                        help="folder of run folders, relative to this one")
    parser.add_argument("--models", default="", help="training order within a seed (a,b,c)")
    parser.add_argument("--minutes", type=float, default=8.0, help="time budget (default: 8)")
    parser.add_argument("--threads", type=int, default=8, help="CPU threads a run uses")
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--device", default="cuda", help="cuda (default), or cpu for a trial")
    parser.add_argument("--out", type=Path, required=True, help="the tar of finished runs")
    parser.add_argument("--archive-as", type=Path, default=None,
                        help="the runs' folder as the tar names it (default: --runs)")
    args = parser.parse_args()
    args.archive_as = args.archive_as or args.runs
    deadline = time.monotonic() + 60 * args.minutes
    failed = False
    for spec in ordered_specs(args.runs, [m for m in args.models.split(",") if m]):
        if (spec.parent / METRICS_NAME).exists():
            continue
        if time.monotonic() > deadline:
            print("gpu-train: the time budget ran out; call it again for the runs left")
            break
        failed |= train(spec, args, deadline) != 0
    finished = [spec.parent for spec in ordered_specs(args.runs, [])
                if (spec.parent / METRICS_NAME).exists()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(args.out, "w:gz") as tar:
        for folder in finished:
            for name in (METRICS_NAME, PREDICTIONS_NAME):
                if (folder / name).exists():
                    tar.add(folder / name, arcname=str(args.archive_as / folder.name / name))
            log = LOGS / f"{folder.name}.log"
            if log.exists():
                tar.add(log, arcname=str(log))
    print(f"\n{len(finished)} finished runs in {args.out}\n{summary(finished)}")
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
