"""Cluttered MNIST sequences, the task: digits placed as labelled, drawn from the matching
MNIST split, cached, deterministic, and drawn in the gallery; on real MNIST."""

import dataclasses
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import torch

from stnbench.datasets import DatasetTensors, Split
from stnbench.distortions.gallery import PIXELS_PER_PIXEL, draw_gallery
from stnbench.distortions.sequences import TASKS, cached_sequence_split, make_sequences
from stnbench.errors import StnbenchError

TASK = TASKS["sequence"]
SIZE = 28


def windows(image: torch.Tensor) -> torch.Tensor:
    """[positions, 28, 28]: every 28x28 window of a [1, H, W] image, row-major by corner."""
    return image[0].unfold(0, SIZE, 1).unfold(1, SIZE, 1).reshape(-1, SIZE, SIZE)


def corner(index: int, canvas: int) -> tuple[int, int]:
    return divmod(index, canvas - SIZE + 1)


def one_per_class(split: Split) -> Split:
    """The first image of each digit, labelled by its digit: a split whose every image names
    its class, so that a sequence's digits can be looked up by their pixels."""
    first = [int(torch.nonzero(split.labels == digit)[0]) for digit in range(10)]
    return Split(images=split.images[first], labels=split.labels[first])


def test_same_seed_same_bytes_other_seed_other_sequences(mnist: DatasetTensors) -> None:
    first = make_sequences(mnist.test, TASK, 300, seed=5)
    again = make_sequences(mnist.test, TASK, 300, seed=5)
    other = make_sequences(mnist.test, TASK, 300, seed=6)
    assert first.images.shape == (300, 1, 100, 100) and first.images.dtype == torch.uint8
    assert first.labels.shape == (300, 3) and first.labels.dtype == torch.int64
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    assert not torch.equal(first.images, other.images)


def test_each_label_is_the_digit_placed_at_its_position_left_to_right(
    mnist: DatasetTensors,
) -> None:
    """Without distractors every digit appears whole, pixel for pixel, side by side 28 px
    apart, in the order of its label; with them, every digit is still there under the
    clutter (the clutter only adds ink) and ink lies outside the three digits."""
    digits = one_per_class(mnist.test)
    bare_task = dataclasses.replace(TASK, distractors=0)
    bare = make_sequences(digits, bare_task, 40, seed=1)
    cluttered = make_sequences(digits, TASK, 40, seed=1)
    assert torch.equal(bare.labels, cluttered.labels)
    slopes = set()
    for index in range(40):
        bare_windows = windows(bare.images[index])
        cluttered_windows = windows(cluttered.images[index])
        found = []
        for label in bare.labels[index].tolist():
            exact = (bare_windows == digits.images[label, 0]).flatten(1).all(dim=1)
            found.append({corner(int(i), 100) for i in torch.nonzero(exact).flatten()})
        # The row's first digit starts at some left edge; the others follow it 28 px apart.
        rows = [
            [next((c for c in found[p] if c[1] == left + p * SIZE), None) for p in range(3)]
            for _, left in found[0]
        ]
        corners = next(row for row in rows if None not in row)
        covered = torch.zeros(100, 100, dtype=torch.bool)
        for (top, left), label in zip(corners, bare.labels[index].tolist(), strict=True):
            covered[top : top + SIZE, left : left + SIZE] = True
            template = digits.images[label, 0]
            assert (cluttered_windows[top * (100 - SIZE + 1) + left] >= template).all()
        assert 0 <= corners[0][1] < 2 * ((100 - 3 * SIZE) // 2)
        slopes.add(corners[1][0] - corners[0][0])
        assert (bare.images[index, 0][~covered] == 0).all()
    assert len(slopes) > 3  # rows run at several slopes
    outside = cluttered.images[:, 0] > bare.images[:, 0]
    assert outside.any(dim=(1, 2)).float().mean() > 0.9  # nearly every canvas has clutter


def test_each_split_is_made_of_its_own_mnist_split(mnist: DatasetTensors, tmp_path: Path) -> None:
    bare_task = dataclasses.replace(TASK, distractors=0)
    sequences = cached_sequence_split(mnist, "test", bare_task, 0, tmp_path, limit=20)
    test_digits = {image.numpy().tobytes() for image in mnist.test.images[:, 0]}
    train_digits = {image.numpy().tobytes() for image in mnist.train.images[:, 0]}
    for image in sequences.images:
        ink = windows(image)
        found = [w for w in ink if w.numpy().tobytes() in test_digits]
        assert len(found) >= 3
        assert not any(w.numpy().tobytes() in train_digits for w in found)
    assert sequences.labels.shape == (20, 3)


def test_cached_split_reads_back_the_same_bytes_and_limits_are_their_own_sets(
    mnist: DatasetTensors, tmp_path: Path
) -> None:
    written = cached_sequence_split(mnist, "val", TASK, 3, tmp_path, limit=50)
    files = list((tmp_path / "sequences" / "mnist").rglob("*.pt"))
    assert len(files) == 1
    read = cached_sequence_split(mnist, "val", TASK, 3, tmp_path, limit=50)
    assert torch.equal(written.images, read.images) and torch.equal(written.labels, read.labels)
    # Validation and test draw from different streams even with the same seed.
    test = cached_sequence_split(mnist, "test", TASK, 3, tmp_path, limit=50)
    assert not torch.equal(written.images, test.images)
    with pytest.raises(StnbenchError, match="split 'bogus'"):
        cached_sequence_split(mnist, "bogus", TASK, 3, tmp_path)


def test_gallery_draws_a_row_of_sequences(mnist: DatasetTensors, tmp_path: Path) -> None:
    out = tmp_path / "gallery.png"
    draw_gallery(mnist, ["none", "sequence"], [1.0], out, samples=3)
    height, width = plt.imread(out).shape[:2]
    # Rows of 28 and 100 px at PIXELS_PER_PIXEL screen pixels each, three 100 px canvases wide.
    assert height >= (28 + 100) * PIXELS_PER_PIXEL
    assert width >= 3 * 100 * PIXELS_PER_PIXEL
