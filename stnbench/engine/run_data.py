"""The data of one run: the prepared data set, limited to the run's share, distorted as the
run asks and put on the device."""

import dataclasses

import torch

from stnbench.datasets import DatasetTensors, Split, load_dataset, prepare_dataset
from stnbench.distortions import Distortion, cached_distorted_split, distort_split, get_distortion
from stnbench.distortions.sequences import (
    SequenceTask,
    cached_sequence_split,
    get_task,
    is_sequence_task,
)
from stnbench.engine.record import TestSet
from stnbench.engine.spec import RunSpec
from stnbench.errors import StnbenchError
from stnbench.paths import cache_dir, resolve_archives, resolve_data_dir


def _limit(split: Split, limit: int | None) -> Split:
    """A random subset of ``limit`` images (the same for every run), kept in split order:
    the first images would do for MNIST but not for GTSRB, whose splits are sorted by class."""
    if limit is None or limit >= len(split.labels):
        return split
    generator = torch.Generator().manual_seed(0)
    index = torch.randperm(len(split.labels), generator=generator)[:limit].sort().values
    return Split(images=split.images[index], labels=split.labels[index])


def _to_device(split: Split, device: torch.device) -> Split:
    return Split(images=split.images.to(device), labels=split.labels.to(device))


def _load_data(spec: RunSpec) -> DatasetTensors:
    """The prepared data set, preparing it first (from --archives for GTSRB) if needed."""
    data_dir = resolve_data_dir(spec.data_dir)
    options = {"size": spec.size, "roi_crop": spec.roi_crop, "contrast": spec.contrast}
    try:
        return load_dataset(spec.dataset, data_dir, val_fraction=spec.val_fraction, **options)
    except StnbenchError:
        prepare_dataset(spec.dataset, data_dir, archives=resolve_archives(spec.archives), **options)
        return load_dataset(spec.dataset, data_dir, val_fraction=spec.val_fraction, **options)


def load_eval_split(
    data: DatasetTensors, name: str, distortion: Distortion | SequenceTask, spec: RunSpec
) -> Split:
    """The distorted validation or test split, identical for every model and seed."""
    cache = cache_dir(resolve_data_dir(spec.data_dir))
    if isinstance(distortion, SequenceTask):
        # Drawn at the limited size (see cached_sequence_split), so already a random sample.
        return cached_sequence_split(data, name, distortion, spec.eval_seed, cache,
                                     limit=spec.limit_eval)
    split = cached_distorted_split(data, name, distortion, spec.eval_seed, cache)
    return _limit(split, spec.limit_eval)


@dataclasses.dataclass(frozen=True)
class RunData:
    """What a run trains, selects and tests on; ``train`` and ``val`` on the device."""

    data: DatasetTensors
    distortion: Distortion | SequenceTask
    input_size: int
    train: Split
    val: Split
    # Applied afresh to every training batch; None where the training set is used as it is.
    batch_distortion: Distortion | None


def load_run_data(spec: RunSpec, device: torch.device) -> RunData:
    """The run's training split (distorted once here for ``train_distortion: fixed``) and its
    distorted validation split, on ``device``."""
    data = _load_data(spec)
    if is_sequence_task(spec.distortion):
        return _sequence_run_data(spec, data, device)
    distortion = get_distortion(spec.distortion, spec.severity, dataset=spec.dataset)
    train = _to_device(_limit(data.train, spec.limit_train), device)
    unchanged = distortion.is_identity(data.image_size)
    if spec.train_distortion == "fixed" and not unchanged:
        train = distort_split(train, distortion, spec.seed, device=device)
    fresh = spec.train_distortion == "fresh" and not unchanged
    val = _to_device(load_eval_split(data, "val", distortion, spec), device)
    return RunData(data, distortion, distortion.output_size(data.image_size), train, val,
                   distortion if fresh else None)


def _sequence_run_data(spec: RunSpec, data: DatasetTensors, device: torch.device) -> RunData:
    """A sequence task's splits: the training sequences, like the evaluation ones, are one
    fixed set drawn with ``eval_seed`` (the paper's fixed data set), the same for every seed."""
    task = get_task(spec.distortion)
    cache = cache_dir(resolve_data_dir(spec.data_dir))
    train = cached_sequence_split(data, "train", task, spec.eval_seed, cache,
                                  limit=spec.limit_train)
    val = load_eval_split(data, "val", task, spec)
    return RunData(data, task, task.output_size(data.image_size), _to_device(train, device),
                   _to_device(val, device), None)


def test_set(inputs: RunData, spec: RunSpec) -> TestSet:
    """What the run's test figures are measured on, and how it differs from the official set."""
    if isinstance(inputs.distortion, SequenceTask):
        task = inputs.distortion
        size = min(spec.limit_eval or task.count("test"), task.count("test"))
        return TestSet(f"{task.dataset} {task.name} test", size,
                       f"{size} sequences of {task.digits} MNIST test digits, drawn with seed "
                       f"{spec.eval_seed}")
    test = TestSet(**inputs.data.info["test_set"])
    if spec.limit_eval is None or spec.limit_eval >= test.size:
        return test
    limited = f"a fixed random {spec.limit_eval} of them (limit_eval)"
    return TestSet(test.name, spec.limit_eval, "; ".join(filter(None, [test.note, limited])))
