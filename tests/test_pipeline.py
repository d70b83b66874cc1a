"""The workflow through Snakemake itself: a tiny grid on the real MNIST and GTSRB end to end,
nothing to do on a rerun, only the new cells for a new variant, tables without training, and
configs that fail before any job with a message naming what is wrong."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from stnbench import pipeline
from stnbench.distortions import FAMILIES
from stnbench.distortions.sequences import TASKS
from stnbench.errors import StnbenchError

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
VARIANT = "st-cnn-small"

pytestmark = pytest.mark.slow


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


def job_counts(output: str) -> dict[str, int]:
    """The "Job stats" table of a dry run: rule name -> number of jobs."""
    table = output.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    rows = (re.fullmatch(r"(\S+)\s+(\d+)", line.strip()) for line in table.splitlines())
    return {row[1]: int(row[2]) for row in rows if row and row[1] != "total"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory, data_dir: Path, gtsrb_archives: Path) -> Path:
    """A working directory where the tiny grid has run to the end."""
    workdir = tmp_path_factory.mktemp("workflow")
    (workdir / "config.yaml").write_text(yaml.safe_dump(tiny_config(data_dir, gtsrb_archives)))
    result = snakemake(workdir)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return workdir


def test_tiny_grid_runs_end_to_end(finished: Path) -> None:
    runs = sorted((finished / "results" / "runs").glob("*/metrics.json"))
    metrics = [json.loads(path.read_text()) for path in runs]
    cells = {(m["dataset"], m["distortion"], m["model"], m["seed"]) for m in metrics}
    assert cells == {
        ("mnist", "RTS", "cnn", 0), ("mnist", "RTS", "cnn", 1),
        ("mnist", "RTS", "st-cnn-affine", 0), ("mnist", "RTS", "st-cnn-affine", 1),
        ("gtsrb", "none", "idsia", 0), ("gtsrb", "none", "idsia", 1),
        ("mnist", "sequence", "rnn-spn", 0),
    }
    for path, m in zip(runs, metrics, strict=True):
        assert m["status"] in ("ok", "diverged")
        assert m["config"]["scale"] == "tiny"
        assert m["epochs"] == 1
        assert (path.parent / "predictions.npz").is_file()
        assert (path.parent / "spec.yaml").is_file()
    results = finished / "results"
    for table in pipeline.TABLES:
        for ext in ("md", "csv", "tex"):
            assert (results / "tables" / f"{table}.{ext}").stat().st_size > 0
    for plot in pipeline.PLOTS:
        for ext in ("png", "pdf"):
            assert (results / "plots" / f"{plot}.{ext}").stat().st_size > 0
    benches = {json.loads(path.read_text())["model"] for path in results.glob("bench/*/*.json")}
    assert benches == {"cnn", "st-cnn-affine", "idsia", "rnn-spn"}
    # st-cnn-affine's first seed, with its moving GIF; rnn-spn's glimpses, without one (its
    # task has no severity to grow)
    viz = sorted(path.name.split("model~")[1] for path in (results / "viz").iterdir())
    assert viz == ["rnn-spn_seed~0-evolution.gif", "rnn-spn_seed~0.png",
                   "st-cnn-affine_seed~0-evolution.gif", "st-cnn-affine_seed~0-moving.gif",
                   "st-cnn-affine_seed~0.png"]
    assert len(list((results / "gallery").glob("*.png"))) == 2
    assert "tiny" in (results / "tables" / "table1.md").read_text()
    assert "rnn-spn" in (results / "tables" / "sequences.md").read_text()
    assert len(list((finished / "logs" / "tiny" / "train").glob("*.log"))) == 7
    assert len(list((finished / "logs" / "tiny" / "timing" / "train").glob("*.tsv"))) == 7


def test_the_workflow_passes_snakemakes_linter() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--lint"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "in a good condition" in result.stdout + result.stderr


def test_rerun_has_nothing_to_do(finished: Path) -> None:
    result = snakemake(finished, "--dry-run")
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Nothing to be done" in result.stdout + result.stderr


def copy_of(finished: Path, workdir: Path, *, metadata: bool = False) -> Path:
    """The finished working directory; without ``metadata`` (Snakemake's own records of the
    jobs) as a clone of committed results has it."""
    ignore = None if metadata else shutil.ignore_patterns(".snakemake")
    shutil.copytree(finished, workdir, ignore=ignore)
    return workdir


def without_data(workdir: Path, data_dir: Path) -> None:
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["data_dir"] = str(data_dir)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))


def test_a_clone_of_finished_results_trains_nothing(finished: Path, tmp_path: Path) -> None:
    workdir = copy_of(finished, tmp_path / "clone")
    # git writes a cell's spec.yaml after its metrics.json ...
    for spec in workdir.glob("results/runs/*/spec.yaml"):
        spec.touch()
    without_data(workdir, tmp_path / "no-data-yet")  # ... and a clone has no prepared data
    result = snakemake(workdir, "--dry-run")
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Nothing to be done" in result.stdout + result.stderr


def test_deleting_the_data_folder_retrains_nothing(finished: Path, tmp_path: Path) -> None:
    workdir = copy_of(finished, tmp_path / "deleted", metadata=True)
    without_data(workdir, tmp_path / "deleted-data")
    result = snakemake(workdir, "--dry-run")
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Nothing to be done" in result.stdout + result.stderr


def test_missing_cell_is_trained_even_where_the_tables_are_newer(
    finished: Path, tmp_path: Path
) -> None:
    workdir = copy_of(finished, tmp_path / "partial")
    missing = sorted(workdir.glob("results/runs/*/metrics.json"))[0]
    missing.unlink()
    for output in (*workdir.glob("results/tables/*"), *workdir.glob("results/plots/*")):
        output.touch()  # as after `snakemake tables` on a grid still being run
    result = snakemake(workdir, "--dry-run")
    assert result.returncode == 0, result.stderr[-4000:]
    output = result.stdout + result.stderr
    assert job_counts(output)["train"] == 1
    assert f"cell={missing.parent.name}" in output


def test_changed_settings_of_a_finished_cell_fail_before_any_job(
    finished: Path, tmp_path: Path
) -> None:
    workdir = copy_of(finished, tmp_path / "changed")
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["experiments"]["distorted-mnist"]["train"]["epochs"] = 2
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    runs = {path: path.stat().st_mtime_ns for path in workdir.glob("results/runs/*/*")}

    result = snakemake(workdir)
    assert result.returncode != 0
    assert re.search(
        r"runs/dataset~mnist\S+/metrics\.json: holds a finished run whose 'epochs' differs",
        result.stdout + result.stderr,
    )
    assert {path: path.stat().st_mtime_ns for path in runs if path.exists()} == runs


def test_a_corrupt_record_of_a_finished_cell_is_named_before_any_job(
    finished: Path, tmp_path: Path
) -> None:
    workdir = copy_of(finished, tmp_path / "corrupt")
    metrics = sorted(workdir.glob("results/runs/dataset~mnist*/metrics.json"))[0]
    metrics.write_text(metrics.read_text()[:300])
    runs = {path: path.stat().st_mtime_ns for path in workdir.glob("results/runs/*/*")}

    result = snakemake(workdir, "--dry-run")
    assert result.returncode != 0
    relative = metrics.relative_to(workdir)
    assert f"StnbenchError: {relative}: not valid JSON (" in result.stdout + result.stderr
    assert "JSONDecodeError" not in result.stdout + result.stderr
    assert {path: path.stat().st_mtime_ns for path in runs if path.exists()} == runs


def test_new_variant_adds_only_its_cells(finished: Path) -> None:
    definition = yaml.safe_load(
        (REPO / "stnbench" / "models" / "definitions" / "st-cnn-affine.yaml").read_text()
    )
    definition["name"] = VARIANT
    (finished / "models").mkdir(exist_ok=True)
    (finished / "models" / f"{VARIANT}.yaml").write_text(yaml.safe_dump(definition))
    config = yaml.safe_load((finished / "config.yaml").read_text())
    config["variants"] = [
        {"definition": f"models/{VARIANT}.yaml", "experiments": ["distorted-mnist"]}
    ]
    (finished / "config-variant.yaml").write_text(yaml.safe_dump(config))

    result = snakemake(finished, "--dry-run", config="config-variant.yaml")
    assert result.returncode == 0, result.stderr[-4000:]
    output = result.stdout + result.stderr
    assert job_counts(output) == {"run_spec": 2, "train": 2, "bench": 1, "aggregate": 1, "all": 1}
    trained = re.findall(r"wildcards: cell=(\S+)", output)
    assert len(trained) == 4  # the run specs and trainings of the variant's two seeds
    assert all(f"model~{VARIANT}_" in cell for cell in trained)


def test_tables_target_trains_nothing(finished: Path, tmp_path: Path) -> None:
    config = yaml.safe_load((finished / "config.yaml").read_text())
    # Neither data nor archives are needed to rebuild the tables from the metrics present.
    config.update(data_dir=str(tmp_path / "no-data"))
    config["gtsrb"] = {"archives": str(tmp_path / "no-archives"), "required": True}
    (finished / "config-tables.yaml").write_text(yaml.safe_dump(config))
    metrics = {path: path.stat().st_mtime_ns for path in finished.glob("results/runs/*/*")}
    table = finished / "results" / "tables" / "table1.md"
    table.unlink()

    result = snakemake(finished, "tables", config="config-tables.yaml")
    assert result.returncode == 0, result.stderr[-4000:]
    assert job_counts(result.stdout + result.stderr) == {"tables": 1}
    assert table.is_file()
    assert {path: path.stat().st_mtime_ns for path in metrics} == metrics


def _edit(config: dict, change: str) -> None:
    experiment = config["experiments"]["distorted-mnist"]
    if change == "typo":
        experiment["seeeds"] = experiment.pop("seeds")
    elif change == "unknown model":
        experiment["models"] = ["cnn", "st-cnn-afine"]
    elif change == "severity":
        experiment["severities"] = [0.5, 1.5]
    elif change == "unknown family":
        experiment["distortions"] = ["RTS", "shear"]
    elif change == "unknown dataset":
        experiment["dataset"] = "svhn"
    elif change == "missing key":
        del experiment["models"]
    elif change == "missing archives":
        config["gtsrb"] = {"archives": "no-archives", "required": True}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ("typo", "seeeds"),
        ("unknown model", "st-cnn-afine"),
        ("severity", "1.5"),
        ("missing archives", "no-archives"),
    ],
)
def test_bad_config_fails_before_any_job(
    tmp_path: Path, data_dir: Path, gtsrb_archives: Path, change: str, named: str
) -> None:
    config = tiny_config(data_dir, gtsrb_archives)
    _edit(config, change)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path)
    assert result.returncode != 0
    assert named in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ("unknown family", "'shear' is not one of"),
        ("unknown dataset", "'svhn' is not one of"),
        ("missing key", "'models' is a required property"),
    ],
)
def test_schema_names_what_is_wrong(
    data_dir: Path, gtsrb_archives: Path, change: str, named: str
) -> None:
    config = tiny_config(data_dir, gtsrb_archives)
    _edit(config, change)
    with pytest.raises(WorkflowError, match=re.escape(named)):
        validate(config, str(SCHEMA))


def test_without_gtsrb_the_demo_runs_mnist_and_says_so(tmp_path: Path, data_dir: Path) -> None:
    config = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    config.update(data_dir=str(data_dir))
    config["gtsrb"] = {"archives": str(tmp_path / "no-archives"), "required": False}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "--dry-run")
    assert result.returncode == 0, result.stderr[-4000:]
    output = result.stdout + result.stderr
    assert "GTSRB skipped" in output and "STNBENCH_GTSRB_ARCHIVES" in output
    assert "dataset~gtsrb" not in output
    assert "dataset~mnist" in output


# ------------------------------------------------------------------- the grid without Snakemake


def validated(config: dict) -> dict:
    validate(config, str(SCHEMA))
    return config


@pytest.mark.parametrize("preset", sorted(path.name for path in (REPO / "config").glob("*.yaml")))
def test_every_preset_is_valid_and_builds_its_grid(
    preset: str, data_dir: Path, gtsrb_archives: Path
) -> None:
    config = yaml.safe_load((REPO / "config" / preset).read_text())
    config.update(data_dir=str(data_dir))
    config.setdefault("gtsrb", {})["archives"] = str(gtsrb_archives)
    grid = pipeline.build_grid(validated(config))
    assert len(grid.cells) > 0
    if preset == "cpu.yaml":  # Table 1's 8 models x 4 families, the rotation sweep and the
        # 3 sequence models, 3 seeds
        assert len(grid.cells) == (8 * 4 + 2 * 3 + 3) * 3
    if preset == "cpu-gtsrb.yaml":  # 4 GTSRB models and the rotation sweep, 3 seeds
        assert len(grid.cells) == (4 + 2 * 3) * 3


def test_schema_knows_every_distortion_family() -> None:
    schema = yaml.safe_load(SCHEMA.read_text())
    families = schema["$defs"]["experiment"]["properties"]["distortions"]["items"]["enum"]
    assert tuple(families) == (*FAMILIES, *TASKS)
    # The workflow knows the sequence tasks without importing torch.
    assert tuple(TASKS) == pipeline.SEQUENCE_TASKS


def test_cells_shared_by_experiments_are_one_cell(data_dir: Path) -> None:
    experiment = {"dataset": "mnist", "distortions": ["R"], "models": ["cnn"], "seeds": 2}
    config = validated({
        "scale": "t", "results_dir": "r", "data_dir": str(data_dir),
        "experiments": {"a": dict(experiment), "b": {**experiment, "seeds": [1, 2]}},
    })
    grid = pipeline.build_grid(config)
    assert sorted(grid.cells["seed"]) == [0, 1, 2]
    assert list(grid.preps) == ["mnist-28px"]
    assert list(grid.benches["model"]) == ["cnn"]
    cell = "dataset~mnist_prep~28px_distortion~R_severity~1.0_model~cnn_seed~0"
    assert grid.spec(cell) == {
        "dataset": "mnist", "distortion": "R", "severity": 1.0, "model": "cnn", "seed": 0,
        "scale": "t",
    }

    config["experiments"]["b"]["train"] = {"epochs": 3}
    with pytest.raises(StnbenchError, match="experiments a and b"):
        pipeline.build_grid(config)


def test_one_run_at_two_gtsrb_preparations_is_two_runs_in_one_results_dir(
    data_dir: Path, gtsrb_archives: Path
) -> None:
    # A run's preparation is part of its key, so 32 and 48 px, whole image and ROI, sit side
    # by side in one results folder, each in its own run folder.
    experiment = {"dataset": "gtsrb", "distortions": ["none"], "models": ["idsia"], "seeds": 2}
    config = validated({
        "scale": "t", "results_dir": "r", "data_dir": str(data_dir),
        "gtsrb": {"archives": str(gtsrb_archives)},
        "experiments": {"small": {**experiment, "size": 32},
                        "large": {**experiment, "size": 48, "seeds": [1, 2]},
                        "roi": {**experiment, "size": 48, "roi_crop": True, "seeds": [1]}},
    })
    cells = pipeline.build_grid(config).cells
    assert sorted(cells["prep"]) == ["32px", "32px", "48px", "48px", "48px-roi"]
    assert cells.index.is_unique


def test_model_meant_for_another_dataset_is_refused(data_dir: Path) -> None:
    config = validated({
        "scale": "t", "results_dir": "r", "data_dir": str(data_dir),
        "experiments": {"a": {"dataset": "mnist", "distortions": ["R"], "models": ["idsia"],
                              "seeds": 1}},
    })
    with pytest.raises(StnbenchError, match=r"experiments\.a\.models: model 'idsia' is meant for"):
        pipeline.build_grid(config)
