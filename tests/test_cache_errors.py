"""A prepared cache cut short is rebuilt, and one holding code is refused without advice to
load it anyway."""

import json
import os
import pickle
from pathlib import Path

import pytest

from stnbench.datasets import load_dataset, prepare_dataset
from stnbench.engine.checkpoint import selected_weights
from stnbench.errors import StnbenchError


class _Planted:
    def __reduce__(self):  # what a malicious file would carry: code run on unpickling
        return (os.system, ("true",))


@pytest.fixture
def mnist_cache(tmp_path: Path) -> tuple[Path, Path]:
    data_dir = tmp_path / "data"
    prepare_dataset("mnist", data_dir)
    manifest = json.loads((data_dir / "cache" / "mnist-28px.json").read_text())
    return data_dir, data_dir / "cache" / manifest["tensors"]


def test_truncated_cache_is_rebuilt_by_prepare(mnist_cache: tuple[Path, Path]) -> None:
    data_dir, tensors = mnist_cache
    size = tensors.stat().st_size
    with open(tensors, "r+b") as handle:
        handle.truncate(size // 2)
    with pytest.raises(StnbenchError, match="not prepared"):
        load_dataset("mnist", data_dir)
    prepare_dataset("mnist", data_dir)
    assert tensors.stat().st_size == size
    assert len(load_dataset("mnist", data_dir).test.labels) == 10_000


def test_cache_holding_code_is_refused_without_unsafe_advice(
    mnist_cache: tuple[Path, Path],
) -> None:
    data_dir, tensors = mnist_cache
    planted = pickle.dumps(_Planted(), protocol=2)
    tensors.write_bytes(planted + b"\0" * (tensors.stat().st_size - len(planted)))
    with pytest.raises(StnbenchError) as error:
        load_dataset("mnist", data_dir)
    message = str(error.value)
    assert message.startswith(f"{tensors}: not a cache this suite wrote") and "\n" not in message
    assert "weights_only" not in message


def test_checkpoint_holding_code_is_refused_without_unsafe_advice(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(pickle.dumps(_Planted(), protocol=2))
    with pytest.raises(StnbenchError) as error:
        selected_weights(path)
    message = str(error.value)
    assert message.startswith(f"{path}: not a checkpoint this suite wrote") and "\n" not in message
    assert "weights_only" not in message
    path.write_bytes(b"")
    with pytest.raises(StnbenchError, match=r"unreadable checkpoint .*; remove it to start over"):
        selected_weights(path)
