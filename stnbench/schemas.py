"""The JSON schemas shipped beside the records they describe, and the one check against them."""

import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

from stnbench.errors import StnbenchError

# Longer messages (an offending value printed whole) are cut, to keep the error on one line.
MAX_MESSAGE = 200


@cache
def load_schema(package: str, name: str) -> dict[str, Any]:
    """The schema file ``name`` of ``package`` (e.g. ``stnbench``, ``bench_schema.json``)."""
    schema = json.loads(resources.files(package).joinpath(name).read_text())
    jsonschema.validators.validator_for(schema).check_schema(schema)
    return schema


def validate(data: Any, schema: dict[str, Any], what: str) -> None:
    """Raise StnbenchError naming ``what`` (a file, a kind of record) and the first field of
    ``data`` that does not follow ``schema``."""
    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is None:
        return
    where = "/".join(map(str, error.absolute_path)) or "(top level)"
    message = error.message
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 3] + "..."
    raise StnbenchError(f"{what}: field {where}: {message}")
