"""The command line: exit codes, and help that answers without importing torch."""

import subprocess
import sys

import pytest

from stnbench.cli import COMMANDS, main

# A fresh interpreter, since this test process has imported torch already.
IMPORTS_AFTER = (
    "import sys\n"
    "from stnbench.cli import main\n"
    "try:\n"
    "    main({argv!r})\n"
    "except SystemExit:\n"
    "    pass\n"
    "print(sorted(m for m in ('torch', 'torchvision', 'pandas', 'matplotlib') if m in sys.modules))"
)


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"]])
def test_help_imports_no_heavy_library(argv: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-c", IMPORTS_AFTER.format(argv=argv)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "usage: stnbench" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    listing = capsys.readouterr().out
    for name, (_, help_line) in COMMANDS.items():
        assert name in listing and help_line[:30] in listing


def test_usage_error_exits_2_and_runtime_error_exits_1(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--out", "x", "--precision", "fp16"])
    assert exit_.value.code == 2
    assert "invalid choice: 'fp16'" in capsys.readouterr().err
    assert main(["models", "describe", "no-such-model", "--dataset", "mnist"]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("stnbench: error:") and len(error.splitlines()) == 1
