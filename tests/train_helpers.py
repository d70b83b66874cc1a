"""The tiny training runs that the `stnbench train` tests share: specs, command lines, and
the comparison of two records that ignores what measures time."""

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
TINY_ST = str(REPO / "tests" / "data" / "tiny-st-cnn.yaml")
TINY_CNN = str(REPO / "tests" / "data" / "tiny-cnn.yaml")
# Small enough for seconds per run on one thread, large enough to learn something.
TINY = {
    "limit_train": 1024,
    "limit_eval": 300,
    "batch_size": 32,
    "lr": 0.05,
    "momentum": 0.9,
    "schedule": {"type": "constant"},
    "localization_lr_multiplier": 0.1,
    "threads": 1,
}


def write_spec(path: Path, **fields) -> Path:
    path.write_text(yaml.safe_dump({**TINY, **fields}))
    return path


def train_args(
    out: Path,
    data_dir: Path,
    spec: Path,
    model: str = TINY_ST,
    distortion: str = "RTS",
    epochs: int = 2,
    *extra: str,
) -> list[str]:
    return [
        "train",
        "--dataset",
        "mnist",
        "--distortion",
        distortion,
        "--severity",
        "1",
        "--model",
        model,
        "--seed",
        "0",
        "--epochs",
        str(epochs),
        "--out",
        str(out),
        "--data-dir",
        str(data_dir),
        "--device",
        "cpu",
        "--spec",
        str(spec),
        *extra,
    ]


def without_timing(metrics: dict) -> dict:
    """Everything but the fields that measure time, and the checkout's commit (which moves
    when the tree is committed between two runs)."""
    kept = {
        key: value
        for key, value in metrics.items()
        if key not in {"wall_s", "train_images_per_s", "git_commit"}
    }
    kept["machine"] = {
        key: value for key, value in metrics["machine"].items() if key != "git_commit"
    }
    kept["history"] = [
        {
            key: value
            for key, value in entry.items()
            if key not in {"wall_s", "images_per_s", "train_s"}
        }
        for entry in metrics["history"]
    ]
    return kept
