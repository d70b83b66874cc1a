"""A run's predictions.npz: for the test split and the validation split, the selected weights'
class and class probabilities per image, with the labels: for paired tests between models on
the same images, and for committees assembled afterwards by averaging their columns'
probabilities (IDSIA's multi-column DNN) without training them again.

Arrays per split, the validation ones prefixed ``val_``: ``predicted`` and ``label`` (int64
[N]), ``probabilities`` (float16 [N, classes], softmax; half precision keeps committed files
small). A run on a label sequence stores ``predicted`` and ``label`` as [N, positions] and
``probabilities`` as [N, positions, classes].
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stnbench.errors import StnbenchError
from stnbench.io import atomic_write_npz

PREDICTIONS_NAME = "predictions.npz"
SPLITS = ("test", "val")
_PREFIX = {"test": "", "val": "val_"}


@dataclass(frozen=True)
class SplitPredictions:
    predicted: np.ndarray  # int64 [N] (or [N, positions])
    label: np.ndarray  # int64 [N] (or [N, positions])
    # float16 [N, classes]; None in files written before probabilities were kept (see
    # read_predictions).
    probabilities: np.ndarray | None = None


def check_split(split: str) -> None:
    if split not in _PREFIX:
        raise StnbenchError(f"predictions: unknown split {split!r} (known: {', '.join(SPLITS)})")


def _key(split: str, array: str) -> str:
    check_split(split)
    return f"{_PREFIX[split]}{array}"


def write_predictions(path: Path, splits: dict[str, SplitPredictions]) -> None:
    arrays = {}
    for split, predictions in splits.items():
        probabilities = predictions.probabilities
        if probabilities is None:
            raise StnbenchError(f"{path}: {split} split without probabilities")
        count = len(predictions.label)
        if predictions.predicted.shape != predictions.label.shape or len(probabilities) != count:
            raise StnbenchError(f"{path}: {split} predictions and labels differ in length")
        arrays[_key(split, "predicted")] = np.asarray(predictions.predicted, dtype=np.int64)
        arrays[_key(split, "label")] = np.asarray(predictions.label, dtype=np.int64)
        arrays[_key(split, "probabilities")] = np.asarray(probabilities, dtype=np.float16)
    atomic_write_npz(path, compressed=True, **arrays)


def read_predictions(path: Path) -> dict[str, SplitPredictions]:
    """Every split stored in ``path``.

    Files written before probabilities were kept (every committed run up to then) have none:
    their ``probabilities`` are None. Some of them also hold test predictions only, no
    validation split. Both are read as they are, since their checkpoints are not kept and
    they cannot be written again.
    """
    try:
        with np.load(path) as arrays:
            stored = {name: arrays[name] for name in arrays.files}
    except (OSError, ValueError) as error:
        raise StnbenchError(f"{path}: cannot read predictions ({error})") from error
    splits = {}
    for split in SPLITS:
        predicted_key, label_key = _key(split, "predicted"), _key(split, "label")
        if predicted_key not in stored and label_key not in stored:
            continue
        if predicted_key not in stored or label_key not in stored:
            raise StnbenchError(
                f"{path}: {split} split has only one of {predicted_key}/{label_key}"
            )
        predictions = SplitPredictions(
            stored[predicted_key], stored[label_key], stored.get(_key(split, "probabilities"))
        )
        count = len(predictions.label)
        if predictions.predicted.shape != predictions.label.shape or (
            predictions.probabilities is not None and len(predictions.probabilities) != count
        ):
            raise StnbenchError(f"{path}: {split} predictions and labels differ in length")
        splits[split] = predictions
    if "test" not in splits:
        raise StnbenchError(f"{path}: no test predictions (arrays predicted/label)")
    return splits


def stored_splits(path: Path) -> tuple[str, ...]:
    """The splits ``path`` holds predictions of, without loading them; () if there is no file."""
    if not path.is_file():
        return ()
    try:
        with np.load(path) as arrays:
            names = set(arrays.files)
    except (OSError, ValueError) as error:
        raise StnbenchError(f"{path}: cannot read predictions ({error})") from error
    return tuple(split for split in SPLITS if _key(split, "predicted") in names)
