"""Plots are kept when what they are drawn from is unchanged, and drawn again when it is not."""

import json
import shutil
from pathlib import Path

from test_results_tables import write_run

from stnbench import pipeline
from stnbench.results.collect import collect
from stnbench.results.plots import PLOTS, inputs_digest, throughput, write_plots

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


def test_throughput_has_a_bar_per_input_size_of_a_model(tmp_path: Path):
    root = tmp_path / "runs"
    for seed, size in ((0, 32), (1, 48)):
        run = write_run(root, model="idsia", seed=seed, accuracy=0.9, dataset="gtsrb",
                        distortion="none", severity=0.0)
        metrics = json.loads((run / "metrics.json").read_text())
        metrics["config"]["size"] = size
        (run / "metrics.json").write_text(json.dumps(metrics))
    figure = throughput(collect(root))
    labels = {label.get_text() for ax in figure.axes for label in ax.get_yticklabels()}
    assert {"idsia (32 px)", "idsia (48 px)"} <= labels


def test_throughput_does_not_average_mnist_rts_canvas_with_28_px_runs(tmp_path: Path):
    root = tmp_path / "runs"
    for distortion, rate in (("R", 2000.0), ("RTS", 500.0)):
        run = write_run(root, model="st-cnn-affine", seed=0, accuracy=0.9, distortion=distortion)
        metrics = json.loads((run / "metrics.json").read_text())
        metrics["train_images_per_s"] = rate
        (run / "metrics.json").write_text(json.dumps(metrics))
    figure = throughput(collect(root))
    panel = next(ax for ax in figure.axes if ax.get_title().startswith("training"))
    bars = {label.get_text(): patch.get_width() for label, patch in
            zip(panel.get_yticklabels(), panel.patches, strict=False)}
    assert bars == {"st-cnn-affine (28 px)": 2000.0, "st-cnn-affine (42 px)": 500.0}
