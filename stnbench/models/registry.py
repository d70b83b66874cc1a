"""Named models: one YAML definition per model in ``definitions/``, or any YAML file by path."""

import difflib
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import yaml
from torch import nn

from stnbench.dataset_registry import DATASETS, get_dataset, input_shape
from stnbench.errors import StnbenchError
from stnbench.models.builder import InputSpec, build_model, resolve_definition

DEFINITIONS_DIR = Path(__file__).resolve().parent / "definitions"


def list_models() -> list[str]:
    """The registered model names, sorted."""
    return sorted(path.stem for path in DEFINITIONS_DIR.glob("*.yaml"))


def _is_path(name_or_path: str) -> bool:
    return str(name_or_path).endswith((".yaml", ".yml")) or "/" in str(name_or_path)


def _read_yaml(path: Path) -> object:
    try:
        return yaml.safe_load(path.read_text())
    except OSError as error:
        raise StnbenchError(f"model file {path}: cannot be read ({error.strerror})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "syntax error"
        raise StnbenchError(f"model file {path}: not valid YAML ({problem}{at})") from None


@cache
def _registered(name: str) -> dict:
    return _read_yaml(DEFINITIONS_DIR / f"{name}.yaml")  # type: ignore[return-value]


def load_definition(name_or_path: str) -> tuple[dict, str]:
    """The raw definition of a registered name or of a YAML file, and how to name it in messages.

    A file's definition may leave out ``name``: it then defaults to the file's stem.
    """
    if _is_path(name_or_path):
        path = Path(name_or_path)
        if not path.is_file():
            raise StnbenchError(f"model file {path}: does not exist")
        definition = _read_yaml(path)
        if isinstance(definition, dict):
            definition.setdefault("name", path.stem)
        return definition, str(path)  # type: ignore[return-value]
    names = list_models()
    if name_or_path not in names:
        close = difflib.get_close_matches(name_or_path, names, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else " (see `stnbench models list`)"
        raise StnbenchError(f"unknown model {name_or_path!r}{hint}")
    return _registered(name_or_path), f"model {name_or_path}"


def model_info(name_or_path: str) -> dict:
    """Name, data sets, recipe, description and source of a model, and its whole definition."""
    definition, source = load_definition(name_or_path)
    resolved = resolve_definition(definition, source, {})
    return {
        "name": resolved["name"],
        "datasets": list(resolved["datasets"]),
        "recipe": resolved["recipe"],
        "description": " ".join(str(resolved.get("description", "")).split()),
        "source": " ".join(str(resolved.get("source", "")).split()),
        "definition": resolved,
    }


def model_sizes(name_or_path: str, dataset: str) -> tuple[int, ...]:
    """The image sizes a model is built for on ``dataset``: its sequence tasks' canvases for a
    model with a `sequence` of outputs, else the data set's sizes."""
    facts = get_dataset(dataset)
    sequence = model_info(name_or_path)["definition"].get("sequence") is not None
    return facts.sequence_sizes if sequence else facts.input_sizes


def model_input_shape(
    name_or_path: str, dataset: str, size: int | None = None
) -> tuple[int, int, int]:
    """[C, H, W] of the images a model takes on ``dataset`` at ``size`` px (None: its first
    size); the errors name the command-line options (``--dataset``, ``--size``)."""
    sizes = model_sizes(name_or_path, dataset) if dataset in DATASETS else None
    return input_shape(dataset, size, sizes)


def create_model(
    name_or_yaml_path: str,
    *,
    in_channels: int,
    input_size: int,
    num_classes: int,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    **overrides: object,
) -> nn.Module:
    """Build a registered model or a YAML definition for inputs [N, in_channels, size, size].

    ``mean``/``std`` (per channel, on [0, 1] images) standardise the input after the spatial
    transformers that read the raw image; without them the input is used as is. ``overrides``:
    ``transform`` (family of every ST), ``components`` (similarity), ``grid_size`` (tps),
    ``columns`` (committee size).
    """
    definition, source = load_definition(name_or_yaml_path)
    spec = InputSpec(in_channels, input_size, num_classes, mean, std)
    return build_model(definition, source, spec, overrides)
