"""Losses and scores for one label per image ([N]) and for label sequences ([N, positions]).

A sequence model scores every position ([N, positions, classes]); its loss is the sum of the
positions' cross-entropies (each image's, averaged over the batch), and an image counts as
right only if every position is.
"""

import torch
import torch.nn.functional as F


def loss(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy per image (for a sequence, the mean over its positions, as the recurrent
    ST paper's code takes it, so that its gradient clipping thresholds mean what they say
    there), reduced over the batch."""
    if labels.ndim == 1:
        # The single-label form as it always was, so that earlier runs repeat bit for bit.
        return F.cross_entropy(logits, labels, reduction=reduction)
    per_image = F.cross_entropy(logits.flatten(0, -2), labels.flatten(), reduction="none")
    per_image = per_image.view(labels.shape).reshape(len(labels), -1).mean(dim=1)
    return per_image.mean() if reduction == "mean" else per_image.sum()


def predict(logits: torch.Tensor) -> torch.Tensor:
    return logits.argmax(dim=-1)


def all_right(predicted: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """bool [N]: every position of each image right."""
    return (predicted == labels).reshape(len(labels), -1).all(dim=1)


def position_errors(predicted: torch.Tensor, labels: torch.Tensor) -> list[float]:
    """Error rate at each position of a sequence ([N, positions])."""
    return (predicted != labels).double().mean(dim=0).tolist()


def element_error(predicted: torch.Tensor, labels: torch.Tensor) -> float:
    """Error rate over every position of every sequence: the paper's single digit error."""
    return float((predicted != labels).double().mean())
