"""A run's predictions.npz: the selected weights' class per image of the test split and of the
validation split, with the labels, for paired tests between models on the same images.

Test arrays keep the names runs have always had (``predicted``, ``label``); validation arrays
are prefixed ``val_``. Runs written before validation predictions were kept have test arrays
only.
"""

from pathlib import Path

import numpy as np

from stnbench.errors import StnbenchError
from stnbench.io import atomic_write_npz

PREDICTIONS_NAME = "predictions.npz"
SPLITS = ("test", "val")
_PREFIX = {"test": "", "val": "val_"}


def check_split(split: str) -> None:
    if split not in _PREFIX:
        raise StnbenchError(f"predictions: unknown split {split!r} (known: {', '.join(SPLITS)})")


def _keys(split: str) -> tuple[str, str]:
    check_split(split)
    return f"{_PREFIX[split]}predicted", f"{_PREFIX[split]}label"


def write_predictions(path: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """``splits`` maps a split name to its (predicted, label) arrays."""
    arrays = {}
    for split, (predicted, label) in splits.items():
        if predicted.shape != label.shape:
            raise StnbenchError(f"{path}: {split} predicted and label differ in length")
        predicted_key, label_key = _keys(split)
        arrays[predicted_key] = np.asarray(predicted, dtype=np.int64)
        arrays[label_key] = np.asarray(label, dtype=np.int64)
    atomic_write_npz(path, **arrays)


def read_predictions(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every split stored in ``path``, as (predicted, label) per split name."""
    try:
        with np.load(path) as arrays:
            stored = {name: arrays[name] for name in arrays.files}
    except (OSError, ValueError) as error:
        raise StnbenchError(f"{path}: cannot read predictions ({error})") from error
    splits = {}
    for split in SPLITS:
        predicted_key, label_key = _keys(split)
        if predicted_key not in stored and label_key not in stored:
            continue
        if predicted_key not in stored or label_key not in stored:
            raise StnbenchError(
                f"{path}: {split} split has only one of {predicted_key}/{label_key}"
            )
        predicted, label = stored[predicted_key], stored[label_key]
        if predicted.shape != label.shape:
            raise StnbenchError(f"{path}: {split} predicted and label differ in length")
        splits[split] = (predicted, label)
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
    return tuple(split for split in SPLITS if _keys(split)[0] in names)
