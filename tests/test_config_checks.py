"""Mistakes in a workflow config are refused when the grid is built, before any job runs, by
the same checks that `stnbench train` makes."""

from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from stnbench import pipeline
from stnbench.cli import main
from stnbench.errors import StnbenchError
from stnbench.models.registry import load_definition

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"


def _config(tmp_path: Path, train: dict | None = None, variant: dict | None = None) -> dict:
    experiment = {"dataset": "mnist", "distortions": ["R"], "models": ["cnn"], "seeds": 2,
                  "train": train or {}}
    config = {"scale": "t", "results_dir": str(tmp_path / "results"),
              "data_dir": str(tmp_path / "data"), "experiments": {"table1": experiment}}
    if variant is not None:
        definition = {"name": "my-variant", "datasets": ["mnist"], "recipe": "stn-paper-mnist",
                      "layers": [variant, {"linear": "classes"}]}
        config["variants"] = [{"definition": definition, "experiments": ["table1"]}]
    validate(config, str(SCHEMA))
    return config


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ({"limt_train": 100}, "config experiments.table1.train: unknown run spec field "
                              "'limt_train'"),
        ({"epochs": 2.5}, "run spec field 'epochs': expected int, got 2.5"),
        ({"momentum": -5}, "momentum -5.0: must be a finite number, 0 or more"),
        ({"precision": "fp16"}, "precision 'fp16': expected one of fp32, bf16"),
    ],
)
def test_a_bad_training_setting_stops_the_grid(tmp_path: Path, train: dict, message: str) -> None:
    with pytest.raises(StnbenchError) as error:
        pipeline.build_grid(_config(tmp_path, train))
    assert message in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "results").exists() and not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ({"conv": {"out": -8, "kernel": 5}}, "model my-variant: layers[0].out: -8 must be a "
                                             "positive integer"),
        ({"st": {"transform": "shear-warp", "localization": [{"linear": 20}]}},
         "model my-variant: layers[0].st.transform: unknown family 'shear-warp'"),
        ({"conv": {"out": 8, "kernel": 40}}, "model my-variant: layers[0]"),
    ],
)
def test_a_variant_that_cannot_be_built_stops_the_grid(
    tmp_path: Path, layer: dict, message: str
) -> None:
    with pytest.raises(StnbenchError) as error:
        pipeline.build_grid(_config(tmp_path, variant=layer))
    assert message in str(error.value) and "/tmp" not in str(error.value)


def test_a_good_config_builds_its_grid(tmp_path: Path) -> None:
    grid = pipeline.build_grid(_config(tmp_path, {"epochs": 3},
                                       variant={"conv": {"out": 8, "kernel": 5}}))
    assert len(grid.cells) == 4


def test_a_variant_based_on_a_registered_model_states_only_what_differs(tmp_path: Path) -> None:
    config = _config(tmp_path)
    config["variants"] = [{
        "definition": {"based_on": "st-cnn-affine", "name": "st-cnn-affine-long",
                       "description": "st-cnn-affine trained for longer"},
        "experiments": ["table1"], "train": {"epochs": 5},
    }]
    validate(config, str(SCHEMA))
    grid = pipeline.build_grid(config)
    variant = grid.variants["st-cnn-affine-long"]
    registered, _ = load_definition("st-cnn-affine")
    assert variant["layers"] == registered["layers"] and variant["baseline"] == "cnn"
    assert variant["description"] == "st-cnn-affine trained for longer"
    assert "based_on" not in variant and registered["name"] == "st-cnn-affine"
    runs = grid.cells[grid.cells["model"] == "st-cnn-affine-long"]
    assert len(runs) == 2 and all(spec["epochs"] == 5 for spec in runs["spec"])


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ({"based_on": "st-cnn-afine", "name": "x"},
         "config variants[0].definition.based_on: unknown model 'st-cnn-afine'; did you mean "
         "st-cnn-affine"),
        ({"based_on": "missing.yaml", "name": "x"},
         "config variants[0].definition.based_on: model file "),
        ({"based_on": "st-cnn-affine"},
         "config variants[0]: model name 'st-cnn-affine' is taken; rename the variant"),
    ],
)
def test_a_variant_based_on_no_model_or_keeping_its_name_stops_the_grid(
    tmp_path: Path, definition: dict, message: str
) -> None:
    config = _config(tmp_path)
    config["variants"] = [{"definition": definition, "experiments": ["table1"]}]
    with pytest.raises(StnbenchError) as error:
        pipeline.build_grid(config)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    "layer",
    [{"linear": 100_000_000_000},
     {"st": {"transform": "tps", "grid_size": 1000, "localization": [{"linear": 20}]}}],
)
def test_a_model_too_large_for_memory_is_refused_before_allocating(
    tmp_path: Path, layer: dict, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(StnbenchError, match=r"model my-variant: --model .* GB to train at 28 px, "
                                            r"more than this machine's"):
        pipeline.build_grid(_config(tmp_path, variant=layer))
    definition = tmp_path / "huge.yaml"
    definition.write_text(yaml.safe_dump({"name": "huge", "datasets": ["mnist"],
                                          "recipe": "stn-paper-mnist",
                                          "layers": [layer, {"linear": "classes"}]}))
    argv = ["train", "--dataset", "mnist", "--distortion", "R", "--severity", "1", "--model",
            str(definition), "--seed", "0", "--device", "cpu", "--data-dir",
            str(tmp_path / "data"), "--out", str(tmp_path / "run")]
    assert main(argv) == 1
    error = capsys.readouterr().err.strip()
    assert "more than this machine's" in error and len(error.splitlines()) == 1
    assert not (tmp_path / "data").exists() and not (tmp_path / "run").exists()
