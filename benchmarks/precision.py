"""Training throughput of a GTSRB model (default `moodstocks-2st` at 48 px): fp32 eager
against bf16 autocast with channels_last, through `stnbench train`'s own loop
(`train_epoch`), batch 50 as in the Moodstocks recipe.

Throughput does not depend on pixel values, so the images are random uint8 tensors of
GTSRB's shape (3xSIZExSIZE, 43 classes); accuracy at each precision is checked by training runs.

Usage: .venv/bin/python benchmarks/precision.py [--model M] [--size 32|48] [--images 1000]
    [--threads 2] [--out FILE]
Writes results/benchmarks/precision.json unless --out says otherwise.
"""

import argparse
import os
import time
from pathlib import Path

import torch

from stnbench import provenance
from stnbench.datasets import Split
from stnbench.device import set_determinism
from stnbench.engine.loop import train_epoch
from stnbench.io import atomic_write_json
from stnbench.models import create_model

CLASSES = 43
BATCH_SIZE = 50


def throughput(
    name: str, size: int, split: Split, precision: str, channels_last: bool
) -> float:
    torch.manual_seed(0)
    model = create_model(name, in_channels=3, input_size=size, num_classes=CLASSES)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    options = {
        "distortion": None,
        "seed": 0,
        "batch_size": BATCH_SIZE,
        "precision": precision,
        "channels_last": channels_last,
    }
    warmup = Split(split.images[:BATCH_SIZE], split.labels[:BATCH_SIZE])
    train_epoch(model, optimizer, scheduler, warmup, epoch=0, **options)
    started = time.perf_counter()
    train_epoch(model, optimizer, scheduler, split, epoch=1, **options)
    return len(split.labels) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="moodstocks-2st", help="a GTSRB zoo model")
    parser.add_argument("--size", type=int, default=48, help="image side in pixels")
    parser.add_argument("--images", type=int, default=1000, help="images per measurement")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks/precision.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    set_determinism(torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)
    split = Split(
        images=torch.randint(
            0, 256, (args.images, 3, args.size, args.size), dtype=torch.uint8, generator=generator
        ),
        labels=torch.randint(0, CLASSES, (args.images,), generator=generator),
    )
    results = {}
    for name, precision, channels_last in (
        ("fp32", "fp32", False),
        ("fp32_channels_last", "fp32", True),
        ("bf16_channels_last", "bf16", True),
    ):
        results[name] = throughput(args.model, args.size, split, precision, channels_last)
        print(f"{name}: {results[name]:.1f} images/s")
    ratio = results["bf16_channels_last"] / results["fp32"]
    print(f"bf16 + channels_last / fp32: {ratio:.2f}x")
    cpu_flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    atomic_write_json(
        args.out,
        {
            "benchmark": "precision",
            "model": args.model,
            "image_size": args.size,
            "batch_size": BATCH_SIZE,
            "images_per_s": results,
            "bf16_over_fp32": ratio,
            "cpu_has_avx512_bf16": "avx512_bf16" in cpu_flags,
            "cpu_has_amx_bf16": "amx_bf16" in cpu_flags,
            "threads": torch.get_num_threads(),
            # Other processes on the machine skew every figure: record how busy it was.
            "load_average_1min": os.getloadavg()[0],
            "machine": provenance.machine_info(torch.device("cpu")),
        },
    )


if __name__ == "__main__":
    main()
