"""The data sets, one class each as torchvision has them, carrying their facts: channels,
classes, the sides their models take, their own side, the preparations they allow and their
official splits.

Every list of data sets elsewhere (command-line choices, model definitions' ``datasets``, the
config schema's enum, checked by a test) derives from ``DATASETS``. Kept free of torch: the
workflow imports it at every start.
"""

from typing import ClassVar

from stnbench.errors import StnbenchError
from stnbench.preparation import CONTRASTS, ORIGINAL_CONTRAST, Prep


class Dataset:
    """What every data set states; each subclass is one data set."""

    name: ClassVar[str]  # as commands, configs and run records spell it
    title: ClassVar[str]  # as messages write it
    channels: ClassVar[int]
    num_classes: ClassVar[int]
    class_names: ClassVar[tuple[str, ...] | None] = None
    native_size: ClassVar[int]  # the side of its published images: its default preparation
    input_sizes: ClassVar[tuple[int, ...]]  # the sides its models are built and benched at
    # The canvases of its sequence tasks (stnbench.distortions.sequences): the only sides that
    # models with a `sequence` of outputs are built for.
    sequence_sizes: ClassVar[tuple[int, ...]] = ()
    size_range: ClassVar[tuple[int, int]]  # the sides it can be prepared at
    roi_crop: ClassVar[bool]  # whether its images carry a region of interest to crop to
    contrasts: ClassVar[tuple[str, ...]]  # the contrasts it can be prepared at
    # The official splits' sizes; val is cut from the training set.
    train_size: ClassVar[int]
    test_size: ClassVar[int]

    @classmethod
    def prep(cls, size: int | None, roi_crop: bool, contrast: str) -> Prep:
        """The preparation these options ask for (``size`` None: the native side), or an
        error naming the option the data set does not allow."""
        size = cls.native_size if size is None else size
        low, high = cls.size_range
        if not low <= size <= high:
            rule = (f"square size must be {low} to {high} px" if low < high
                    else f"images are {low} px; leave the size unset")
            raise StnbenchError(f"size {size}: {cls.title} {rule}")
        if roi_crop and not cls.roi_crop:
            raise StnbenchError(f"roi_crop: {cls.title} has no regions of interest to crop to")
        if contrast not in cls.contrasts:
            allowed = (f"expected one of {', '.join(cls.contrasts)}" if len(cls.contrasts) > 1
                       else f"{cls.title} has no contrasts")
            raise StnbenchError(f"contrast {contrast!r}: {allowed}")
        return Prep(cls.name, size, roi_crop, contrast)

    @classmethod
    def native(cls) -> Prep:
        """Its own preparation: the published side, the whole image, the original contrast."""
        return Prep(cls.name, cls.native_size, False)


class MNIST(Dataset):
    name = "mnist"
    title = "MNIST"
    channels = 1
    num_classes = 10
    class_names = tuple(str(digit) for digit in range(10))
    native_size = 28
    # 42 px: the RTS canvas; 60 px: cluttered MNIST.
    input_sizes = (28, 42, 60)
    sequence_sizes = (100,)
    size_range = (28, 28)
    roi_crop = False
    contrasts = (ORIGINAL_CONTRAST,)
    train_size = 60_000
    test_size = 10_000


class GTSRB(Dataset):
    name = "gtsrb"
    title = "GTSRB"
    channels = 3
    num_classes = 43
    native_size = 32
    input_sizes = (32, 48)
    size_range = (8, 512)
    roi_crop = True
    contrasts = CONTRASTS
    train_size = 39_209
    test_size = 12_630


DATASETS: dict[str, type[Dataset]] = {dataset.name: dataset for dataset in (MNIST, GTSRB)}


def get_dataset(name: str) -> type[Dataset]:
    if name not in DATASETS:
        raise StnbenchError(f"dataset {name!r}: expected one of {', '.join(DATASETS)}")
    return DATASETS[name]


def input_shape(
    name: str, size: int | None = None, sizes: tuple[int, ...] | None = None
) -> tuple[int, int, int]:
    """[C, H, W] of the images a model of data set ``name`` takes at ``size`` px (None: the
    first of its input sizes). ``sizes``: the sides a particular model is built for, where
    they are not the data set's (a sequence model: its task's canvas, to which a side of the
    data set's own is mapped). The errors name the command-line options."""
    if name not in DATASETS:
        raise StnbenchError(f"--dataset {name!r}: expected one of {', '.join(DATASETS)}")
    dataset = DATASETS[name]
    allowed = dataset.input_sizes if sizes is None else sizes
    if size is None or (allowed != dataset.input_sizes and size in dataset.input_sizes):
        size = allowed[0]
    if size not in allowed:
        raise StnbenchError(
            f"--size {size}: {name} images come in {', '.join(map(str, allowed))} px"
        )
    return (dataset.channels, size, size)
