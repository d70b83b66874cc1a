"""Add the selected epoch's validation predictions to finished runs that predate them.

Runs trained before predictions.npz kept validation predictions hold test predictions only.
This recomputes the validation predictions on the CPU from the run's local checkpoint (its
selected weights, loaded as `stnbench viz` loads them) and writes them beside the test arrays,
which are kept as they are: the test set is not evaluated again. A run whose recomputed validation
accuracy differs from the one in its metrics.json is refused, since then the weights are not
the ones that were selected. Afterwards the significance table has validation rows for it.

Usage: .venv/bin/python benchmarks/backfill_val_predictions.py RUN_DIR... [--threads 2]
"""

import argparse
import os
from pathlib import Path

import torch

from stnbench.device import set_threads
from stnbench.engine.evaluate import evaluate
from stnbench.engine.loop import load_eval_split
from stnbench.engine.predictions import PREDICTIONS_NAME, read_predictions, write_predictions
from stnbench.engine.spec import FIELDS, resolve_spec
from stnbench.errors import StnbenchError
from stnbench.results.viz import load_run
from stnbench.transforms import get_distortion


def backfill(run: Path, threads: int, data_dir: str | None) -> str:
    predictions_path = run / PREDICTIONS_NAME
    splits = read_predictions(predictions_path)
    if "val" in splits:
        return f"{run}: has validation predictions already"
    loaded = load_run(run, Path(data_dir) if data_dir else None)
    metrics = loaded.metrics
    # The run as it was trained, evaluated here on the CPU.
    spec = resolve_spec({**{name: metrics["config"].get(name) for name in FIELDS},
                         "device": "cpu", "threads": threads})
    model = loaded.model
    if spec.channels_last:
        model = model.to(memory_format=torch.channels_last)
    distortion = get_distortion(spec.distortion, spec.severity, dataset=spec.dataset)
    val = load_eval_split(loaded.data, "val", distortion, spec)
    result = evaluate(model, val, device=torch.device("cpu"), batch_size=spec.eval_batch_size,
                      precision=spec.precision, channels_last=spec.channels_last)
    if result.accuracy != metrics["val_accuracy"]:
        raise StnbenchError(
            f"{run}: recomputed validation accuracy {result.accuracy:.6f} is not the selected "
            f"epoch's {metrics['val_accuracy']:.6f}; predictions left as they were")
    write_predictions(predictions_path,
                      {**splits, "val": (result.predicted.numpy(), val.labels.numpy())})
    return (f"{run}: validation predictions of epoch {metrics['selected_epoch']} added "
            f"({len(val.labels)} images, accuracy {result.accuracy:.4%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--data-dir", help="prepared data folder (default: the run's own)")
    args = parser.parse_args()
    set_threads(args.threads)
    for run in args.runs:
        try:
            print(backfill(run, args.threads, args.data_dir))
        except StnbenchError as error:
            raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    main()
