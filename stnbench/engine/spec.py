"""One run of the grid, fully resolved: defaults, then the model's recipe, then a YAML run
spec, then command-line flags, each overriding the one before."""

import dataclasses
import json
import math
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from stnbench.datasets import CONTRASTS, DATASETS
from stnbench.device import PRECISIONS, resolve_device
from stnbench.distortions import distortion_version
from stnbench.distortions.augmentation import AUGMENTATIONS
from stnbench.distortions.sequences import get_task, is_sequence_task
from stnbench.engine.recipes import get_recipe, recipe_source
from stnbench.engine.record import RunRecord, read_record
from stnbench.errors import StnbenchError
from stnbench.models import model_info
from stnbench.models.builder import DOCUMENTATION_KEYS
from stnbench.preparation import ORIGINAL_CONTRAST

TRAIN_DISTORTIONS = ("fresh", "fixed")
OPTIMIZERS = ("sgd", "rmsprop", "lasagne-rmsprop")  # built by engine/optimizers.py
# fp32 on every device, so that one spec is one run on every machine (results/README.md):
# without native bf16 a CPU trains bf16 autocast about 5 times slower than fp32; with it
# (avx512_bf16) 2-2.8 times faster, and as accurate on a Table 1 cell at 10 epochs
# (benchmarks/precision_accuracy.py). A default that followed the CPU would make one spec two
# runs, and would turn the committed fp32 runs, whose specs name no precision, into bf16 ones
# when trained again. So `--precision bf16` or a preset's `precision: bf16` chooses it; a run
# records its precision.
DEFAULT_PRECISION = {"cpu": "fp32", "cuda": "fp32"}
DEFAULT_DIVERGENCE = {
    # |parameter| of any spatial transformer above this: the transformation is exploding.
    "max_param": 100.0,
    # Median over a batch of the sampled region's smaller side, as a fraction of the image
    # side, below this: the transformer zooms in on nothing.
    "min_extent": 0.02,
    # Mean fraction of sampling points inside the image below this: it looks outside.
    "min_inside": 0.05,
}
# Fields that say where and how fast a run executes, not what it computes: a finished run
# is not retrained when only these differ.
RUNTIME_FIELDS = ("threads", "data_dir", "archives")
# What documents a run without changing it: a recipe's corrected source note leaves the run,
# its checkpoint and its finished record as they were.
DOCUMENTATION_FIELDS = ("recipe_source",)
REQUIRED_FIELDS = ("dataset", "distortion", "severity", "model", "seed")
# Fields added after runs were recorded without them, with the value those runs had: at this
# value a field leaves a run's identity as it was, so that finished runs stay finished. A run
# recorded before distortions had versions was trained on version 1 of its family: once the
# family's definition changes, it is no longer the run its cell asks for.
ADDED_FIELDS = {
    "contrast": ORIGINAL_CONTRAST,
    "augmentation": None,
    "distortion_version": 1,
    "max_grad_norm": None,
    "max_grad_value": None,
}


@dataclasses.dataclass(frozen=True)
class RunSpec:
    dataset: str
    distortion: str
    severity: float
    model: str
    seed: int
    recipe: str
    optimizer: str
    lr: float
    momentum: float
    weight_decay: float
    batch_size: int
    epochs: int
    schedule: dict
    localization_lr_multiplier: float
    device: str
    precision: str
    channels_last: bool
    threads: int | None = None
    size: int | None = None
    roi_crop: bool = False
    # GTSRB's contrast normalisation (stnbench.datasets.CONTRASTS), a cached preparation.
    contrast: str = ORIGINAL_CONTRAST
    # A training augmentation drawn afresh for every batch from (seed, epoch), applied after
    # the distortion (stnbench.distortions.AUGMENTATIONS); None: none.
    augmentation: str | None = None
    # Each gradient element clipped to [-max_grad_value, max_grad_value], then the gradients
    # rescaled to at most max_grad_norm in total L2 norm, before each step; None: not done.
    max_grad_value: float | None = None
    max_grad_norm: float | None = None
    val_fraction: float | None = None
    # "fresh": new random distortions of the training set every epoch, drawn from
    # (seed, epoch); "fixed": one distorted copy of the training set for the whole run.
    train_distortion: str = "fresh"
    # Seed of the distorted validation and test sets: the same for every model and seed,
    # so that runs can be compared image by image.
    eval_seed: int = 0
    eval_batch_size: int = 1000
    limit_train: int | None = None
    limit_eval: int | None = None
    divergence: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_DIVERGENCE))
    scale: str | None = None
    data_dir: str | None = None
    archives: str | None = None

    def config(self) -> dict:
        """The fully resolved run, JSON-ready, as recorded in metrics.json and the checkpoint."""
        config = dataclasses.asdict(self)
        config["recipe_source"] = recipe_source(self.recipe)
        config["model_definition"] = model_definition(self.model)
        config["distortion_version"] = distortion_version(self.distortion)
        # Through JSON and back, so that it compares equal to the copy read from metrics.json.
        return json.loads(json.dumps(config))


FIELDS = {field.name: field for field in dataclasses.fields(RunSpec)}
_HINTS = typing.get_type_hints(RunSpec)


def identity(config: Mapping[str, Any]) -> dict:
    """What makes two runs the same run: the config without its runtime-only fields and
    without the recipe's and the model's documentation (a corrected source or a declared
    baseline leaves the network, and so the run, as it was)."""
    same = {
        key: value
        for key, value in config.items()
        if key not in RUNTIME_FIELDS and key not in DOCUMENTATION_FIELDS
        and not (key in ADDED_FIELDS and value == ADDED_FIELDS[key])
    }
    model = same.get("model_definition")
    if isinstance(model, dict):
        model = {key: value for key, value in model.items() if key not in DOCUMENTATION_KEYS}
        if isinstance(model.get("definition"), dict):
            model["definition"] = {key: value for key, value in model["definition"].items()
                                   if key not in DOCUMENTATION_KEYS}
        same["model_definition"] = model
    return same


def first_difference(old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    """The first field (by name) in which two runs' identities differ; None for one run."""
    old, new = identity(old), identity(new)
    return next((key for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)), None)


class OutOfDateRun(StnbenchError):
    """A finished run that is not the run asked for (as against a record that cannot be read);
    ``key`` is the first setting that differs."""

    def __init__(self, metrics_path: Path, key: str) -> None:
        super().__init__(
            f"{metrics_path}: holds a finished run whose {key!r} differs from the run asked "
            "for; remove that run's folder to train it again, or write the new run elsewhere"
        )
        self.key = key


def finished_run(metrics_path: Path, config: Mapping[str, Any]) -> RunRecord | None:
    """The record of the finished run at ``metrics_path``, or None where there is none yet.

    A finished run that is not the run ``config`` describes is an error, never overwritten:
    it may have cost hours, and removing it is the user's decision.
    """
    if not metrics_path.exists():
        return None
    record = read_record(metrics_path)
    key = first_difference(record.config, config)
    if key is not None:
        raise OutOfDateRun(metrics_path, key)
    return record


def model_definition(model: str) -> dict:
    """The model's registry entry: name, data sets, recipe, source and whole definition."""
    return model_info(model)


def load_spec_file(path: Path) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise StnbenchError(f"{path}: cannot read run spec ({error})") from None
    if not isinstance(data, dict):
        raise StnbenchError(f"{path}: a run spec must be a mapping of field: value")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise StnbenchError(f"{path}: unknown run spec field {unknown[0]!r}")
    return data


def _coerce(name: str, value: Any) -> Any:
    if value is None:
        return None
    kind = next(
        (arg for arg in typing.get_args(_HINTS[name]) if arg is not type(None)), _HINTS[name]
    )
    wrong = f"run spec field {name!r}: expected {kind.__name__}, got {value!r}"
    if kind in (dict, bool) and not isinstance(value, kind):
        raise StnbenchError(wrong)
    # int(2.5) would train 2 epochs without a word, and int(True) one.
    if kind is int and (isinstance(value, bool) or (isinstance(value, float) and value % 1)):
        raise StnbenchError(wrong)
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise StnbenchError(wrong) from None


def resolve_spec(flags: Mapping[str, Any], spec_file: Path | None = None) -> RunSpec:
    """Merge a YAML run spec (optional) and flags (``None`` = not given) over the recipe."""
    given = load_spec_file(spec_file) if spec_file is not None else {}
    given.update({key: value for key, value in flags.items() if value is not None})
    _undistorted_severity(given)
    missing = [name for name in REQUIRED_FIELDS if given.get(name) is None]
    if missing:
        raise StnbenchError(f"run field {missing[0]!r}: missing (give --{missing[0]} or a --spec)")
    recipe_name = given.get("recipe") or model_definition(str(given["model"])).get("recipe")
    if not recipe_name:
        raise StnbenchError(f"model {given['model']!r}: names no recipe; set `recipe` in a --spec")
    values = {"recipe": recipe_name, **get_recipe(recipe_name)}
    for key, value in given.items():
        if key == "divergence" and value is not None:
            values[key] = {**DEFAULT_DIVERGENCE, **_coerce(key, value)}
        elif key == "schedule" and value is not None:
            values[key] = {**values["schedule"], **_coerce(key, value)}
        else:
            values[key] = _coerce(key, value)
    device = resolve_device(values.get("device") or "auto")
    values["device"] = device.type
    values.setdefault("precision", None)
    values["precision"] = values["precision"] or DEFAULT_PRECISION[device.type]
    if values.get("channels_last") is None:
        # NHWC is what bf16 CPU kernels and GPU kernels want; for fp32 on the CPU measurements
        # were mixed (tutorial-stn slightly slower, moodstocks-2st faster): set it in a spec.
        values["channels_last"] = values["precision"] == "bf16" or device.type == "cuda"
    spec = RunSpec(**values)
    _validate(spec)
    return spec


def _undistorted_severity(given: dict[str, Any]) -> None:
    """``none`` and the sequence tasks have no severity: they are recorded as 0 and 1, so
    that equal runs have equal keys, and any other value is refused rather than recorded."""
    distortion = given.get("distortion")
    if distortion != "none" and not is_sequence_task(str(distortion)):
        return
    level = 0.0 if distortion == "none" else 1.0
    severity = given.setdefault("severity", level)
    if isinstance(severity, bool) or not isinstance(severity, int | float) or severity != level:
        raise StnbenchError(
            f"--severity {severity!r}: distortion {distortion!r} takes no severity (leave it out)"
        )


def _validate(spec: RunSpec) -> None:
    if spec.dataset not in DATASETS:
        raise StnbenchError(f"--dataset {spec.dataset!r}: expected one of {', '.join(DATASETS)}")
    meant_for = model_definition(spec.model)["datasets"]
    if meant_for and spec.dataset not in meant_for:
        raise StnbenchError(
            f"--model {spec.model}: meant for {', '.join(meant_for)}, not {spec.dataset} (its "
            "layers and recipe assume that data set's images)"
        )
    positions = model_definition(spec.model)["definition"].get("sequence")
    sequence_model = positions is not None
    if sequence_model and is_sequence_task(spec.distortion):
        digits = get_task(spec.distortion).digits
        if positions != digits:
            raise StnbenchError(
                f"--model {spec.model}: scores {positions} positions, but the sequence task "
                f"{spec.distortion!r} has {digits} digits"
            )
    if sequence_model != is_sequence_task(spec.distortion):
        raise StnbenchError(
            f"--model {spec.model}: "
            + (f"scores a label sequence; train it on a sequence task, not {spec.distortion!r}"
               if sequence_model else
               f"scores one label per image; the sequence task {spec.distortion!r} needs a "
               "model with `sequence`")
        )
    if spec.dataset != "gtsrb" and spec.contrast != ORIGINAL_CONTRAST:
        raise StnbenchError(f"contrast {spec.contrast!r}: GTSRB only; {spec.dataset} has none")
    if spec.augmentation is not None and spec.augmentation not in AUGMENTATIONS:
        raise StnbenchError(
            f"augmentation {spec.augmentation!r}: expected one of {', '.join(AUGMENTATIONS)}"
        )
    for name, choices in (
        ("precision", PRECISIONS),
        ("train_distortion", TRAIN_DISTORTIONS),
        ("contrast", CONTRASTS),
    ):
        if getattr(spec, name) not in choices:
            raise StnbenchError(
                f"{name} {getattr(spec, name)!r}: expected one of {', '.join(choices)}"
            )
    if spec.optimizer not in OPTIMIZERS:
        raise StnbenchError(
            f"optimizer {spec.optimizer!r}: expected one of {', '.join(OPTIMIZERS)}"
        )
    for name in ("batch_size", "epochs", "eval_batch_size"):
        if getattr(spec, name) < 1:
            raise StnbenchError(f"{name} {getattr(spec, name)}: must be at least 1")
    for name in ("limit_train", "limit_eval"):
        if getattr(spec, name) is not None and getattr(spec, name) < 1:
            raise StnbenchError(f"{name} {getattr(spec, name)}: must be at least 1")
    if spec.seed < 0:
        raise StnbenchError(f"--seed {spec.seed}: must be 0 or more")
    if not (math.isfinite(spec.lr) and spec.lr > 0):
        raise StnbenchError(f"--lr {spec.lr}: must be a finite positive number")
    for name in ("max_grad_value", "max_grad_norm"):
        value = getattr(spec, name)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise StnbenchError(f"{name} {value}: must be a finite positive number")
    for name in ("momentum", "weight_decay", "localization_lr_multiplier"):
        value = getattr(spec, name)
        if not (math.isfinite(value) and value >= 0):
            raise StnbenchError(f"{name} {value}: must be a finite number, 0 or more")
    if spec.optimizer == "lasagne-rmsprop" and spec.momentum:
        raise StnbenchError(
            f"momentum {spec.momentum}: lasagne-rmsprop has none; set it to 0 or choose rmsprop"
        )


# Bytes a float32 parameter costs in training: weights, gradients, the SGD momentum buffer and
# the copy of the selected epoch's weights.
TRAINING_BYTES_PER_PARAMETER = 4 * 4


def check_model(spec: RunSpec) -> None:
    """Build the run's model at its input size on the meta device (shapes, no memory) and refuse
    one that cannot be built or whose training would not fit in this machine's memory, before
    any data is loaded or any memory allocated for it."""
    import psutil
    import torch

    from stnbench.distortions import run_input_size
    from stnbench.models import create_model

    inputs = DATASETS[spec.dataset]
    size = run_input_size(dataclasses.asdict(spec))
    with torch.device("meta"):
        model = create_model(spec.model, in_channels=inputs.channels, input_size=size,
                             num_classes=inputs.num_classes)
    parameters = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    needed = parameters * TRAINING_BYTES_PER_PARAMETER + buffers
    if spec.device == "cuda":
        available, memory = torch.cuda.get_device_properties(0).total_memory, "this GPU's"
    else:
        available, memory = psutil.virtual_memory().total, "this machine's"
    if needed > available:
        raise StnbenchError(
            f"--model {spec.model}: {parameters:,} parameters and {buffers / 2**30:,.1f} GB of "
            f"buffers need about {needed / 2**30:,.0f} GB to train at {size} px, more than "
            f"{memory} {available / 2**30:,.0f} GB"
        )
