"""Parameter and FLOP counts.

FLOPs follow ``torch.utils.flop_counter``: 2 per multiply-add (a [M, K] x [K, N] product is
2*M*K*N FLOPs), counted for convolutions and matrix products only; elementwise work
(activations, pooling, normalisation, softmax) is not counted. The spatial transformers'
``affine_grid`` and ``grid_sample`` have no formula in torch and get the ones below.
"""

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

aten = torch.ops.aten


def affine_grid_flop(theta_shape, size, *args, out_shape=None, **kwargs) -> int:
    """Each of the N*H*W output points is a [1, 3] x [3, 2] product with theta."""
    n, _, height, width = size
    return 2 * n * height * width * 3 * 2


def grid_sample_flop(input_shape, grid_shape, *args, out_shape=None, **kwargs) -> int:
    """Bilinear sampling: 4 taps, one multiply-add each, per output value and channel.

    The per-point coordinate arithmetic is elementwise work and, like it, not counted.
    """
    n, channels = input_shape[:2]
    height, width = grid_shape[1:3]
    return 2 * 4 * n * channels * height * width


ST_FLOP_FORMULAS = {
    aten.affine_grid_generator: affine_grid_flop,
    aten.grid_sampler_2d: grid_sample_flop,
}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Forward FLOPs for one image of ``input_shape`` (C, H, W), in eval mode."""
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False, custom_mapping=ST_FLOP_FORMULAS)
        with torch.no_grad(), counter:
            model(torch.zeros(1, *input_shape, device=device))
    finally:
        model.train(was_training)
    return counter.get_total_flops()
