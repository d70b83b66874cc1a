"""The dataset registry states what the real data sets are, and the lists elsewhere agree."""

from pathlib import Path

import pytest
import yaml

from stnbench.dataset_registry import DATASETS, GTSRB, MNIST, input_shape
from stnbench.datasets import DatasetTensors
from stnbench.errors import StnbenchError
from stnbench.preparation import CONTRASTS

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"


@pytest.mark.parametrize("name", list(DATASETS))
def test_the_registry_states_the_real_data_sets_facts(name: str, request) -> None:
    data: DatasetTensors = request.getfixturevalue(name)
    dataset = DATASETS[name]
    assert data.name == dataset.name
    assert data.channels == dataset.channels == data.train.images.shape[1]
    assert data.num_classes == dataset.num_classes
    assert set(data.train.labels.unique().tolist()) == set(range(dataset.num_classes))
    assert data.image_size == dataset.native_size == data.test.images.shape[-1]
    assert dataset.native_size in dataset.input_sizes
    assert len(data.train) + len(data.val) == dataset.train_size


def test_mnist_test_set_is_the_official_one(mnist: DatasetTensors) -> None:
    assert len(mnist.test) == MNIST.test_size
    assert MNIST.class_names is not None and len(MNIST.class_names) == MNIST.num_classes


def test_the_config_schema_lists_what_the_registry_holds() -> None:
    experiment = yaml.safe_load(SCHEMA.read_text())["$defs"]["experiment"]["properties"]
    assert experiment["dataset"]["enum"] == list(DATASETS)
    assert experiment["contrast"]["enum"] == list(CONTRASTS) == list(GTSRB.contrasts)
    assert experiment["size"]["enum"] == [None, *GTSRB.input_sizes]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ((MNIST, 32, False, "original"), "size 32: MNIST images are 28 px; leave the size unset"),
        ((MNIST, None, True, "original"), "roi_crop: MNIST has no regions of interest"),
        ((MNIST, None, False, "histeq"), "contrast 'histeq': MNIST has no contrasts"),
        ((GTSRB, 600, False, "original"), "size 600: GTSRB square size must be 8 to 512 px"),
        ((GTSRB, 48, True, "clahe"), "contrast 'clahe': expected one of original, imadjust"),
    ],
)
def test_a_preparation_the_data_set_does_not_allow_is_refused(options, message) -> None:
    dataset, *rest = options
    with pytest.raises(StnbenchError, match=message):
        dataset.prep(*rest)


def test_preparations_and_input_shapes() -> None:
    assert GTSRB.prep(48, True, "histeq").id == "gtsrb-48px-roi-histeq"
    assert MNIST.native().id == "mnist-28px" and GTSRB.native().label == "32px"
    assert input_shape("gtsrb", 48) == (3, 48, 48) and input_shape("mnist") == (1, 28, 28)
    with pytest.raises(StnbenchError, match="--size 30: mnist images come in 28, 42, 60 px"):
        input_shape("mnist", 30)
