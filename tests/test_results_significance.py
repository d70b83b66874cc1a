"""The significance table and the marks it lends the other tables: McNemar's test of each
model against its baseline, on test and validation predictions."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from result_runs import table, write_run

from stnbench.cli import main
from stnbench.errors import StnbenchError
from stnbench.results.collect import collect
from stnbench.results.compare import compare_runs, compare_with_baselines
from stnbench.results.table_format import to_latex
from stnbench.results.tables import build_tables


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


def test_a_model_significantly_worse_than_its_baseline_is_marked_apart(tmp_path: Path):
    # On R the ST model is right on 10 images that the CNN gets wrong and on none of the
    # reverse (p = 2 / 2**10); on RTS the other way round. One mark for both would read as
    # two wins.
    root = tmp_path / "runs"
    for distortion, cnn_wrong, st_wrong in (("R", 12, 2), ("RTS", 2, 12)):
        for model, wrong in (("cnn", cnn_wrong), ("st-cnn-affine", st_wrong)):
            write_run(root, model=model, seed=0, accuracy=0.0, distortion=distortion,
                      wrong=np.arange(wrong))
    table1 = table(build_tables(collect(root)), "table1")
    ((_, display),) = table1.sections
    row = display.set_index("model").loc["st-cnn-affine"]
    assert row["R: ours"] == "2.00 (n=1) *"
    assert row["RTS: ours"] == "12.00 (n=1) †"
    assert display.set_index("model").at["cnn", "R: ours"] == "12.00 (n=1)"
    assert any(note.startswith("* : better than its baseline") and "† : worse" in note
               for note in table1.notes)
    assert r"12.00 (n=1) $\dagger$" in to_latex(table1)


def test_compare_two_runs_counts_the_images_only_one_gets_right(
    tmp_path: Path, capsys: pytest.CaptureFixture
):
    # As in the known-p-value test: b = 10, c = 2, p = 158 / 4096; also on validation.
    root = tmp_path / "runs"
    baseline = write_run(root, model="cnn", seed=0, accuracy=0.0, wrong=np.arange(10, 30),
                         val_wrong=np.arange(3))
    other = write_run(root, model="st-cnn-affine", seed=0, accuracy=0.0,
                      wrong=np.concatenate([np.arange(20, 30), np.arange(40, 42)]),
                      val_wrong=np.arange(5))
    pair = compare_runs(other, [baseline])
    assert (pair.images, pair.mcnemar.b, pair.mcnemar.c) == (100, 10, 2)
    assert pair.accuracy == (0.88, 0.80) and pair.mcnemar.pvalue == pytest.approx(158 / 4096)
    assert pair.interval[0][0] < 0.88 < pair.interval[0][1]
    assert main(["results", "compare", str(other), str(baseline), "--split", "val"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "val split: 100 images, the same labels in every run"
    assert lines[1].startswith("  A  95.00% (95% CI ") and lines[2].startswith("  B  97.00%")
    assert lines[3] == "right by A only: 0, by B only: 2; McNemar's exact test, two-sided: p = 0.5"


def test_compare_refuses_runs_on_other_images_or_without_predictions(
    tmp_path: Path, capsys: pytest.CaptureFixture
):
    root = tmp_path / "runs"
    mnist = write_run(root, model="cnn", seed=0, accuracy=0.9)
    gtsrb = write_run(root, model="moodstocks-nost", seed=0, accuracy=0.9, dataset="gtsrb",
                      distortion="none", severity=0.0)
    labels = np.load(gtsrb / "predictions.npz")["label"]
    np.savez(gtsrb / "predictions.npz", predicted=(labels + 1) % 43, label=(labels + 1) % 43)
    with pytest.raises(StnbenchError, match=r"their test labels differ \(100 and 100 images\), "
                                            r"so they were not tested on the same images"):
        compare_runs(mnist, [gtsrb])
    with pytest.raises(StnbenchError, match=r"predictions.npz: no val predictions"):
        compare_runs(mnist, [gtsrb], "val")
    # Runs written before probabilities were kept cannot vote in a committee.
    with pytest.raises(StnbenchError, match=r"predictions.npz: no class probabilities stored, "
                                            r"so the run cannot join a committee"):
        compare_runs(gtsrb, [mnist, write_run(root, model="cnn", seed=1, accuracy=0.8)])
    assert main(["results", "compare", str(mnist), str(tmp_path / "nowhere")]) == 1
    error = capsys.readouterr().err.strip()
    assert "nowhere/predictions.npz: cannot read predictions" in error
    assert len(error.splitlines()) == 1


def test_compare_agrees_with_the_committed_significance_table():
    """The command and the table reach the same counts by separate paths, on real runs."""
    runs = Path(__file__).resolve().parents[1] / "results" / "demo" / "runs"
    cell = "dataset~mnist_prep~28px_distortion~E_severity~1.0_model~{}_seed~0"
    pair = compare_runs(runs / cell.format("st-cnn-affine"), [runs / cell.format("cnn")])
    table = pd.read_csv(runs.parent / "tables" / "significance.csv")
    row = table[(table["distortion"] == "E") & (table["model"] == "st-cnn-affine")
                & (table["split"] == "test")].iloc[0]
    b, c, p = row["mcnemar_per_seed"].split()[0].split("/")
    assert (pair.mcnemar.b, pair.mcnemar.c) == (int(b), int(c))
    assert pair.mcnemar.pvalue == pytest.approx(float(p), rel=1e-4)


def test_compare_with_a_committee_averages_its_columns_probabilities():
    """A run against a committee of two committed IDSIA columns on the full GTSRB test set."""
    runs = Path(__file__).resolve().parents[1] / "results" / "cpu" / "runs"
    cell = "dataset~gtsrb_prep~48px{}_distortion~none_severity~0.0_model~{}_seed~0"
    columns = [runs / cell.format(prep, "idsia-mcdnn") for prep in ("-roi", "-roi-imadjust")]
    single = runs / cell.format("", "moodstocks-2st")
    pair = compare_runs(single, columns)
    stored = [np.load(column / "predictions.npz") for column in columns]
    mean = np.mean([files["probabilities"].astype(np.float32) for files in stored], axis=0)
    expected = np.mean(mean.argmax(axis=1) == stored[0]["label"])
    assert pair.second_columns == 2 and pair.images == 12_629
    assert pair.accuracy[1] == pytest.approx(expected)
    # The discordant images account for the whole difference between the two accuracies.
    difference = round((pair.accuracy[0] - pair.accuracy[1]) * pair.images)
    assert pair.mcnemar.b - pair.mcnemar.c == difference
