"""Training recipes per model family (optimiser, rate, schedule, batch, epochs), from YAML."""

import math
from functools import cache
from importlib import resources

import yaml

from stnbench.errors import StnbenchError

SCHEDULE_TYPES = ("constant", "step", "exponential")


@cache
def _recipes() -> dict[str, dict]:
    text = resources.files("stnbench.engine").joinpath("recipes.yaml").read_text()
    return yaml.safe_load(text)


def list_recipes() -> list[str]:
    return sorted(_recipes())


def get_recipe(name: str) -> dict:
    """A copy of the named recipe's fields (without its ``source`` note)."""
    recipes = _recipes()
    if name not in recipes:
        raise StnbenchError(
            f"recipe {name!r}: unknown; expected one of {', '.join(sorted(recipes))}"
        )
    return {key: value for key, value in recipes[name].items() if key != "source"}


def recipe_source(name: str) -> str:
    return _recipes()[name]["source"]


class ScheduleFactor:
    """The learning-rate factor after ``step`` optimisation steps, for ``LambdaLR``.

    A plain object rather than a closure so that ``LambdaLR.state_dict`` stores its fields
    and the checkpoint stays loadable with ``torch.load(weights_only=True)``.
    """

    def __init__(self, schedule: dict, steps_per_epoch: int, epochs: int) -> None:
        kind = schedule.get("type", "constant")
        if kind not in SCHEDULE_TYPES:
            raise StnbenchError(
                f"schedule.type {kind!r}: expected one of {', '.join(SCHEDULE_TYPES)}"
            )
        self.kind = kind
        self.gamma = float(schedule.get("gamma", 1.0))
        total = steps_per_epoch * epochs
        self.milestones = [
            math.ceil(fraction * total) for fraction in schedule.get("milestones", [])
        ]
        self.steps_per_epoch = steps_per_epoch

    def __call__(self, step: int) -> float:
        if self.kind == "step":
            return self.gamma ** sum(step >= milestone for milestone in self.milestones)
        if self.kind == "exponential":
            return self.gamma ** (step // self.steps_per_epoch)
        return 1.0
