import shlex
from functools import cache
from pathlib import Path

from snakemake.logging import logger
from snakemake.utils import validate

from stnbench import pipeline
from stnbench.paths import resolve_data_dir


validate(config, schema="../schemas/config.schema.yaml")

SCALE = config["scale"]
RESULTS = Path(config["results_dir"])
RUNS = RESULTS / "runs"
BENCH = RESULTS / "bench"
DATA_DIR = resolve_data_dir(config["data_dir"])
LOGS = Path("logs") / SCALE
BENCHMARKS = Path("benchmarks") / SCALE
ENV = "../envs/stnbench.yaml"


wildcard_constraints:
    cell=r"[^/]+",
    bench=r"[^/]+",
    prep=r"[a-z]+-\d+px(-roi)?",
    variant=r"[A-Za-z0-9][A-Za-z0-9.-]*",


@cache
def grid() -> pipeline.Grid:
    # Built on first use, not at parse time: `snakemake tables` needs neither the model
    # registry nor the GTSRB archives, so it stays fast and works without them.
    built = pipeline.build_grid(config)
    for note in built.notes:
        logger.warning(note)
    return built


@cache
def device() -> str:
    return pipeline.job_device(config)


def gpus(wildcards=None) -> int:
    return int(device() == "cuda")


def model_inputs(model_arg: str) -> list[str]:
    """A variant's YAML file, so that editing it reruns the variant's cells."""
    return [model_arg] if model_arg.endswith((".yaml", ".yml")) else []


def train_inputs(wildcards) -> dict:
    cell = grid().cells.loc[wildcards.cell]
    return {
        "spec": RUNS / wildcards.cell / "spec.yaml",
        # ancient: a data folder shared between working directories may be prepared again
        # later by another one; that must not make every finished cell here look outdated.
        "data": ancient(DATA_DIR / "prepared" / f"{grid().prep_of(wildcards.cell).id}.json"),
        "model": model_inputs(cell["model_arg"]),
    }


def all_metrics(wildcards=None) -> list[Path]:
    return [RUNS / cell / "metrics.json" for cell in grid().cells.index]


def all_benches(wildcards=None) -> list[Path]:
    return [BENCH / device() / f"{bench}.json" for bench in grid().benches.index]


def all_viz(wildcards=None) -> list[Path]:
    cells = grid().cells
    return [
        RESULTS / "viz" / f"{cell}{suffix}"
        for cell in cells.index[cells["viz"]]
        for suffix in (".png", "-moving.gif", "-evolution.gif")
    ]


def all_galleries(wildcards=None) -> list[Path]:
    return [RESULTS / "gallery" / f"{prep}.png" for prep in grid().preps]


def notes_arguments(wildcards=None, strict=True) -> str:
    """What the results leave out (GTSRB without its archives), for the tables' notes."""
    notes = pipeline.skip_notes(config, strict=strict)
    return " ".join(f"--note {shlex.quote(note)}" for note in notes)


TABLES = pipeline.TABLES
PLOTS = pipeline.PLOTS
