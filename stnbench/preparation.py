"""A data preparation (data set, image side, ROI crop, contrast) and its name.

The name is one part of a run's key wherever runs are laid out or compared: in the workflow's
run folders (``prep~48px-roi-histeq``) and in the tables, so that one results folder can hold
a model at 32 and 48 px, on the whole image and on the ROI, at every contrast. Kept free of
torch: the workflow imports it at every start.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ORIGINAL_CONTRAST = "original"
# IDSIA's contrast normalisations (datasets/contrast.py computes them).
CONTRASTS = (ORIGINAL_CONTRAST, "imadjust", "histeq", "adapthisteq", "conorm")


@dataclass(frozen=True)
class Prep:
    """One preparation of one data set, prepared once before the runs that need it."""

    dataset: str
    size: int
    roi_crop: bool
    contrast: str = ORIGINAL_CONTRAST

    @property
    def label(self) -> str:
        """e.g. ``48px-roi-histeq``; the original contrast adds nothing, as in the caches."""
        contrast = "" if self.contrast == ORIGINAL_CONTRAST else f"-{self.contrast}"
        return f"{self.size}px" + ("-roi" if self.roi_crop else "") + contrast

    @property
    def id(self) -> str:
        return f"{self.dataset}-{self.label}"

    @classmethod
    def of_run(cls, dataset: str, config: Mapping[str, Any]) -> "Prep":
        """The preparation a run's resolved config trained on."""
        # Imported here: the registry builds its preparations with this class.
        from stnbench.dataset_registry import get_dataset

        return cls(
            dataset,
            config.get("size") or get_dataset(dataset).native_size,
            bool(config.get("roi_crop")),
            config.get("contrast") or ORIGINAL_CONTRAST,
        )
