"""How long must Table 1 train on a CPU? Validation error against run length.

For each model (default `cnn`, `st-cnn-affine`), family (R, RTS) and length (2, 5, 10, 20, 40
epochs), one run through `stnbench train` with the cpu preset's deviations from the paper:
momentum 0.9 (the recipe's is 0) and the paper's step schedule scaled to the length (a factor
10 at each third of the run, `stn-paper-mnist` in stnbench/engine/recipes.yaml). One seed.

Each run selects its epoch on validation; the study reports that validation error only (the
test error each run also records is left out, so that the length is not chosen on the test
set). It picks, per family, the shortest length after which the ST-CNN's validation error
falls by no more than a tenth per doubling of the length; Table 1 then trains at the longest
of those picks. A family whose error still falls faster at the longest length has no pick.

Runs resume from their checkpoints and finished ones are read back, so the study can be
started again until it is done; `--lengths 2,5` gives a partial table.

Usage: .venv/bin/python benchmarks/schedule_study.py --runs DIR [--models cnn,st-cnn-affine]
    [--distortions R,RTS] [--lengths 2,5,10,20,40] [--seed 0] [--precision fp32]
    [--device cpu] [--data-dir data] [--limit-train N] [--out results/benchmarks/schedule_study]
Writes OUT.json (every run's record summary), OUT.md (the table) and OUT.png (the plot); the
run folders, with their checkpoints, stay under --runs.
"""

import argparse
import itertools
import math
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter
from tabulate import tabulate
from train_command import run_name, train_mnist_run

from stnbench import provenance
from stnbench.engine.record import METRICS_NAME, read_record
from stnbench.io import atomic_write, atomic_write_json, atomic_write_text
from stnbench.results.published import stn_table1

SEVERITY = 1.0  # the paper's families at their one level
MOMENTUM = 0.9  # config/cpu.yaml's deviation from the recipe
TRANSFORMER_MODEL = "st-cnn-affine"
# "Stops falling": a doubling of the run length lowers the error by at most this fraction.
FALL_PER_DOUBLING = 0.1


def train(model: str, distortion: str, epochs: int, out: Path, args: argparse.Namespace) -> None:
    limits = {"limit_train": args.limit_train} if args.limit_train else {}
    train_mnist_run(out, model=model, distortion=distortion, seed=args.seed,
                    precision=args.precision, data_dir=args.data_dir, severity=SEVERITY,
                    device=args.device,
                    fields={"epochs": epochs, "momentum": MOMENTUM, "scale": "cpu", **limits})


def summary(path: Path) -> dict:
    record = read_record(path)
    return {
        "status": record.status,
        "selected_epoch": record.selected_epoch,
        "val_error": None if record.val_accuracy is None else 100 * (1 - record.val_accuracy),
        "images_per_s": record.train_images_per_s,
        "wall_s": record.wall_s,
        "git_commit": record.git_commit,
        "config": dict(record.config),
    }


def pick_length(errors: pd.Series) -> int | None:
    """The shortest length after which the error falls by at most FALL_PER_DOUBLING per
    doubling (a 2-to-5 step counts as log2(2.5) doublings), or None if it never does. Lengths
    not yet run (NaN) are left out."""
    errors = errors.dropna()
    lengths = sorted(errors.index)
    for short, long in itertools.pairwise(lengths):
        doublings = math.log2(long / short)
        fall = 1 - (errors[long] / errors[short]) ** (1 / doublings)
        if fall <= FALL_PER_DOUBLING:
            return short
    return None


def write_plot(table: pd.DataFrame, out: Path, title: str) -> None:
    families = sorted(table["distortion"].unique())
    figure, axes = plt.subplots(1, len(families), figsize=(4.5 * len(families), 3.6), sharey=True,
                                squeeze=False)  # fmt: skip
    paper = stn_table1().set_index(["model", "distortion"])["error_pct"]
    for axis, family in zip(axes[0], families, strict=True):
        for model, rows in table[table["distortion"] == family].groupby("model"):
            rows = rows.sort_values("epochs")
            (line,) = axis.plot(rows["epochs"], rows["val_error"], marker="o", label=model)
            if (model, family) in paper.index:
                axis.axhline(paper[(model, family)], color=line.get_color(), linestyle="--",
                             linewidth=1, label=f"{model}: paper, test, 768 epochs")  # fmt: skip
        axis.set(xscale="log", yscale="log", title=family, xlabel="epochs (schedule scaled)")
        axis.set_xticks(sorted(table["epochs"].unique()))
        axis.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        # The lengths are the ticks; the log scale's own minor labels (3x10^0 ...) are noise.
        axis.xaxis.set_minor_formatter(NullFormatter())
        # Errors span 0.5-40%: labels at 1, 2 and 5 times a power of ten, which never collide.
        axis.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        axis.yaxis.set_minor_formatter(NullFormatter())
        axis.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("validation error (%)")
    axes[0][-1].legend(fontsize=8)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    atomic_write(out, lambda tmp: figure.savefig(tmp, format="png", dpi=120))
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True, help="folder of the run folders")
    parser.add_argument("--models", default=f"cnn,{TRANSFORMER_MODEL}")
    parser.add_argument("--distortions", default="R,RTS")
    parser.add_argument("--lengths", default="2,5,10,20,40", help="epochs, comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    # The study picks a length for the CPU Table 1; a GPU, where one is lent, runs it in minutes.
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--limit-train", type=int, help="training images (a quick trial)")
    parser.add_argument("--finished-only", action="store_true",
                        help="table the runs already finished under --runs; train none")
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks/schedule_study"))
    args = parser.parse_args()
    lengths = sorted(int(length) for length in args.lengths.split(","))
    args.runs.mkdir(parents=True, exist_ok=True)
    rows = []
    for model in args.models.split(","):
        for distortion in args.distortions.split(","):
            for epochs in lengths:
                name = run_name(model, distortion, epochs, args.seed, args.precision, args.device)
                out = args.runs / name
                if not (out / METRICS_NAME).exists():
                    if args.finished_only:
                        continue
                    train(model, distortion, epochs, out, args)
                rows.append({"model": model, "distortion": distortion, "epochs": epochs,
                             **summary(out / METRICS_NAME)})  # fmt: skip
    if not rows:
        parser.error(f"--runs {args.runs}: no finished run of these models, families and lengths")
    table = pd.DataFrame(rows)
    errors = table.pivot_table(index=["model", "distortion"], columns="epochs", values="val_error")
    picks = {
        distortion: pick_length(errors.loc[(TRANSFORMER_MODEL, distortion)])
        for distortion in args.distortions.split(",")
        if (TRANSFORMER_MODEL, distortion) in errors.index
    }
    chosen = None if None in picks.values() or not picks else max(picks.values())
    # A run that diverged keeps its error, marked: the study reports it rather than drop it.
    table["shown"] = [("-" if pd.isna(row.val_error) else f"{row.val_error:.2f}")
                      + ("" if row.status == "ok" else f" ({row.status})")
                      for row in table.itertuples()]  # fmt: skip
    shown = table.pivot(index=["model", "distortion"], columns="epochs", values="shown").fillna("-")
    shown.columns = [f"{epochs} epochs" for epochs in shown.columns]
    lines = [
        f"Validation error (%) of the selected epoch against run length; one seed ({args.seed}), "
        f"{args.precision} on {args.device}, momentum {MOMENTUM} (a deviation: the paper's SGD "
        "has none), the paper's step schedule scaled to each length. Run by "
        "benchmarks/schedule_study.py.",
        "",
        tabulate(shown.reset_index(), headers="keys", tablefmt="github", showindex=False,
                 disable_numparse=True),
        "",
        *(f"- {TRANSFORMER_MODEL} on {distortion}: "
          + (f"stops falling by more than a tenth per doubling after {pick} epochs"
             if pick else "still falling by more than a tenth per doubling at "
             f"{errors.loc[(TRANSFORMER_MODEL, distortion)].last_valid_index()}")
          for distortion, pick in picks.items()),
        f"- length for Table 1: {chosen if chosen else 'none yet (a longer run is needed)'}",
    ]  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out.with_suffix(".md"), "\n".join(lines) + "\n")
    write_plot(
        table,
        args.out.with_suffix(".png"),
        f"Validation error against run length, seed {args.seed}, {args.precision}",
    )
    atomic_write_json(
        args.out.with_suffix(".json"),
        {
            "benchmark": "schedule_study",
            "seed": args.seed,
            "precision": args.precision,
            "device": args.device,
            "momentum": MOMENTUM,
            "severity": SEVERITY,
            "fall_per_doubling": FALL_PER_DOUBLING,
            "runs": rows,
            "picks": picks,
            "table1_epochs": chosen,
            "machine": provenance.machine_info(torch.device(args.device)),
        },
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
