"""Galleries: the same test images under each family and severity, at their true pixel sizes."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from stnbench.datasets import DatasetTensors
from stnbench.distortions.distortion import GRADED_FAMILIES, Distortion
from stnbench.distortions.sequences import SequenceTask, get_task, is_sequence_task, make_sequences
from stnbench.io import atomic_write

GAP = 2  # pixels between images and between rows
GAP_VALUE = 0.5  # grey, so that black canvas borders stay visible
PIXELS_PER_PIXEL = 4  # screen pixels per image pixel at the saved resolution
DPI = 100


def gallery_rows(
    families: Sequence[str], severities: Sequence[float], dataset: str
) -> list[Distortion | SequenceTask]:
    """One distortion per row: graded families at each severity, the others at their one level;
    a sequence task is a row of its sequences.

    Every distortion is built (and so checked) before any image is drawn.
    """
    rows: list[Distortion | SequenceTask] = []
    for family in families:
        if is_sequence_task(family):
            rows.append(get_task(family))
            continue
        levels = severities if family in GRADED_FAMILIES else [0.0 if family == "none" else 1.0]
        rows.extend(Distortion(family, level, dataset) for level in levels)
    return rows


def _strip(images: torch.Tensor, height: int) -> np.ndarray:
    """Images [N, C, S, S] float side by side on a grey strip ``height`` px high, as RGB."""
    count, channels, size, _ = images.shape
    strip = np.full((height, count * (size + GAP) - GAP, 3), GAP_VALUE, dtype=np.float32)
    rgb = images.expand(-1, 3, -1, -1) if channels == 1 else images
    for index, image in enumerate(rgb.permute(0, 2, 3, 1).cpu().numpy()):
        left = index * (size + GAP)
        strip[:size, left : left + size] = image
    return strip


def draw_gallery(
    data: DatasetTensors,
    families: Sequence[str],
    severities: Sequence[float],
    out: Path,
    *,
    samples: int = 8,
    seed: int = 0,
) -> None:
    """Save a PNG of ``samples`` test images per row, one row per family and severity.

    Every row distorts the same images with a generator seeded with ``seed``; graded rows
    therefore show the same random draw growing with the severity.
    """
    rows = gallery_rows(families, severities, data.name)
    test = data.test
    chosen = torch.randperm(len(test.labels), generator=torch.Generator().manual_seed(seed))[
        :samples
    ]
    images = test.images[chosen].float().div_(255)
    strips, labels = [], []
    for distortion in rows:
        if isinstance(distortion, SequenceTask):
            # Sequences are made of the split's digits, not of the chosen images.
            sequences = make_sequences(test, distortion, samples, seed)
            distorted = sequences.images.float().div_(255)
        else:
            distorted = distortion(images, torch.Generator().manual_seed(seed))
        strips.append(_strip(distorted, distorted.shape[-1]))
        family = distortion.family
        one_level = family in ("none", "cluttered") or is_sequence_task(family)
        level = "" if one_level else f" {distortion.severity:g}"
        labels.append(f"{distortion.family}{level}")
    width = max(strip.shape[1] for strip in strips)
    mosaic = np.full(
        (sum(strip.shape[0] + GAP for strip in strips) - GAP, width, 3), 1.0, dtype=np.float32
    )
    centres, top = [], 0
    for strip in strips:
        mosaic[top : top + strip.shape[0], : strip.shape[1]] = strip
        centres.append(top + strip.shape[0] / 2)
        top += strip.shape[0] + GAP

    scale = PIXELS_PER_PIXEL / DPI
    figure = Figure(figsize=(mosaic.shape[1] * scale, mosaic.shape[0] * scale), dpi=DPI)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.imshow(mosaic, interpolation="nearest")
    axes.set_axis_off()
    for centre, label in zip(centres, labels, strict=True):
        axes.text(-3, centre, label, ha="right", va="center", fontsize=11)
    axes.set_title(
        f"{data.name}: {samples} test images ({data.image_size} px), seed {seed}; "
        "family and severity per row",
        fontsize=11,
        loc="left",
    )
    atomic_write(Path(out), lambda tmp: figure.savefig(tmp, format="png", bbox_inches="tight"))
