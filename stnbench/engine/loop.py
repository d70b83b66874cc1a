"""One cell of the grid: train on distorted data held on the device, select the epoch on the
validation split, then evaluate the selected weights on the test split once."""

import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from stnbench import provenance
from stnbench.datasets import Split
from stnbench.device import set_determinism, set_threads
from stnbench.distortions import Distortion
from stnbench.distortions.augmentation import Jitter, get_augmentation
from stnbench.engine import targets
from stnbench.engine.checkpoint import CHECKPOINT_NAME, TrainingState
from stnbench.engine.divergence import CollapseCheck, Diverged, check_loss
from stnbench.engine.evaluate import Evaluation, autocast, evaluate
from stnbench.engine.evolution import EVOLUTION_NAME, EvolutionRecorder, fixed_batch
from stnbench.engine.metrics import confusion_matrix, per_class_accuracy
from stnbench.engine.optimizers import build_optimizer
from stnbench.engine.predictions import PREDICTIONS_NAME, SplitPredictions, write_predictions
from stnbench.engine.recipes import ScheduleFactor
from stnbench.engine.record import (
    METRICS_NAME,
    EpochRecord,
    Machine,
    RunRecord,
    write_record,
)
from stnbench.engine.run_data import RunData, load_eval_split, load_run_data, test_set
from stnbench.engine.spec import RunSpec, finished_run
from stnbench.models import count_flops, count_parameters, create_model

# The record's fields that repeat the run spec's, so that its readers need not look into `config`.
SPEC_FIELDS = ("dataset", "distortion", "severity", "model", "seed", "scale", "epochs", "precision")
# Steps between loss checks (on CUDA a check syncs the device), and grid checks: a grid's
# statistics cost a fast model a tenth of its CPU step, and a collapse takes many steps.
CHECK_EVERY, COLLAPSE_CHECK_EVERY = {"cpu": 1, "cuda": 25}, 10


def log(message: str) -> None:
    tqdm.write(message, file=sys.stderr)


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """Independent seeds for each (run seed, epoch, random stream), so that an epoch's batches
    and distortions are the same whether the run was resumed before it or not."""
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0])


def train_epoch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    train: Split,
    *,
    distortion: Distortion | None,
    augmentation: Jitter | None = None,
    seed: int,
    epoch: int,
    batch_size: int,
    precision: str,
    channels_last: bool,
    collapse_check: CollapseCheck | None = None,
    evolution: EvolutionRecorder | None = None,
    description: str = "",
    max_grad_value: float | None = None,
    max_grad_norm: float | None = None,
) -> dict:
    """One pass over ``train`` (uint8 images and labels already on the device) in an order
    drawn from (seed, epoch); ``distortion``, then ``augmentation``, when given, are applied
    afresh to every batch, each from its own stream of (seed, epoch)."""
    device = train.images.device
    count = len(train.labels)
    order = torch.randperm(
        count, generator=torch.Generator().manual_seed(epoch_seed(seed, epoch, 0))
    )
    order = order.to(device)
    distortion_generator = torch.Generator().manual_seed(epoch_seed(seed, epoch, 1))
    augmentation_generator = torch.Generator().manual_seed(epoch_seed(seed, epoch, 2))
    check_every = CHECK_EVERY[device.type]
    collapse_every = max(check_every, COLLAPSE_CHECK_EVERY)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    steps = math.ceil(count / batch_size)
    # A terminal gets a live bar; a log file (Snakemake) a line at each quarter of the epoch.
    progress_every = 20 if sys.stderr.isatty() else max(1, steps // 4)
    model.train()
    started = time.perf_counter()
    with tqdm(
        total=steps,
        desc=description,
        unit="batch",
        leave=False,
        disable=not sys.stderr.isatty(),
        file=sys.stderr,
    ) as bar:
        for step in range(steps):
            index = order[step * batch_size : (step + 1) * batch_size]
            images = train.images[index].float().div_(255)
            if distortion is not None:
                images = distortion(images, distortion_generator)
            if augmentation is not None:
                images = augmentation(images, augmentation_generator)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            labels = train.labels[index]
            with autocast(device, precision):
                logits = model(images)
            loss = targets.loss(logits.float(), labels)
            if step % check_every == 0:
                check_loss(loss, epoch, step)
            if collapse_check is not None and step % collapse_every == 0:
                collapse_check(epoch, step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if max_grad_value is not None:
                torch.nn.utils.clip_grad_value_(model.parameters(), max_grad_value)
            if max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            optimizer.step()
            scheduler.step()
            loss_sum += loss.detach() * len(labels)
            correct += targets.all_right(targets.predict(logits.detach()), labels).sum()
            if evolution is not None:
                evolution.after_step((epoch - 1) * steps + step + 1)
            bar.update()
            if (step + 1) % progress_every == 0 and step + 1 < steps:
                seen = (step + 1) * batch_size
                progress = {
                    "loss": f"{float(loss_sum) / seen:.4f}",
                    "acc": f"{int(correct) / seen:.4f}",
                    "images/s": f"{seen / (time.perf_counter() - started):.0f}",
                }
                if bar.disable:
                    fields = "  ".join(f"{key} {value}" for key, value in progress.items())
                    log(f"{description} {100 * (step + 1) // steps}%  {fields}")
                else:
                    bar.set_postfix(progress)
    check_loss(loss_sum, epoch, steps)
    seconds = time.perf_counter() - started
    return {
        "train_loss": float(loss_sum) / count,
        "train_accuracy": int(correct) / count,
        "images_per_s": count / seconds,
        "train_s": seconds,
    }


def run(spec: RunSpec, out: Path) -> RunRecord:
    """Train, select and test one run into ``out``; returns the record written there.

    A finished run is returned as it is; an interrupted one resumes from its last epoch.
    """
    out = Path(out)
    config = spec.config()
    metrics_path = out / METRICS_NAME
    finished = finished_run(metrics_path, config)
    if finished is not None:
        log(f"{metrics_path}: finished run ({finished.status}), not retrained")
        return finished
    started = time.perf_counter()
    # Resolved (and cached) now: the commit of the code this process loaded, not whatever the
    # checkout holds when a long run ends.
    provenance.git_commit()
    set_threads(spec.threads)
    device = torch.device(spec.device)
    bit_reproducible = set_determinism(device)
    inputs = load_run_data(spec, device)
    log(_start_line(spec, inputs, device))
    state, collapse_check = _build_training(spec, config, inputs, device)
    if state.restore(out / CHECKPOINT_NAME):
        log(f"{out / CHECKPOINT_NAME}: resuming after epoch {len(state.history)}")
    reason = _train_epochs(spec, inputs, state, collapse_check, out / CHECKPOINT_NAME)
    # Diverged runs too: the snapshots show how the transformer collapsed.
    state.evolution.save(out / EVOLUTION_NAME, _steps_per_epoch(spec, inputs))
    record = _test_and_record(spec, inputs, state, reason, bit_reproducible, out)
    write_record(metrics_path, record)
    log(
        f"{metrics_path}: {record.status}"
        + (f", test accuracy {record.test_accuracy:.4f}" if reason is None else f" ({reason})")
        + f", {time.perf_counter() - started:.1f} s in this process"
    )
    return record


def _start_line(spec: RunSpec, inputs: RunData, device: torch.device) -> str:
    return (
        f"{spec.model} on {spec.dataset} {spec.distortion} {spec.severity:g}, seed {spec.seed}: "
        f"{len(inputs.train.labels)} training / {len(inputs.val.labels)} validation images of "
        f"{inputs.input_size} px, {spec.epochs} epochs of batch {spec.batch_size}, "
        f"{device.type} {spec.precision}, {torch.get_num_threads()} threads"
    )


def _steps_per_epoch(spec: RunSpec, inputs: RunData) -> int:
    return math.ceil(len(inputs.train.labels) / spec.batch_size)


def _build_training(
    spec: RunSpec, config: dict, inputs: RunData, device: torch.device
) -> tuple[TrainingState, CollapseCheck]:
    """The untrained model, its optimizer and schedule, from the run's seed."""
    data = inputs.data
    torch.manual_seed(spec.seed)
    model = create_model(
        spec.model,
        in_channels=data.channels,
        input_size=inputs.input_size,
        num_classes=data.num_classes,
        mean=data.mean,
        std=data.std,
    ).to(device)
    if spec.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(spec, model)
    steps_per_epoch = _steps_per_epoch(spec, inputs)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, ScheduleFactor(spec.schedule, steps_per_epoch, spec.epochs)
    )
    collapse_check = CollapseCheck(model, **spec.divergence)
    evolution = EvolutionRecorder(model, fixed_batch(inputs.val), steps_per_epoch * spec.epochs)
    return TrainingState(config, model, optimizer, scheduler, evolution), collapse_check


def _train_epochs(
    spec: RunSpec,
    inputs: RunData,
    state: TrainingState,
    collapse_check: CollapseCheck,
    checkpoint_path: Path,
) -> str | None:
    """The epochs still to train, each followed by validation and a checkpoint; returns why
    training diverged, or None."""
    device = inputs.train.images.device
    state.evolution.after_step(0)
    for epoch in range(len(state.history) + 1, spec.epochs + 1):
        epoch_started = time.perf_counter()
        lr = state.optimizer.param_groups[0]["lr"]
        try:
            stats = train_epoch(
                state.model,
                state.optimizer,
                state.scheduler,
                inputs.train,
                distortion=inputs.batch_distortion,
                augmentation=get_augmentation(spec.augmentation),
                seed=spec.seed,
                epoch=epoch,
                batch_size=spec.batch_size,
                precision=spec.precision,
                channels_last=spec.channels_last,
                collapse_check=collapse_check,
                evolution=state.evolution,
                description=f"epoch {epoch}/{spec.epochs}",
                max_grad_value=spec.max_grad_value,
                max_grad_norm=spec.max_grad_norm,
            )
            val_eval = _evaluate(state.model, inputs.val, spec, device)
            if not math.isfinite(val_eval.loss):
                raise Diverged(f"non-finite validation loss after epoch {epoch}")
        except Diverged as error:
            log(f"diverged: {error}")
            return str(error)
        entry = EpochRecord(epoch=epoch, **stats, val_loss=val_eval.loss,
                            val_accuracy=val_eval.accuracy, lr=lr,
                            wall_s=time.perf_counter() - epoch_started)
        state.add_epoch(entry)
        state.save(checkpoint_path)
        log(_epoch_line(entry, spec.epochs))
    return None


def _epoch_line(entry: EpochRecord, epochs: int) -> str:
    return (
        f"epoch {entry.epoch}/{epochs}  train loss {entry.train_loss:.4f} "
        f"acc {entry.train_accuracy:.4f}  val loss {entry.val_loss:.4f} "
        f"acc {entry.val_accuracy:.4f}  lr {entry.lr:.3g}  {entry.images_per_s:.0f} images/s  "
        f"{entry.wall_s:.1f} s"
    )


def _test_and_record(
    spec: RunSpec,
    inputs: RunData,
    state: TrainingState,
    reason: str | None,
    bit_reproducible: bool,
    out: Path,
) -> RunRecord:
    """Test the selected weights (unless the run diverged) and assemble the run's record."""
    device = inputs.train.images.device
    data, history, best = inputs.data, state.history, state.best
    params = count_parameters(state.model)
    flops = count_flops(state.model, (data.channels, inputs.input_size, inputs.input_size))
    test_started = time.perf_counter()
    tested = _test_selected(spec, inputs, state, out) if reason is None else _UNTESTED
    train_seconds = sum(entry.train_s for entry in history)
    return RunRecord(
        status="ok" if reason is None else "diverged",
        reason=reason,
        **{name: getattr(spec, name) for name in SPEC_FIELDS},
        epochs_completed=len(history),
        selected_epoch=best.epoch if best else None,
        val_accuracy=best.val_accuracy if best else None,
        **tested,
        test_set=test_set(inputs, spec),
        history=tuple(history),
        params=params,
        flops=flops,
        train_images_per_s=(
            len(history) * len(inputs.train.labels) / train_seconds if train_seconds else None
        ),
        wall_s=sum(entry.wall_s for entry in history) + time.perf_counter() - test_started,
        **_provenance(device, bit_reproducible),
        config=state.config,
    )


_UNTESTED = dict.fromkeys(
    ("test_accuracy", "test_error", "test_loss", "per_class_accuracy", "confusion_matrix",
     "test_position_error", "test_element_error")
)


def _test_selected(spec: RunSpec, inputs: RunData, state: TrainingState, out: Path) -> dict:
    """The selected weights on the test split, read here for the first and only time; their
    predictions on it and on the validation split go to predictions.npz."""
    device = inputs.train.images.device
    state.model.load_state_dict(state.best.model)
    test = load_eval_split(inputs.data, "test", inputs.distortion, spec)
    test_eval = _evaluate(state.model, test, spec, device)
    # The selected weights' validation predictions are computed again rather than kept
    # from training, so that a run resumed from any checkpoint writes them the same way.
    val_eval = _evaluate(state.model, inputs.val, spec, device)
    write_predictions(
        out / PREDICTIONS_NAME,
        {"test": _split_predictions(test_eval, test),
         "val": _split_predictions(val_eval, inputs.val)},
    )
    labels = test.labels.cpu()
    # A sequence's digits each count once in the confusion matrix.
    confusion = confusion_matrix(
        test_eval.predicted.flatten(), labels.flatten(), inputs.data.num_classes
    )
    sequence = labels.ndim == 2
    return {
        "test_accuracy": test_eval.accuracy,
        "test_error": 1.0 - test_eval.accuracy,
        "test_loss": test_eval.loss,
        "per_class_accuracy": tuple(per_class_accuracy(confusion)),
        "confusion_matrix": tuple(map(tuple, confusion.tolist())),
        "test_position_error": (
            tuple(targets.position_errors(test_eval.predicted, labels)) if sequence else None
        ),
        "test_element_error": (
            targets.element_error(test_eval.predicted, labels) if sequence else None
        ),
    }


def _split_predictions(evaluation: Evaluation, split: Split) -> SplitPredictions:
    return SplitPredictions(
        evaluation.predicted.numpy(), split.labels.cpu().numpy(), evaluation.probabilities.numpy()
    )


def _evaluate(
    model: torch.nn.Module, split: Split, spec: RunSpec, device: torch.device
) -> Evaluation:
    return evaluate(
        model,
        split,
        device=device,
        batch_size=spec.eval_batch_size,
        precision=spec.precision,
        channels_last=spec.channels_last,
    )


def _provenance(device: torch.device, bit_reproducible: bool) -> dict:
    return {
        "device": provenance.device_name(device),
        "device_type": device.type,
        "bit_reproducible": bit_reproducible,
        "torch": torch.__version__,
        "git_commit": provenance.git_commit(),
        "machine": Machine(**provenance.machine_info(device)),
    }
