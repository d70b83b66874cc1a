"""Validation splits: MNIST's fixed tail and GTSRB's track-aware, class-stratified split."""

import torch

from stnbench.errors import StnbenchError


def check_val_fraction(val_fraction: float) -> float:
    if not 0.0 <= val_fraction < 1.0:
        raise StnbenchError(f"val_fraction {val_fraction}: must be at least 0 and below 1")
    return float(val_fraction)


def track_split(
    labels: torch.Tensor, tracks: torch.Tensor, val_fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, val) putting ``val_fraction`` of each class's tracks, whole, in val.

    GTSRB's training images come in tracks of ~30 frames of one physical sign; splitting by
    image would put near-duplicates on both sides. ``tracks`` holds one id per image, unique
    across classes. Each class with at least two tracks gives ``round(fraction * tracks)``
    of them, and at least one, to val, drawn with ``seed``; the result does not depend on
    the images' order.
    """
    check_val_fraction(val_fraction)
    generator = torch.Generator().manual_seed(seed)
    val_tracks: list[torch.Tensor] = []
    if val_fraction > 0:
        for label in torch.unique(labels).tolist():
            class_tracks = torch.unique(tracks[labels == label])  # sorted
            if len(class_tracks) < 2:
                continue
            count = min(max(1, round(val_fraction * len(class_tracks))), len(class_tracks) - 1)
            order = torch.randperm(len(class_tracks), generator=generator)
            val_tracks.append(class_tracks[order[:count]])
    chosen = torch.cat(val_tracks) if val_tracks else torch.empty(0, dtype=tracks.dtype)
    is_val = torch.isin(tracks, chosen)
    return torch.nonzero(~is_val).flatten(), torch.nonzero(is_val).flatten()
