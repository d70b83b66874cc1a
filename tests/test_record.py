"""The run record (metrics.json): every committed one follows the schema, and a corrupt or
invalid one is refused in one line naming the file, wherever it is read; a run of an older
distortion definition is out of date."""

import copy
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from stnbench import jobs
from stnbench.cli import main
from stnbench.engine.record import RunRecord, read_record
from stnbench.engine.spec import resolve_spec
from stnbench.errors import StnbenchError
from stnbench.results.collect import load_runs

REPO = Path(__file__).resolve().parents[1]


def committed_records() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "results/**/metrics.json"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split()
    return [REPO / name for name in listed]


# A committed demo run, with the spec.yaml the workflow wrote for it.
DEMO_RUN = next(path.parent for path in committed_records() if "/demo/runs/" in str(path))


def test_every_committed_record_validates_and_reads_back_unchanged() -> None:
    paths = committed_records()
    assert len(paths) >= 190
    for path in paths:
        record = read_record(path)
        assert record.to_json() == json.loads(path.read_text()), path


def one_line_error(path: Path, data: object) -> str:
    path.write_text(json.dumps(data))
    with pytest.raises(StnbenchError) as raised:
        read_record(path)
    message = str(raised.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    return message


def test_schema_rejects_a_bad_record_naming_the_file_and_field(tmp_path: Path) -> None:
    good = json.loads((DEMO_RUN / "metrics.json").read_text())
    path = tmp_path / "metrics.json"
    cases = {
        "params": "field (top level): 'params' is a required property",
        "test_accuracy": "field test_accuracy: None is not of type 'number'",
        "history": "field history/0/epoch: 'one' is not of type 'integer'",
        "device_type": "field device_type: 'tpu' is not one of ['cpu', 'cuda']",
        "machine": "field machine: 'cpu_flags' is a required property",
        "schema_version": "schema_version 2, expected 1",
        "extra": "Additional properties are not allowed ('accuracy' was unexpected)",
    }
    for case, expected in cases.items():
        bad = copy.deepcopy(good)
        if case == "params":
            del bad["params"]
        elif case == "test_accuracy":  # a finished run must have been tested
            bad["test_accuracy"] = None
        elif case == "history":
            bad["history"][0]["epoch"] = "one"
        elif case == "device_type":
            bad["device_type"] = "tpu"
        elif case == "machine":
            del bad["machine"]["cpu_flags"]
        elif case == "schema_version":
            bad["schema_version"] = 2
        else:
            bad["accuracy"] = 0.9
        assert expected in one_line_error(path, bad), case
    assert "field (top level): [] is not of type 'object'" in one_line_error(path, [])
    path.write_text(json.dumps(good)[:-100])
    with pytest.raises(StnbenchError, match=rf"^{path}: not valid JSON \(") as raised:
        read_record(path)
    assert "\n" not in str(raised.value)
    assert RunRecord.from_json(good).to_json() == good


def corrupt_copy(tmp_path: Path) -> Path:
    run = tmp_path / "runs" / DEMO_RUN.name
    run.mkdir(parents=True)
    (run / "spec.yaml").write_bytes((DEMO_RUN / "spec.yaml").read_bytes())
    (run / "metrics.json").write_text((DEMO_RUN / "metrics.json").read_text()[:500])
    return run


def test_workflow_check_of_a_finished_cell_names_a_corrupt_record(tmp_path: Path) -> None:
    run = corrupt_copy(tmp_path)
    spec = yaml.safe_load((run / "spec.yaml").read_text())
    with pytest.raises(StnbenchError, match=rf"^{run / 'metrics.json'}: not valid JSON"):
        jobs.check_finished_cell(run / "metrics.json", spec, "cpu")


def test_tables_name_a_corrupt_record_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = corrupt_copy(tmp_path)
    arguments = ["results", "tables", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path)]
    assert main(arguments) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"stnbench: error: {run / 'metrics.json'}: not valid JSON (")
    assert error.count("\n") == 1
    assert not (tmp_path / "tables").exists()


def committed_run(distortion: str, model: str = "cnn", where: str = "demo") -> Path:
    return next(
        path.parent for path in committed_records()
        if f"/{where}/runs/" in str(path) and f"_distortion~{distortion}_" in str(path)
        and f"_model~{model}_seed~0" in str(path)
    )


def copy_run(run: Path, folder: Path) -> Path:
    (folder / run.name).mkdir(parents=True)
    for path in run.iterdir():
        (folder / run.name / path.name).write_bytes(path.read_bytes())
    return folder / run.name


def test_a_run_of_an_older_distortion_definition_is_out_of_date(tmp_path: Path) -> None:
    # The demo's P runs are of P's current definition; a record without a version was trained
    # before distortions had versions, on version 1.
    runs = tmp_path / "runs"
    current, unchanged = copy_run(committed_run("P"), runs), copy_run(committed_run("R"), runs)
    assert read_record(current / "metrics.json").distortion_version == 2
    older = copy_run(committed_run("P"), tmp_path / "older")
    record = json.loads((older / "metrics.json").read_text())
    del record["config"]["distortion_version"]
    (older / "metrics.json").write_text(json.dumps(record))
    assert read_record(older / "metrics.json").distortion_version == 1
    for run in (current, unchanged):
        jobs.check_finished_cell(run / "metrics.json", yaml.safe_load(
            (run / "spec.yaml").read_text()), "cpu")
    spec = yaml.safe_load((older / "spec.yaml").read_text())
    with pytest.raises(StnbenchError, match="'distortion_version' differs"):
        jobs.check_finished_cell(older / "metrics.json", spec, "cpu")

    # The older P run beside the current ones, and an ST-CNN run of the CPU reference, trained
    # on the model's earlier definition.
    (older / "metrics.json").replace(current / "metrics.json")
    copy_run(committed_run("R", "st-cnn-affine", where="cpu"), runs)
    assert main(["results", "tables", "--runs", str(runs), "--out", str(tmp_path / "out")]) == 0
    table = (tmp_path / "out" / "tables" / "table1.md").read_text()
    assert "Out of date: run(s) trained on an earlier definition of their distortion, " in table
    assert "1 of P (version 1, now 2)" in table and " of R (" not in table
    assert "earlier definition of their model, 1 of st-cnn-affine: " in table
    # A table speaks of its own runs only: no GTSRB run is out of date.
    assert "Out of date" not in (tmp_path / "out" / "tables" / "gtsrb.md").read_text()
    assert "Out of date" in (tmp_path / "out" / "tables" / "robustness.md").read_text()


def test_a_new_run_records_its_distortion_version() -> None:
    flags = {"dataset": "mnist", "model": "cnn", "seed": 0, "severity": 1.0, "device": "cpu"}
    assert resolve_spec({**flags, "distortion": "P"}).config()["distortion_version"] == 2
    assert resolve_spec({**flags, "distortion": "R"}).config()["distortion_version"] == 1


def test_a_run_of_an_older_recipe_is_out_of_date_unless_its_spec_asked_for_it(
    tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    run = copy_run(committed_run("R"), runs)
    record = json.loads((run / "metrics.json").read_text())
    record["config"]["lr"] *= 2  # trained before the recipe's rate changed
    (run / "metrics.json").write_text(json.dumps(record))
    assert load_runs(runs)[0]["recipe_changes"].tolist() == [("lr",)]
    assert main(["results", "tables", "--runs", str(runs), "--out", str(tmp_path / "out")]) == 0
    assert ("earlier version of their recipe (stnbench/engine/recipes.yaml), 1 of cnn (lr): "
            in (tmp_path / "out" / "tables" / "table1.md").read_text())

    # The same rate asked for by the run's own spec is no change of recipe.
    spec = yaml.safe_load((run / "spec.yaml").read_text())
    (run / "spec.yaml").write_text(yaml.safe_dump({**spec, "lr": record["config"]["lr"]}))
    assert load_runs(runs)[0]["recipe_changes"].tolist() == [()]
    (run / "spec.yaml").unlink()
    assert load_runs(runs)[0]["recipe_changes"].tolist() == [None]


def test_an_out_of_date_run_lists_every_other_in_the_grid(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    folders = [copy_run(committed_run(distortion), runs) for distortion in ("R", "P", "E")]
    specs = {run.name: yaml.safe_load((run / "spec.yaml").read_text()) for run in folders}
    current, *stale = folders
    for run in stale:  # trained at another rate than the recipe's
        record = json.loads((run / "metrics.json").read_text())
        record["config"]["lr"] *= 2
        (run / "metrics.json").write_text(json.dumps(record))
    listing = tmp_path / "logs" / "out_of_date_runs.tsv"

    def check(run: Path) -> None:
        jobs.check_finished_cell(run / "metrics.json", specs[run.name], "cpu",
                                 lambda: specs, listing)

    check(current)  # up to date: trains whatever the rest of the grid holds
    assert not listing.exists()
    with pytest.raises(StnbenchError) as error:
        check(stale[0])
    assert str(error.value) == (
        f"{stale[0] / 'metrics.json'}: holds a finished run whose 'lr' differs from the run "
        "asked for; remove that run's folder to train it again, or write the new run "
        f"elsewhere; the grid holds 2 such runs in all: {listing} lists each with the first "
        "setting that differs"
    )
    assert listing.read_text() == "".join(f"{run}\tlr\n" for run in stale)

    # Alone out of date, a run is named alone.
    listing.unlink()
    del specs[stale[1].name]
    with pytest.raises(StnbenchError, match=r"else[a-z]*$"):
        check(stale[0])
    assert not listing.exists()
