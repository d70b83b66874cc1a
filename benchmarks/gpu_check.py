"""The checks a short loan of a GPU machine is for, in one command well under 8 minutes:
the CUDA tests, the zoo's cost on the GPU into results/bench/<gpu>/, and an epoch of each GTSRB
model at 48 px, then a summary.

An epoch is timed from `stnbench bench`'s training step at Moodstocks' batch of 50 on random
48 px images (35,219 training images an epoch after the track-held-out validation split): the
GPU machine carries no GTSRB, and the step, not the data held on the device, is what costs.
Zoo benches already present are kept, so a second call after a cut-short first one measures
only what is missing. Usage (see the Makefile's gpu-check): python3 benchmarks/gpu_check.py
"""

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import TextIO

from bench_all import job_key, jobs, read_bench
from tabulate import tabulate

from stnbench.bench_file import bench_file_name
from stnbench.errors import StnbenchError

REPO = Path(__file__).resolve().parents[1]

GTSRB_TRAIN_IMAGES = 35_219
EPOCH_BATCH = 50


def gpu_slug() -> str:
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("gpu-check: no CUDA device here; run it on the GPU machine")
    return re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name().lower()).strip("-")


def run(command: list[str], deadline: float, stream: TextIO | None = None) -> int:
    """Runs ``command`` in the repository, its output to ``stream`` (default: this one's), and
    stops it at ``deadline``."""
    print("$", " ".join(command), flush=True)
    left = max(1.0, deadline - time.monotonic())
    try:
        return subprocess.run(command, cwd=REPO, timeout=left, stdout=stream,
                              stderr=stream).returncode
    except subprocess.TimeoutExpired:
        print(f"stopped at the time budget: {' '.join(command)}", flush=True)
        return 124


def cuda_test_modules() -> list[str]:
    # The GPU machine's image has no snakemake, which some test modules import: collecting
    # every module would stop pytest before any CUDA test ran, so only those with one are named.
    return sorted(
        str(path.relative_to(REPO)) for path in (REPO / "tests").glob("test_*.py")
        if "pytest.mark.cuda" in path.read_text()
    )


def summary(out: Path) -> str:
    """A row per bench file in ``out`` (a model at one size and precision): its cost at its
    largest batch, and for GTSRB the epoch that its training step at Moodstocks' batch implies."""
    rows = []
    for path in sorted(out.glob("*.json")):
        report = read_bench(path)
        by_batch = {row["batch_size"]: row for row in report["results"]}
        train = {b: r["train_step"]["images_per_s"]["median"] for b, r in by_batch.items()}
        largest = max(by_batch)
        epoch = (
            f"{GTSRB_TRAIN_IMAGES / train[EPOCH_BATCH]:.0f}"
            if report["dataset"] == "gtsrb" and EPOCH_BATCH in train else ""
        )
        rows.append([
            report["model"], report["dataset"], report["input_shape"][-1],
            "bf16" if report["autocast"] else "fp32", f"{report['params']:,}",
            f"{by_batch[largest]['inference']['images_per_s']['median']:,.0f} @{largest}",
            f"{train[largest]:,.0f} @{largest}", epoch,
        ])
    headers = ["model", "data", "px", "precision", "params", "inference images/s",
               "train images/s", f"epoch s (batch {EPOCH_BATCH})"]
    return tabulate(rows, headers=headers, disable_numparse=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=7.5, help="time budget (default: 7.5)")
    parser.add_argument("--amp", action="store_true", help="bench in bf16 autocast")
    args = parser.parse_args()
    deadline = time.monotonic() + 60 * args.minutes
    out = REPO / "results" / "bench" / gpu_slug()
    failed = run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider",
                  *cuda_test_modules()], deadline) != 0
    stnbench = [sys.executable, "-m", "stnbench", "bench"]
    for job in jobs(device="cuda"):
        target = out / bench_file_name(*job_key(job), "bf16" if args.amp else "fp32")
        if target.exists() or time.monotonic() > deadline:
            continue
        amp = ["--amp", "--channels-last"] if args.amp else []
        failed |= run([*stnbench, *job, *amp, "--out", str(target)], deadline) != 0
    try:
        table = summary(out)
    except StnbenchError as error:
        print(f"gpu-check: {error}")
        return 1
    print(f"\n{gpu_slug()}: zoo benches in {out.relative_to(REPO)}\n{table}")
    if time.monotonic() > deadline:
        print("gpu-check: the time budget ran out; run it again for what is missing")
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
