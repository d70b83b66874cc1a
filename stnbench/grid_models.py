"""The models of the workflow's grid: registered ones and the config's variants, each checked
against the experiments that name it before any job runs."""

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stnbench.errors import StnbenchError


def variant_definitions(config: Mapping[str, Any], base_dir: Path) -> dict[str, dict]:
    """Each configured variant by name: its definition (a YAML path or a mapping) and entry."""
    from stnbench.models import list_models, model_info

    registry = set(list_models())
    variants: dict[str, dict] = {}
    for index, entry in enumerate(config["variants"]):
        where = f"config variants[{index}]"
        definition = entry["definition"]
        if isinstance(definition, str):
            path = Path(definition) if Path(definition).is_absolute() else base_dir / definition
            if not path.is_file():
                raise StnbenchError(f"{where}.definition: no such model definition {definition}")
            definition = str(path)
            info = model_info(definition)
        else:
            definition = _inline_definition(definition, f"{where}.definition", base_dir)
            info = definition
        name = info.get("name")
        if not isinstance(name, str) or not name:
            raise StnbenchError(f"{where}.definition: a model definition needs a `name`")
        if name in registry or name in variants:
            raise StnbenchError(f"{where}: model name {name!r} is taken; rename the variant")
        for experiment in entry["experiments"]:
            if experiment not in config["experiments"]:
                raise StnbenchError(f"{where}.experiments: unknown experiment {experiment!r}")
        variants[name] = {
            "definition": definition, "entry": entry, "datasets": info.get("datasets"),
        }
    return variants


def _inline_definition(definition: Mapping[str, Any], where: str, base_dir: Path) -> dict:
    """An inline definition as written; with ``based_on`` (a registered model or a YAML file),
    that model's definition with the inline keys in place of its own, so that a variant which
    differs in a few keys (its name, its baseline, its layers) does not repeat the rest. The
    merged definition is what the workflow writes out and each run records."""
    from stnbench.models.registry import load_definition

    if "based_on" not in definition:
        return dict(definition)
    base = definition["based_on"]
    if not isinstance(base, str) or not base:
        raise StnbenchError(f"{where}.based_on: expected a model name or a YAML file, got {base!r}")
    # A bare name is a registered model (a misspelt one gets the registry's suggestions); a
    # file path starts where the config's other relative paths do.
    if base.endswith((".yaml", ".yml")) and not Path(base).is_absolute():
        base = str(base_dir / base)
    try:
        base_definition, _ = load_definition(base)
    except StnbenchError as error:
        raise StnbenchError(f"{where}.based_on: {error}") from None
    if not isinstance(base_definition, dict):
        raise StnbenchError(f"{where}.based_on: {base} does not hold a model definition")
    own = {key: value for key, value in definition.items() if key != "based_on"}
    return {**copy.deepcopy(base_definition), **own}


def check_models(config: Mapping[str, Any], variants: Mapping[str, dict]) -> None:
    """Every model the config names is registered or a configured variant, meant for the
    experiment's data set."""
    from stnbench.models import list_models, model_info

    known = set(list_models()) | set(variants)
    for name, experiment in config["experiments"].items():
        for key in ("models", "viz", "model_train"):
            for model in experiment[key]:
                where = f"config experiments.{name}.{key}"
                if model not in known:
                    raise StnbenchError(
                        f"{where}: unknown model {model!r} (known: {', '.join(sorted(known))})"
                    )
                if key != "models" and model not in experiment["models"]:
                    raise StnbenchError(f"{where}: {model!r} is not in the experiment's models")
                meant_for = (
                    variants[model]["datasets"] if model in variants
                    else model_info(model).get("datasets")
                ) or []
                if meant_for and experiment["dataset"] not in meant_for:
                    raise StnbenchError(
                        f"{where}: model {model!r} is meant for {', '.join(meant_for)}, "
                        f"not {experiment['dataset']}"
                    )


def model_argument(model: str, variants: Mapping[str, dict], results_dir: Path) -> str:
    """What ``--model`` gets: a registry name, a variant's YAML file, or the file the workflow
    writes an inline variant to."""
    if model not in variants:
        return model
    definition = variants[model]["definition"]
    if isinstance(definition, str):
        return definition
    return str(results_dir / "models" / f"{model}.yaml")
