"""Cluttered MNIST sequences: the task of the recurrent spatial transformer paper.

Sønderby, Sønderby, Maaløe and Winther, "Recurrent Spatial Transformer Networks" (2015,
arXiv 1509.05329), classify "digits in cluttered MNIST sequences". The paper's text could not
be re-read here; the layout follows its public data generator (skaae/recurrent-spatial-
transformer-code, MNIST_SEQUENCE/create_mnist_sequence.py), read, not copied:

- 3 MNIST digits (28x28 frames, drawn with replacement) side by side on a 100x100 canvas;
  the row starts at a horizontal offset uniform in [0, 2 * ((100 - 84) // 2)) and at a
  vertical offset uniform in [0, 100); digit i is moved down by i * slope px, the slope
  uniform in [-14, 14) (half the digit side), and each digit is then clamped into the canvas;
- 8 distractors: 9x9 crops of random digits (crop corner uniform in [0, 28 - 9)), pasted at
  corners uniform in [0, 100 - 9), a later one over an earlier one; the digits are added on
  top and the sum clipped to the pixel maximum;
- 60,000 training, 10,000 validation and 10,000 test sequences, drawn from MNIST's training,
  validation (its last 10,000 training images) and test digits respectively;
- the label is the 3 digits from left to right.

This suite differs in one place, on purpose: the public code cuts every split's distractors
from training and validation digits (test sequences hold fragments of training digits);
here each split's distractors come from that split's own digits, so no split holds another's
pixels. Sequences are drawn in chunks from one CPU generator per (split, seed), so the same
bytes come out on any machine.
"""

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stnbench.datasets import DatasetTensors, Split
from stnbench.distortions.cache import SPLITS, split_digest
from stnbench.distortions.functional import crops, paste
from stnbench.errors import StnbenchError
from stnbench.io import atomic_write, load_tensors

# The `distortion` a run names to train on a sequence task instead of a distorted split.
TASK_NAME = "sequence"
CHUNK_SIZE = 1024
# Part of the cache key: raise it whenever the layout changes.
FORMAT_VERSION = 1


@dataclass(frozen=True)
class SequenceTask:
    """The layout of one sequence task, with the paper's values as defaults."""

    name: str = TASK_NAME
    dataset: str = "mnist"
    digits: int = 3
    canvas: int = 100
    distractors: int = 8
    distractor_size: int = 9
    counts: tuple[tuple[str, int], ...] = (("train", 60_000), ("val", 10_000), ("test", 10_000))
    # Read by the engine in place of a Distortion's fields.
    family: str = TASK_NAME
    severity: float = 1.0
    version: int = 1  # raise it when the task's definition changes, as a family's version

    def count(self, split_name: str) -> int:
        return dict(self.counts)[split_name]

    def output_size(self, input_size: int) -> int:
        if input_size * self.digits > self.canvas:
            raise StnbenchError(
                f"sequence task {self.name!r}: {self.digits} digits of {input_size} px do not "
                f"fit side by side on a {self.canvas} px canvas"
            )
        return self.canvas

    def is_identity(self, input_size: int) -> bool:
        return False


TASKS: dict[str, SequenceTask] = {TASK_NAME: SequenceTask()}


def is_sequence_task(name: str) -> bool:
    return name in TASKS


def get_task(name: str) -> SequenceTask:
    if name not in TASKS:
        raise StnbenchError(f"sequence task {name!r}: expected one of {', '.join(TASKS)}")
    return TASKS[name]


def split_seed(seed: int, split_name: str) -> int:
    """Independent streams per split: the same seed must not give the test sequences the
    training sequences' layouts."""
    return int(np.random.SeedSequence([seed, SPLITS.index(split_name)]).generate_state(1)[0])


def make_sequences(split: Split, task: SequenceTask, count: int, seed: int) -> Split:
    """``count`` sequences from ``split``'s digits: uint8 images [count, C, canvas, canvas]
    and int64 labels [count, digits], left to right."""
    images, labels = split.images, split.labels
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise StnbenchError(f"make_sequences: expected uint8 images [N, C, S, S], got "
                            f"{images.dtype} {tuple(images.shape)}")
    task.output_size(images.shape[-1])
    generator = torch.Generator().manual_seed(seed)
    parts = [_chunk(images, labels, task, min(CHUNK_SIZE, count - start), generator)
             for start in range(0, count, CHUNK_SIZE)]
    return Split(images=torch.cat([p.images for p in parts]),
                 labels=torch.cat([p.labels for p in parts]))


def _chunk(
    images: torch.Tensor, labels: torch.Tensor, task: SequenceTask, count: int,
    generator: torch.Generator,
) -> Split:
    size, canvas, digits = images.shape[-1], task.canvas, task.digits
    pool = len(labels)
    chosen = torch.randint(0, pool, (count, digits), generator=generator)
    margin = (canvas - digits * size) // 2
    left = torch.randint(0, max(2 * margin, 1), (count,), generator=generator)
    top = torch.randint(0, canvas, (count,), generator=generator)
    slope = torch.randint(-(size // 2), size // 2, (count,), generator=generator)
    piece = task.distractor_size
    source = torch.randint(0, pool, (task.distractors, count), generator=generator)
    crop_corner = torch.randint(0, size - piece, (2, task.distractors, count), generator=generator)
    place = torch.randint(0, canvas - piece, (2, task.distractors, count), generator=generator)

    device = images.device
    batch = torch.arange(count, device=device)
    clutter = images.new_zeros(count, images.shape[1], canvas, canvas)
    # One distractor per image and call, in drawing order, so that a later one overwrites an
    # earlier one where they overlap (no duplicate indices within a call).
    for k in range(task.distractors):
        patches = crops(images, source[k].to(device), crop_corner[0, k].to(device),
                        crop_corner[1, k].to(device), piece)
        paste(clutter, patches, batch, place[0, k].to(device), place[1, k].to(device),
              accumulate=False)
    row = images.new_zeros(clutter.shape)
    for i in range(digits):
        digit_top = (top + i * slope).clamp(0, canvas - size)
        paste(row, images[chosen[:, i].to(device)], batch, digit_top.to(device),
              (left + i * size).to(device), accumulate=False)
    output = (clutter.to(torch.int16) + row.to(torch.int16)).clamp_(max=255).to(torch.uint8)
    return Split(images=output, labels=labels[chosen.to(labels.device)])


def cache_path(data: DatasetTensors, split_name: str, task: SequenceTask, count: int,
               seed: int, cache_dir: Path) -> Path:
    split: Split = getattr(data, split_name)
    name = f"{task.name}-{count}-seed{seed}-v{FORMAT_VERSION}.pt"
    folder = f"{split_name}-{split_digest(split)[:24]}"
    return Path(cache_dir) / "sequences" / data.name / folder / name


def cached_sequence_split(
    data: DatasetTensors, split_name: str, task: SequenceTask, seed: int, cache_dir: Path,
    *, limit: int | None = None,
) -> Split:
    """The task's sequences of ``split_name`` (at most ``limit`` of them), read from
    ``cache_dir`` or generated from ``data``'s matching split and saved there.

    A limited split is drawn as a set of its own (the first sequences of the same stream are
    not the first of the full set): generating 60,000 100 px images for a short run is not
    worth its seconds and its 600 MB.
    """
    if split_name not in SPLITS:
        raise StnbenchError(f"split {split_name!r}: expected one of {', '.join(SPLITS)}")
    if data.name != task.dataset:
        raise StnbenchError(f"sequence task {task.name!r} is made of {task.dataset} digits, "
                            f"not {data.name}")
    count = task.count(split_name) if limit is None else min(limit, task.count(split_name))
    path = cache_path(data, split_name, task, count, seed, cache_dir)
    if path.is_file():
        # A file cut short is generated again: it is derived data.
        with contextlib.suppress(StnbenchError):
            stored = load_tensors(path, "sequence split", "it is generated again")
            if isinstance(stored, dict) and len(stored.get("labels", ())) == count:
                return Split(images=stored["images"], labels=stored["labels"])
    sequences = make_sequences(getattr(data, split_name), task, count,
                               split_seed(seed, split_name))
    atomic_write(path, lambda tmp: torch.save(
        {"images": sequences.images, "labels": sequences.labels}, tmp))
    return sequences
