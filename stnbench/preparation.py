"""A data preparation (data set, image side, ROI crop, contrast) and its name.

The name is one part of a run's key wherever runs are laid out or compared: in the workflow's
run folders (``prep~48px-roi-histeq``) and in the tables, so that one results folder can hold
a model at 32 and 48 px, on the whole image and on the ROI, at every contrast. Kept free of
torch: the workflow imports it at every start.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The data sets' own image sides: their default preparation.
NATIVE_SIZE = {"mnist": 28, "gtsrb": 32}
ORIGINAL_CONTRAST = "original"


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
        return cls(
            dataset,
            config.get("size") or NATIVE_SIZE[dataset],
            bool(config.get("roi_crop")),
            config.get("contrast") or ORIGINAL_CONTRAST,
        )
