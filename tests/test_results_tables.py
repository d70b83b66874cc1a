"""Tables and plots built from small synthetic runs whose answers are known."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from stnbench.cli import main
from stnbench.errors import StnbenchError
from stnbench.results.collect import collect
from stnbench.results.compare import compare_with_baselines
from stnbench.results.stats import binomial_interval
from stnbench.results.table_format import format_cell
from stnbench.results.tables import build_tables

TEST_IMAGES = 100
PRESETS = sorted((Path(__file__).resolve().parents[1] / "config").glob("*.yaml"))
# What the demo preset says its scale means, as the workflow passes it to the tables.
DEMO = {"demo": yaml.safe_load((PRESETS[0].parent / "demo.yaml").read_text())["scale_note"]}


def write_run(root: Path, *, model: str, seed: int, accuracy: float | None, dataset="mnist",
              distortion="R", severity=1.0, scale="demo", wrong: np.ndarray | None = None,
              params=10_000, note=None, baseline: str | None = None,
              val_wrong: np.ndarray | None = None) -> Path:
    """A run folder as the training engine leaves it: metrics.json and predictions.npz.

    ``wrong`` lists the test images the model gets wrong; by default the first ones.
    ``val_wrong``, where given, the validation images (as many as test images) it gets wrong;
    without it the run has test predictions only, as runs written before validation ones.
    ``baseline`` defaults to the one the registered ST models declare.
    """
    # A variant's run records the path of its YAML file as its model, and its name inside.
    name = Path(model).stem
    run = root / f"{dataset}-{distortion}-{severity}-{name}-{seed}"
    run.mkdir(parents=True)
    label = np.arange(TEST_IMAGES) % 10
    status = "ok" if accuracy is not None else "diverged"
    has_st = model.startswith("st-") or model.endswith(("1st", "2st"))
    if baseline is None and has_st:
        baseline = model.split("-")[1] if model.startswith("st-") else "moodstocks-nost"
    if accuracy is not None:
        if wrong is None:
            wrong = np.arange(round((1 - accuracy) * TEST_IMAGES))
        predicted = label.copy()
        predicted[wrong] = (label[wrong] + 1) % 10
        arrays = {"predicted": predicted, "label": label}
        val_accuracy = accuracy = float(np.mean(predicted == label))
        if val_wrong is not None:
            val_predicted = label.copy()
            val_predicted[val_wrong] = (label[val_wrong] + 1) % 10
            arrays.update(val_predicted=val_predicted, val_label=label)
            val_accuracy = float(np.mean(val_predicted == label))
        np.savez(run / "predictions.npz", **arrays)
    else:
        val_accuracy = None
    config = {"scale": scale, "model": model, "dataset": dataset, "distortion": distortion,
              "severity": severity, "seed": seed, "size": None, "roi_crop": False,
              "contrast": "original", "augmentation": None,
              "eval_seed": 0, "limit_train": None, "data_dir": None, "val_fraction": None,
              "model_definition": {
                  "name": name,
                  "description": f"{model} for tests",
                  "definition": {"layers": [{"st": {"transform": "affine"}}] if has_st else [],
                                 **({"baseline": baseline} if baseline else {})},
              }}
    metrics = {
        "schema_version": 1,
        "status": status, "reason": None if accuracy is not None else "theta exploded",
        "dataset": dataset, "distortion": distortion, "severity": severity, "model": model,
        "seed": seed, "scale": scale, "epochs": 2, "epochs_completed": 2, "selected_epoch": 2,
        "test_accuracy": accuracy, "test_error": None if accuracy is None else 1 - accuracy,
        "test_loss": None if accuracy is None else 0.5, "per_class_accuracy": None,
        "confusion_matrix": None, "val_accuracy": val_accuracy, "params": params,
        "flops": 20 * params, "train_images_per_s": 1000.0, "wall_s": 2.0,
        "device": "test cpu", "device_type": "cpu", "precision": "fp32",
        "bit_reproducible": True, "torch": "2", "git_commit": "0" * 40,
        "machine": {"cpu": "test cpu", "cpu_flags": None, "cpu_count": 2, "platform": "Linux",
                    "python": "3", "torch": "2", "cuda": None, "gpu": None,
                    "git_commit": "0" * 40, "device": "test cpu", "device_type": "cpu"},
        "history": [{"epoch": epoch, "train_loss": 1.0 / epoch, "train_accuracy": 0.5,
                     "val_loss": 1.0, "val_accuracy": 0.5 + 0.1 * epoch, "lr": 0.01,
                     "images_per_s": 1000.0, "train_s": 1.0, "wall_s": 1.0}
                    for epoch in (1, 2)],
        "config": config,
        "test_set": {"name": f"{dataset} test", "size": TEST_IMAGES, "note": note},
    }
    if accuracy is not None:
        confusion = np.zeros((10, 10), np.int64)
        np.add.at(confusion, (label, predicted), 1)
        metrics.update(confusion_matrix=confusion.tolist(),
                       per_class_accuracy=(confusion.diagonal() / confusion.sum(1)).tolist())
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


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


def table(tables, name):
    return next(item for item in tables if item.name == name)


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


def test_significance_mcnemar_known_pvalue(tmp_path: Path):
    # Seed 0: the ST model alone gets 10 images right, the baseline alone 2: b=10, c=2,
    # exact two-sided p = 2 * (1 + 12 + 66) / 4096 = 0.03857.
    root = tmp_path / "runs"
    write_run(root, model="cnn", seed=0, accuracy=0.0, wrong=np.arange(10, 30))
    write_run(root, model="st-cnn-affine", seed=0, accuracy=0.0,
              wrong=np.concatenate([np.arange(20, 30), np.arange(40, 42)]))
    comparisons = compare_with_baselines(collect(root).runs)
    (row,) = comparisons.itertuples(index=False)
    assert (row.mcnemar_b, row.mcnemar_c) == (10, 2)
    assert row.mcnemar_p == pytest.approx(158 / 4096)
    significance = table(build_tables(collect(root)), "significance")
    (_, display), = significance.sections
    assert display.iloc[0]["McNemar per seed (b/c, p)"] == "s0: 10/2, 0.039"
    assert display.iloc[0]["Wilcoxon p"] == "n<6"


def test_validation_rows_where_both_runs_kept_validation_predictions(tmp_path: Path):
    root = tmp_path / "runs"
    # Seed 0: both runs have validation predictions.
    write_run(root, model="moodstocks-nost", seed=0, accuracy=0.9, dataset="gtsrb",
              distortion="none", severity=0.0, val_wrong=np.arange(5, 8))
    write_run(root, model="moodstocks-2st", seed=0, accuracy=0.95, dataset="gtsrb",
              distortion="none", severity=0.0, val_wrong=np.concatenate([[0, 1, 2, 3, 4], [8]]))
    # Seed 1 predates validation predictions on the baseline's side.
    write_run(root, model="moodstocks-nost", seed=1, accuracy=0.9, dataset="gtsrb",
              distortion="none", severity=0.0)
    write_run(root, model="moodstocks-2st", seed=1, accuracy=0.95, dataset="gtsrb",
              distortion="none", severity=0.0, val_wrong=np.arange(3))
    runs = collect(root).runs
    val = compare_with_baselines(runs, "val").iloc[0]
    assert (val.n_pairs, val.unpaired, val.seeds) == (1, 1, [0])
    # Wrong: baseline 5, 6, 7; ST 0-4 and 8. Only ST right: 5, 6, 7 (b=3); only baseline: 0-4, 8.
    assert (val.mcnemar_b, val.mcnemar_c) == (3, 6)
    assert val.accuracy == pytest.approx(0.94) and val.baseline_accuracy == pytest.approx(0.97)
    assert compare_with_baselines(runs, "test").iloc[0].n_pairs == 2
    (_, display), = table(build_tables(collect(root)), "significance").sections
    assert list(display["split"]) == ["test", "validation"]
    assert display.iloc[1]["McNemar per seed (b/c, p)"].startswith("s0: 3/6, ")
    with pytest.raises(StnbenchError, match="unknown split 'train'"):
        compare_with_baselines(runs, "train")


def test_a_variant_is_compared_with_the_baseline_its_definition_declares(tmp_path: Path):
    root = tmp_path / "runs"
    write_run(root, model="fcn", seed=0, accuracy=0.80)
    write_run(root, model="cnn", seed=0, accuracy=0.90)
    write_run(root, model="my-models/my-st-fcn.yaml", seed=0, accuracy=0.95, baseline="fcn")
    write_run(root, model="st-cnn-affine", seed=0, accuracy=0.70)
    comparisons = compare_with_baselines(collect(root).runs).set_index("model")
    # Named as its definition names it, not by the path of its file.
    assert comparisons.at["my-st-fcn", "baseline"] == "fcn"
    assert comparisons.at["my-st-fcn", "difference_pp"] == pytest.approx(15.0)
    assert comparisons.at["st-cnn-affine", "baseline"] == "cnn"
    assert len(comparisons) == 2  # the baselines themselves declare none


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
    cell = pd.Series({"n_ok": 0, "n_expected": 3, "n_diverged": 3, "n_missing": 0,
                      "mean": float("nan"), "std": float("nan")})
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
