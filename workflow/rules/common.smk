import shlex
from functools import cache
from pathlib import Path

from snakemake.logging import logger
from snakemake.utils import validate

from stnbench import jobs, pipeline
from stnbench.paths import resolve_data_dir


validate(config, schema="../schemas/config.schema.yaml")

SCALE = config["scale"]
RESULTS = Path(config["results_dir"])
RUNS = RESULTS / "runs"
BENCH = RESULTS / "bench"
DATA_DIR = resolve_data_dir(config["data_dir"])
LOGS = Path("logs") / SCALE
# Snakemake's per-job time and memory (`benchmark:`), beside the jobs' logs.
TIMINGS = LOGS / "timing"
ENV = "../envs/stnbench.yaml"


wildcard_constraints:
    cell=r"[^/]+",
    bench=r"[^/]+",
    prep=r"[a-z]+-\d+px(-roi)?(-(imadjust|histeq|adapthisteq|conorm))?",
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
    return jobs.job_device(config)


def gpus(wildcards=None) -> int:
    return int(device() == "cuda")


def model_inputs(model_arg: str) -> list[str]:
    """A variant's YAML file, which the workflow may have to write before the cell runs."""
    return [model_arg] if model_arg.endswith((".yaml", ".yml")) else []


def prepared_data(prep_id: str, *outputs: Path) -> list:
    """The prepared data set, unless it is still to be prepared for a job that is done.

    Snakemake reruns everything downstream of a job it runs, `ancient` or not: in a fresh
    clone of committed results (no data prepared yet) a data dependency would retrain every
    finished cell. Where the data is there, it stays an input, as it was when the job ran.
    `ancient`: a data folder shared between working directories may be prepared again by
    another one.
    """
    marker = DATA_DIR / "prepared" / f"{prep_id}.json"
    if not marker.exists() and all(Path(output).exists() for output in outputs):
        return []
    return [ancient(marker)]


def train_inputs(wildcards) -> dict:
    cell = grid().cells.loc[wildcards.cell]
    metrics = RUNS / wildcards.cell / "metrics.json"
    model_files = model_inputs(cell["model_arg"])
    if definitions_present(cell["model_arg"]):
        jobs.check_finished_cell(metrics, cell["spec"], device(), checkable_specs,
                                 LOGS / "out_of_date_runs.tsv")
    # ancient: whether a finished cell is up to date is decided by content, just above, not
    # by file times: a fresh clone writes a cell's spec.yaml after its metrics.json.
    return {
        "spec": ancient(RUNS / wildcards.cell / "spec.yaml"),
        "data": prepared_data(grid().prep_of(wildcards.cell).id, metrics),
        "model": [ancient(path) for path in model_files],
    }


def definitions_present(model_arg: str) -> bool:
    """Whether a model's definition files are there: a variant's is written by the workflow
    before its cells train, and a finished cell is compared with its run once it is there."""
    return all(Path(path).exists() for path in model_inputs(model_arg))


def checkable_specs() -> dict:
    """Every cell's spec whose model definition is there to compare a finished run with."""
    return {
        name: cell["spec"] for name, cell in grid().cells.iterrows()
        if definitions_present(cell["model_arg"])
    }


def all_metrics(wildcards=None) -> list[Path]:
    return [RUNS / cell / "metrics.json" for cell in grid().cells.index]


def all_benches(wildcards=None) -> list[Path]:
    return [BENCH / device() / f"{bench}.json" for bench in grid().benches.index]


def viz_outputs(cell: str) -> list[Path]:
    return [RESULTS / "viz" / name for name in grid().viz_files(cell)]


def all_viz(wildcards=None) -> list[Path]:
    cells = grid().cells
    return [path for cell in cells.index[cells["viz"]] for path in viz_outputs(cell)]


def all_galleries(wildcards=None) -> list[Path]:
    return [RESULTS / "gallery" / f"{prep}.png" for prep in grid().preps]


def notes_arguments(wildcards=None, strict=True) -> str:
    """What the results leave out (GTSRB without its archives), and what the preset's scale
    means, for the tables' notes."""
    notes = pipeline.skip_notes(config, strict=strict)
    arguments = [f"--note {shlex.quote(note)}" for note in notes]
    if "scale_note" in config:
        meaning = f"{SCALE}={config['scale_note']}"
        arguments.append(f"--scale-note {shlex.quote(meaning)}")
    return " ".join(arguments)


TABLES = pipeline.TABLES
PLOTS = pipeline.PLOTS
