"""Does bf16 autocast train as well as fp32? One Table 1 cell, both precisions, several seeds,
through `stnbench train` with the cpu preset's schedule (config/cpu.yaml: 2 epochs, momentum
0.9) or a longer one (`--epochs`: the step schedule keeps its shape), on the complete MNIST test
set.

For each seed the two runs share data, order, distortions and initial weights; they differ
only in `--precision` (bf16 also trains channels_last, as `stnbench train` does by default).
Reported per seed: validation accuracy of the selected epoch, test accuracy, images/s, and the
exact McNemar test between the two precisions on the test images; over the seeds, mean and
standard deviation and the paired t-test. The verdict that decides the CPU default
(stnbench/engine/spec.py) is whether the mean test accuracies differ by less than
`--tolerance` percentage points and no seed's McNemar p is below 0.01.

Usage: .venv/bin/python benchmarks/precision_accuracy.py [--model st-cnn-affine]
    [--distortion RTS] [--seeds 3] [--epochs 2] [--limit-train N] [--data-dir data] [--keep DIR]
    [--out FILE]
Writes results/benchmarks/precision_accuracy.json; each run folder is kept under --keep, named
as benchmarks/schedule_study.py names its runs, so that the two can share a folder.
"""

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from train_command import run_name, train_mnist_run

from stnbench import provenance
from stnbench.engine.predictions import PREDICTIONS_NAME, read_predictions
from stnbench.engine.record import METRICS_NAME, read_record
from stnbench.io import atomic_write_json
from stnbench.results.stats import mcnemar_exact, paired_t, summarize

PRECISIONS = ("fp32", "bf16")
SEVERITY = 1.0  # the paper's families at their one level
# config/cpu.yaml's train settings for Table 1.
CPU_PRESET = {"epochs": 2, "momentum": 0.9, "scale": "cpu"}


def train_fields(args: argparse.Namespace) -> dict:
    limits = {"limit_train": args.limit_train} if args.limit_train else {}
    return {**CPU_PRESET, "epochs": args.epochs, **limits}


def train(
    model: str, distortion: str, seed: int, precision: str, out: Path, args: argparse.Namespace
) -> None:
    train_mnist_run(out, model=model, distortion=distortion, seed=seed, precision=precision,
                    data_dir=args.data_dir, severity=SEVERITY, fields=train_fields(args))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="st-cnn-affine")
    parser.add_argument("--distortion", default="RTS")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=CPU_PRESET["epochs"],
                        help="run length; the step schedule is scaled to it")
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--limit-train", type=int, help="training images (a quick trial)")
    parser.add_argument("--tolerance", type=float, default=0.5, help="percentage points")
    parser.add_argument("--keep", type=Path, help="folder for the run folders (default: none)")
    parser.add_argument(
        "--out", type=Path, default=Path("results/benchmarks/precision_accuracy.json")
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        runs: dict[str, list[dict]] = {precision: [] for precision in PRECISIONS}
        correct: dict[str, list[np.ndarray]] = {precision: [] for precision in PRECISIONS}
        for seed in range(args.seeds):
            for precision in PRECISIONS:
                out = root / run_name(args.model, args.distortion, args.epochs, seed, precision)
                if not (out / METRICS_NAME).exists():
                    train(args.model, args.distortion, seed, precision, out, args)
                record = read_record(out / METRICS_NAME)
                test = read_predictions(out / PREDICTIONS_NAME)["test"]
                correct[precision].append(test.predicted == test.label)
                runs[precision].append(
                    {"seed": seed, "status": record.status,
                     "val_accuracy": 100 * record.val_accuracy,
                     "test_accuracy": 100 * record.test_accuracy,
                     "images_per_s": max(epoch.images_per_s for epoch in record.history),
                     "channels_last": record.config["channels_last"],
                     "cpu_flags": record.machine.cpu_flags}
                )  # fmt: skip
    tests = [mcnemar_exact(a, b) for a, b in zip(correct["fp32"], correct["bf16"], strict=True)]
    test_accuracy = {p: [run["test_accuracy"] for run in runs[p]] for p in PRECISIONS}
    summary = {p: summarize(test_accuracy[p]) for p in PRECISIONS}
    difference = summary["bf16"].mean - summary["fp32"].mean
    equal = abs(difference) < args.tolerance and all(test.pvalue >= 0.01 for test in tests)
    for p in PRECISIONS:
        speed = np.mean([run["images_per_s"] for run in runs[p]])
        print(f"{p}: test {summary[p].mean:.2f} ± {summary[p].std:.2f}%, {speed:.0f} images/s")
    print(f"bf16 - fp32: {difference:+.2f} pp; McNemar p per seed: "
          f"{', '.join(f'{test.pvalue:.3g}' for test in tests)}; "
          f"{'equal' if equal else 'not equal'} within {args.tolerance} pp")  # fmt: skip
    atomic_write_json(
        args.out,
        {
            "benchmark": "precision_accuracy",
            "model": args.model,
            "distortion": args.distortion,
            "severity": SEVERITY,
            "train": train_fields(args),
            "limit_train": args.limit_train,
            "runs": runs,
            "test_accuracy": {p: vars(summary[p]) for p in PRECISIONS},
            "bf16_minus_fp32_pp": difference,
            "mcnemar": [{"seed": s, **vars(test)} for s, test in enumerate(tests)],
            "paired_t_pvalue": paired_t(test_accuracy["fp32"], test_accuracy["bf16"]),
            "tolerance_pp": args.tolerance,
            "equal": equal,
            "load_average_1min": os.getloadavg()[0],
            "machine": provenance.machine_info(torch.device("cpu")),
        },
    )


if __name__ == "__main__":
    main()
