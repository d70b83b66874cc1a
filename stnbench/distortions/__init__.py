"""Distortions: the STN paper's distorted MNIST and graded geometric noise for MNIST and GTSRB.

``get_distortion(family, severity, dataset=...)`` gives a callable that distorts float image
batches on their own device; ``distort_split`` and ``cached_distorted_split`` make whole
splits, the same bytes for the same (dataset, split, family, severity, seed).
``get_augmentation`` gives a training augmentation (``AUGMENTATIONS``), drawn like them.
"""

from stnbench.distortions.augmentation import AUGMENTATIONS, Jitter, get_augmentation
from stnbench.distortions.cache import cached_distorted_split
from stnbench.distortions.distortion import (
    FAMILIES,
    GRADED_FAMILIES,
    Distortion,
    distort_split,
    distortion_version,
    get_distortion,
    run_input_size,
)
from stnbench.distortions.families import MAXIMA, PAPER_FAMILIES, Maxima

__all__ = [
    "AUGMENTATIONS",
    "FAMILIES",
    "GRADED_FAMILIES",
    "MAXIMA",
    "PAPER_FAMILIES",
    "Distortion",
    "Jitter",
    "Maxima",
    "cached_distorted_split",
    "distort_split",
    "distortion_version",
    "get_augmentation",
    "get_distortion",
    "run_input_size",
]
