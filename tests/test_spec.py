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
