"""Small layers used by the model definitions: parameter-free ones, and the committee that
averages its columns."""

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LCN_KERNELS = ("box", "gaussian")


class Standardize(nn.Module):
    """(x - mean) / std per channel; the models' first op after any input spatial transformer."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


class ScaledTanh(nn.Module):
    """LeCun's scaled hyperbolic tangent, 1.7159 tanh(2x/3) (LeCun et al. 1998, appendix A):
    f(1) = 1 and f(-1) = -1, with its largest second derivative at +-1."""

    amplitude = 1.7159
    slope = 2 / 3

    def forward(self, x: Tensor) -> Tensor:
        return self.amplitude * torch.tanh(self.slope * x)

    def extra_repr(self) -> str:
        return f"amplitude={self.amplitude}, slope={self.slope:.4f}"


def lcn_kernel(size: int, kind: str) -> Tensor:
    """The [size, size] averaging window, summing to 1.

    ``gaussian`` is the outer product of Torch7's ``image.gaussian1D(size)`` (sigma = size / 4);
    ``box`` is uniform, Torch7's default when no kernel is given.
    """
    if kind == "box":
        profile = torch.ones(size)
    else:
        offsets = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
        profile = torch.exp(-0.5 * (offsets / (0.25 * size)) ** 2)
    window = torch.outer(profile, profile)
    return window / window.sum()


class LocalContrastNorm(nn.Module):
    """Torch7's ``nn.SpatialContrastiveNormalization``, as used by Moodstocks' gtsrb.torch.

    Subtracts the local mean, then divides by the local standard deviation, both taken over a
    ``size`` x ``size`` window and across all channels, with the same edge correction as Torch7
    (window sums divided by the window's overlap with the image) and a floor of 1e-4 on the
    divisor. Written by hand because no maintained PyTorch library ships this exact operator.
    """

    def __init__(self, size: int = 9, kernel: str = "box", threshold: float = 1e-4) -> None:
        super().__init__()
        self.size = size
        self.kind = kernel
        self.threshold = threshold
        self.register_buffer("kernel", lcn_kernel(size, kernel).view(1, 1, size, size))

    def _local_mean(self, x: Tensor) -> Tensor:
        # The window is the same for every channel, so averaging channels first gives the same
        # cross-channel sum as Torch7's [C -> 1] convolution at 1/C of the cost.
        return F.conv2d(x.mean(dim=1, keepdim=True), self.kernel, padding=self.size // 2)

    def forward(self, x: Tensor) -> Tensor:
        overlap = self._local_mean(torch.ones_like(x[:1, :1]))
        centred = x - self._local_mean(x) / overlap
        variance = self._local_mean(centred.square())
        # Torch7 divides the standard deviation (not the variance) by the overlap; kept as is.
        # The clamp before sqrt only keeps the gradient finite where the variance is 0: such
        # values fall below the threshold anyway.
        std = variance.clamp_min(1e-12).sqrt() / overlap
        return centred / std.clamp_min(self.threshold)

    def extra_repr(self) -> str:
        return f"size={self.size}, kernel={self.kind}"


class Committee(nn.Module):
    """Columns run side by side; the output is the log of their mean class probabilities
    (the multi-column average of Ciresan et al.), a valid logit vector for cross-entropy."""

    def __init__(self, columns: list[nn.Module]) -> None:
        super().__init__()
        self.columns = nn.ModuleList(columns)

    def forward(self, x: Tensor) -> Tensor:
        log_probs = torch.stack([column(x).log_softmax(dim=-1) for column in self.columns])
        return log_probs.logsumexp(dim=0) - math.log(len(self.columns))
