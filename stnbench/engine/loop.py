"""One cell of the grid: train on distorted data held on the device, select the epoch on the
validation split, then evaluate the selected weights on the test split once."""

import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from stnbench import provenance
from stnbench.datasets import DatasetTensors, Split, load_dataset, prepare_dataset
from stnbench.device import set_threads
from stnbench.engine.checkpoint import (
    CHECKPOINT_NAME,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from stnbench.engine.divergence import CollapseCheck, Diverged, check_loss
from stnbench.engine.evaluate import Evaluation, autocast, evaluate
from stnbench.engine.evolution import EVOLUTION_NAME, EvolutionRecorder, fixed_batch
from stnbench.engine.metrics import confusion_matrix, per_class_accuracy
from stnbench.engine.predictions import PREDICTIONS_NAME, write_predictions
from stnbench.engine.recipes import ScheduleFactor
from stnbench.engine.spec import RunSpec, finished_run, identity
from stnbench.errors import StnbenchError
from stnbench.io import atomic_write_json
from stnbench.models import count_flops, count_parameters, create_model, parameter_groups
from stnbench.paths import cache_dir, resolve_archives, resolve_data_dir
from stnbench.transforms import Distortion, cached_distorted_split, distort_split, get_distortion
from stnbench.transforms.augmentation import Jitter, get_augmentation

METRICS_NAME = "metrics.json"
# On CUDA a per-step check would synchronise the device every step.
CHECK_EVERY = {"cpu": 1, "cuda": 25}


def log(message: str) -> None:
    tqdm.write(message, file=sys.stderr)


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """Independent seeds for each (run seed, epoch, random stream), so that an epoch's batches
    and distortions are the same whether the run was resumed before it or not."""
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0])


def set_determinism(device: torch.device) -> bool:
    """Deterministic kernels; returns whether the run is bit-reproducible on this device.

    CUDA has no deterministic backward for ``grid_sample``: there the run goes on with
    warnings and is recorded as not bit-reproducible.
    """
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
    return device.type == "cpu"


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
            loss = F.cross_entropy(logits.float(), labels)
            if step % check_every == 0:
                check_loss(loss, epoch, step)
                if collapse_check is not None:
                    collapse_check(epoch, step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += loss.detach() * len(labels)
            correct += (logits.detach().argmax(dim=1) == labels).sum()
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


def _limit(split: Split, limit: int | None) -> Split:
    """A random subset of ``limit`` images (the same for every run), kept in split order:
    the first images would do for MNIST but not for GTSRB, whose splits are sorted by class."""
    if limit is None or limit >= len(split.labels):
        return split
    generator = torch.Generator().manual_seed(0)
    index = torch.randperm(len(split.labels), generator=generator)[:limit].sort().values
    return Split(images=split.images[index], labels=split.labels[index])


def _to_device(split: Split, device: torch.device) -> Split:
    return Split(images=split.images.to(device), labels=split.labels.to(device))


def _load_data(spec: RunSpec) -> DatasetTensors:
    """The prepared data set, preparing it first (from --archives for GTSRB) if needed."""
    data_dir = resolve_data_dir(spec.data_dir)
    options = {"size": spec.size, "roi_crop": spec.roi_crop, "contrast": spec.contrast}
    try:
        return load_dataset(spec.dataset, data_dir, val_fraction=spec.val_fraction, **options)
    except StnbenchError:
        prepare_dataset(spec.dataset, data_dir, archives=resolve_archives(spec.archives), **options)
        return load_dataset(spec.dataset, data_dir, val_fraction=spec.val_fraction, **options)


def load_eval_split(
    data: DatasetTensors, name: str, distortion: Distortion, spec: RunSpec
) -> Split:
    """The distorted validation or test split, identical for every model and seed."""
    cache = cache_dir(resolve_data_dir(spec.data_dir))
    split = cached_distorted_split(data, name, distortion, spec.eval_seed, cache)
    return _limit(split, spec.limit_eval)


def run(spec: RunSpec, out: Path) -> dict:
    """Train, select and test one run into ``out``; returns the metrics written there.

    A finished run is returned as it is; an interrupted one resumes from its last epoch.
    """
    out = Path(out)
    config = spec.config()
    metrics_path = out / METRICS_NAME
    finished = finished_run(metrics_path, config)
    if finished is not None:
        log(f"{metrics_path}: finished run ({finished['status']}), not retrained")
        return finished
    started = time.perf_counter()
    # Resolved (and cached) now: the commit of the code this process loaded, not whatever the
    # checkout holds when a long run ends.
    provenance.git_commit()
    set_threads(spec.threads)
    device = torch.device(spec.device)
    bit_reproducible = set_determinism(device)

    data = _load_data(spec)
    distortion = get_distortion(spec.distortion, spec.severity, dataset=spec.dataset)
    input_size = distortion.output_size(data.image_size)
    train = _to_device(_limit(data.train, spec.limit_train), device)
    identity_distortion = distortion.is_identity(data.image_size)
    if spec.train_distortion == "fixed" and not identity_distortion:
        train = distort_split(train, distortion, spec.seed, device=device)
    fresh = spec.train_distortion == "fresh" and not identity_distortion
    batch_distortion = distortion if fresh else None
    val = _to_device(load_eval_split(data, "val", distortion, spec), device)
    log(
        f"{spec.model} on {spec.dataset} {spec.distortion} {spec.severity:g}, seed {spec.seed}: "
        f"{len(train.labels)} training / {len(val.labels)} validation images of "
        f"{input_size} px, {spec.epochs} epochs of batch {spec.batch_size}, {device.type} "
        f"{spec.precision}, {torch.get_num_threads()} threads"
    )

    torch.manual_seed(spec.seed)
    model = create_model(
        spec.model,
        in_channels=data.channels,
        input_size=input_size,
        num_classes=data.num_classes,
        mean=data.mean,
        std=data.std,
    ).to(device)
    if spec.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(
        parameter_groups(model, spec.lr, spec.localization_lr_multiplier),
        lr=spec.lr,
        momentum=spec.momentum,
        weight_decay=spec.weight_decay,
    )
    steps_per_epoch = math.ceil(len(train.labels) / spec.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, ScheduleFactor(spec.schedule, steps_per_epoch, spec.epochs)
    )
    collapse_check = CollapseCheck(model, **spec.divergence)
    evolution = EvolutionRecorder(model, fixed_batch(val), steps_per_epoch * spec.epochs)

    checkpoint_path = out / CHECKPOINT_NAME
    history: list[dict] = []
    best: dict | None = None
    state = load_checkpoint(checkpoint_path)
    if state is not None:
        if identity(state["config"]) != identity(config):
            raise StnbenchError(
                f"{checkpoint_path}: belongs to a different run; remove it or choose another --out"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        history, best = state["history"], state["best"]
        evolution.load_state(state.get("evolution"))
        log(f"{checkpoint_path}: resuming after epoch {len(history)}")

    reason = None
    evolution.after_step(0)
    for epoch in range(len(history) + 1, spec.epochs + 1):
        epoch_started = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        try:
            stats = train_epoch(
                model,
                optimizer,
                scheduler,
                train,
                distortion=batch_distortion,
                augmentation=get_augmentation(spec.augmentation),
                seed=spec.seed,
                epoch=epoch,
                batch_size=spec.batch_size,
                precision=spec.precision,
                channels_last=spec.channels_last,
                collapse_check=collapse_check,
                evolution=evolution,
                description=f"epoch {epoch}/{spec.epochs}",
            )
            val_eval = _evaluate(model, val, spec, device)
            if not math.isfinite(val_eval.loss):
                raise Diverged(f"non-finite validation loss after epoch {epoch}")
        except Diverged as error:
            reason = str(error)
            log(f"diverged: {reason}")
            break
        history.append(
            {
                "epoch": epoch,
                "train_loss": stats["train_loss"],
                "train_accuracy": stats["train_accuracy"],
                "val_loss": val_eval.loss,
                "val_accuracy": val_eval.accuracy,
                "lr": lr,
                "images_per_s": stats["images_per_s"],
                "train_s": stats["train_s"],
                "wall_s": time.perf_counter() - epoch_started,
            }
        )
        if best is None or val_eval.accuracy > best["val_accuracy"]:
            best = {
                "epoch": epoch,
                "val_accuracy": val_eval.accuracy,
                "val_loss": val_eval.loss,
                "model": {
                    key: value.detach().cpu().clone() for key, value in model.state_dict().items()
                },
            }
        save_checkpoint(
            checkpoint_path,
            {
                "config": config,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": rng_state(),
                "history": history,
                "best": best,
                "evolution": evolution.state(),
            },
        )
        log(
            f"epoch {epoch}/{spec.epochs}  train loss {stats['train_loss']:.4f} "
            f"acc {stats['train_accuracy']:.4f}  val loss {val_eval.loss:.4f} "
            f"acc {val_eval.accuracy:.4f}  lr {lr:.3g}  {stats['images_per_s']:.0f} images/s  "
            f"{history[-1]['wall_s']:.1f} s"
        )

    # Diverged runs too: the snapshots show how the transformer collapsed.
    evolution.save(out / EVOLUTION_NAME, steps_per_epoch)
    metrics = _metrics_header(
        spec, config, data, device, bit_reproducible, history, len(train.labels)
    )
    metrics["params"] = count_parameters(model)
    metrics["flops"] = count_flops(model, (data.channels, input_size, input_size))
    test_started = time.perf_counter()
    if reason is None:
        model.load_state_dict(best["model"])
        test = load_eval_split(data, "test", distortion, spec)
        test_eval = _evaluate(model, test, spec, device)
        metrics.update(_test_fields(test_eval, test, data.num_classes))
        # The selected weights' validation predictions are computed again rather than kept
        # from training, so that a run resumed from any checkpoint writes them the same way.
        selected_val_eval = _evaluate(model, val, spec, device)
        write_predictions(
            out / PREDICTIONS_NAME,
            {
                "test": (test_eval.predicted.numpy(), test.labels.cpu().numpy()),
                "val": (selected_val_eval.predicted.numpy(), val.labels.cpu().numpy()),
            },
        )
    metrics.update(
        {
            "status": "ok" if reason is None else "diverged",
            "reason": reason,
            "selected_epoch": best["epoch"] if best else None,
            "val_accuracy": best["val_accuracy"] if best else None,
            "test_set": _test_set_info(data, spec),
            "wall_s": sum(entry["wall_s"] for entry in history)
            + time.perf_counter()
            - test_started,
        }
    )
    atomic_write_json(metrics_path, metrics)
    log(
        f"{metrics_path}: {metrics['status']}"
        + (f", test accuracy {metrics['test_accuracy']:.4f}" if reason is None else f" ({reason})")
        + f", {time.perf_counter() - started:.1f} s in this process"
    )
    return metrics


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


def _metrics_header(
    spec: RunSpec,
    config: dict,
    data: DatasetTensors,
    device: torch.device,
    bit_reproducible: bool,
    history: list[dict],
    train_size: int,
) -> dict:
    train_seconds = sum(entry["train_s"] for entry in history)
    train_images = len(history) * train_size
    return {
        "dataset": spec.dataset,
        "distortion": spec.distortion,
        "severity": spec.severity,
        "model": spec.model,
        "seed": spec.seed,
        "epochs": spec.epochs,
        "epochs_completed": len(history),
        "test_accuracy": None,
        "test_error": None,
        "per_class_accuracy": None,
        "confusion_matrix": None,
        "history": history,
        "train_images_per_s": train_images / train_seconds if train_seconds else None,
        "device": provenance.device_name(device),
        "device_type": device.type,
        "precision": spec.precision,
        "bit_reproducible": bit_reproducible,
        "torch": torch.__version__,
        "git_commit": provenance.git_commit(),
        "machine": provenance.machine_info(device),
        "config": config,
        "scale": spec.scale,
    }


def _test_fields(evaluation: Evaluation, test: Split, num_classes: int) -> dict:
    confusion = confusion_matrix(evaluation.predicted, test.labels.cpu(), num_classes)
    return {
        "test_accuracy": evaluation.accuracy,
        "test_error": 1.0 - evaluation.accuracy,
        "test_loss": evaluation.loss,
        "per_class_accuracy": per_class_accuracy(confusion),
        "confusion_matrix": confusion.tolist(),
    }


def _test_set_info(data: DatasetTensors, spec: RunSpec) -> dict:
    size = len(data.test.labels)
    info = dict(
        data.info.get("test_set") or {"name": f"{data.name} test", "size": size, "note": None}
    )
    if spec.limit_eval is not None and spec.limit_eval < size:
        info["size"] = spec.limit_eval
        info["note"] = "; ".join(
            filter(
                None, [info.get("note"), f"a fixed random {spec.limit_eval} of them (limit_eval)"]
            )
        )
    return info
