"""Tables and plots built from small synthetic runs whose answers are known."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from result_runs import TEST_IMAGES, table, write_run

from stnbench.cli import main
from stnbench.results.collect import collect
from stnbench.results.stats import binomial_interval
from stnbench.results.table_format import format_cell
from stnbench.results.tables import build_tables

PRESETS = sorted((Path(__file__).resolve().parents[1] / "config").glob("*.yaml"))
# What the demo preset says its scale means, as the workflow passes it to the tables.
DEMO = {"demo": yaml.safe_load((PRESETS[0].parent / "demo.yaml").read_text())["scale_note"]}


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """CNN vs ST-CNN Aff on R at three seeds, one ST-CNN seed diverged, ST-CNN Proj missing a seed.

    CNN accuracies 0.90, 0.92, 0.94 (mean 92, std 2); ST-CNN Aff seeds 0 and 1 at 0.98 and 0.96.
    """
    root = tmp_path / "runs"
    for seed, accuracy in enumerate((0.90, 0.92, 0.94)):
        write_run(root, model="cnn", seed=seed, accuracy=accuracy)
    for seed, accuracy in enumerate((0.98, 0.96, None)):
        write_run(root, model="st-cnn-affine", seed=seed, accuracy=accuracy)
    write_run(root, model="st-cnn-projective", seed=0, accuracy=0.97)
    return root


def test_table1_reports_mean_std_and_counts_diverged_and_missing(runs: Path):
    tables = build_tables(collect(runs), scale_meanings=DEMO)
    table1 = table(tables, "table1")
    (heading, display), = table1.sections
    assert heading == "demo scale"
    row = display.set_index("model")
    # Error % of CNN: 10, 8, 6 -> 8.00 ± 2.00 over 3 seeds.
    assert row.at["cnn", "R: ours"] == "8.00 ± 2.00 (n=3)"
    assert row.at["cnn", "R: paper"] == "1.2"
    assert row.at["cnn", "R: Δ"] == "+6.80"
    # Seed 1 of ST-CNN Aff beats CNN on 4 images only (McNemar p = 0.125): no mark.
    assert row.at["st-cnn-affine", "R: ours"] == "3.00 ± 1.41 (n=2 of 3; 1 diverged)"
    # 7 images to none at its only paired seed (p = 2 / 2**7): marked significant.
    assert row.at["st-cnn-projective", "R: ours"] == "3.00 (n=1 of 3; 2 missing) *"
    # Seeds other models finished are missing; a model or family with no run at all at this
    # scale was not in the grid.
    assert row.at["fcn", "R: ours"] == "not run"
    assert row.at["cnn", "RTS: ours"] == "not run"
    assert any(note.startswith("Scale: demo (shortened runs") for note in table1.notes)
    data = table1.data.set_index(["model", "distortion"])
    assert data.at[("st-cnn-affine", "R"), "n_diverged"] == 1
    assert data.at[("st-cnn-projective", "R"), "n_missing"] == 2


def test_robustness_marks_a_severity_not_reached_and_shows_validation(tmp_path: Path):
    root = tmp_path / "runs"
    for severity, accuracy in ((0.0, 0.98), (1.0, 0.90)):
        write_run(root, model="cnn", seed=0, accuracy=accuracy, distortion="rotation",
                  severity=severity, val_wrong=np.arange(round((1 - accuracy) * 50)))
    write_run(root, model="st-cnn-affine", seed=0, accuracy=0.96, distortion="rotation",
              severity=1.0, val_wrong=np.arange(3))
    write_run(root, model="cnn", seed=0, accuracy=0.95, distortion="R", severity=1.0)
    robustness = table(build_tables(collect(root)), "robustness")
    sections = dict(robustness.sections)
    assert list(sections) == ["mnist, demo scale, test accuracy %",
                              "mnist, demo scale, validation accuracy %"]
    test = sections["mnist, demo scale, test accuracy %"].set_index(["family", "model"])
    # The ST model has not run the clean severity its family ran: missing, not blank.
    assert test.at[("rotation", "st-cnn-affine"), "severity 0"] == "1 missing"
    assert test.at[("rotation", "st-cnn-affine"), "severity 1"] == "96.00 (n=1)"
    # R was never run at severity 0.
    assert test.at[("R", "cnn"), "severity 0"] == "—"
    val = sections["mnist, demo scale, validation accuracy %"].set_index(["family", "model"])
    # 5 (half the baseline's test errors) and 3 of 100 validation images wrong.
    assert val.at[("rotation", "cnn"), "severity 1"] == "95.00 (n=1)"
    assert val.at[("rotation", "st-cnn-affine"), "severity 1"] == "97.00 (n=1)"
    data = robustness.data.set_index(["split", "distortion", "severity", "model"])
    assert data.at[("val", "rotation", 0.0, "st-cnn-affine"), "n_missing"] == 1


def test_two_cpus_of_one_name_but_unlike_flags_are_two_devices(tmp_path: Path):
    root = tmp_path / "runs"
    for seed, flags, rate in ((0, ["avx2"], 100.0), (1, ["avx2", "avx512f", "avx512_bf16"], 300.0),
                              (2, None, 200.0)):
        run = write_run(root, model="cnn", seed=seed, accuracy=0.9)
        metrics = json.loads((run / "metrics.json").read_text())
        metrics.update(device="AMD EPYC", train_images_per_s=rate)
        metrics["machine"].update(cpu="AMD EPYC", cpu_flags=flags)
        (run / "metrics.json").write_text(json.dumps(metrics))
    runs = collect(root).runs
    assert list(runs["device"]) == ["AMD EPYC [avx2]", "AMD EPYC [avx512_bf16]",
                                    "AMD EPYC [flags unrecorded]"]
    (_, display), = table(build_tables(collect(root)), "cost").sections
    assert display.at[0, "training images/s"] == (
        "100 (AMD EPYC [avx2]); 300 (AMD EPYC [avx512_bf16]); 200 (AMD EPYC [flags unrecorded])")


def test_cost_rows_keep_a_models_preparations_apart(tmp_path: Path):
    root = tmp_path / "runs"
    for seed, size, rate in ((0, 32, 100.0), (1, 48, 40.0)):
        run = write_run(root, model="idsia", seed=seed, accuracy=0.9, dataset="gtsrb",
                        distortion="none", severity=0.0)
        metrics = json.loads((run / "metrics.json").read_text())
        metrics["config"]["size"] = size
        metrics["train_images_per_s"] = rate
        (run / "metrics.json").write_text(json.dumps(metrics))
    (_, display), = table(build_tables(collect(root)), "cost").sections
    speed = display.set_index("preparation")["training images/s"]
    assert len(display) == 2
    assert speed["32px"].startswith("100 (") and speed["48px"].startswith("40 (")


def test_cli_writes_every_table_and_plot(runs: Path, tmp_path: Path):
    out = tmp_path / "out"
    assert main(["results", "tables", "--runs", str(runs), "--out", str(out),
                 "--scale-note", "demo=one short epoch"]) == 0
    for name in ("gtsrb", "table1", "robustness", "cost", "significance"):
        for ext in ("md", "csv", "tex"):
            assert (out / "tables" / f"{name}.{ext}").stat().st_size > 0
    for name in ("accuracy_vs_severity", "accuracy_vs_params", "throughput", "training_curves"):
        for ext in ("png", "pdf"):
            assert (out / "plots" / f"{name}.{ext}").stat().st_size > 0
    markdown = (out / "tables" / "table1.md").read_text()
    assert "1 diverged" in markdown and "demo scale" in markdown
    assert "Scale: demo (one short epoch)" in markdown
    csv = pd.read_csv(out / "tables" / "table1.csv")
    assert csv.loc[(csv["model"] == "cnn") & (csv["distortion"] == "R"), "mean"].item() == (
        pytest.approx(0.08))
    assert r"$\pm$" in (out / "tables" / "table1.tex").read_text()


def test_gtsrb_table_states_scale_and_test_set_and_reads_benchmarks(tmp_path: Path):
    root = tmp_path / "runs"
    note = "430-image subset of the official test set"
    for seed, val_errors in ((0, 2), (1, 4)):
        write_run(root, model="moodstocks-2st", seed=seed, accuracy=0.99, dataset="gtsrb",
                  distortion="none", severity=0.0, params=10_300_000, note=note,
                  val_wrong=np.arange(val_errors))
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "moodstocks-2st.json").write_text(json.dumps({
        "model": "moodstocks-2st", "dataset": "gtsrb", "input_shape": [3, 32, 32],
        "device": "test cpu", "device_type": "cpu",
        "results": [{"batch_size": 64, "inference": {"images_per_s": {"median": 1234.0}},
                     "train_step": {"images_per_s": {"median": 321.0}}}],
    }))
    gtsrb = table(build_tables(collect(root, bench), scale_meanings=DEMO), "gtsrb")
    assert any(line.startswith("Scale: demo (") for line in gtsrb.notes)
    assert any(note in line for line in gtsrb.notes)
    (_, display), = gtsrb.sections
    column = display.set_index("")["moodstocks-2st"]
    assert column["test accuracy % (reproduced, mean ± std)"] == "99.00 ± 0.00 (n=2)"
    assert column["validation accuracy % (reproduced, mean ± std)"] == "97.00 ± 1.41 (n=2)"
    assert column["network weights (counted)"] == "10.30M"
    assert column["inference images/s"] == "test cpu [flags unrecorded]: 1,234 @64"
    assert column["hours per run (training and test)"].startswith("0.00 (")  # 2 s a run
    nost = display.set_index("")["moodstocks-nost"]
    assert nost["hours per run (training and test)"] == "—"
    assert nost["test accuracy % (reproduced, mean ± std)"] == "not run"
    assert nost["validation accuracy % (reproduced, mean ± std)"] == "not run"


def test_a_copied_run_counts_once_but_two_preparations_are_two_runs(tmp_path: Path):
    root = tmp_path / "runs"
    runs = [write_run(root / folder, model="moodstocks-2st", seed=0, accuracy=accuracy,
                      dataset="gtsrb", distortion="none", severity=0.0)
            for folder, accuracy in (("a", 0.99), ("b", 0.98))]
    results = collect(root, tmp_path / "bench")
    assert list(results.runs["test_accuracy"]) == [0.99] and results.duplicates == (runs[1],)
    gtsrb = table(build_tables(results), "gtsrb")
    assert any(line.startswith("Counted once: 1 duplicate") for line in gtsrb.notes)

    # The same model and seed at 48 px on the ROI with IDSIA's jitter is another run, shown in
    # a section of its own beside the data set's own 32 px.
    metrics = json.loads((runs[1] / "metrics.json").read_text())
    metrics["config"].update(size=48, roi_crop=True, contrast="histeq", augmentation="idsia")
    (runs[1] / "metrics.json").write_text(json.dumps(metrics))
    results = collect(root, tmp_path / "bench")
    assert results.duplicates == ()
    assert sorted(results.runs["preparation"]) == ["32px", "48px-roi-histeq"]
    gtsrb = table(build_tables(results), "gtsrb")
    headings = [heading for heading, _ in gtsrb.sections]
    assert headings == ["demo scale, 32px", "demo scale, 48px-roi-histeq"]
    prepared = gtsrb.sections[1][1].set_index("")["moodstocks-2st"]
    assert prepared["test accuracy % (reproduced, mean ± std)"].startswith("98.00")
    # One run has no spread over seeds: its interval is over its test images.
    low, high = binomial_interval(0.98, TEST_IMAGES)
    assert prepared["95% CI"] == (f"{100 * low:.2f} to {100 * high:.2f} (one run: "
                                  f"Clopper-Pearson over its {TEST_IMAGES:,} test images)")
    assert low < 0.98 < high
    assert prepared["jittering"] == "yes (idsia)"
    assert prepared["augmentations"] == "one preprocessing (histeq)"
    assert gtsrb.sections[0][1].set_index("")["moodstocks-2st"]["jittering"] == "no"


def test_no_runs_writes_tables_that_say_so(tmp_path: Path):
    out = tmp_path / "out"
    assert main(["results", "tables", "--runs", str(tmp_path / "none"), "--out", str(out),
                 "--note", "GTSRB left out: no archives"]) == 0
    for name in ("gtsrb", "table1", "robustness", "cost", "significance"):
        text = (out / "tables" / f"{name}.md").read_text()
        assert "No runs yet" in text and "GTSRB left out: no archives" in text
    gtsrb = (out / "tables" / "gtsrb.md").read_text()
    # Published columns stand without runs; IDSIA's weights recounted: 25 x 1,543,443.
    assert "99.46" in gtsrb and "99.61" in gtsrb and "38.59M" in gtsrb


def test_format_cell_all_diverged():
    cell = pd.Series({"n_ok": 0, "n_expected": 3, "n_diverged": 3, "n_set_aside": 0,
                      "n_missing": 0, "mean": float("nan"), "std": float("nan")})
    assert format_cell(cell) == "3 diverged"


def test_presets_that_share_a_results_folder_and_scale_say_the_same_of_it():
    # Any of them regenerates that folder's tables, which must come out the same.
    meanings: dict[tuple, set] = {}
    for path in PRESETS:
        preset = yaml.safe_load(path.read_text())
        meanings.setdefault((preset["results_dir"], preset["scale"]), set()).add(
            preset.get("scale_note"))
    assert len(meanings) < len(PRESETS)
    assert all(len(notes) == 1 and None not in notes for notes in meanings.values()), meanings


def test_a_scale_note_without_its_scale_is_refused(runs: Path, tmp_path: Path, capsys):
    assert main(["results", "tables", "--runs", str(runs), "--out", str(tmp_path),
                 "--scale-note", "one short epoch"]) != 0
    assert "--scale-note 'one short epoch': expected SCALE=TEXT" in capsys.readouterr().err


def test_robustness_keeps_runs_of_one_seed_at_two_preparations_apart(tmp_path: Path):
    # The same model and seed at two contrasts are two runs: one row for both showed either.
    for contrast, accuracy in (("original", 0.90), ("histeq", 0.80)):
        write_run(tmp_path / contrast, model="idsia-mcdnn", seed=0, accuracy=accuracy,
                  dataset="gtsrb", distortion="none", severity=0.0,
                  config={"size": 48, "roi_crop": True, "contrast": contrast})
    sections = dict(table(build_tables(collect(tmp_path)), "robustness").sections)
    shown = {name: frame.set_index(["family", "model"]).at[("none", "idsia-mcdnn"), "severity 0"]
             for name, frame in sections.items() if "test accuracy" in name}
    assert shown == {"gtsrb 48px-roi, demo scale, test accuracy %": "90.00 (n=1)",
                     "gtsrb 48px-roi-histeq, demo scale, test accuracy %": "80.00 (n=1)"}
