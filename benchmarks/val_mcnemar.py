"""McNemar's test on the validation split between two finished runs, from their checkpoints.

A run's predictions.npz holds its test predictions only; the validation predictions of the
selected epoch are recomputed here from the checkpoint's selected weights (loaded as
`stnbench viz` loads them), which never leave the machine that trained them. Each run's
recomputed validation accuracy is written beside the one in its metrics.json: equal figures
show that the weights are the ones selected.

Usage: .venv/bin/python benchmarks/val_mcnemar.py BASELINE_RUN MODEL_RUN [--threads 2]
    [--out FILE]
Writes results/benchmarks/val_mcnemar.json unless --out says otherwise.
"""

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch

from stnbench import provenance
from stnbench.device import set_threads
from stnbench.engine.evaluate import evaluate
from stnbench.engine.loop import METRICS_NAME, load_eval_split
from stnbench.engine.spec import finished_run, resolve_spec
from stnbench.errors import StnbenchError
from stnbench.io import atomic_write_json
from stnbench.results.stats import mcnemar_exact
from stnbench.results.viz import load_run
from stnbench.transforms import get_distortion


def val_correct(run: Path, threads: int, data_dir: str) -> tuple[np.ndarray, dict]:
    """Per-image correctness of the run's selected weights on its validation split."""
    flags = {"device": "cpu", "threads": threads, "data_dir": data_dir}
    spec = resolve_spec(flags, run / "spec.yaml")
    metrics = finished_run(run / METRICS_NAME, spec.config())
    if metrics is None:
        raise StnbenchError(f"{run}: needs a finished run")
    loaded = load_run(run, Path(data_dir))
    model = loaded.model
    if spec.channels_last:
        model = model.to(memory_format=torch.channels_last)
    distortion = get_distortion(spec.distortion, spec.severity, dataset=spec.dataset)
    val = load_eval_split(loaded.data, "val", distortion, spec)
    result = evaluate(
        model,
        val,
        device=torch.device("cpu"),
        batch_size=spec.eval_batch_size,
        precision=spec.precision,
        channels_last=spec.channels_last,
    )
    correct = (result.predicted == val.labels).numpy()
    summary = {
        "run": str(run),
        "model": spec.model,
        "seed": spec.seed,
        "precision": spec.precision,
        "selected_epoch": metrics["selected_epoch"],
        "val_accuracy_recomputed": result.accuracy,
        "val_accuracy_in_metrics": metrics["val_accuracy"],
        "val_images": len(val.labels),
    }
    return correct, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline", type=Path)
    parser.add_argument("model", type=Path)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks/val_mcnemar.json"))
    args = parser.parse_args()
    set_threads(args.threads)
    baseline_correct, baseline = val_correct(args.baseline, args.threads, args.data_dir)
    model_correct, model = val_correct(args.model, args.threads, args.data_dir)
    test = mcnemar_exact(model_correct, baseline_correct)
    report = {
        "baseline": baseline,
        "model": model,
        "mcnemar": {
            "only_model_right": test.b,
            "only_baseline_right": test.c,
            "pvalue": test.pvalue,
        },
        "machine": provenance.machine_info(),
    }
    atomic_write_json(args.out, report)
    print(json.dumps(report["mcnemar"]))


if __name__ == "__main__":
    main()
