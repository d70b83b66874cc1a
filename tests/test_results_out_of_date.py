"""Out-of-date runs (an earlier definition of their model, recipe or distortion) beside
current ones in a cell: set aside and named, never averaged with them."""

import json
from pathlib import Path

from result_runs import table, write_run

from stnbench.results.collect import collect
from stnbench.results.tables import build_tables


def test_out_of_date_runs_are_set_aside_where_their_cell_has_current_ones(tmp_path: Path):
    # P is at version 2: seed 0 is of the current definition, seeds 1-2 of the first one. A
    # variant's file read from elsewhere leaves its model definition unjudged.
    root = tmp_path / "runs"
    for seed, accuracy, version in ((0, 0.9, 2), (1, 0.5, 1), (2, 0.6, 1)):
        run = write_run(root, model="elsewhere/variant.yaml", seed=seed, accuracy=accuracy,
                        distortion="P")
        metrics = json.loads((run / "metrics.json").read_text())
        metrics["config"]["distortion_version"] = version
        (run / "metrics.json").write_text(json.dumps(metrics))
    write_run(root, model="elsewhere/other.yaml", seed=0, accuracy=0.7, distortion="R")
    results = collect(root)
    assert sorted(results.runs["seed"][results.runs["distortion"] == "P"]) == [0]
    assert sorted(results.superseded["seed"]) == [1, 2]
    assert set(results.history["distortion"]) == {"P", "R"} and len(results.history) == 4
    tables = build_tables(results)
    (_, display), = table(tables, "table1").sections
    # Table 1 shows test error: seed 0's 10%, not the mean with the older seeds' 50 and 40,
    # and says where the other two seeds went.
    assert display.set_index("model").at["variant", "P: ours"] == "10.00 (n=1 of 3; 2 set aside)"
    note = [line for line in table(tables, "table1").notes if line.startswith("Set aside")]
    assert note == ["Set aside: 2 out-of-date run(s) whose cells also have runs of the current "
                    "definitions, not averaged with them until retrained: "
                    "variant on P (seed 1, 2)."]


def test_a_cell_of_out_of_date_runs_only_keeps_them(tmp_path: Path):
    root = tmp_path / "runs"
    for seed in (0, 1):
        write_run(root, model="elsewhere/variant.yaml", seed=seed, accuracy=0.9, distortion="P")
    results = collect(root)
    assert len(results.runs) == 2 and results.superseded.empty
