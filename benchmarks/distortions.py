"""Time to distort all 70,000 MNIST images (train, val and test) with each distortion family.

Each family runs at severity 1 (the paper's level) through `distort_split`, as the cached
test sets are made: float conversion, the distortion in fixed-size chunks and the
conversion back to uint8, on the CPU. The target is under 10 s each on a 2-core CPU. One
thread by default: on a machine whose cores are shared, two threads each wait for the other
and measure the contention more than the distortion. The best of --repeats runs counts; the
process's CPU time and the load average are recorded beside the wall time, so that a run on
a busy machine can be told from a slow distortion.

Usage: .venv/bin/python benchmarks/distortions.py [--data-dir data] [--threads 1] [--repeats 1]
Writes results/benchmarks/distortions.json and prints a table.
"""

import argparse
import os
import time
from pathlib import Path

import torch
from tabulate import tabulate

from stnbench import provenance
from stnbench.datasets import Split, load_dataset, prepare_dataset
from stnbench.distortions import FAMILIES, distort_split, get_distortion
from stnbench.distortions.distortion import CHUNK_SIZE
from stnbench.io import atomic_write_json
from stnbench.paths import resolve_data_dir

TARGET_S = 10.0
OUT = Path(__file__).resolve().parents[1] / "results" / "benchmarks" / "distortions.json"


def all_mnist(data_dir: Path) -> Split:
    prepare_dataset("mnist", data_dir)
    data = load_dataset("mnist", data_dir)
    splits = (data.train, data.val, data.test)
    return Split(
        images=torch.cat([split.images for split in splits]),
        labels=torch.cat([split.labels for split in splits]),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    mnist = all_mnist(resolve_data_dir(args.data_dir))
    count = len(mnist.labels)
    rows = []
    for family in FAMILIES:
        distortion = get_distortion(family, 1.0, dataset="mnist")
        warm_up = Split(images=mnist.images[:256], labels=mnist.labels[:256])
        distort_split(warm_up, distortion, seed=0)
        times, cpu_times = [], []
        load = os.getloadavg()[0]
        for repeat in range(args.repeats):
            started, cpu_started = time.perf_counter(), time.process_time()
            distorted = distort_split(mnist, distortion, seed=repeat)
            times.append(time.perf_counter() - started)
            cpu_times.append(time.process_time() - cpu_started)
        best = min(times)
        rows.append(
            {
                "family": family,
                "severity": 1.0,
                "output_size": int(distorted.images.shape[-1]),
                "seconds": best,
                "seconds_all": times,
                "cpu_seconds": cpu_times[times.index(best)],
                "load_average_1min_before": load,
                "images_per_s": count / best,
                "under_target": best < TARGET_S,
            }
        )
        print(f"{family}: {best:.2f} s", flush=True)

    atomic_write_json(
        args.out,
        {
            "benchmark": "distort all MNIST images with each family (distort_split, severity 1)",
            "images": count,
            "chunk_size": CHUNK_SIZE,
            "device": "cpu",
            "threads": args.threads,
            "repeats": args.repeats,
            "target_s": TARGET_S,
            "families": rows,
            "machine": provenance.machine_info(torch.device("cpu")),
        },
    )
    table = [
        [row["family"], f"{row['output_size']} px", f"{row['seconds']:.2f}",
         f"{row['cpu_seconds']:.2f}", f"{row['load_average_1min_before']:.1f}",
         f"{row['images_per_s']:,.0f}", "yes" if row["under_target"] else "NO"]
        for row in rows
    ]  # fmt: skip
    headers = ["family", "output", "seconds", "CPU s", "load", "images/s", f"< {TARGET_S:g} s"]
    print(tabulate(table, headers=headers))
    print(f"{count:,} images, {args.threads} threads, {provenance.cpu_model()}; wrote {args.out}")


if __name__ == "__main__":
    main()
