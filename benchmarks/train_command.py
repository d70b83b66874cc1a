"""One MNIST run through `stnbench train`, the command users run, for the benchmarks here
that measure what the command trains (precision_accuracy.py, schedule_study.py,
train_overhead.py): the run's fields in a YAML spec beside the run folder, the rest as flags.
"""

import subprocess
import sys
from pathlib import Path

import yaml

THREADS = 2


def run_name(
    model: str, distortion: str, epochs: int, seed: int, precision: str, device: str = "cpu"
) -> str:
    """One run folder's name, the same in every benchmark, so that two benchmarks given the
    same folder share the runs they both need; a GPU run is another run, and named so."""
    suffix = "" if device == "cpu" else f"-{device}"
    return f"{model}-{distortion}-{epochs}ep-seed{seed}-{precision}{suffix}"


def train_mnist_run(
    out: Path, *, model: str, distortion: str, seed: int, precision: str, data_dir: Path,
    fields: dict, severity: float | None = 1.0, quiet: bool = False, device: str = "cpu",
) -> None:
    """Train (or resume, or leave finished) the run in ``out``; ``fields``: run fields of its
    spec (epochs, momentum, limit_train, ...); ``severity`` None for a family without one."""
    spec = out.with_suffix(".yaml")
    spec.write_text(yaml.safe_dump(fields))
    command = [
        sys.executable, "-m", "stnbench", "train", "--dataset", "mnist",
        "--distortion", distortion, "--model", model, "--seed", str(seed), "--device", device,
        "--precision", precision, "--data-dir", str(data_dir), "--spec", str(spec),
        "--out", str(out),
    ]  # fmt: skip
    if device == "cpu":
        command += ["--threads", str(THREADS)]
    if severity is not None:
        command += ["--severity", str(severity)]
    if not quiet:
        print(" ".join(command[1:]), flush=True)
    subprocess.run(command, check=True, capture_output=quiet)
