"""What `stnbench train` costs over a bare training loop of the same model, on the CPU.

For each model, on the same data, threads and batch size:

- `stnbench train`: the command users run, in a subprocess, `--epochs` epochs on the first
  `--images` training images; its speed is the best epoch's images/s in the run's own record
  (training time only: neither start-up, data loading nor evaluation count).
- bare loop: this process, the same model from the zoo, batches drawn from the same uint8
  tensors in memory, the same distortion drawn per batch, forward, cross-entropy, backward,
  SGD step, and nothing else (no checks, no snapshots, no progress).

`--precision bf16` runs both in bf16 autocast with channels_last (what `stnbench train` does
at that precision); fp32 runs both without either.

The two alternate, `--repeats` times each, and the best of each is compared.

Usage: .venv/bin/python benchmarks/train_overhead.py [--data-dir data] [--models cnn ...]
    [--precision fp32|bf16] [--out FILE]
Writes results/benchmarks/train_overhead.json (fp32) or train_overhead_bf16.json and prints
images/s and the overhead.
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from train_command import THREADS, train_mnist_run

from stnbench import provenance
from stnbench.datasets import prepare_dataset
from stnbench.device import set_determinism, set_threads
from stnbench.engine.run_data import load_run_data
from stnbench.engine.spec import resolve_spec
from stnbench.io import atomic_write_json
from stnbench.models import create_model

# (model, distortion): the issue's examples, Table 1's RTS at 42 px and plain MNIST at 28.
CASES = {"tutorial-stn": "none", "cnn": "RTS", "st-cnn-affine": "RTS"}


def command_speed(model: str, distortion: str, args: argparse.Namespace) -> float:
    """Best epoch's images/s that `stnbench train` records for ``model``."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "run"
        train_mnist_run(out, model=model, distortion=distortion, seed=0,
                        precision=args.precision, data_dir=args.data_dir,
                        severity=None if distortion == "none" else 1.0, quiet=True,
                        fields={"limit_train": args.images, "limit_eval": 256,
                                "epochs": args.epochs})
        history = json.loads((out / "metrics.json").read_text())["history"]
        return max(epoch["images_per_s"] for epoch in history)


def bare_speed(model_name: str, distortion: str, args: argparse.Namespace) -> float:
    """images/s of the plainest loop that trains ``model_name`` on the run's own data."""
    fields = {"dataset": "mnist", "distortion": distortion, "model": model_name, "seed": 0,
              "limit_train": args.images, "limit_eval": 256, "data_dir": str(args.data_dir)}
    if distortion != "none":
        fields["severity"] = 1.0
    spec = resolve_spec(fields, None)
    inputs = load_run_data(spec, torch.device("cpu"))
    images, labels = inputs.train.images, inputs.train.labels
    torch.manual_seed(0)
    model = create_model(
        model_name, in_channels=1, input_size=inputs.input_size, num_classes=10,
        mean=inputs.data.mean, std=inputs.data.std,
    )  # fmt: skip
    bf16 = args.precision == "bf16"
    if bf16:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=spec.lr, momentum=spec.momentum)
    generator = torch.Generator().manual_seed(0)
    best = 0.0
    for _ in range(args.epochs):
        order = torch.randperm(len(labels), generator=generator)
        started = time.perf_counter()
        for start in range(0, len(labels), spec.batch_size):
            index = order[start : start + spec.batch_size]
            batch = images[index].float().div_(255)
            if inputs.batch_distortion is not None:
                batch = inputs.batch_distortion(batch, generator)
            if bf16:
                batch = batch.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(batch)
            loss = F.cross_entropy(logits.float(), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        best = max(best, len(labels) / (time.perf_counter() - started))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--models", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--images", type=int, default=10_000, help="training images per epoch")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per measurement")
    parser.add_argument("--repeats", type=int, default=2, help="measurements of each, alternated")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument(
        "--out", type=Path, help="default: results/benchmarks/train_overhead[_bf16].json"
    )
    args = parser.parse_args()
    suffix = "" if args.precision == "fp32" else f"_{args.precision}"
    args.out = args.out or Path(f"results/benchmarks/train_overhead{suffix}.json")
    prepare_dataset("mnist", args.data_dir)
    # The settings `stnbench train` runs with.
    set_determinism(torch.device("cpu"))
    set_threads(THREADS)
    rows = []
    for model in args.models:
        command, bare = [], []
        for _ in range(args.repeats):
            command.append(command_speed(model, CASES[model], args))
            bare.append(bare_speed(model, CASES[model], args))
        overhead = max(bare) / max(command) - 1
        print(
            f"{model} ({CASES[model]}): stnbench train {max(command):.0f} images/s, "
            f"bare loop {max(bare):.0f} images/s, overhead {overhead:+.1%}"
        )
        rows.append(
            {"model": model, "distortion": CASES[model], "command_images_per_s": command,
             "bare_images_per_s": bare, "overhead": overhead}
        )  # fmt: skip
    atomic_write_json(
        args.out,
        {
            "benchmark": "train_overhead",
            "images": args.images,
            "epochs": args.epochs,
            "precision": args.precision,
            "threads": THREADS,
            "rows": rows,
            # Other processes on the machine skew every figure: record how busy it was.
            "load_average_1min": os.getloadavg()[0],
            "machine": provenance.machine_info(torch.device("cpu")),
        },
    )


if __name__ == "__main__":
    main()
