"""What a distortion is (family, severity, dataset, canvas) and how a whole split is distorted."""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from stnbench.datasets import Split
from stnbench.distortions import functional
from stnbench.distortions.families import MAXIMA, PAPER_FAMILIES, get_family
from stnbench.errors import StnbenchError
from stnbench.preparation import Prep

GRADED_FAMILIES: tuple[str, ...] = (
    "rotation", "scale", "translation", "rts", "perspective", "elastic"
)  # fmt: skip
FAMILIES: tuple[str, ...] = ("none", *PAPER_FAMILIES, "cluttered", *GRADED_FAMILIES)

# Splits are distorted in chunks of this many images, in order, from one generator: the
# result does not depend on the device or on how much memory it has.
CHUNK_SIZE = 1024


@dataclass(frozen=True)
class Distortion:
    """A family at a severity for a dataset; call it on float images [N, C, S, S] in [0, 1].

    ``canvas`` is the output side in pixels (None: the family's default, 42 for MNIST's
    ``translation``/``rts``/``RTS``, 60 for ``cluttered``, else the image side). Random
    parameters come from a CPU generator, so a batch on any device gets the same ones.
    """

    family: str
    severity: float = 1.0
    dataset: str = "mnist"
    canvas: int | None = None

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise StnbenchError(
                f"distortion {self.family!r}: expected one of {', '.join(FAMILIES)}"
            )
        if self.dataset not in MAXIMA:
            raise StnbenchError(
                f"distortion dataset {self.dataset!r}: expected one of {', '.join(MAXIMA)}"
            )
        if isinstance(self.severity, bool) or not isinstance(self.severity, int | float):
            raise StnbenchError(f"severity {self.severity!r}: expected a number in [0, 1]")
        if not (math.isfinite(self.severity) and 0 <= self.severity <= 1):
            raise StnbenchError(f"severity {self.severity}: must lie in [0, 1]")
        if self.family in PAPER_FAMILIES and self.severity != 1:
            raise StnbenchError(
                f"distortion {self.family!r} is the STN paper's fixed level (severity 1), not "
                f"{self.severity}; use {PAPER_FAMILIES[self.family]!r} for graded levels"
            )
        if self.family == "cluttered" and self.severity != 1:
            raise StnbenchError(
                f"distortion 'cluttered' has one level (severity 1), not {self.severity}"
            )
        # The paper's families are its distorted MNIST; their graded forms serve GTSRB.
        datasets = ("mnist",) if self.family in PAPER_FAMILIES else get_family(self.family).datasets
        if self.dataset not in datasets:
            graded = PAPER_FAMILIES.get(self.family)
            hint = f"; use {graded!r} for graded levels on {self.dataset}" if graded else ""
            raise StnbenchError(
                f"distortion {self.family!r} is defined for {', '.join(datasets)} only, "
                f"not {self.dataset}{hint}"
            )
        if self.canvas is not None and (isinstance(self.canvas, bool) or self.canvas < 1):
            raise StnbenchError(f"canvas {self.canvas!r}: expected a positive number of pixels")
        object.__setattr__(self, "severity", float(self.severity))

    @property
    def _geometry(self) -> str:
        return PAPER_FAMILIES.get(self.family, self.family)

    @property
    def version(self) -> int:
        """Its family's definition version: other images for a seed, another version."""
        return get_family(self.family).version

    @property
    def source(self) -> str:
        """The text its family's definition follows, and where that text is silent."""
        return get_family(self.family).source

    def output_size(self, input_size: int) -> int:
        """Side of the distorted images for images of side ``input_size``."""
        family = get_family(self._geometry)
        canvas = self.canvas or family.canvas(MAXIMA[self.dataset], input_size)
        if canvas < input_size:
            raise StnbenchError(
                f"canvas {canvas} px for distortion {self.family!r} is smaller than the "
                f"{input_size} px images"
            )
        return canvas

    def is_identity(self, input_size: int) -> bool:
        """True where the output is the input itself (no family, or severity 0, on no canvas)."""
        unchanged = self.family == "none" or self.severity == 0
        return unchanged and self.output_size(input_size) == input_size

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if images.ndim != 4 or images.shape[-1] != images.shape[-2]:
            raise StnbenchError(
                f"distortion {self.family!r}: expected square images [N, C, S, S], "
                f"got shape {tuple(images.shape)}"
            )
        if not images.is_floating_point():
            raise StnbenchError(
                f"distortion {self.family!r}: expected float images in [0, 1], got {images.dtype}"
            )
        if generator.device.type != "cpu":
            raise StnbenchError(
                f"distortion {self.family!r}: the generator must be a CPU generator, "
                f"not on {generator.device}, so that every device draws the same parameters"
            )
        canvas = self.output_size(images.shape[-1])
        family = get_family(self._geometry)
        if family.function is None or self.severity == 0:
            return functional.pad_to_canvas(images, canvas)
        output = family.function(images, generator, self.severity, MAXIMA[self.dataset], canvas)
        return output.clamp_(0, 1)


def distortion_version(family: str) -> int:
    """The current definition version of the distortion family (or sequence task) named
    ``family``."""
    from stnbench.distortions.sequences import get_task, is_sequence_task

    if is_sequence_task(family):
        return get_task(family).version
    if family not in FAMILIES:
        raise StnbenchError(f"distortion {family!r}: expected one of {', '.join(FAMILIES)}")
    return get_family(family).version


def get_distortion(
    family: str, severity: float = 1.0, *, dataset: str = "mnist", canvas: int | None = None
) -> Distortion:
    """The distortion ``family`` at ``severity`` in [0, 1] for ``dataset``."""
    return Distortion(family, severity, dataset, canvas)


def run_input_size(config: Mapping[str, Any]) -> int:
    """The side of the images a run's model sees, from its resolved config: its preparation's
    size, or the distortion's canvas (42 px for MNIST's RTS, 60 px cluttered, 100 px for
    the sequence task)."""
    # Imported here: the sequence module builds on this package's cache, which imports this.
    from stnbench.distortions.sequences import get_task, is_sequence_task

    dataset = config["dataset"]
    if is_sequence_task(config["distortion"]):
        return get_task(config["distortion"]).output_size(Prep.of_run(dataset, config).size)
    distortion = get_distortion(config["distortion"], float(config["severity"]), dataset=dataset)
    return distortion.output_size(Prep.of_run(dataset, config).size)


def distort_split(
    split: Split, distortion: Distortion, seed: int, *, device: torch.device | str | None = None
) -> Split:
    """The split's images distorted (uint8, on the split's device), the same bytes for a seed.

    Chunks of ``CHUNK_SIZE`` images are distorted in order on ``device`` (default: where the
    split is) with parameters from one CPU generator seeded with ``seed``.
    """
    images = split.images
    count, channels, height, width = images.shape
    size = distortion.output_size(width)
    if height != width:
        raise StnbenchError(f"distort_split: expected square images, got {height}x{width}")
    device = images.device if device is None else torch.device(device)
    generator = torch.Generator().manual_seed(seed)
    output = torch.empty(count, channels, size, size, dtype=torch.uint8, device=images.device)
    for start in range(0, count, CHUNK_SIZE):
        chunk = images[start : start + CHUNK_SIZE].to(device).float().div_(255)
        distorted = distortion(chunk, generator)
        # In place, and converted to uint8 by the copy: these chunks are this loop's own.
        output[start : start + CHUNK_SIZE] = distorted.mul_(255).round_()
    return Split(images=output, labels=split.labels)
