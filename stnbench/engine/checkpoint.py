"""The run's state after each epoch, written atomically and read back without pickle code."""

from pathlib import Path

import torch

from stnbench.errors import StnbenchError
from stnbench.io import atomic_write

CHECKPOINT_NAME = "checkpoint.pt"


def save_checkpoint(path: Path, state: dict) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path) -> dict | None:
    """The saved state, or ``None`` when there is none yet."""
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any unpickling failure means the same thing to the user
        raise StnbenchError(
            f"{path}: unreadable checkpoint ({error}); remove it to start over"
        ) from None


def rng_state() -> dict:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])
