"""Training speed of `tutorial-stn` on MNIST: PyTorch's tutorial loop against stnbench's.

Both sides train the same architecture (stnbench's `tutorial-stn`) with SGD at batch 64 on
the same number of images (a full epoch of the 50,000-image training split by default), in
this one process, on the same threads, alternating:

- tutorial: the PyTorch tutorial's own loop, a DataLoader over torchvision's MNIST training
  set with ToTensor and Normalize((0.1307,), (0.3081,)), shuffle, num_workers=4; the
  workers' start is timed, as it is part of every epoch of that loop.
  The model gets mean 0 / std 1 so that its internal standardisation is the identity and the
  DataLoader's Normalize does the work, as in the tutorial.
- stnbench: `stnbench.engine.loop.train_epoch`, the loop `stnbench train` runs: the training
  split (50,000 images) as uint8 tensors in memory, batches by index.

Usage: .venv/bin/python benchmarks/tutorial_speed.py [--data-dir data] [--repeats 2] [--images N]
Writes results/benchmarks/tutorial_speed.json and prints images/s and the ratio.
"""

import argparse
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from stnbench import provenance
from stnbench.datasets import Split, load_dataset, prepare_dataset
from stnbench.device import set_determinism
from stnbench.engine.loop import train_epoch
from stnbench.io import atomic_write_json
from stnbench.models import create_model

BATCH_SIZE = 64
LR = 0.01
MODEL = "tutorial-stn"


def tutorial_epoch(data_dir: Path, images: int) -> float:
    """images/s of the tutorial's training loop over ``images`` images (workers' start included)."""
    torch.manual_seed(0)
    model = create_model(
        MODEL, in_channels=1, input_size=28, num_classes=10, mean=(0.0,), std=(1.0,)
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    dataset = datasets.MNIST(
        str(data_dir),
        train=True,
        download=False,
        transform=transforms.Compose(
            [transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))]
        ),
    )
    loader = DataLoader(dataset, batch_size=BATCH_SIZE, shuffle=True, num_workers=4)
    model.train()
    seen = 0
    started = time.perf_counter()
    for data, target in loader:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(data), target)
        loss.backward()
        optimizer.step()
        seen += len(target)
        if seen >= images:
            break
    return seen / (time.perf_counter() - started)


def stnbench_epoch(data_dir: Path, images: int, epoch: int) -> float:
    """images/s of `stnbench train`'s loop over ``images`` images, same architecture."""
    data = load_dataset("mnist", data_dir)
    train = Split(data.train.images[:images], data.train.labels[:images])
    torch.manual_seed(0)
    model = create_model(
        MODEL, in_channels=1, input_size=28, num_classes=10, mean=data.mean, std=data.std
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    stats = train_epoch(
        model,
        optimizer,
        scheduler,
        train,
        distortion=None,
        seed=0,
        epoch=epoch,
        batch_size=BATCH_SIZE,
        precision="fp32",
        channels_last=False,
    )
    return stats["images_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--repeats", type=int, default=2, help="measurements of each, alternated")
    parser.add_argument("--images", type=int, default=50_000, help="images per measurement")
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks/tutorial_speed.json"))
    args = parser.parse_args()
    prepare_dataset("mnist", args.data_dir)
    # The same settings `stnbench train` runs with.
    set_determinism(torch.device("cpu"))
    tutorial, ours = [], []
    for repeat in range(args.repeats):
        tutorial.append(tutorial_epoch(args.data_dir, args.images))
        ours.append(stnbench_epoch(args.data_dir, args.images, repeat + 1))
        print(
            f"repeat {repeat + 1}: tutorial {tutorial[-1]:.0f} images/s, "
            f"stnbench {ours[-1]:.0f} images/s"
        )
    ratio = max(ours) / max(tutorial)
    print(
        f"best of {args.repeats}: tutorial {max(tutorial):.0f} images/s, "
        f"stnbench {max(ours):.0f} images/s, ratio {ratio:.2f}x"
    )
    atomic_write_json(
        args.out,
        {
            "benchmark": "tutorial_speed",
            "model": MODEL,
            "batch_size": BATCH_SIZE,
            "tutorial_images_per_s": tutorial,
            "stnbench_images_per_s": ours,
            "ratio": ratio,
            "threads": torch.get_num_threads(),
            # Other processes on the machine skew every figure: record how busy it was.
            "load_average_1min": os.getloadavg()[0],
            "machine": provenance.machine_info(torch.device("cpu")),
        },
    )


if __name__ == "__main__":
    main()
