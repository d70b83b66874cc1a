"""Training augmentations: random geometry drawn afresh for every training batch.

Unlike a distortion, which defines the task (the validation and test images are distorted
too), an augmentation only widens the training set; evaluation never sees it. A run spec
names one from ``AUGMENTATIONS`` (field ``augmentation``); the training loop draws it from
its own random stream per (seed, epoch), so a resumed run sees the batches it would have.
"""

from dataclasses import dataclass

import torch

from stnbench.distortions import functional
from stnbench.errors import StnbenchError


@dataclass(frozen=True)
class Jitter:
    """Per image: rotate by an angle uniform in +-``rotation`` degrees and scale by a factor
    uniform in ``scale`` about the image centre, then shift each axis by up to +-``translation``
    of the image side (uniform). Output size = input size; zeros where the image moved away.

    Call it on float images [N, C, S, S] with a CPU generator; every device gets the same draws.
    """

    translation: float
    rotation: float
    scale: tuple[float, float]

    def draw(
        self, count: int, size: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(angle [N] degrees, scale factor [N], shift [N, 2] pixels) for ``count`` images of
        side ``size``, on the CPU."""
        draw = torch.rand(count, 4, generator=generator, dtype=torch.float64)
        angle = self.rotation * (2 * draw[:, 0] - 1)
        low, high = self.scale
        factor = low + (high - low) * draw[:, 1]
        shift = self.translation * size * (2 * draw[:, 2:] - 1)
        return angle, factor, shift

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        size, device = images.shape[-1], images.device
        angle, factor, shift = self.draw(images.shape[0], size, generator)
        matrices = functional.similarity_matrices(
            angle.to(device), factor.to(device), shift.to(device), size, size
        )
        return functional.warp_affine(images, matrices, size)


AUGMENTATIONS: dict[str, Jitter] = {
    # Ciresan et al.'s jitter of the GTSRB training images, drawn afresh every epoch, never
    # applied to validation images: translation up to 10% of the image side, rotation up to
    # 5 degrees, scaling 0.9 to 1.1, as given for IDSIA's entry (IJCNN 2011, "A committee of
    # neural networks for traffic sign classification"; Neural Networks 32, 2012 repeats the
    # method, and its text could not be re-read here). How the uncovered border is filled is
    # not given; here it is black, as in the distortions.
    "idsia": Jitter(translation=0.10, rotation=5.0, scale=(0.9, 1.1)),
}


def get_augmentation(name: str | None) -> Jitter | None:
    """The augmentation named ``name``; None for None."""
    if name is None:
        return None
    if name not in AUGMENTATIONS:
        raise StnbenchError(f"augmentation {name!r}: expected one of {', '.join(AUGMENTATIONS)}")
    return AUGMENTATIONS[name]
