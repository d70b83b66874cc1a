"""The contrast normalisations of Ciresan et al.'s multi-column network, per image, on uint8 RGB.

Ciresan, Meier, Masci and Schmidhuber, "Multi-column deep neural network for traffic sign
classification" (Neural Networks 32, 2012), section "Data preprocessing", train one column
per preprocessing of the cropped, 48x48 images:

- ``imadjust``: MATLAB's imadjust, a linear stretch that saturates 1% of the data at the low
  and at the high end;
- ``histeq``: MATLAB's histeq, a roughly uniform output histogram;
- ``adapthisteq``: MATLAB's adapthisteq, histogram equalisation per tile rather than per
  image: "the image is tiled in 8 nonoverlapping regions of 6x6 pixels each" (8 per side of
  the 48 px image, so tiles of 6x6 pixels);
- ``conorm``: contrast normalisation by a difference of Gaussians, a 5x5 filter.

The first three act on the intensity of a colour space that has one (the paper: RGB to Lab,
normalise, back to RGB); ``conorm`` acts on the RGB channels. What the paper leaves open is
this suite's choice, named where it is made: the clip limit (MATLAB's adapthisteq default,
0.01, which scikit-image shares), the Gaussians' widths and how the signed filter output is
brought back to 0..255.
"""

import warnings

import numpy as np
import torch

from stnbench.errors import StnbenchError
from stnbench.preparation import CONTRASTS, ORIGINAL_CONTRAST

SATURATED = 0.01  # imadjust: fraction of the data saturated at each end (MATLAB's default)
TILE = 6  # adapthisteq: tile side in pixels
CLIP_LIMIT = 0.01  # adapthisteq: MATLAB's default ClipLimit; the paper gives none
# conorm: the paper's 5x5 filter is the wider Gaussian's support (radius 2 = truncate x sigma);
# the widths, 0.5 and 1 px, are this suite's choice.
DOG_SIGMAS = (0.5, 1.0)
DOG_TRUNCATE = 2.0
LAB_L_MAX = 100.0


def contrast_library() -> str:
    """What computes the contrasts, recorded with the cache: another version may round a
    pixel differently."""
    from skimage import __version__

    return f"scikit-image {__version__}"


def contrast_parameters(name: str) -> dict[str, float | list[float]]:
    """The settings a contrast was computed with, recorded in (and keying) its cache."""
    return {
        ORIGINAL_CONTRAST: {},
        "imadjust": {"saturated": SATURATED},
        "histeq": {},
        "adapthisteq": {"tile": TILE, "clip_limit": CLIP_LIMIT},
        "conorm": {"dog_sigmas": list(DOG_SIGMAS), "dog_truncate": DOG_TRUNCATE},
    }[check_contrast(name)]


def check_contrast(name: str) -> str:
    if name not in CONTRASTS:
        raise StnbenchError(f"contrast {name!r}: expected one of {', '.join(CONTRASTS)}")
    return name


# scikit-image is imported where it is used: only preparing a contrast needs it, and every
# command that imports the datasets package would otherwise load it.


def _imadjust(lightness: np.ndarray) -> np.ndarray:
    from skimage import exposure

    low, high = np.quantile(lightness, (SATURATED, 1 - SATURATED))
    if high <= low:  # a flat image: nothing to stretch
        return lightness
    return exposure.rescale_intensity(lightness, in_range=(low, high), out_range=(0.0, 1.0))


def _histeq(lightness: np.ndarray) -> np.ndarray:
    from skimage import exposure

    return exposure.equalize_hist(lightness)


def _adapthisteq(lightness: np.ndarray) -> np.ndarray:
    from skimage import exposure

    return exposure.equalize_adapthist(lightness, kernel_size=TILE, clip_limit=CLIP_LIMIT)


_ON_LIGHTNESS = {
    "imadjust": _imadjust,
    "histeq": _histeq,
    "adapthisteq": _adapthisteq,
}


def _on_lightness(pixels: np.ndarray, function) -> np.ndarray:
    """``function`` applied to Lab lightness scaled to [0, 1]; a and b are kept."""
    from skimage import color

    lab = color.rgb2lab(pixels)
    lab[..., 0] = LAB_L_MAX * np.clip(function(lab[..., 0] / LAB_L_MAX), 0.0, 1.0)
    with warnings.catch_warnings():
        # Brightened dark colours can leave the sRGB gamut; lab2rgb clips them and says so.
        warnings.simplefilter("ignore", UserWarning)
        return color.lab2rgb(lab)


def _conorm(pixels: np.ndarray) -> np.ndarray:
    """Difference of Gaussians per RGB channel, stretched linearly (one map for all three
    channels, keeping their balance) so that its extremes reach 0 and 1."""
    from skimage import filters

    low, high = DOG_SIGMAS
    edges = filters.difference_of_gaussians(
        pixels, low, high, channel_axis=-1, mode="nearest", truncate=DOG_TRUNCATE
    )
    span = edges.max() - edges.min()
    if span == 0:
        return np.full_like(edges, 0.5)
    return (edges - edges.min()) / span


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(values, 0.0, 1.0) * 255).astype(np.uint8)


def apply_contrast(images: torch.Tensor, name: str) -> torch.Tensor:
    """uint8 [N, 3, S, S] RGB images normalised by ``name``, each image on its own;
    ``original`` returns ``images`` themselves."""
    check_contrast(name)
    if name == ORIGINAL_CONTRAST:
        return images
    out = torch.empty_like(images)
    for index, image in enumerate(images):
        pixels = image.permute(1, 2, 0).numpy().astype(np.float64) / 255
        result = _conorm(pixels) if name == "conorm" else _on_lightness(pixels, _ON_LIGHTNESS[name])
        out[index] = torch.from_numpy(_to_uint8(result)).permute(2, 0, 1)
    return out
