"""The CPU bench table of results/bench/README.md, printed from the bench files
(benchmarks/bench_all.py --summary)."""

import json
import shutil
from pathlib import Path

import bench_all
import pytest

from stnbench.errors import StnbenchError

BENCH = Path(__file__).resolve().parents[1] / "results" / "bench" / "cpu"


def test_summary_has_a_row_per_batch_size_in_the_order_the_jobs_run(tmp_path: Path) -> None:
    for name in ("moodstocks-2st-gtsrb-48.json", "fcn-mnist-28.json", "cnn-mnist-28.json"):
        shutil.copy(BENCH / name, tmp_path / name)
    rows = bench_all.summary(tmp_path).splitlines()[2:]
    assert [row.split("|")[1].strip() for row in rows] == ["cnn"] * 3 + ["fcn"] * 3 + [
        "moodstocks-2st"
    ] * 2
    report = json.loads((BENCH / "cnn-mnist-28.json").read_text())
    largest = max(report["results"], key=lambda result: result["batch_size"])
    median = largest["train_step"]["images_per_s"]["median"]
    assert "| 256 " in rows[2] and f"{median:,.1f} [" in rows[2]


def test_summary_refuses_a_file_that_breaks_the_bench_schema(tmp_path: Path) -> None:
    report = json.loads((BENCH / "cnn-mnist-28.json").read_text())
    del report["results"]
    (tmp_path / "cnn-mnist-28.json").write_text(json.dumps(report))
    with pytest.raises(StnbenchError, match="bench JSON"):
        bench_all.summary(tmp_path)
