"""Resolving a run spec: fields that a distortion does not take."""

import pytest

from stnbench.engine.spec import resolve_spec
from stnbench.errors import StnbenchError

RUN = {"dataset": "mnist", "distortion": "none", "model": "cnn", "seed": 0, "device": "cpu"}


def test_undistorted_run_needs_no_severity_and_records_zero() -> None:
    assert resolve_spec(RUN).severity == 0.0
    assert resolve_spec({**RUN, "severity": 0}).config() == resolve_spec(RUN).config()


@pytest.mark.parametrize("severity", [0.7, 1.0, True, "high"])
def test_undistorted_run_refuses_a_severity(severity: object) -> None:
    with pytest.raises(StnbenchError, match="distortion 'none' takes no severity") as error:
        resolve_spec({**RUN, "severity": severity})
    assert "\n" not in str(error.value)


def test_distorted_run_still_needs_its_severity() -> None:
    with pytest.raises(StnbenchError, match="run field 'severity': missing"):
        resolve_spec({**RUN, "distortion": "R"})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("seed", -1, "--seed -1: must be 0 or more"),
        ("lr", float("inf"), "--lr inf: must be a finite positive number"),
        ("lr", 0.0, "--lr 0.0: must be a finite positive number"),
        ("momentum", -5, "momentum -5.0: must be a finite number, 0 or more"),
        ("weight_decay", float("nan"), "weight_decay nan: must be a finite number"),
        ("epochs", 2.5, "run spec field 'epochs': expected int, got 2.5"),
        ("epochs", True, "run spec field 'epochs': expected int, got True"),
    ],
)
def test_bad_field_is_refused_in_one_line(field: str, value: object, message: str) -> None:
    with pytest.raises(StnbenchError) as error:
        resolve_spec({**RUN, field: value})
    assert message in str(error.value) and "\n" not in str(error.value)


def test_whole_float_epochs_are_accepted() -> None:
    assert resolve_spec({**RUN, "epochs": 3.0}).epochs == 3


def test_model_meant_for_another_data_set_is_refused() -> None:
    with pytest.raises(StnbenchError, match="--model moodstocks-2st: meant for gtsrb, not mnist"):
        resolve_spec({**RUN, "model": "moodstocks-2st"})
