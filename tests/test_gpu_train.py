"""benchmarks/gpu_train.py, the GPU machine's training driver, tried on the CPU: it trains the
specs without a record, pairs first, and returns the finished runs as a tar to unpack here."""

import subprocess
import sys
import tarfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
TINY = {"dataset": "mnist", "distortion": "R", "severity": 1.0, "epochs": 1,
        "limit_train": 256, "limit_eval": 200, "scale": "test"}


def test_trains_each_spec_without_a_record_and_returns_them(
    mnist, data_dir: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "work" / "runs"
    for model, seed in (("cnn", 1), ("st-cnn-affine", 0), ("cnn", 0)):
        folder = runs / f"model~{model}_seed~{seed}"
        folder.mkdir(parents=True)
        (folder / "spec.yaml").write_text(yaml.safe_dump({**TINY, "model": model, "seed": seed}))
    out = tmp_path / "out" / "gpu_runs.tar.gz"
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_train.py"), "--runs", "work/runs",
         "--archive-as", "results/runs",
         "--models", "st-cnn-affine,cnn", "--device", "cpu", "--threads", "1",
         "--data-dir", str(data_dir), "--minutes", "5", "--out", str(out)],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    )
    # Seed 0's pair first, in --models order, then seed 1.
    started = [line.split("model~")[1].split("/")[0] for line in done.stdout.splitlines()
               if line.startswith("$")]
    assert started == ["st-cnn-affine_seed~0", "cnn_seed~0", "cnn_seed~1"]
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
    for run in ("cnn_seed~0", "cnn_seed~1", "st-cnn-affine_seed~0"):
        assert {f"results/runs/model~{run}/metrics.json",
                f"results/runs/model~{run}/predictions.npz",
                f"logs/gpu/train/model~{run}.log"} <= names
    assert not any("checkpoint" in name for name in names)
