"""A bench result on disk: its one file name, its schema, and a short summary of it.

Kept free of torch, so that the workflow and the bench scripts name the files alike without
loading it.
"""

from typing import Any

from stnbench.schemas import load_schema, validate

SCHEMA_VERSION = 1


def bench_file_name(model: str, dataset: str, size: int, precision: str = "fp32") -> str:
    """e.g. ``cnn-mnist-28.json``, ``idsia-gtsrb-48-bf16.json``: what ``stnbench bench`` writes
    for one model, data set, image side and precision, wherever it is run from."""
    suffix = "" if precision == "fp32" else f"-{precision}"
    return f"{model}-{dataset}-{size}{suffix}.json"


def bench_schema() -> dict[str, Any]:
    return load_schema("stnbench", "bench_schema.json")


def validate_bench(report: dict[str, Any]) -> None:
    """Raise StnbenchError naming the first field that does not follow the bench schema."""
    validate(report, bench_schema(), "bench JSON")


def describe(report: dict[str, Any]) -> str:
    """A short human-readable table of a report (the JSON holds everything)."""
    from tabulate import tabulate

    rows = [
        [
            row["batch_size"],
            f"{row['inference']['images_per_s']['median']:.1f}",
            _median_iqr_ms(row["inference"]["latency_s"]),
            f"{row['train_step']['images_per_s']['median']:.1f}",
            _median_iqr_ms(row["train_step"]["latency_s"]),
            f"{row['train_step']['peak_memory_bytes'] / 2**20:.0f}",
        ]
        for row in report["results"]
    ]
    headers = [
        "batch", "infer img/s", "infer ms (IQR)", "train img/s", "train ms (IQR)",
        "train peak MiB",
    ]
    title = (
        f"{report['model']} on {report['dataset']} {report['input_shape']}: "
        f"{report['params']:,} params, {report['flops_per_image'] / 1e6:.1f} MFLOPs/image, "
        f"{report['device']} ({report['precision']}, {report['threads']} threads)"
    )
    return title + "\n" + tabulate(rows, headers=headers)



def _median_iqr_ms(latency: dict[str, Any]) -> str:
    return f"{latency['median'] * 1e3:.2f} ({latency['iqr'] * 1e3:.2f})"
