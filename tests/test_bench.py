"""`stnbench bench`: the JSON it writes, the costs it reports and the errors it gives.

No test asserts a speed: timings are checked for consistency, not for value.
"""

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import torch
from torch import nn

from stnbench.bench import BenchSettings, bench_report, model_cost
from stnbench.bench_file import bench_file_name, bench_schema, validate_bench
from stnbench.cli import main
from stnbench.errors import StnbenchError
from stnbench.models import count_parameters, create_model, describe_model

CPU_QUICK = BenchSettings(device=torch.device("cpu"), batch_sizes=(1, 3), repeats=2)


# Quick single-threaded checks; the fixture lives in conftest.py.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cli_report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "tutorial-stn.json"
    argv = ["bench", "--model", "tutorial-stn", "--dataset", "mnist", "--batch-sizes", "1,4",
            "--repeats", "3", "--threads", "1", "--out", str(out)]
    assert main(argv) == 0
    return json.loads(out.read_text())


def test_cli_json_follows_the_schema(cli_report: dict) -> None:
    jsonschema.validate(cli_report, bench_schema())
    assert cli_report["model"] == "tutorial-stn"
    assert cli_report["input_shape"] == [1, 28, 28]
    assert [row["batch_size"] for row in cli_report["results"]] == [1, 4]
    assert (cli_report["device_type"], cli_report["precision"], cli_report["threads"]) == (
        "cpu", "fp32", 1
    )


def test_cli_costs_match_models_describe(cli_report: dict) -> None:
    described = describe_model("tutorial-stn", "mnist")
    assert cli_report["params"] == described["params"]
    assert cli_report["flops_per_image"] == described["flops"]


def test_throughput_and_spread_are_consistent_with_latency(cli_report: dict) -> None:
    for row in cli_report["results"]:
        for phase in ("inference", "train_step"):
            figures = row[phase]
            latency, rate = figures["latency_s"], figures["images_per_s"]
            assert latency["repeats"] >= 3
            assert latency["repeats"] == len(latency["times"])
            assert latency["q1"] <= latency["median"] <= latency["q3"]
            assert latency["iqr"] == pytest.approx(latency["q3"] - latency["q1"])
            assert rate["median"] == pytest.approx(row["batch_size"] / latency["median"])
            assert rate["q1"] <= rate["median"] <= rate["q3"]
            assert figures["achieved_flops_per_s"] == pytest.approx(
                figures["flops_per_image"] * rate["median"]
            )
            assert figures["peak_memory_bytes"] > 0
            assert figures["cpu_share"] > 0


def test_schema_rejects_a_broken_report(cli_report: dict) -> None:
    missing = {key: value for key, value in cli_report.items() if key != "params"}
    with pytest.raises(StnbenchError, match="'params' is a required property"):
        validate_bench(missing)
    negative = copy.deepcopy(cli_report)
    negative["results"][1]["train_step"]["latency_s"]["median"] = -1.0
    with pytest.raises(StnbenchError, match="results/1/train_step/latency_s/median"):
        validate_bench(negative)


def test_flops_of_one_conv_layer_equal_the_hand_count() -> None:
    conv = nn.Sequential(nn.Conv2d(3, 8, kernel_size=5), nn.Flatten())
    out_values = 8 * 28 * 28  # 32 px, no padding: 28 x 28 outputs per map
    hand_count = 2 * out_values * 3 * 5 * 5  # one multiply-add per weight tap and output value
    report = bench_report(conv, model_name="conv5x5", dataset="gtsrb", input_shape=(3, 32, 32),
                          num_classes=out_values, settings=CPU_QUICK)
    validate_bench(report)
    assert report["flops_per_image"] == hand_count == 940_800
    # Training adds the weight gradient (as many multiply-adds again) but no input gradient.
    assert report["train_flops_per_image"] == 2 * hand_count
    for row in report["results"]:
        inference = row["inference"]
        assert inference["flops_per_image"] == hand_count
        assert inference["achieved_flops_per_s"] == pytest.approx(
            hand_count * inference["images_per_s"]["median"]
        )
        assert row["train_step"]["flops_per_image"] == 2 * hand_count


def _gtsrb_model(name: str, size: int, **overrides: object) -> nn.Module:
    return create_model(name, in_channels=3, input_size=size, num_classes=43, **overrides)


def test_committee_costs_all_its_columns() -> None:
    column = model_cost(_gtsrb_model("idsia", 32), (3, 32, 32), 43)
    committee = model_cost(_gtsrb_model("idsia-committee", 32), (3, 32, 32), 43)
    assert committee == {key: 25 * value for key, value in column.items()}


def test_committee_parameters_at_48px_match_the_recount() -> None:
    # One IDSIA column on 48x48 RGB has 1,543,443 parameters; the committee 25 times that.
    assert count_parameters(_gtsrb_model("idsia", 48)) == 1_543_443
    assert count_parameters(_gtsrb_model("idsia-committee", 48)) == 25 * 1_543_443


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["--model", "no-such-model", "--dataset", "mnist"], "no-such-model"),
        (["--model", "cnn", "--dataset", "svhn"], "--dataset 'svhn'"),
        (["--model", "cnn", "--dataset", "mnist", "--size", "30"], "--size 30"),
        (["--model", "idsia", "--dataset", "mnist"], "--model idsia"),
        (["--model", "cnn", "--dataset", "mnist", "--batch-sizes", "1,x"], "--batch-sizes"),
        (["--model", "cnn", "--dataset", "mnist", "--batch-sizes", "0,64"], "--batch-sizes"),
        (["--model", "cnn", "--dataset", "mnist", "--batch-sizes", "64,64"], "--batch-sizes"),
        (["--model", "cnn", "--dataset", "mnist", "--batch-sizes", ""], "--batch-sizes"),
        (["--model", "cnn", "--dataset", "mnist", "--repeats", "0"], "--repeats 0"),
        pytest.param(
            ["--model", "cnn", "--dataset", "mnist", "--device", "cuda"], "--device cuda",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present"),
        ),
    ],
)
def test_bad_input_gives_one_line_error(
    arguments: list[str], named: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "bench.json"
    assert main(["bench", *arguments, "--out", str(out)]) == 1
    error = capsys.readouterr().err
    assert error.startswith("stnbench: error: ")
    assert error.count("\n") == 1
    assert named in error
    assert not out.exists()


def test_every_committed_bench_file_has_the_one_name_of_its_content() -> None:
    results = Path(__file__).resolve().parents[1] / "results"
    paths = sorted([*results.glob("*/bench/*/*.json"), *results.glob("bench/*/*.json")])
    assert paths
    for path in paths:
        report = json.loads(path.read_text())
        expected = bench_file_name(report["model"], report["dataset"], report["input_shape"][-1],
                                   report["precision"])
        assert path.name == expected, path
