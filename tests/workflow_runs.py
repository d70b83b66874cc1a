"""Snakemake as a user runs it, on the tiny preset, for the workflow's tests."""

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def snakemake(
    workdir: Path, *args: str, config: str = "config.yaml"
) -> subprocess.CompletedProcess:
    """Snakemake as a user runs it, from ``workdir``, with the default profile."""
    env = {
        **os.environ,
        # The rules call the `stnbench` script installed beside this interpreter.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
    }
    env.pop("STNBENCH_GTSRB_ARCHIVES", None)
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
        "--workflow-profile", str(REPO / "workflow" / "profiles" / "default"),
        "--configfile", config, "--cores", "2", *args,
    ]
    return subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=1200, check=False
    )


def tiny_config(data_dir: Path, archives: Path) -> dict:
    config = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())
    config.update(results_dir="results", data_dir=str(data_dir))
    config["gtsrb"] = {"archives": str(archives), "required": True}
    return config
