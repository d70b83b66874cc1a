"""Snapshots of the first spatial transformer on one fixed batch, at regular steps of a run:
the material of the "evolution" picture (what the transformer learns, as it learns it).

Only the sampling grid is kept: the transformer's output is the fixed images resampled by it,
so a viewer can redraw both the outline and the output without the model.
"""

from pathlib import Path

import numpy as np
import torch
from torch import nn

from stnbench.datasets import Split
from stnbench.io import atomic_write_npz
from stnbench.models import spatial_transformers

EVOLUTION_NAME = "evolution.npz"
EVOLUTION_SAMPLES = 8
EVOLUTION_FRAMES = 40


def fixed_batch(val: Split, samples: int = EVOLUTION_SAMPLES) -> Split:
    """Images spread evenly over the validation split, whose order may be by class (GTSRB):
    the same for every model and seed. Validation, because the test set is read once, at the
    end."""
    index = torch.linspace(0, len(val.labels) - 1, min(samples, len(val.labels))).round().long()
    index = index.to(val.labels.device)
    return Split(images=val.images[index], labels=val.labels[index])


class EvolutionRecorder:
    """Records the first transformer's grid on ``batch`` after ``frames`` evenly spaced steps of
    the ``total_steps`` of a run (and once before the first), if that transformer reads the
    image itself; a transformer inside the network sees features that change as it trains, and
    its grid alone could not redraw them."""

    def __init__(self, model: nn.Module, batch: Split, total_steps: int,
                 frames: int = EVOLUTION_FRAMES) -> None:
        transformers = spatial_transformers(model)
        self.model = model
        self.transformer = transformers[0] if transformers else None
        self.batch = batch
        self.due = {round(k * total_steps / frames) for k in range(frames + 1)}
        self.steps: list[int] = []
        self.grids: list[torch.Tensor] = []

    @property
    def enabled(self) -> bool:
        return self.transformer is not None

    def after_step(self, step: int) -> None:
        """Call with the number of optimisation steps done so far (0 before training)."""
        if not self.enabled or step not in self.due or step in self.steps:
            return
        reads_image: list[bool] = []
        handle = self.transformer.register_forward_hook(
            lambda module, inputs, output: reads_image.append(
                inputs[0].shape == self.batch.images.shape
            )
        )
        was_training = self.model.training
        try:
            with torch.no_grad():
                self.model.eval()(self.batch.images.float().div(255))
        finally:
            handle.remove()
            self.model.train(was_training)
        if not reads_image[0]:
            self.transformer = None
            return
        self.steps.append(step)
        self.grids.append(self.transformer.last_grid.to("cpu", torch.float16))

    def state_dict(self) -> dict:
        """For the checkpoint, so that a resumed run keeps its earlier snapshots."""
        return {"steps": list(self.steps), "grids": list(self.grids)}

    def load_state_dict(self, state: dict) -> None:
        self.steps, self.grids = list(state["steps"]), list(state["grids"])

    def save(self, path: Path, steps_per_epoch: int) -> None:
        """Write the snapshots to ``path``, if there are any."""
        if not self.enabled or not self.grids:
            return
        atomic_write_npz(
            path,
            compressed=True,
            images=self.batch.images.cpu().numpy(),
            labels=self.batch.labels.cpu().numpy(),
            steps=np.asarray(self.steps, np.int64),
            epochs=np.asarray(self.steps, np.float64) / steps_per_epoch,
            grids=torch.stack(self.grids).numpy(),
        )
