"""Plots are kept when what they are drawn from is unchanged, and drawn again when it is not."""

import json
import shutil
from pathlib import Path

from stnbench import pipeline
from stnbench.results.collect import collect
from stnbench.results.plots import PLOTS, inputs_digest, write_plots

REPO = Path(__file__).resolve().parents[1]


def test_the_workflow_names_every_plot():
    assert tuple(PLOTS) == pipeline.PLOTS


def test_plots_are_drawn_again_only_when_what_they_show_changes(tmp_path: Path):
    runs = tmp_path / "runs"
    shutil.copytree(REPO / "results" / "demo" / "runs", runs)
    out = tmp_path / "plots"
    written = write_plots(collect(runs), out)
    assert sorted(path.name for path in written) == sorted(
        f"{name}.{ext}" for name in PLOTS for ext in ("png", "pdf")
    )
    drawn = {path: path.stat().st_mtime_ns for path in written}
    write_plots(collect(runs), out)
    assert {path: path.stat().st_mtime_ns for path in written} == drawn
    # A plot whose PDF is gone is drawn again; the others are kept.
    (out / "throughput.pdf").unlink()
    write_plots(collect(runs), out)
    assert (out / "throughput.pdf").is_file()
    assert (out / "throughput.png").stat().st_mtime_ns != drawn[out / "throughput.png"]
    assert (out / "training_curves.png").stat().st_mtime_ns == drawn[out / "training_curves.png"]
    # One run fewer, or one epoch's figure changed: another digest, so every plot is redrawn.
    before = inputs_digest(collect(runs))
    metrics = next(runs.glob("*/metrics.json"))
    record = json.loads(metrics.read_text())
    record["history"][0]["val_accuracy"] -= 0.01
    metrics.write_text(json.dumps(record))
    edited = inputs_digest(collect(runs))
    shutil.rmtree(metrics.parent)
    assert len({before, edited, inputs_digest(collect(runs))}) == 3
