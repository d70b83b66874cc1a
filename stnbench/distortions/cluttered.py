"""The STN paper's translated cluttered MNIST, generated from MNIST batches on the fly.

Layout after DeepMind's mnist-cluttered generator (github.com/google-deepmind/mnist-cluttered,
from the same group as the paper): the whole 28x28 digit frame at a uniformly random
whole-pixel position on a black canvas, plus square crops of other digits (anywhere in their
frame, so some are blank) at random positions, intensities summed and clipped to 1
(``Distortion`` clips every family's output). The paper's 60x60 variant: 6 distractors of
6x6 px (``SOURCE`` says where each figure comes from).
"""

import torch

from stnbench.distortions import functional

CANVAS = 60
DISTRACTORS = 6
DISTRACTOR_SIZE = 6
SOURCE = (
    "STN paper, section 4.1 (translated cluttered MNIST, 60x60), as reproduced: the layout "
    "(whole digit frame at a random position, crops of other digits added and clipped to 1) "
    "follows DeepMind's generator (google-deepmind/mnist-cluttered), whose distractor count "
    "and size are parameters (num_dist, dist_w) with no 60x60 setting; 6 distractors of "
    "6x6 px follow luuf/stn-placement (MNIST_noise: '6 random 6x6 crops' on 60x60) and the "
    "mnist_cluttered_60x60_6distortions.npz shared with the Lasagne and TensorFlow STN "
    "examples (version 2; version 1 drew 4). The paper's own sentence could not be read here."
)


def clutter(
    images: torch.Tensor,
    generator: torch.Generator,
    canvas: int,
    distractors: int = DISTRACTORS,
    distractor_size: int = DISTRACTOR_SIZE,
) -> torch.Tensor:
    """Each image [N, C, S, S] placed on a cluttered ``canvas``; crops come from other images.

    A crop's source is another image of the same batch (the image itself only in a batch of
    one), so a split distorted chunk by chunk always draws from the same images.
    """
    count, channels, size, _ = images.shape
    device = images.device
    digit_top, digit_left = torch.randint(0, canvas - size + 1, (2, count), generator=generator)
    shift = torch.randint(1, max(count, 2), (distractors, count), generator=generator)
    source = (torch.arange(count) + shift) % count
    crop_top, crop_left = torch.randint(
        0, size - distractor_size + 1, (2, distractors, count), generator=generator
    )
    place_top, place_left = torch.randint(
        0, canvas - distractor_size + 1, (2, distractors, count), generator=generator
    )

    def on_device(*tensors: torch.Tensor) -> list[torch.Tensor]:
        return [tensor.reshape(-1).to(device) for tensor in tensors]

    source, crop_top, crop_left, place_top, place_left = on_device(
        source, crop_top, crop_left, place_top, place_left
    )
    patches = functional.crops(images, source, crop_top, crop_left, distractor_size)
    output = images.new_zeros(count, channels, canvas, canvas)
    batch = torch.arange(count, device=device)
    # Digits first, one per canvas, so that they need no accumulation; intensities are
    # clipped to 1 by the caller.
    functional.paste(
        output, images, batch, digit_top.to(device), digit_left.to(device), accumulate=False
    )
    functional.paste(
        output, patches, batch.repeat(distractors), place_top, place_left, accumulate=True
    )
    return output
