"""The workflow's grid: training cells, benches and data preparations from a validated config.

The Snakefile validates the config against ``workflow/schemas/config.schema.yaml`` (which also
fills in defaults) and asks this module for everything that is not a file pattern: which
cells exist, each cell's run spec, whether the models and GTSRB's archives are there (what each
job is given lives in ``jobs``). Keeping it in the package lets tests and users inspect a grid
without Snakemake: ``build_grid(config).cells``.
"""

import copy
import itertools
import json
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from snakemake.utils import Paramspace

from stnbench.bench_file import bench_file_name
from stnbench.dataset_registry import get_dataset
from stnbench.errors import StnbenchError
from stnbench.grid_models import check_models, model_argument, variant_definitions
from stnbench.io import atomic_write_text
from stnbench.paths import ARCHIVES_ENV, resolve_archives, resolve_data_dir
from stnbench.preparation import ORIGINAL_CONTRAST, Prep

CELL_KEYS = ("dataset", "prep", "distortion", "severity", "model", "seed")
BENCH_KEYS = ("dataset", "size", "model")
# What `stnbench results tables` writes: OUT/tables/NAME.{md,csv,tex}, OUT/plots/NAME.{png,pdf}.
TABLES = ("gtsrb", "table1", "robustness", "cost", "significance", "committee", "sequences")
PLOTS = ("accuracy_vs_severity", "accuracy_vs_params", "throughput", "training_curves")
# What `stnbench viz` writes beside a run's picture (results/viz.py's write_viz): a GIF of a
# test image under growing distortion and one over training. A sequence task has no severity
# to grow, so its runs have no moving GIF. Its names are repeated here rather than imported
# from distortions/sequences.py, which needs torch (the workflow imports this module at every
# start); tests/test_pipeline.py keeps the two lists equal.
VIZ_SUFFIXES = (".png", "-moving.gif", "-evolution.gif")
SEQUENCE_TASKS = ("sequence",)
GTSRB_SKIPPED = (
    "GTSRB skipped ({reason}). To add it, put GTSRB_Final_Training_Images.zip, "
    "GTSRB_Final_Test_Images.zip and GTSRB_Final_Test_GT.zip (or Kaggle's Train.csv, Test.csv, "
    "Train/ and Test/, or its zip) in a folder, set `gtsrb.archives` "
    f"in the config or ${ARCHIVES_ENV} to that folder, and run the workflow again."
)


@dataclass
class Grid:
    cells: pd.DataFrame  # by cell id: CELL_KEYS, experiment, model_arg, spec, viz
    benches: pd.DataFrame  # by bench file name without .json: BENCH_KEYS, model_arg
    preps: dict[str, Prep]  # by Prep.id
    variants: dict[str, dict]  # inline model definitions by name, written out by the workflow
    notes: list[str] = field(default_factory=list)  # what the run leaves out, and how to add it

    def spec(self, cell: str) -> dict:
        return self.cells.at[cell, "spec"]

    def prep_of(self, cell: str) -> Prep:
        row = self.cells.loc[cell]
        return self.preps[f"{row['dataset']}-{row['prep']}"]

    def viz_files(self, cell: str) -> list[str]:
        """The file names `stnbench viz` writes for a cell, the picture's first."""
        no_moving = self.cells.at[cell, "distortion"] in SEQUENCE_TASKS
        return [f"{cell}{suffix}" for suffix in VIZ_SUFFIXES
                if not (no_moving and suffix == "-moving.gif")]


def sequence_cell_pattern() -> str:
    """A regular expression matching the ids of cells on a sequence task."""
    return rf"[^/]*_distortion~(?:{'|'.join(SEQUENCE_TASKS)})_[^/]*"


def with_ids(table: pd.DataFrame, keys: tuple[str, ...]) -> pd.DataFrame:
    """``table`` indexed by Paramspace ids over ``keys``, e.g. ``dataset~mnist_..._seed~0``:
    one flat folder or file name per row, readable and parsed back by Paramspace."""
    space = Paramspace(table[list(keys)], filename_params="*", single_wildcard="id")
    ids = list(space.instance_patterns) if len(table) else []
    return table.set_axis(pd.Index(ids, name="id"), axis=0)


# ------------------------------------------------------------------------------ files


def write_definition(path: Path | str, definition: Mapping[str, Any]) -> None:
    atomic_write_text(Path(path), yaml.safe_dump(dict(definition), sort_keys=False))


def write_run_spec(path: Path | str, spec: Mapping[str, Any]) -> None:
    """The cell's run spec: what ``stnbench train --spec`` reads, and a record of the cell."""
    atomic_write_text(Path(path), yaml.safe_dump(dict(spec), sort_keys=True))


# ------------------------------------------------------------------------------ data


def gtsrb_folder(config: Mapping[str, Any]) -> Path:
    """Where GTSRB's archives are looked for: the config, then $STNBENCH_GTSRB_ARCHIVES, then
    the data folder."""
    archives = resolve_archives(config["gtsrb"]["archives"])
    return archives if archives is not None else resolve_data_dir(config["data_dir"])


def check_gtsrb(folder: Path) -> None:
    """Nothing when ``folder`` holds GTSRB, else the data module's error naming the files."""
    from stnbench.datasets.gtsrb_files import (
        TEST_IMAGES_ZIP,
        TEST_LABELS_ZIP,
        TRAIN_ZIP,
        open_gtsrb,
    )

    # The official archives are recognised by name: opening them takes seconds, and the
    # workflow checks at every start. Other layouts get the data module's full check.
    if all((folder / name).is_file() for name in (TRAIN_ZIP, TEST_IMAGES_ZIP, TEST_LABELS_ZIP)):
        return
    with open_gtsrb(folder):
        pass


@cache
def _gtsrb_problem(folder: Path) -> str | None:
    try:
        check_gtsrb(folder)
    except StnbenchError as error:
        return str(error)
    return None


def skip_notes(config: Mapping[str, Any], *, strict: bool = True) -> list[str]:
    """What a run of this config leaves out and how to add it; empty when nothing is.

    When the config requires GTSRB and its archives are missing, ``strict`` raises the data
    module's error, so that the workflow stops before its first job rather than after hours
    of MNIST; without ``strict`` (tables from the runs present) that is no note and no error.
    """
    if not any(exp["dataset"] == "gtsrb" for exp in config["experiments"].values()):
        return []
    problem = _gtsrb_problem(gtsrb_folder(config))
    if problem is None:
        return []
    if config["gtsrb"]["required"]:
        if strict:
            raise StnbenchError(problem)
        return []
    # One wording whether the folder is missing or lacks the archives (which a first run's
    # data folder may well be): the tables, and the jobs whose parameters they are, stay put.
    incomplete = "incomplete GTSRB" in problem
    reason = problem if incomplete else f"no GTSRB archives in {gtsrb_folder(config)}"
    return [GTSRB_SKIPPED.format(reason=reason)]


# ------------------------------------------------------------------------------ the grid


def _seeds(value: int | list[int]) -> list[int]:
    return list(range(value)) if isinstance(value, int) else list(value)


def _prep(name: str, experiment: Mapping[str, Any]) -> Prep:
    dataset = get_dataset(experiment["dataset"])
    try:
        return dataset.prep(experiment["size"], experiment["roi_crop"], experiment["contrast"])
    except StnbenchError as error:
        raise StnbenchError(f"config: experiments.{name}: {error}") from None


def _members(experiments: Mapping[str, Any], variants: Mapping[str, dict]) -> dict[str, dict]:
    """Per experiment: each model with its training overrides (the variants' included)."""
    members = {
        name: {model: experiment["model_train"].get(model, {}) for model in experiment["models"]}
        for name, experiment in experiments.items()
    }
    for model, variant in variants.items():
        for name in variant["entry"]["experiments"]:
            if name in members:
                members[name][model] = variant["entry"].get("train", {})
    return members


def build_grid(config: Mapping[str, Any], *, base_dir: Path | str = ".") -> Grid:
    """The cells, benches and data preparations of a config validated against the schema.

    A cell reached from two experiments is one cell, provided its training settings agree.
    ``base_dir`` is where relative paths in the config (variant definitions) start.
    """
    results_dir = Path(config["results_dir"])
    variants = variant_definitions(config, Path(base_dir))
    check_models(config, variants)
    notes = skip_notes(config)
    experiments = {
        name: experiment
        for name, experiment in config["experiments"].items()
        if experiment["dataset"] != "gtsrb" or not notes
    }
    members = _members(experiments, variants)
    rows: dict[tuple, dict] = {}
    preps: dict[str, Prep] = {}
    for name, experiment in experiments.items():
        prep = _prep(name, experiment)
        preps[prep.id] = prep
        gtsrb_options = {"size": prep.size, "roi_crop": prep.roi_crop}
        if prep.contrast != ORIGINAL_CONTRAST:  # absent otherwise, as in the specs written before
            gtsrb_options["contrast"] = prep.contrast
        # Severity means nothing without a distortion: one clean cell, not one per level.
        severities = [0.0] if experiment["distortions"] == ["none"] else experiment["severities"]
        for distortion, severity, (model, model_train), seed in itertools.product(
            experiment["distortions"], severities, members[name].items(),
            _seeds(experiment["seeds"]),
        ):
            severity = 0.0 if distortion == "none" else round(float(severity), 6)
            spec = {
                "dataset": prep.dataset, "distortion": distortion, "severity": severity,
                "model": model_argument(model, variants, results_dir), "seed": seed,
                "scale": config["scale"],
                **(gtsrb_options if prep.dataset != "mnist" else {}),
                **copy.deepcopy({**experiment["train"], **model_train}),
            }
            key = (prep.dataset, prep.label, distortion, severity, model, seed)
            viz = model in experiment["viz"]
            if key in rows:
                if rows[key]["spec"] != spec:
                    raise StnbenchError(
                        f"config experiments {rows[key]['experiment']} and {name}: both train "
                        f"{model} on {prep.dataset} {distortion} at severity {severity}, seed "
                        f"{seed}, with different training settings"
                    )
                rows[key]["viz"] |= viz
                continue
            rows[key] = {
                **dict(zip(CELL_KEYS, key, strict=True)), "experiment": name,
                "model_arg": spec["model"], "spec": spec, "viz": viz,
            }
    columns = [*CELL_KEYS, "experiment", "model_arg", "spec", "viz"]
    cells = with_ids(pd.DataFrame(list(rows.values()), columns=columns), CELL_KEYS)
    inline = {
        name: variant["definition"]
        for name, variant in variants.items()
        if not isinstance(variant["definition"], str)
    }
    check_runs(rows.values(), inline)
    return Grid(_first_seed_viz(cells), _benches(cells, preps, config), preps, inline, notes)


def check_runs(rows: Iterable[Mapping[str, Any]], inline: Mapping[str, dict]) -> None:
    """Every run's spec resolved by the code that ``stnbench train`` runs, and every model built
    at its input size on the meta device (shapes without memory), so that a misspelt field, a
    wrong type or a layer that cannot be built stops the workflow before its first job, not in
    each train job after the data is prepared. Inline variants are checked from a temporary copy
    of the file the workflow will write."""
    from stnbench.engine.spec import FIELDS, check_model, resolve_spec

    checked: set[str] = set()
    built: set[tuple] = set()
    with tempfile.TemporaryDirectory() as tmp:
        for name, definition in inline.items():
            write_definition(Path(tmp) / f"{name}.yaml", definition)
        for row in rows:
            spec, where = dict(row["spec"]), f"config experiments.{row['experiment']}"
            unknown = sorted(set(spec) - set(FIELDS))
            if unknown:
                raise StnbenchError(f"{where}.train: unknown run spec field {unknown[0]!r}")
            if row["model"] in inline:
                spec["model"] = str(Path(tmp) / f"{row['model']}.yaml")
            # Seeds train the same network: one check covers them all.
            key = json.dumps({**spec, "seed": 0}, sort_keys=True, default=str)
            if key in checked:
                continue
            checked.add(key)
            try:
                resolved = resolve_spec({**spec, "seed": 0, "device": "cpu"})
                model_key = (resolved.model, resolved.dataset, resolved.size,
                             resolved.distortion, resolved.severity)
                if model_key not in built:
                    built.add(model_key)
                    check_model(resolved)
            except StnbenchError as error:
                # An inline variant is named by the config, not by its temporary copy.
                message = str(error).replace(f"{spec['model']}: ", "")
                raise StnbenchError(f"{where}, model {row['model']}: {message}") from None


def _first_seed_viz(cells: pd.DataFrame) -> pd.DataFrame:
    """Pictures of each condition's first seed only: the other seeds' transformers look alike."""
    if cells.empty:
        return cells
    condition = ["dataset", "prep", "distortion", "severity", "model"]
    first = cells.groupby(condition)["seed"].transform("min")
    return cells.assign(viz=cells["viz"] & (cells["seed"] == first))


def _benches(
    cells: pd.DataFrame, preps: Mapping[str, Prep], config: Mapping[str, Any]
) -> pd.DataFrame:
    """One bench per model and data set at the grid's image size (MNIST's before distortion)."""
    columns = [*BENCH_KEYS, "model_arg"]
    rows = []
    if config["bench"]["enabled"]:
        models = cells.groupby(["dataset", "prep", "model", "model_arg"]).size().index
        rows = [
            {"dataset": dataset, "size": preps[f"{dataset}-{prep}"].size, "model": model,
             "model_arg": arg}
            for dataset, prep, model, arg in models
        ]
    benches = pd.DataFrame(rows, columns=columns).drop_duplicates(list(BENCH_KEYS))
    precision = "bf16" if config["bench"]["amp"] else "fp32"
    # Named as every bench file is, whoever runs it (bench_file_name), less the .json.
    ids = [bench_file_name(row.model, row.dataset, row.size, precision).removesuffix(".json")
           for row in benches.itertuples()]
    return benches.set_axis(pd.Index(ids, name="id"), axis=0)
