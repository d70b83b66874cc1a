"""The workflow through Snakemake itself: a tiny grid on the real MNIST and GTSRB end to end,
nothing to do on a rerun, only the new cells for a new variant, tables without training.
Configs that fail before any job: test_pipeline_config.py."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from workflow_runs import REPO, snakemake, tiny_config

from stnbench import pipeline

VARIANT = "st-cnn-small"

pytestmark = pytest.mark.slow


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
    output = result.stdout + result.stderr
    assert re.search(
        r"runs/dataset~mnist\S+/metrics\.json: holds a finished run whose 'epochs' differs",
        output,
    )
    assert {path: path.stat().st_mtime_ns for path in runs if path.exists()} == runs
    # Every run of the changed experiment is named at once, the others' runs not at all.
    assert "the grid holds 4 such runs in all: logs/tiny/out_of_date_runs.tsv lists" in output
    listed = (workdir / "logs" / "tiny" / "out_of_date_runs.tsv").read_text().splitlines()
    changed = workdir.glob("results/runs/dataset~mnist_*_distortion~RTS_*/metrics.json")
    assert sorted(listed) == sorted(f"{path.parent.relative_to(workdir)}\tepochs"
                                    for path in changed)


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
