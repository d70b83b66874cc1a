"""Committees of trained columns: probabilities averaged per image, from synthetic columns
whose votes are known."""

from pathlib import Path

import numpy as np
import pytest
from result_runs import TEST_IMAGES, write_run

from stnbench.errors import StnbenchError
from stnbench.results.collect import collect
from stnbench.results.committee import committee_rows
from stnbench.results.tables import build_tables

LABELS = np.arange(TEST_IMAGES) % 10
CONTRASTS = ("original", "histeq", "conorm")


def _column(root: Path, contrast: str, seed: int, wrong: np.ndarray, size: int = 48,
            note: str = "the complete test set") -> Path:
    """A finished idsia-mcdnn run at ``contrast`` (on the ROI at 48 px, else the whole image at
    ``size``), right everywhere but on ``wrong``: 0.6 on its answer, 0.4 on the true class where
    it is wrong and on a third class where it is right."""
    run = write_run(root / f"{contrast}-{size}", model="idsia-mcdnn", seed=seed, accuracy=0.0,
                    dataset="gtsrb", distortion="none", severity=0.0, wrong=wrong, note=note,
                    config={"size": size, "roi_crop": size == 48, "contrast": contrast,
                            "augmentation": "idsia"})
    answer = LABELS.copy()
    answer[wrong] = (LABELS[wrong] + 1) % 10
    probabilities = np.zeros((TEST_IMAGES, 10), np.float16)
    probabilities[np.arange(TEST_IMAGES), answer] = 0.6
    second = np.where(answer == LABELS, (LABELS + 5) % 10, LABELS)
    probabilities[np.arange(TEST_IMAGES), second] = 0.4
    arrays = {"predicted": answer, "label": LABELS, "probabilities": probabilities}
    arrays |= {f"val_{name}": value for name, value in arrays.items()}
    np.savez(run / "predictions.npz", **arrays)
    return run


def _wrong(index: int) -> np.ndarray:
    return np.arange(20 * index, 20 * index + 20)


def test_committees_average_probabilities_per_image(tmp_path: Path) -> None:
    # Every column is wrong on its own 20 images: a majority is always right, so each committee
    # of three or more is right everywhere, while one column is right on 80%.
    for seed in (0, 1):
        for index, contrast in enumerate(CONTRASTS):
            _column(tmp_path / "runs", contrast, seed, _wrong(index + seed))
    # A fourth preparation at one seed only: no per-preparation committee without it.
    rows = committee_rows(collect(tmp_path / "runs", tmp_path / "bench").runs)
    by_kind = rows.set_index("committee")
    assert list(by_kind.index) == ["1 column", "1 column per preparation", "every column"]
    assert by_kind.loc["1 column", "columns"] == 1
    assert by_kind.loc["1 column", "n_committees"] == 6
    assert by_kind.loc["1 column", "test_mean"] == pytest.approx(0.8)
    assert by_kind.loc["1 column per preparation", "n_committees"] == 2
    assert by_kind.loc["1 column per preparation", "columns"] == 3
    assert by_kind.loc["1 column per preparation", "test_mean"] == 1.0
    assert by_kind.loc["every column", "columns"] == 6
    assert by_kind.loc["every column", "val_mean"] == 1.0
    low, high = by_kind.loc["every column", ["test_ci_low", "test_ci_high"]]
    assert 0.96 < low < 1.0 and high == 1.0  # Clopper-Pearson for 100 of 100
    assert by_kind.loc["every column", "preparations"] == "48px-roi 48px-roi-conorm 48px-roi-histeq"

    _column(tmp_path / "runs", "imadjust", 0, _wrong(0))
    rows = committee_rows(collect(tmp_path / "runs", tmp_path / "bench").runs)
    per_preparation = rows.set_index("committee").loc["1 column per preparation"]
    assert per_preparation["n_committees"] == 1 and per_preparation["columns"] == 4

    committee = next(t for t in build_tables(collect(tmp_path / "runs", tmp_path / "bench"))
                     if t.name == "committee")
    (heading, display), = committee.sections
    assert heading == "demo scale"
    every = display.set_index("committee").loc["every column"]
    assert every["test accuracy %"] == "100.00" and every["columns"] == "7"


def test_columns_tested_on_other_images_are_refused(tmp_path: Path) -> None:
    for index, contrast in enumerate(CONTRASTS[:2]):
        run = _column(tmp_path / "runs", contrast, 0, _wrong(index))
    with np.load(run / "predictions.npz") as stored:
        arrays = dict(stored)
    arrays["label"] = np.roll(arrays["label"], 1)
    np.savez(run / "predictions.npz", **arrays)
    with pytest.raises(StnbenchError, match=r"test images differ from .*a committee needs"):
        committee_rows(collect(tmp_path / "runs", tmp_path / "bench").runs)


def test_columns_combine_across_contrasts_only(tmp_path: Path) -> None:
    # Two contrasts at 48 px on the ROI, tested on the complete test set; the same model at
    # 32 px on the whole image, tested on a subset; another data set's run beside them.
    for index, contrast in enumerate(CONTRASTS[:2]):
        _column(tmp_path / "runs", contrast, 0, _wrong(index))
    _column(tmp_path / "runs", "original", 0, _wrong(2), size=32, note="a subset")
    write_run(tmp_path / "runs", model="cnn", seed=0, accuracy=0.9, note="MNIST's test set")
    results = collect(tmp_path / "runs", tmp_path / "bench")
    rows = committee_rows(results.runs)
    assert set(rows["preparations"]) == {"48px-roi 48px-roi-histeq"}
    committee = next(t for t in build_tables(results) if t.name == "committee")
    test_set_notes = [note for note in committee.notes if note.startswith("Test set")]
    assert test_set_notes == ["Test set (gtsrb): the complete test set (100 images)."]


def test_a_model_at_one_preparation_forms_no_committee(tmp_path: Path) -> None:
    _column(tmp_path / "runs", "original", 0, _wrong(0))
    assert committee_rows(collect(tmp_path / "runs", tmp_path / "bench").runs).empty
    committee = next(t for t in build_tables(collect(tmp_path / "runs", tmp_path / "bench"))
                     if t.name == "committee")
    assert committee.sections == [] and any("No committee yet" in n for n in committee.notes)
