"""The workflow's config: every preset valid and building its grid, and configs that fail
before any job with a message naming what is wrong, checked through Snakemake itself."""

import re
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate
from workflow_runs import REPO, snakemake, tiny_config

from stnbench import pipeline
from stnbench.distortions import FAMILIES
from stnbench.distortions.sequences import TASKS
from stnbench.errors import StnbenchError

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"

pytestmark = pytest.mark.slow


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
        # 3 sequence models, 3 seeds; the 2 sequence variants at 30 epochs, 1 seed
        assert len(grid.cells) == (8 * 4 + 2 * 3 + 3) * 3 + 2
    if preset == "cpu-gtsrb.yaml":  # 4 GTSRB models and the rotation sweep, 3 seeds
        assert len(grid.cells) == (4 + 2 * 3) * 3
    if preset in ("cpu-40ep.yaml", "cpu-80ep.yaml"):  # Table 1's 8 models x 4 families and
        # cluttered MNIST's 4 models, 3 seeds
        assert len(grid.cells) == (8 * 4 + 4) * 3


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
