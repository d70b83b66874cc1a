"""Resolving ``--device``, ``--threads`` and ``--precision`` the same way in every command.

torch is imported inside the functions: the command line reads the choices below to build
its help, and should not pay torch's two seconds of import for that.
"""

import os
from typing import TYPE_CHECKING

from stnbench.errors import StnbenchError

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")
# fp32, or bf16 autocast.
PRECISIONS = ("fp32", "bf16")


def resolve_device(choice: str = "auto") -> "torch.device":
    """``auto`` picks CUDA when available, else the CPU; ``cuda`` without a GPU is an error."""
    import torch

    if choice not in DEVICE_CHOICES:
        raise StnbenchError(f"--device {choice!r}: expected one of {', '.join(DEVICE_CHOICES)}")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise StnbenchError("--device cuda: no CUDA device is available on this machine")
    return torch.device(choice)


def set_threads(threads: int | None) -> None:
    """Give torch exactly the threads the scheduler (Snakemake, Slurm) granted this job."""
    import torch

    if threads is not None:
        if threads < 1:
            raise StnbenchError(f"--threads {threads}: must be at least 1")
        torch.set_num_threads(threads)


def set_determinism(device: "torch.device") -> bool:
    """Deterministic kernels; returns whether the run is bit-reproducible on this device.

    CUDA has no deterministic backward for ``grid_sample``: there the run goes on with
    warnings and is recorded as not bit-reproducible.
    """
    import torch

    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
    return device.type == "cpu"
