"""Writing the IDX format of the MNIST files, which ``torchvision.datasets.MNIST`` reads."""

from pathlib import Path

import numpy as np

from stnbench.io import atomic_write

# IDX magic: two zero bytes, the element type (0x08 = unsigned byte), the number of dimensions.
_UBYTE = 0x08


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as an uncompressed IDX file, atomically."""
    if array.dtype != np.uint8:
        raise TypeError(f"IDX writer takes uint8 arrays, got {array.dtype}")
    header = bytes([0, 0, _UBYTE, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    atomic_write(path, lambda tmp: tmp.write_bytes(header + np.ascontiguousarray(array).tobytes()))
