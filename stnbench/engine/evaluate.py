"""Batched inference over a split held in memory: loss, accuracy, predictions and class
probabilities."""

import contextlib
from dataclasses import dataclass

import torch

from stnbench.datasets import Split
from stnbench.engine import targets


@dataclass(frozen=True)
class Evaluation:
    loss: float
    accuracy: float  # of a label sequence: every position right
    predicted: torch.Tensor  # int64 [N] (or [N, positions]) on the CPU, in the split's order
    # float32 [N, classes] (or [N, positions, classes]) on the CPU: softmax of the logits
    probabilities: torch.Tensor


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast for ``precision == "bf16"``, else nothing."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def as_input(images: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """uint8 [N, C, H, W] -> float [0, 1], in the memory layout the model was put in."""
    batch = images.float().div_(255)
    return batch.contiguous(memory_format=torch.channels_last) if channels_last else batch


@torch.inference_mode()
def evaluate(
    model: torch.nn.Module,
    split: Split,
    *,
    device: torch.device,
    batch_size: int,
    precision: str,
    channels_last: bool,
) -> Evaluation:
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    predicted, probabilities = [], []
    for start in range(0, len(split.labels), batch_size):
        images = split.images[start : start + batch_size].to(device, non_blocking=True)
        labels = split.labels[start : start + batch_size].to(device, non_blocking=True)
        with autocast(device, precision):
            logits = model(as_input(images, channels_last))
        loss_sum += targets.loss(logits.float(), labels, reduction="sum")
        predicted.append(targets.predict(logits))
        probabilities.append(logits.float().softmax(dim=-1))
    model.train(was_training)
    predictions = torch.cat(predicted).cpu()
    count = len(split.labels)
    return Evaluation(
        loss=float(loss_sum) / count,
        accuracy=float(targets.all_right(predictions, split.labels.cpu()).sum()) / count,
        predicted=predictions,
        probabilities=torch.cat(probabilities).cpu(),
    )
