"""Pictures of what a trained run's spatial transformers do.

For each transformer: its input with the outline of the region it samples, beside its output,
for clean and for distorted test images (a transformer inside the network is shown on its
feature maps); and a GIF of one fixed image under growing distortion, whose transformed
output should stay almost still. A recurrent transformer takes several glimpses of one
image: each is outlined in a colour of its own on the image, and shown in a row of its own.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image
from torch import nn

from stnbench.datasets import DatasetTensors, load_dataset
from stnbench.distortions import PAPER_FAMILIES, cached_distorted_split, get_distortion
from stnbench.distortions.functional import pad_to_canvas
from stnbench.distortions.sequences import cached_sequence_split, get_task, is_sequence_task
from stnbench.engine.checkpoint import CHECKPOINT_NAME, selected_weights
from stnbench.engine.evolution import EVOLUTION_NAME
from stnbench.engine.record import METRICS_NAME, RunRecord, read_record
from stnbench.errors import StnbenchError
from stnbench.io import atomic_write
from stnbench.models import SpatialTransformer, create_model, spatial_transformers
from stnbench.models.transformations import ALIGN_CORNERS
from stnbench.paths import cache_dir, resolve_data_dir

SAMPLES = 8
MOVING_FRAMES = 16
MOVING_FRAME_MS = 150
MOVING_DRAWS = 16
EVOLUTION_FRAME_MS = 200
# Families with one fixed level and no graded twin: the moving figure rotates instead.
FALLBACK_MOVING_FAMILY = "rotation"
# One outline colour per glimpse of a recurrent transformer, in step order: the first is the
# cyan of a single transformer's outline, the rest matplotlib's tab10 from its second colour.
STEP_COLOURS = ("#00e5ff", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")


@dataclass(frozen=True)
class Trace:
    """One spatial transformer's input, output and sampling grid for a batch."""

    input: torch.Tensor  # [N, C, H, W]
    output: torch.Tensor  # [N * steps, C, H', W'], image-major
    grid: torch.Tensor  # [N * steps, H', W', 2], normalised (x, y) in [-1, 1]

    @property
    def steps(self) -> int:
        """Glimpses per image: 1, or a recurrent transformer's steps."""
        return len(self.output) // len(self.input)


@dataclass(frozen=True)
class LoadedRun:
    model: nn.Module
    data: DatasetTensors
    record: RunRecord
    data_dir: Path
    input_size: int


def trace_transformers(model: nn.Module, images: torch.Tensor) -> list[Trace]:
    """Run ``images`` through ``model`` and record every spatial transformer, in module order."""
    transformers = spatial_transformers(model)
    if not transformers:
        raise StnbenchError("the model has no spatial transformer: nothing to draw")
    records: dict[SpatialTransformer, tuple] = {}

    def record(module, inputs, output):
        records[module] = (inputs[0].detach(), output.detach())

    handles = [st.register_forward_hook(record) for st in transformers]
    try:
        with torch.no_grad():
            model.eval()(images)
    finally:
        for handle in handles:
            handle.remove()
    return [Trace(*records[st], st.last_grid) for st in transformers if st in records]


def sampled_outline(grid: torch.Tensor, height: int, width: int) -> np.ndarray:
    """[N, P, 2] pixel (x, y) of the grid's border, in order around it, closed.

    The points are where the output's border pixels sample the input (``align_corners=False``:
    normalised -1 and 1 are the outer edges of the input's first and last pixels), so any
    transformation (affine, projective, thin-plate spline) gets its true outline.
    """
    top, right = grid[:, 0, :], grid[:, 1:, -1]
    bottom, left = grid[:, -1, :-1].flip(1), grid[:, :-1, 0].flip(1)  # left ends where top starts
    border = torch.cat([top, right, bottom, left], dim=1)
    x = ((border[..., 0] + 1) * width - 1) / 2
    y = ((border[..., 1] + 1) * height - 1) / 2
    return torch.stack([x, y], dim=-1).cpu().numpy()


def _picture(tensor: torch.Tensor) -> tuple[np.ndarray, str | None]:
    """An image [C, H, W] ready for imshow: RGB as is, one channel grey; a feature map (more
    channels) as its mean absolute activation, scaled to [0, 1]."""
    channels = tensor.shape[0]
    if channels == 3:
        return tensor.clamp(0, 1).permute(1, 2, 0).cpu().numpy(), None
    if channels == 1:
        return tensor[0].clamp(0, 1).cpu().numpy(), "gray"
    energy = tensor.abs().mean(0)
    energy = (energy - energy.min()) / (energy.max() - energy.min()).clamp_min(1e-12)
    return energy.cpu().numpy(), "magma"


# Room around every picture for a sampled region that reaches past the image, as a fraction of
# its side; without fixed limits each panel would grow to fit its outline and the pictures of
# one figure (or of one GIF's frames) would be drawn at different scales.
OUTLINE_MARGIN = 0.15


def _draw(ax, tensor: torch.Tensor, outlines: np.ndarray | None = None) -> None:
    """``outlines``: [P, 2] or, one per glimpse in step order, [steps, P, 2]."""
    picture, cmap = _picture(tensor)
    ax.imshow(picture, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    if outlines is not None:
        for step, outline in enumerate(outlines.reshape(-1, *outlines.shape[-2:])):
            ax.plot(outline[:, 0], outline[:, 1], linewidth=1.2,
                    color=STEP_COLOURS[step % len(STEP_COLOURS)])
    height, width = picture.shape[:2]
    margin = OUTLINE_MARGIN * max(height, width)
    ax.set_xlim(-0.5 - margin, width - 0.5 + margin)
    ax.set_ylim(height - 0.5 + margin, -0.5 - margin)
    ax.set_facecolor("#b0b0b0")
    ax.set_xticks([])
    ax.set_yticks([])


def _condition(record: RunRecord) -> str:
    """A distortion and its severity; a sequence task has no severity to name."""
    if is_sequence_task(record.distortion):
        return f"{record.distortion} task"
    return f"{record.distortion} {record.severity:g}"


def load_run(run_dir: Path, data_dir: Path | None = None) -> LoadedRun:
    """The run's model with the weights it was tested with, and its data set."""
    run_dir = Path(run_dir)
    record = read_record(run_dir / METRICS_NAME)
    if record.status != "ok":
        raise StnbenchError(f"{run_dir / METRICS_NAME}: run {record.status}, "
                            "no trained model to draw")
    checkpoint = run_dir / CHECKPOINT_NAME
    if not checkpoint.is_file():
        # Checkpoints are never committed: a clone or a new machine has the run's record only.
        raise StnbenchError(f"{checkpoint}: does not exist; a run's pictures are drawn from its "
                            "checkpoint on the machine that trained it (retrain the run to "
                            "draw them)")
    weights = selected_weights(checkpoint)
    config = record.config
    data_dir = resolve_data_dir(data_dir if data_dir is not None else config["data_dir"])
    data = load_dataset(record.dataset, data_dir, size=config["size"],
                        roi_crop=config["roi_crop"], contrast=config["contrast"],
                        val_fraction=config["val_fraction"])
    if is_sequence_task(record.distortion):
        input_size = get_task(record.distortion).output_size(data.image_size)
    else:
        distortion = get_distortion(record.distortion, record.severity, dataset=record.dataset)
        input_size = distortion.output_size(data.image_size)
    model = create_model(record.model, in_channels=data.channels, input_size=input_size,
                         num_classes=data.num_classes, mean=data.mean, std=data.std)
    model.load_state_dict(weights)
    return LoadedRun(model.eval(), data, record, data_dir, input_size)


def test_batches(run: LoadedRun, samples: int = SAMPLES) -> dict[str, torch.Tensor]:
    """The first test images, clean (centred on the model's canvas) and as the run saw them."""
    record = run.record
    if is_sequence_task(record.distortion):
        task = get_task(record.distortion)
        split = cached_sequence_split(run.data, "test", task, record.config["eval_seed"],
                                      cache_dir(run.data_dir), limit=record.config["limit_eval"])
        return {f"{task.name} test": split.images[:samples].float() / 255}
    clean = run.data.test.images[:samples].float() / 255
    batches = {"clean": pad_to_canvas(clean, run.input_size)}
    if record.distortion != "none":
        distortion = get_distortion(record.distortion, record.severity, dataset=record.dataset)
        split = cached_distorted_split(run.data, "test", distortion, record.config["eval_seed"],
                                       cache_dir(run.data_dir))
        batches[f"{record.distortion} {record.severity:g}"] = (
            split.images[:samples].float() / 255)
    return batches


def transformer_figure(run: LoadedRun, batches: dict[str, torch.Tensor]) -> Figure:
    """Per batch and per transformer, a row of inputs with the sampled region outlined and a
    row of the transformer's outputs."""
    traces = {name: trace_transformers(run.model, images) for name, images in batches.items()}
    steps = [trace.steps for trace in next(iter(traces.values()))]
    samples = len(next(iter(batches.values())))
    rows = len(batches) * sum(1 + count for count in steps)
    figure = Figure(figsize=(1.3 * samples + 1.6, 1.35 * rows + 0.8), layout="constrained")
    axes = figure.subplots(rows, samples, squeeze=False)
    row = 0
    for name, batch_traces in traces.items():
        for index, trace in enumerate(batch_traces):
            where = "input" if index == 0 and trace.input.shape[1] == batches[name].shape[1] \
                else "feature maps"
            outlines = sampled_outline(trace.grid, *trace.input.shape[-2:])
            outlines = outlines.reshape(samples, trace.steps, *outlines.shape[1:])
            for column in range(samples):
                _draw(axes[row, column], trace.input[column], outlines[column])
                for step in range(trace.steps):
                    _draw(axes[row + 1 + step, column],
                          trace.output[column * trace.steps + step])
            axes[row, 0].set_ylabel(f"{name}\nST {index + 1} {where}", fontsize=8)
            for step in range(trace.steps):
                label, colour = f"{name}\nST {index + 1} output", "black"
                if trace.steps > 1:  # the label in its outline's colour
                    label += f" glimpse {step + 1}"
                    colour = STEP_COLOURS[step % len(STEP_COLOURS)]
                axes[row + 1 + step, 0].set_ylabel(label, fontsize=8, color=colour)
            row += 1 + trace.steps
    record = run.record
    figure.suptitle(
        f"{record.model} on {record.dataset} {_condition(record)}, seed {record.seed} "
        f"({record.scale or 'unspecified'} scale): "
        "sampled region outlined on each transformer's input, its output below "
        "(one row and colour per glimpse)",
        fontsize=9,
    )
    return figure


def _strongest_draw(family: str, image: torch.Tensor, dataset: str) -> int:
    """Of the first MOVING_DRAWS generator seeds, the one whose full-severity draw changes
    ``image`` most: a draw near the identity (a rotation of 2 degrees) would leave nothing in
    the moving figure to undo."""
    distortion = get_distortion(family, 1.0, dataset=dataset)
    canvas = distortion.output_size(image.shape[-1])
    clean = pad_to_canvas(image, canvas)
    change = [
        float((distortion(image, torch.Generator().manual_seed(seed)) - clean).abs().sum())
        for seed in range(MOVING_DRAWS)
    ]
    return int(np.argmax(change))


def moving_frames(run: LoadedRun, frames: int = MOVING_FRAMES) -> list[Image.Image]:
    """One fixed test image under the run's distortion family from severity 0 to 1, with the
    same random draw at every level, beside the first transformer's output."""
    record = run.record
    family = PAPER_FAMILIES.get(record.distortion, record.distortion)
    if family in ("none", "cluttered"):
        family = FALLBACK_MOVING_FAMILY
    image = run.data.test.images[:1].float() / 255
    seed = _strongest_draw(family, image, record.dataset)
    pictures = []
    for severity in np.linspace(0.0, 1.0, frames):
        distortion = get_distortion(family, float(severity), dataset=record.dataset)
        distorted = distortion(image, torch.Generator().manual_seed(seed))
        distorted = pad_to_canvas(distorted, run.input_size)
        (trace, *_) = trace_transformers(run.model, distorted)
        figure = Figure(figsize=(4.0, 2.3), dpi=100, layout="constrained")
        left, right = figure.subplots(1, 2)
        _draw(left, trace.input[0], sampled_outline(trace.grid, *trace.input.shape[-2:])[0])
        _draw(right, trace.output[0])
        left.set_title(f"{family} {severity:.2f}", fontsize=9)
        right.set_title("ST output", fontsize=9)
        pictures.append(_figure_image(figure))
    return pictures


def _figure_image(figure: Figure) -> Image.Image:
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return Image.fromarray(np.asarray(canvas.buffer_rgba())).convert("RGB")


def evolution_frames(run_dir: Path, record: RunRecord) -> list[Image.Image]:
    """The fixed validation batch with the first transformer's sampled region outlined, above
    its output, at each snapshot the engine took during training; the run's ``record`` titles
    the frames."""
    path = Path(run_dir) / EVOLUTION_NAME
    if not path.is_file():
        raise StnbenchError(
            f"{path}: does not exist; the engine records it for models whose first spatial "
            "transformer reads the image (retrain the run to get it)"
        )
    with np.load(path) as snapshots:
        images = torch.from_numpy(snapshots["images"]).float() / 255
        grids = torch.from_numpy(snapshots["grids"]).float()
        epochs, steps = snapshots["epochs"], snapshots["steps"]
    height, width = images.shape[-2:]
    samples = len(images)
    pictures = []
    glimpses = grids.shape[1] // samples  # a recurrent transformer's steps per image
    for epoch, step, grid in zip(epochs, steps, grids, strict=True):
        output = F.grid_sample(images.repeat_interleave(glimpses, 0), grid, mode="bilinear",
                               padding_mode="zeros", align_corners=ALIGN_CORNERS)
        outlines = sampled_outline(grid, height, width)
        outlines = outlines.reshape(samples, glimpses, *outlines.shape[1:])
        figure = Figure(figsize=(1.1 * samples, 1.3 * (1 + glimpses)), dpi=100,
                        layout="constrained")
        axes = figure.subplots(1 + glimpses, samples, squeeze=False)
        for column in range(samples):
            _draw(axes[0, column], images[column], outlines[column])
            for glimpse in range(glimpses):
                _draw(axes[1 + glimpse, column], output[column * glimpses + glimpse])
        axes[0, 0].set_ylabel("input", fontsize=8)
        for glimpse in range(glimpses):
            axes[1 + glimpse, 0].set_ylabel(
                "ST output" if glimpses == 1 else f"glimpse {glimpse + 1}", fontsize=8)
        figure.suptitle(
            f"{record.model} on {record.dataset} {_condition(record)}, seed {record.seed}: "
            f"epoch {epoch:.2f} (step {step})",
            fontsize=9,
        )
        pictures.append(_figure_image(figure))
    return pictures


def moving_path(out: Path) -> Path:
    return Path(out).with_name(f"{Path(out).stem}-moving.gif")


def evolution_path(out: Path) -> Path:
    return Path(out).with_name(f"{Path(out).stem}-evolution.gif")


def write_gif(path: Path, frames: list[Image.Image], frame_ms: int) -> None:
    """An animated GIF of ``frames``, ``frame_ms`` each, looping."""
    # One palette for every frame and no dithering: PIL's default, a palette per frame with
    # dithering, changes most pixels of a photo (GTSRB) from one frame to the next, which GIF
    # cannot leave out, and made such GIFs twice as large for no visible difference.
    palette = _shared_palette(frames)
    first, *rest = (frame.quantize(palette=palette, dither=Image.Dither.NONE) for frame in frames)
    atomic_write(path, lambda tmp: first.save(tmp, format="GIF", save_all=True,
                                              append_images=rest, duration=frame_ms, loop=0,
                                              optimize=True))


def _shared_palette(frames: list[Image.Image], samples: int = 4) -> Image.Image:
    """A 256-colour palette drawn from a few frames spread over the animation, stacked."""
    chosen = [frames[round(i)] for i in np.linspace(0, len(frames) - 1, min(samples, len(frames)))]
    width, height = chosen[0].size
    stack = Image.new("RGB", (width, height * len(chosen)))
    for index, frame in enumerate(chosen):
        stack.paste(frame.convert("RGB"), (0, height * index))
    return stack.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)


def write_viz(run_dir: Path, out: Path, data_dir: Path | None = None) -> list[Path]:
    """``out`` (PNG or PDF: the transformers on clean and distorted test images) and, beside it,
    ``<out stem>-moving.gif`` and ``<out stem>-evolution.gif``. A run on a sequence task has
    no moving GIF: its task has no severity to grow."""
    run = load_run(run_dir, data_dir)
    if not spatial_transformers(run.model):
        raise StnbenchError(f"{run_dir}: model {run.record.model!r} has no spatial "
                            "transformer: nothing to draw")
    evolution = evolution_frames(run_dir, run.record)
    figure = transformer_figure(run, test_batches(run))
    out = Path(out)
    atomic_write(out, lambda tmp: figure.savefig(tmp, format=out.suffix[1:] or "png", dpi=150))
    written = [out]
    if not is_sequence_task(run.record.distortion):
        write_gif(moving_path(out), moving_frames(run), MOVING_FRAME_MS)
        written.append(moving_path(out))
    write_gif(evolution_path(out), evolution, EVOLUTION_FRAME_MS)
    return [*written, evolution_path(out)]
