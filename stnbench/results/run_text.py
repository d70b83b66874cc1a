"""What a model's runs say in one cell of a table: their preprocessing, jitter, ensemble,
description, measured throughput and hours per run."""

import pandas as pd

from stnbench.preparation import ORIGINAL_CONTRAST


def contrast_text(model_runs: pd.DataFrame) -> str:
    """A column's own preprocessing, where it is one of IDSIA's contrasts (the committee table
    combines the columns of several)."""
    if model_runs.empty:
        return "—"
    contrasts = sorted(set(model_runs["contrast"]) - {ORIGINAL_CONTRAST})
    return f"one preprocessing ({', '.join(contrasts)})" if contrasts else "no"


def jitter_text(model_runs: pd.DataFrame) -> str:
    """Whether the runs trained with a per-batch augmentation (IDSIA's jitter), and which."""
    if model_runs.empty:
        return "—"
    names = sorted({name for name in model_runs["augmentation"] if isinstance(name, str)})
    return f"yes ({', '.join(names)})" if names else "no"


def first_text(values: pd.Series) -> str:
    values = values.dropna()
    return str(values.iloc[0]) if not values.empty else "—"


def ensemble_text(model_runs: pd.DataFrame) -> str:
    if model_runs.empty:
        return "—"
    columns = int(model_runs["ensemble"].max())
    return "1 network" if columns == 1 else f"{columns} networks"


def throughput_text(model_runs: pd.DataFrame) -> str:
    ok = model_runs[model_runs["train_images_per_s"].notna()]
    if ok.empty:
        return "—"
    by_device = ok.groupby("device")["train_images_per_s"].mean()
    return "; ".join(f"{rate:,.0f} ({device})" for device, rate in by_device.items())


def hours_text(model_runs: pd.DataFrame) -> str:
    """Mean hours a finished run took (its epochs and its test), by device."""
    ok = model_runs[model_runs["status"] == "ok"]
    if ok.empty:
        return "—"
    by_device = ok.groupby("device")["wall_s"].mean() / 3600
    return "; ".join(f"{hours:,.2f} ({device})" for device, hours in by_device.items())


def inference_text(bench: pd.DataFrame, model_runs: pd.DataFrame) -> str:
    """Benchmarked inference throughput of the runs' model on the runs' input geometry."""
    if model_runs.empty:
        return "—"
    run = model_runs.iloc[0]
    rows = bench[(bench["phase"] == "inference") & (bench["model"] == run["model"])
                 & (bench["dataset"] == run["dataset"])
                 & (bench["input_size"] == run["input_size"])]
    if rows.empty:
        return "—"
    return "; ".join(
        f"{device}: " + ", ".join(f"{row.images_per_s:,.0f} @{row.batch_size}"
                                  for row in group.sort_values("batch_size").itertuples())
        for device, group in rows.groupby("device")
    )
