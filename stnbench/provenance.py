"""What produced a number: commit, torch version, machine. Recorded in every result file."""

import os
import platform
import subprocess
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent


@cache
def git_commit() -> str:
    """The checkout's commit, with ``-dirty`` when tracked files differ; ``unknown`` outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


# The instruction sets that decide CPU training speed: of two CPUs that both call themselves
# "AMD EPYC", one trains in bf16 at 0.18x its fp32 speed, the other (avx512_bf16) at a Xeon's.
# Ordered from the oldest to the fastest.
SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def _cpuinfo_field(name: str) -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":", 1)[0].strip() == name:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


@cache
def cpu_model() -> str:
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


@cache
def cpu_flags() -> tuple[str, ...]:
    """Which of ``SPEED_FLAGS`` the CPU has (empty where /proc/cpuinfo is absent)."""
    flags = set((_cpuinfo_field("flags") or "").split())
    return tuple(flag for flag in SPEED_FLAGS if flag in flags)


def device_label(device: str, device_type: str, cpu_flags: Sequence[str] | None) -> str:
    """A result's device for tables and plots: a CPU's name with the fastest of its
    ``SPEED_FLAGS``, since the name alone gives two CPUs of unlike speed one label;
    ``cpu_flags`` None marks a result recorded without them."""
    if device_type != "cpu":
        return device
    if cpu_flags is None:
        return f"{device} [flags unrecorded]"
    known = [flag for flag in cpu_flags if flag in SPEED_FLAGS]
    return f"{device} [{max(known, key=SPEED_FLAGS.index)}]" if known else device


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model()


def machine_info(device: torch.device | None = None) -> dict:
    """A JSON-ready description of the machine and software that ran a job."""
    info = {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "git_commit": git_commit(),
    }
    if device is not None:
        info["device"] = device_name(device)
        info["device_type"] = device.type
    return info
