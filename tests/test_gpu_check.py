"""The summary that `make gpu-check` prints from the GPU's bench files
(benchmarks/gpu_check.py), read without a GPU from the committed H200 files."""

import json
import shutil
from pathlib import Path

import gpu_check
import pytest

from stnbench.errors import StnbenchError

BENCH = Path(__file__).resolve().parents[1] / "results" / "bench" / "nvidia-h200"


def test_summary_gives_each_gtsrb_model_its_epoch_at_moodstocks_batch(tmp_path: Path) -> None:
    for name in ("idsia-gtsrb-48.json", "cnn-mnist-28.json"):
        shutil.copy(BENCH / name, tmp_path / name)
    rows = gpu_check.summary(tmp_path).splitlines()[2:]
    assert [row.split()[0] for row in rows] == ["cnn", "idsia"]
    report = json.loads((BENCH / "idsia-gtsrb-48.json").read_text())
    step = next(r for r in report["results"] if r["batch_size"] == gpu_check.EPOCH_BATCH)
    epoch_s = gpu_check.GTSRB_TRAIN_IMAGES / step["train_step"]["images_per_s"]["median"]
    assert rows[1].split()[-1] == f"{epoch_s:.0f}"
    assert rows[0].split()[-1] == "@256"  # an MNIST model has no GTSRB epoch


def test_summary_refuses_a_file_that_breaks_the_bench_schema(tmp_path: Path) -> None:
    report = json.loads((BENCH / "idsia-gtsrb-48.json").read_text())
    del report["params"]
    (tmp_path / "idsia-gtsrb-48.json").write_text(json.dumps(report))
    with pytest.raises(StnbenchError, match=r"idsia-gtsrb-48\.json: bench JSON"):
        gpu_check.summary(tmp_path)
