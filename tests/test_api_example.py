"""docs/api.md's example, run as it is written there: on committed runs, and on a run trained
here whose test accuracy it must reproduce from the checkpoint."""

import json
import re
from pathlib import Path

import pytest
import torch
import yaml

from stnbench.cli import main
from stnbench.datasets import DatasetTensors
from stnbench.engine.checkpoint import CHECKPOINT_NAME
from stnbench.models import count_parameters

REPO = Path(__file__).resolve().parents[1]
COMMITTED_RUNS = sorted((REPO / "results").glob("*/runs/*/metrics.json"))


@pytest.fixture(scope="module")
def example() -> dict:
    """The names the documentation's first Python block defines."""
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "docs" / "api.md").read_text(), re.S)
    namespace: dict = {}
    exec(compile(blocks[0], "docs/api.md", "exec"), namespace)
    return namespace


def _run_of(model: str, dataset: str) -> Path:
    for path in COMMITTED_RUNS:
        metrics = json.loads(path.read_text())
        if (metrics["model"], metrics["dataset"], metrics["status"]) == (model, dataset, "ok"):
            return path.parent
    pytest.skip(f"no committed {model} run on {dataset} under results/")


@pytest.mark.parametrize(
    ("model", "dataset"), [("st-cnn-affine", "mnist"), ("moodstocks-2st", "gtsrb")]
)
def test_a_committed_run_rebuilds_without_data_or_checkpoint(
    example: dict, model: str, dataset: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _run_of(model, dataset)
    assert not (run / CHECKPOINT_NAME).exists()
    # No data folder anywhere: the example must not reach for the data set.
    monkeypatch.setenv("STNBENCH_DATA_DIR", str(tmp_path / "no-data"))
    metrics = json.loads((run / "metrics.json").read_text())
    network, size = example["load_run_model"](run)
    assert count_parameters(network) == metrics["params"]
    channels = 1 if dataset == "mnist" else 3
    images = torch.rand(4, channels, size, size, generator=torch.Generator().manual_seed(0))
    classes = example["classify"](network, images)
    assert classes.shape == (4,)
    assert classes.dtype == torch.int64
    assert not (tmp_path / "no-data").exists()


def test_with_its_checkpoint_the_example_reproduces_the_runs_test_accuracy(
    example: dict, mnist: DatasetTensors, data_dir: Path, tmp_path: Path, one_thread: None
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"limit_train": 1024, "batch_size": 32, "lr": 0.05,
                                    "momentum": 0.9, "schedule": {"type": "constant"},
                                    "localization_lr_multiplier": 0.1}))
    run = tmp_path / "run"
    main(["train", "--dataset", "mnist", "--distortion", "none", "--seed", "0",
          "--model", str(REPO / "tests" / "data" / "tiny-st-cnn.yaml"), "--epochs", "1",
          "--spec", str(spec), "--out", str(run), "--data-dir", str(data_dir),
          "--device", "cpu", "--threads", "1"])
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "ok"

    network, size = example["load_run_model"](run)
    assert size == mnist.image_size
    images = mnist.test.images.float() / 255
    predicted = torch.cat([example["classify"](network, batch) for batch in images.split(1000)])
    accuracy = int((predicted == mnist.test.labels).sum()) / len(mnist.test)
    # Well above chance, and the very figure the run reported for its selected weights.
    assert accuracy > 0.5
    assert accuracy == pytest.approx(metrics["test_accuracy"], abs=1e-9)
