"""The run's state after each epoch, saved and restored as one object, written atomically and
read back without pickle code."""

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stnbench.engine.evolution import EvolutionRecorder
from stnbench.engine.record import EpochRecord
from stnbench.engine.spec import first_difference
from stnbench.errors import StnbenchError
from stnbench.io import atomic_write, load_tensors

CHECKPOINT_NAME = "checkpoint.pt"
# The live objects whose own state_dict() the checkpoint holds.
STATEFUL = ("model", "optimizer", "scheduler", "evolution")
SAVED = (*STATEFUL, "config", "rng", "history", "best")


@dataclasses.dataclass(frozen=True)
class SelectedEpoch:
    """The epoch of best validation accuracy so far, with its weights (on the CPU): the
    weights the run is tested with."""

    epoch: int
    val_accuracy: float
    val_loss: float
    model: dict[str, torch.Tensor]


@dataclasses.dataclass
class TrainingState:
    """Everything a run needs to go on after its last finished epoch exactly as if it had not
    stopped: the model, optimizer, scheduler and transformer snapshots (live objects, restored
    in place), the random generators, the epochs so far and the selected one."""

    config: dict[str, Any]
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    evolution: EvolutionRecorder
    history: list[EpochRecord] = dataclasses.field(default_factory=list)
    best: SelectedEpoch | None = None

    def add_epoch(self, entry: EpochRecord) -> None:
        """Append a finished epoch, selecting it if its validation accuracy is the best yet."""
        self.history.append(entry)
        if self.best is None or entry.val_accuracy > self.best.val_accuracy:
            weights = {key: value.detach().cpu().clone()
                       for key, value in self.model.state_dict().items()}
            self.best = SelectedEpoch(entry.epoch, entry.val_accuracy, entry.val_loss, weights)

    def save(self, path: Path) -> None:
        state = {name: getattr(self, name).state_dict() for name in STATEFUL}
        state.update(
            config=self.config,
            rng=_rng_state(),
            history=[dataclasses.asdict(entry) for entry in self.history],
            best=None if self.best is None else dict(vars(self.best)),
        )
        atomic_write(path, lambda tmp: torch.save(state, tmp))

    def restore(self, path: Path) -> bool:
        """Load the state saved at ``path`` into this one; False where there is none yet."""
        state = _load(path)
        if state is None:
            return False
        key = first_difference(state["config"], self.config)
        if key is not None:
            # Name the field: a checkpoint written at another precision or on another kind of
            # machine is resumed by asking for that value again, not by deleting hours of work.
            raise StnbenchError(
                f"{path}: belongs to a different run (its {key!r} is "
                f"{state['config'].get(key)!r}, this run's {self.config.get(key)!r}); ask for "
                "that value to resume it, or remove it or choose another --out"
            )
        for name in STATEFUL:
            getattr(self, name).load_state_dict(state[name])
        _set_rng_state(state["rng"])
        self.history = [EpochRecord(**entry) for entry in state["history"]]
        self.best = None if state["best"] is None else SelectedEpoch(**state["best"])
        return True


def selected_weights(path: Path) -> dict[str, torch.Tensor]:
    """The weights a finished run was tested with, from its checkpoint at ``path``."""
    state = _load(path)
    if state is None:
        raise StnbenchError(f"{path}: does not exist")
    if state["best"] is None:
        raise StnbenchError(f"{path}: no epoch was selected (the run diverged)")
    return state["best"]["model"]


def _load(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    state = load_tensors(path, "checkpoint", "remove it to start over")
    missing = [key for key in SAVED if key not in state]
    if missing:
        raise StnbenchError(f"{path}: checkpoint without {missing[0]!r}; remove it to start over")
    return state


def _rng_state() -> dict:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])
