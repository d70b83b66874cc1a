"""Resolving ``--device`` and ``--threads`` the same way in every command."""

import torch

from stnbench.errors import StnbenchError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(choice: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else the CPU; ``cuda`` without a GPU is an error."""
    if choice not in DEVICE_CHOICES:
        raise StnbenchError(f"--device {choice!r}: expected one of {', '.join(DEVICE_CHOICES)}")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise StnbenchError("--device cuda: no CUDA device is available on this machine")
    return torch.device(choice)


def set_threads(threads: int | None) -> None:
    """Give torch exactly the threads the scheduler (Snakemake, Slurm) granted this job."""
    if threads is not None:
        if threads < 1:
            raise StnbenchError(f"--threads {threads}: must be at least 1")
        torch.set_num_threads(threads)
