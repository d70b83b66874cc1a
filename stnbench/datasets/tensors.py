"""The in-memory form every dataset takes: uint8 image tensors and int64 labels per split."""

from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # uint8 [N, C, H, W]
    labels: torch.Tensor  # int64 [N]

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class DatasetTensors:
    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    channels: int
    image_size: int
    mean: tuple[float, ...]  # per channel, of the train split, on [0, 1]
    std: tuple[float, ...]
    info: dict = field(default_factory=dict)  # JSON-ready provenance


def pixel_moments(images: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """int64 [N, 2, C]: per image and channel, the sum of the uint8 values and of their squares.

    Stored beside the images, they give any split's exact mean and std in microseconds,
    where recomputing from the pixels would take seconds at every load.
    """
    parts = []
    for block in images.split(chunk):
        values = block.to(torch.int64)
        parts.append(torch.stack([values.sum(dim=(2, 3)), (values * values).sum(dim=(2, 3))], 1))
    return torch.cat(parts) if parts else torch.zeros(0, 2, images.shape[1], dtype=torch.int64)


def channel_stats(
    moments: torch.Tensor, pixels_per_image: int
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std on [0, 1] of the images whose ``pixel_moments`` are given."""
    totals = moments.sum(dim=0).to(torch.float64)
    count = moments.shape[0] * pixels_per_image
    mean = totals[0] / count / 255.0
    variance = totals[1] / count / 255.0**2 - mean**2
    return tuple(mean.tolist()), tuple(variance.clamp(min=0).sqrt().tolist())
