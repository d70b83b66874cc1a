"""Per-class accuracy and confusion matrix of a set of predictions."""

import torch


def confusion_matrix(
    predicted: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """int64 [num_classes, num_classes]; rows are true classes, columns predicted ones."""
    flat = labels.to(torch.int64) * num_classes + predicted.to(torch.int64)
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def per_class_accuracy(confusion: torch.Tensor) -> list[float | None]:
    """Recall of each class; ``None`` for a class with no image in the evaluated set."""
    totals = confusion.sum(dim=1)
    return [
        None if total == 0 else float(confusion[index, index] / total)
        for index, total in enumerate(totals.tolist())
    ]
