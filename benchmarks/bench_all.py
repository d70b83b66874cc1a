"""CPU cost of every zoo model: `stnbench bench` for each model, data set and image size.

Writes results/bench/cpu/<model>-<dataset>-<size>.json, one `stnbench bench` process after the
other: side by side they would time each other, and a fresh process per model keeps one
model's memory out of the next one's resident set size. A file already there is kept, so an
interrupted run picks up where it stopped (delete the folder to measure again).

Batch sizes are chosen so that the whole set takes well under an hour on 2 cores: MNIST models
at 1, 64 and 256; GTSRB models at 1 and 16 (a 48 px training step at batch 256 takes minutes
on 2 cores); the 25-column committee at 1 and 4, with its single column `idsia` also at 4 so
that the two are compared at the same batch size. GPU runs use `stnbench bench` directly with
1, 64, 256 (GTSRB: 1, 50, 256, 50 being Moodstocks' training batch); benchmarks/gpu_check.py
runs them.

Usage: .venv/bin/python benchmarks/bench_all.py [--threads 2] [--out results/bench/cpu] [--summary]
(--summary: print the folder's files as results/bench/README.md's table and bench nothing)
"""

import argparse
import subprocess
import sys
from pathlib import Path

from tabulate import tabulate

from stnbench.bench_file import bench_file_name, validate_bench
from stnbench.dataset_registry import DATASETS
from stnbench.errors import StnbenchError
from stnbench.models import list_models, model_info, model_input_shape
from stnbench.results.collect import read_json

REPO = Path(__file__).resolve().parents[1]
# Image sizes each data set's models are benchmarked at: MNIST's own, both GTSRB preparations.
SIZES = {"mnist": (28,), "gtsrb": (32, 48)}
BATCH_SIZES = {"mnist": "1,64,256", "gtsrb": "1,16"}
REPEATS = {"mnist": 10, "gtsrb": 5}
# Per-model exceptions: (batch sizes, sizes). The committee costs 25 columns.
MODEL_BATCH_SIZES = {"idsia": "1,4,16", "idsia-committee": "1,4"}
MODEL_SIZES = {"idsia-committee": (48, 32)}
# The committee last, so that an interrupted run has the most figures.
LAST = ("idsia-committee",)


# On a GPU every model is cheap enough for the usual batch sizes.
GPU_BATCH_SIZES = {"mnist": "1,64,256", "gtsrb": "1,50,256"}


def jobs(device: str = "cpu") -> list[list[str]]:
    """``stnbench bench`` arguments (without --out) for every model, data set and size."""
    planned = []
    for name in list_models():
        for dataset in model_info(name)["datasets"]:
            # On a GPU, GTSRB at the 48 px that both of its sources trained at.
            sizes = (48,) if device == "cuda" and dataset == "gtsrb" else SIZES[dataset]
            for size in MODEL_SIZES.get(name, sizes):
                assert size in DATASETS[dataset].input_sizes, (dataset, size)
                batch_sizes = (
                    GPU_BATCH_SIZES[dataset] if device == "cuda"
                    else MODEL_BATCH_SIZES.get(name, BATCH_SIZES[dataset])
                )
                planned.append([
                    "--model", name, "--dataset", dataset, "--size", str(size),
                    "--batch-sizes", batch_sizes, "--repeats", str(REPEATS[dataset]),
                    "--device", device,
                ])
    # MNIST first, then GTSRB by size: cheapest first.
    return sorted(planned, key=lambda job: (job[1] in LAST, job[3] != "mnist", int(job[5])))


def job_key(job: list[str]) -> tuple[str, str, int]:
    """(model, dataset, px) of a job's bench file: the size the model reads, which for the
    sequence models is their 100 px canvas whatever ``--size`` asks."""
    model, dataset, size = job[1], job[3], int(job[5])
    return model, dataset, model_input_shape(model, dataset, size)[-1]


def read_bench(path: Path) -> dict:
    """A bench file, checked against the bench schema; an error names the file."""
    report = read_json(path)
    try:
        validate_bench(report)
    except StnbenchError as error:
        raise StnbenchError(f"{path}: {error}") from error
    return report


def _images_per_s(phase: dict) -> str:
    rate = phase["images_per_s"]
    return f"{rate['median']:,.1f} [{rate['q1']:,.1f}-{rate['q3']:,.1f}]"


def summary(folder: Path) -> str:
    """A Markdown row per model, size and batch size of the bench files in ``folder``, in the
    order the jobs run."""
    rows = []
    order = {job_key(job): index for index, job in enumerate(jobs())}
    reports = [read_bench(path) for path in folder.glob("*.json")]
    reports.sort(key=lambda r: order.get((r["model"], r["dataset"], r["input_shape"][-1]), 1e9))
    for report in reports:
        for result in report["results"]:
            infer, train = result["inference"], result["train_step"]
            shares = (infer["cpu_share"], train["cpu_share"])
            rows.append([
                report["model"], report["input_shape"][-1], f"{report['params']:,}",
                f"{report['flops_per_image'] / 1e6:,.1f}", result["batch_size"],
                _images_per_s(infer), _images_per_s(train),
                f"{train['achieved_flops_per_s'] / 1e9:.2f}",
                f"{train['peak_memory_bytes'] / 2**20:,.0f}",
                f"{min(shares):.2f}-{max(shares):.2f}",
            ])  # fmt: skip
    headers = ["model", "px", "params", "fwd MFLOPs/img", "batch", "inference img/s [IQR]",
               "training img/s [IQR]", "train GFLOP/s", "train peak RSS MiB", "cpu share"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def bench_missing(folder: Path, threads: int) -> None:
    """``stnbench bench`` for every job whose file is not yet in ``folder``, one at a time."""
    stnbench = Path(sys.executable).with_name("stnbench")
    for job in jobs():
        out = folder / bench_file_name(*job_key(job))
        if out.exists():
            print(f"kept {out}", flush=True)
            continue
        command = [str(stnbench), "bench", *job, "--threads", str(threads), "--out", str(out)]
        print("$", " ".join(command[1:]), flush=True)
        subprocess.run(command, check=True, cwd=REPO)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "bench" / "cpu")
    parser.add_argument("--summary", action="store_true",
                        help="print the --out folder's files as a table; bench nothing")
    args = parser.parse_args()
    if not args.summary:
        bench_missing(args.out, args.threads)
    try:
        print(summary(args.out))
    except StnbenchError as error:
        parser.error(str(error))
    return 0


if __name__ == "__main__":
    sys.exit(main())
