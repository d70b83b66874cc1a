"""The result plots, each written as PNG and PDF.

Figures are built with ``matplotlib.figure.Figure`` rather than pyplot: PNG renders with Agg,
no GUI backend is ever chosen, and no global figure state outlives a call.
"""

import hashlib
import math
from pathlib import Path

import matplotlib
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter, LogLocator, MaxNLocator, NullFormatter
from PIL import Image

from stnbench import dataset_registry
from stnbench.dataset_registry import DATASETS
from stnbench.io import atomic_write
from stnbench.results import published, stats
from stnbench.results.collect import CELL, CONDITION, SWEEP, Results
from stnbench.results.stats import summarize_cells

PANEL_WIDTH, PANEL_HEIGHT = 4.2, 3.2


def _figure(panels: int, columns: int = 3, width: float = PANEL_WIDTH,
            height: float = PANEL_HEIGHT) -> tuple[Figure, list]:
    columns = max(1, min(columns, panels))
    rows = max(1, math.ceil(panels / columns))
    # Wide enough for the two-line title and a legend below even with one panel.
    figure = Figure(figsize=(max(width * columns, 9.0), height * rows + 1.2), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel().tolist()
    for ax in axes[panels:]:
        ax.set_visible(False)
    return figure, axes[:max(panels, 1)]


def _title(figure: Figure, title: str, runs: pd.DataFrame) -> None:
    scales = sorted(set(runs["scale"]))
    figure.suptitle(title + (f"\n{', '.join(scales)} scale" if scales else ""))


def _empty(title: str, message: str) -> Figure:
    figure = Figure(figsize=(8, 2.5))
    figure.suptitle(title)
    figure.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    return figure


# No creation date in the files, so that regenerating a table from the same metrics leaves
# the committed plots byte-identical.
_REPRODUCIBLE_METADATA = {"png": {"Software": None}, "pdf": {"CreationDate": None}}
# The PNG text field that holds the digest of what its plot was drawn from.
INPUTS_KEY = "stnbench-inputs"
FORMATS = ("png", "pdf")


def _save(figure: Figure, out_dir: Path, name: str, inputs: str) -> list[Path]:
    paths = []
    for ext in FORMATS:
        path = Path(out_dir) / f"{name}.{ext}"
        metadata = _REPRODUCIBLE_METADATA[ext] | ({INPUTS_KEY: inputs} if ext == "png" else {})
        atomic_write(path, lambda tmp, ext=ext, metadata=metadata: figure.savefig(
            tmp, format=ext, dpi=150, metadata=metadata))
        paths.append(path)
    return paths


def inputs_digest(results: Results) -> str:
    """sha256 of all a plot is drawn from: the results' frames (whatever collected them), the
    code that draws them and the plotting libraries' versions."""
    digest = hashlib.sha256(str(results.runs_dir).encode())
    for frame in (results.runs, results.history, results.bench):
        digest.update(frame.to_csv().encode())
    for module in (__file__, published.__file__, stats.__file__, dataset_registry.__file__):
        digest.update(Path(module).read_bytes())
    digest.update(f"{matplotlib.__version__} {sns.__version__} {pd.__version__}".encode())
    return digest.hexdigest()


def _drawn_from(png: Path) -> str | None:
    try:
        with Image.open(png) as image:
            return image.text.get(INPUTS_KEY)
    except (OSError, SyntaxError):
        return None


def _palette(models: list[str]) -> dict:
    # tab20's ten dark shades are tab10's, so up to 10 models get tab10; the next 10 get the
    # light twins. husl spaced 13 hues so closely that cnn and st-fcn-tps shared a pink.
    tab20 = sns.color_palette("tab20")
    distinct = tab20[0::2] + tab20[1::2]
    colours = distinct if len(models) <= len(distinct) else sns.color_palette("husl", len(models))
    return dict(zip(models, colours[:len(models)], strict=True))


def panel_title(dataset: str, preparation: str, distortion: str, heading: str) -> str:
    """``gtsrb · none (cpu)``; a preparation other than the data set's own is named too."""
    native = DATASETS[dataset].native().label if dataset in DATASETS else preparation
    shown = f" {preparation}" if preparation and preparation != native else ""
    return f"{dataset}{shown} · {distortion} ({heading})"


def accuracy_vs_severity(results: Results) -> Figure:
    title = "Test accuracy against distortion severity (mean over seeds, band: 95% t-interval)"
    cells = summarize_cells(results.runs, CELL, CONDITION)
    cells = cells[cells["n_ok"] > 0]
    swept = cells.groupby(SWEEP)["severity"].transform("nunique") > 1
    cells = cells[swept]
    if cells.empty:
        return _empty(title, f"No family with runs at two or more severities under "
                              f"{results.runs_dir}.")
    panels = list(cells.groupby(SWEEP, sort=True))
    figure, axes = _figure(len(panels))
    palette = _palette(sorted(set(cells["model"])))
    with_st = dict(zip(results.runs["model"], results.runs["has_st"], strict=True))
    for ax, ((scale, dataset, preparation, distortion), group) in zip(axes, panels, strict=True):
        for model, line in group.sort_values("severity").groupby("model"):
            style = "-" if with_st[model] else "--"
            ax.plot(line["severity"], 100 * line["mean"], style, marker="o",
                    color=palette[model], label=model)
            ax.fill_between(line["severity"], 100 * line["ci_low"], 100 * line["ci_high"],
                            color=palette[model], alpha=0.2, linewidth=0)
        ax.set(title=panel_title(dataset, preparation, distortion, scale), xlabel="severity",
               ylabel="test accuracy %")
    _legend(figure, axes, "model (dashed: no spatial transformer)")
    _title(figure, title, results.runs)
    return figure


def _legend(figure: Figure, axes: list, title: str) -> None:
    handles, labels = {}, []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in handles:
                handles[label] = handle
                labels.append(label)
    if handles:
        figure.legend([handles[label] for label in labels], labels, title=title,
                      loc="outside lower center", ncols=min(len(labels), 3))


def accuracy_vs_params(results: Results) -> Figure:
    title = "Test accuracy against parameters (each family at its highest severity)"
    runs = results.runs
    top = runs.groupby(SWEEP)["severity"].transform("max")
    runs = runs[runs["severity"] == top]
    cells = summarize_cells(runs, CELL, CONDITION)
    params = runs.groupby(CELL)["params"].first().reset_index()
    cells = cells.merge(params, on=CELL)
    cells = cells[(cells["n_ok"] > 0) & cells["params"].notna()]
    panel_keys = sorted({key for key, _ in cells.groupby(SWEEP)})
    if not any(key[1] == "gtsrb" and key[3] == "none" for key in panel_keys):
        # The published GTSRB points are shown even before any GTSRB run exists.
        panel_keys.append(("published", "gtsrb", "", "none"))
    figure, axes = _figure(len(panel_keys))
    palette = _palette(sorted(set(cells["model"])))
    for ax, (scale, dataset, preparation, distortion) in zip(axes, panel_keys, strict=True):
        group = cells[(cells["scale"] == scale) & (cells["dataset"] == dataset)
                      & (cells["preparation"] == preparation)
                      & (cells["distortion"] == distortion)]
        for cell in group.itertuples(index=False):
            low = 100 * (cell.mean - cell.ci_low) if not math.isnan(cell.ci_low) else 0
            ax.errorbar(cell.params, 100 * cell.mean, yerr=[[low], [low]], fmt="o",
                        color=palette[cell.model], capsize=3, label=cell.model)
        if dataset == "gtsrb" and distortion == "none":
            _published_gtsrb_points(ax)
        ax.set_xscale("log")
        # Ticks at 1, 2 and 5 of each decade, so that a panel spanning less than a decade
        # still has labelled ticks, and no crowded labels on the minor ones. Within a factor
        # of 2 that gives at most one tick and matplotlib falls back to labelling every
        # minor one; a few evenly spaced ticks read better there.
        span = ax.dataLim.x1 / ax.dataLim.x0
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4) if span < 2
                                   else LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.margins(x=0.15, y=0.15)
        if ax.get_ylim()[1] > 100:
            ax.set_ylim(top=100.2)  # a t-interval of few seeds can pass 100%
        if dataset == "gtsrb" and distortion == "none":
            low, high = ax.get_ylim()  # room below for the published points' labels
            ax.set_ylim(bottom=low - 0.25 * (high - low))
        heading = "published only" if scale == "published" else f"{scale}"
        ax.set(title=panel_title(dataset, preparation, distortion, heading),
               xlabel="parameters (log scale)", ylabel="test accuracy %")
    if cells.empty:
        axes[0].text(0.5, 0.5, "no runs yet: published points only",
                     transform=axes[0].transAxes, ha="center")
    _legend(figure, axes, "model (bars: 95% t-interval)")
    _title(figure, title, results.runs)
    return figure


def _published_gtsrb_points(ax) -> None:
    for pipeline in published.GTSRB_PIPELINES:
        claimed = float(pipeline.weights_published.strip("~M")) * 1e6
        ax.scatter([claimed], [pipeline.accuracy_pct], marker="X", s=70, color="black",
                   label="published (blog's weight count)")
        ax.scatter([pipeline.weights_counted], [pipeline.accuracy_pct], marker="X", s=70,
                   facecolors="white", edgecolors="black",
                   label="published (recounted weights)")
        ax.plot([pipeline.weights_counted, claimed], [pipeline.accuracy_pct] * 2, ":", color="grey")
        # Below the marker and on two lines: above it, the two labels ran into each other and
        # into the panel's title at accuracies near 100%.
        ax.annotate(f"{pipeline.name}\n(published)", (claimed, pipeline.accuracy_pct), fontsize=7,
                    xytext=(0, -8), textcoords="offset points", ha="center", va="top")


def throughput(results: Results) -> Figure:
    title = "Throughput per model and device (images/s; log scale where a panel spans a decade)"
    training = results.runs.dropna(subset=["train_images_per_s"])
    inference = results.bench[results.bench["phase"] == "inference"].dropna(subset=["images_per_s"])
    # A model trained at several input sizes (GTSRB at 32 and 48 px, MNIST's RTS on its 42 px
    # canvas beside the 28 px families) is a bar per size: averaged together, its RTS runs'
    # speed would read as its 28 px runs'.
    training = training.assign(size=_input_size_labels(training))
    training = training.assign(split=training.groupby("dataset")["size"].transform("nunique") > 1)
    rows = [
        {"model": row.model + (f" ({row.size})" if row.split else ""),
         "bar": row.device, "order": (0, row.dataset, 0),
         "what": f"training ({row.dataset}; mean over runs"
                 + (" of each input size)" if row.split else ")"),
         "images_per_s": row.train_images_per_s}
        for row in training.itertuples(index=False)
    ] + [
        {"model": row.model, "bar": f"{row.device} · batch {row.batch_size}",
         "order": (1, row.dataset, row.input_size),
         "what": f"inference ({row.dataset} {row.input_size} px; benchmark median)",
         "images_per_s": row.images_per_s}
        for row in inference.sort_values(["device", "batch_size"]).itertuples(index=False)
    ]
    frame = pd.DataFrame(rows, columns=["model", "bar", "order", "what", "images_per_s"])
    if frame.empty:
        return _empty(title, f"No runs or benchmarks yet under {results.runs_dir}.")
    panels = sorted(frame.groupby("what"), key=lambda item: item[1]["order"].iloc[0])
    bars = max(group["bar"].nunique() * group["model"].nunique() for _, group in panels)
    figure, axes = _figure(len(panels), columns=2, width=6.0,
                           height=max(PANEL_HEIGHT, 0.18 * bars + 1.5))
    # One colour per device across panels, so that a device reads the same in each legend.
    palette = _palette(sorted(set(frame["bar"])))
    for ax, (what, group) in zip(axes, panels, strict=True):
        sns.barplot(group, x="images_per_s", y="model", hue="bar", ax=ax, errorbar=None,
                    order=sorted(set(group["model"])), hue_order=list(dict.fromkeys(group["bar"])),
                    palette=palette)
        ax.set(title=what, xlabel="images/s", ylabel="")
        rates = group["images_per_s"]
        if rates.max() > 10 * rates.min():
            # Bars start at the axis' left end: a decade boundary below the smallest bar (by
            # at least a factor 2, so that it stays visible) keeps their lengths readable.
            ax.set_xscale("log")
            ax.set_xlim(left=10 ** math.floor(math.log10(rates.min() / 2)))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
        ax.legend(title="device", fontsize=7, title_fontsize=7, loc="upper left",
                  bbox_to_anchor=(1.0, 1.0))
    _title(figure, title, results.runs)
    return figure


def _input_size_labels(runs: pd.DataFrame) -> list[str]:
    """``42 px`` for each run; a run whose input size is unknown (a data set this version does
    not register) is named by its preparation."""
    return [f"{int(size)} px" if pd.notna(size) else preparation
            for size, preparation in zip(runs["input_size"], runs["preparation"], strict=True)]


def training_curves(results: Results) -> Figure:
    title = "Training curves (mean over seeds, band: ± 1 std; each family at its highest severity)"
    history = results.history
    if history.empty:
        return _empty(title, f"No training history yet under {results.runs_dir}.")
    top = history.groupby(SWEEP)["severity"].transform("max")
    history = history[history["severity"] == top]
    panels = list(history.groupby(SWEEP, sort=True))
    models = sorted(set(history["model"]))
    palette = _palette(models)
    metrics = (("train_loss", "training loss"), ("val_accuracy", "validation accuracy %"))
    figure, axes = _figure(2 * len(panels), columns=2 * min(len(panels), 2))
    for index, ((scale, dataset, preparation, distortion), group) in enumerate(panels):
        for offset, (column, label) in enumerate(metrics):
            ax = axes[2 * index + offset]
            values = group.assign(**{column: group[column] * (100 if "accuracy" in column else 1)})
            sns.lineplot(values, x="epoch", y=column, hue="model", errorbar="sd", ax=ax, marker="o",
                         hue_order=models, palette=palette, legend=index == 0 and offset == 0)
            ax.set(title=panel_title(dataset, preparation, distortion, scale), ylabel=label)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            losses = values[column]
            if column == "train_loss" and (losses > 0).all() and losses.max() > 10 * losses.min():
                ax.set_yscale("log")
    if axes[0].get_legend() is not None:
        axes[0].get_legend().remove()
    _legend(figure, axes[:1], "model")
    _title(figure, title, history)
    return figure


PLOTS = {
    "accuracy_vs_severity": accuracy_vs_severity,
    "accuracy_vs_params": accuracy_vs_params,
    "throughput": throughput,
    "training_curves": training_curves,
}


def write_plots(results: Results, out_dir: Path) -> list[Path]:
    """Every plot as PNG and PDF. Drawing and saving them is most of `stnbench results tables`'s
    time, so a plot whose PNG records the same inputs digest, beside its PDF, is kept as it is."""
    inputs = inputs_digest(results)
    written = []
    for name, draw in PLOTS.items():
        paths = [Path(out_dir) / f"{name}.{ext}" for ext in FORMATS]
        if _drawn_from(paths[0]) == inputs and paths[1].is_file():
            written += paths
        else:
            written += _save(draw(results), out_dir, name, inputs)
    return written

