"""What only a GPU can check: training, sampling and benchmarking on CUDA. Skipped without one;
`make gpu-check` runs them (with `-m cuda`) on a machine that has one."""

import json
import math
from pathlib import Path

import pytest
import torch

from stnbench.cli import main
from stnbench.models import create_model, spatial_transformers

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
REPO = Path(__file__).resolve().parents[1]
TINY_ST = str(REPO / "tests" / "data" / "tiny-st-cnn.yaml")


@pytest.mark.parametrize("model", ["st-cnn-tps", "moodstocks-2st"])
def test_identity_transformers_are_exact_on_cuda_under_bf16(model: str) -> None:
    channels, size, classes = (3, 48, 43) if model.startswith("moodstocks") else (1, 28, 10)
    net = create_model(model, in_channels=channels, input_size=size, num_classes=classes).cuda()
    images = torch.rand(8, channels, size, size, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        net(images)
    first = spatial_transformers(net)[0]
    assert first.last_grid.dtype == torch.float32
    identity = first.grid_generator.identity().cuda()
    assert torch.equal(first.last_params, identity.expand_as(first.last_params))


def test_training_on_cuda_records_the_gpu_and_its_reproducibility(
    mnist, data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    argv = ["train", "--dataset", "mnist", "--distortion", "R", "--severity", "1",
            "--model", TINY_ST, "--seed", "0", "--epochs", "1", "--device", "cuda",
            "--precision", "bf16", "--data-dir", str(data_dir), "--out", str(out)]  # fmt: skip
    spec = tmp_path / "spec.yaml"
    spec.write_text("limit_train: 2048\nlimit_eval: 1000\nbatch_size: 256\n")
    assert main([*argv, "--spec", str(spec)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["device_type"] == "cuda"
    assert metrics["device"] == torch.cuda.get_device_name()
    # grid_sample has no deterministic CUDA backward: the record must not claim otherwise.
    assert metrics["bit_reproducible"] is False
    # Eight bf16 steps of a tiny model stay near chance (9.5% on an H200): the check is that
    # CUDA training yields a real accuracy, not that it has learnt; the CPU tests cover learning.
    assert math.isfinite(metrics["test_accuracy"]) and 0.0 <= metrics["test_accuracy"] <= 1.0
    assert all(math.isfinite(epoch["train_loss"]) for epoch in metrics["history"])


def test_bench_on_cuda_writes_a_valid_record(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    argv = ["bench", "--model", "moodstocks-2st", "--dataset", "gtsrb", "--size", "48",
            "--device", "cuda", "--batch-sizes", "1,50", "--repeats", "3", "--out", str(out)]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert report["device_type"] == "cuda"
    rates = [row["train_step"]["images_per_s"]["median"] for row in report["results"]]
    assert all(rate > 0 for rate in rates)
