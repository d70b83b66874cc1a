"""Cost of a model: parameters, FLOPs, inference and training throughput, latency and memory.

Inputs are random images of the dataset's geometry, so a benchmark needs no prepared data.
Every figure is timed with ``torch.utils.benchmark`` (which synchronises the accelerator around
each timed block) after a warm-up, and reported as the median and interquartile range of at
least ``repeats`` timed blocks, because a single run on a shared machine says little.
"""

import os
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psutil
import torch
from torch import nn
from torch.utils import benchmark
from torch.utils.flop_counter import FlopCounterMode

from stnbench import provenance
from stnbench.bench_file import SCHEMA_VERSION
from stnbench.dataset_registry import DATASETS
from stnbench.engine import targets
from stnbench.errors import StnbenchError
from stnbench.models import (
    count_flops,
    count_parameters,
    create_model,
    model_info,
    model_input_shape,
)
from stnbench.models.flops import ST_FLOP_FORMULAS

DEFAULT_BATCH_SIZES = (1, 64, 256)
DEFAULT_REPEATS = 10
# Shortest total timed time per measurement: cheap steps are timed in many blocks.
MIN_RUN_TIME_S = 0.5
TRAIN_STEP = "zero_grad, forward, cross-entropy, backward, SGD update (momentum 0.9)"
# Warm-up covers first-call costs (allocator growth, oneDNN primitive creation, compilation).
WARMUP_CALLS = 2
WARMUP_MIN_S = 0.3
RSS_SAMPLE_INTERVAL_S = 0.001


@dataclass(frozen=True)
class BenchSettings:
    device: torch.device
    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES
    amp: bool = False
    compile: bool = False
    channels_last: bool = False
    repeats: int = DEFAULT_REPEATS

    def __post_init__(self) -> None:
        if self.repeats < 1:
            raise StnbenchError(f"--repeats {self.repeats}: must be at least 1")
        if not self.batch_sizes:
            raise StnbenchError("--batch-sizes: give at least one batch size")


def parse_batch_sizes(text: str) -> tuple[int, ...]:
    """``"1,64,256"`` -> ``(1, 64, 256)``; anything but distinct positive integers is an error."""
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise StnbenchError(
            f"--batch-sizes {text!r}: expected comma-separated positive integers, e.g. 1,64,256"
        ) from None
    if any(size < 1 for size in sizes):
        raise StnbenchError(f"--batch-sizes {text!r}: batch sizes must be at least 1")
    if len(set(sizes)) != len(sizes):
        raise StnbenchError(f"--batch-sizes {text!r}: a batch size is repeated")
    return sizes


def _label_shape(model: nn.Module, count: int) -> tuple[int, ...]:
    """Random labels' shape for ``model``: one per image, or one per position of a sequence."""
    positions = getattr(model, "definition", {}).get("sequence")
    return (count,) if positions is None else (count, positions)


class _PeakRss(AbstractContextManager):
    """Highest resident set size of this process seen while the block runs.

    psutil reports only the current RSS, so a thread samples it; the peak is therefore a lower
    bound on the true one, close to it for steps that last longer than the sampling interval.
    """

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.peak = 0

    def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, self._process.memory_info().rss)
            if self._stop.wait(RSS_SAMPLE_INTERVAL_S):
                return

    def __enter__(self) -> "_PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _warm_up(step: Callable[[], object], device: torch.device) -> float:
    """Run ``step`` until warm; return the duration of its last call in seconds."""
    started = time.perf_counter()
    calls = 0
    while calls < WARMUP_CALLS or time.perf_counter() - started < WARMUP_MIN_S:
        call_start = time.perf_counter()
        step()
        _synchronize(device)
        last = time.perf_counter() - call_start
        calls += 1
    return last


def _time(step: Callable[[], object], last_call_s: float, repeats: int) -> dict[str, Any]:
    """Median and quartiles of the per-call time over at least ``repeats`` timed blocks."""
    timer = benchmark.Timer(
        stmt="step()", globals={"step": step}, num_threads=torch.get_num_threads()
    )
    min_run_time = max(MIN_RUN_TIME_S, repeats * last_call_s)
    measurements = [timer.blocked_autorange(min_run_time=min_run_time)]
    # A block slower than the warm-up's last call can leave fewer blocks than asked for.
    while sum(len(m.times) for m in measurements) < repeats:
        measurements.append(timer.blocked_autorange(min_run_time=min_run_time))
    calls = sum(m.number_per_run * len(m.raw_times) for m in measurements)
    (merged,) = benchmark.Measurement.merge(measurements)
    q1, q3 = torch.tensor(merged.times, dtype=torch.float64).quantile(
        torch.tensor([0.25, 0.75], dtype=torch.float64)
    ).tolist()
    return {
        "median": merged.median,
        "iqr": merged.iqr,
        "q1": q1,
        "q3": q3,
        "repeats": len(merged.times),
        "calls": calls,
        "times": list(merged.times),
    }


def _measure_phase(
    step: Callable[[], object],
    *,
    batch_size: int,
    flops_per_image: int,
    settings: BenchSettings,
) -> dict[str, Any]:
    device = settings.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        last_call_s = _warm_up(step, device)
        latency = _time(step, last_call_s, settings.repeats)
        peak_memory = torch.cuda.max_memory_allocated(device)
        cpu_share = None
    else:
        # Sampling only during the warm-up keeps the sampler thread off the timed cores.
        with _PeakRss() as rss:
            last_call_s = _warm_up(step, device)
        process = psutil.Process()
        cpu_before, wall_before = sum(process.cpu_times()[:2]), time.perf_counter()
        latency = _time(step, last_call_s, settings.repeats)
        cpu_seconds = sum(process.cpu_times()[:2]) - cpu_before
        cpu_share = cpu_seconds / ((time.perf_counter() - wall_before) * torch.get_num_threads())
        peak_memory = rss.peak
    images_per_s = {
        "median": batch_size / latency["median"],
        "q1": batch_size / latency["q3"],
        "q3": batch_size / latency["q1"],
    }
    return {
        "latency_s": latency,
        "images_per_s": images_per_s,
        "flops_per_image": flops_per_image,
        "achieved_flops_per_s": flops_per_image * images_per_s["median"],
        "peak_memory_bytes": peak_memory,
        "cpu_share": cpu_share,
    }


def _autocast(settings: BenchSettings) -> AbstractContextManager:
    if not settings.amp:
        return nullcontext()
    return torch.autocast(settings.device.type, dtype=torch.bfloat16)


def model_cost(
    model: nn.Module, input_shape: tuple[int, int, int], num_classes: int
) -> dict[str, int]:
    """Parameters, forward FLOPs (as `models describe`) and training-step FLOPs per image."""
    return {
        "params": count_parameters(model),
        "flops_per_image": count_flops(model, input_shape),
        "train_flops_per_image": _count_train_flops(model, input_shape, num_classes),
    }


def _count_train_flops(
    model: nn.Module, input_shape: tuple[int, int, int], num_classes: int
) -> int:
    # Counted on a real step, with the forward counter and its formulas, rather than the usual
    # 3x-forward rule of thumb, so that layers without an input gradient (the first) are not
    # charged for one. The samplers' backward has no formula and is not counted.
    batch = 2
    device = next(model.parameters()).device
    images = torch.rand(batch, *input_shape, device=device)
    labels = torch.randint(num_classes, _label_shape(model, batch), device=device)
    was_training = model.training
    model.train()
    counter = FlopCounterMode(display=False, custom_mapping=ST_FLOP_FORMULAS)
    with counter:
        targets.loss(model(images), labels).backward()
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return counter.get_total_flops() // batch


def benchmark_model(
    model: nn.Module,
    *,
    input_shape: tuple[int, int, int],
    num_classes: int,
    flops_per_image: int,
    train_flops_per_image: int,
    settings: BenchSettings,
) -> list[dict[str, Any]]:
    """Inference and training-step figures of ``model`` for each batch size in ``settings``."""
    device = settings.device
    memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
    model = model.to(device=device, memory_format=memory_format)
    runnable = torch.compile(model, dynamic=False) if settings.compile else model
    # The optimiser's own cost is part of a training step; the learning rate is small so that
    # hundreds of steps on random labels keep weights (and thus kernel speed) ordinary.
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    generator = torch.Generator().manual_seed(0)
    results = []
    for batch_size in settings.batch_sizes:
        images = torch.rand(batch_size, *input_shape, generator=generator).to(
            device=device, memory_format=memory_format
        )
        labels = torch.randint(
            num_classes, _label_shape(model, batch_size), generator=generator
        ).to(device)

        def infer(images: torch.Tensor = images) -> torch.Tensor:
            with torch.inference_mode(), _autocast(settings):
                return runnable(images)

        def train_step(images: torch.Tensor = images, labels: torch.Tensor = labels) -> None:
            optimizer.zero_grad(set_to_none=True)
            with _autocast(settings):
                loss = targets.loss(runnable(images), labels)
            loss.backward()
            optimizer.step()

        try:
            model.eval()
            inference = _measure_phase(
                infer, batch_size=batch_size, flops_per_image=flops_per_image, settings=settings
            )
            model.train()
            training = _measure_phase(
                train_step,
                batch_size=batch_size,
                flops_per_image=train_flops_per_image,
                settings=settings,
            )
        except torch.OutOfMemoryError:
            raise StnbenchError(
                f"--batch-sizes: batch size {batch_size} does not fit in {device.type} memory"
            ) from None
        results.append({"batch_size": batch_size, "inference": inference, "train_step": training})
    return results


def run_bench(
    model_name: str, dataset: str, *, size: int | None = None, settings: BenchSettings
) -> dict[str, Any]:
    """Benchmark a zoo model (or a model YAML) on random inputs of ``dataset``'s geometry."""
    input_shape = model_input_shape(model_name, dataset, size)
    meant_for = model_info(model_name)["datasets"]
    if dataset not in meant_for:
        raise StnbenchError(
            f"--model {model_name}: meant for {', '.join(meant_for)}, not {dataset}"
        )
    num_classes = DATASETS[dataset].num_classes
    model = create_model(
        model_name, in_channels=input_shape[0], input_size=input_shape[1], num_classes=num_classes
    )
    return bench_report(
        model,
        model_name=model_name,
        dataset=dataset,
        input_shape=input_shape,
        num_classes=num_classes,
        settings=settings,
    )


def bench_report(
    model: nn.Module,
    *,
    model_name: str,
    dataset: str,
    input_shape: tuple[int, int, int],
    num_classes: int,
    settings: BenchSettings,
) -> dict[str, Any]:
    """The full JSON-ready report for an already built model."""
    cost = model_cost(model, input_shape, num_classes)
    load_before = os.getloadavg()
    started = time.perf_counter()
    baseline_rss = psutil.Process().memory_info().rss
    results = benchmark_model(
        model,
        input_shape=input_shape,
        num_classes=num_classes,
        flops_per_image=cost["flops_per_image"],
        train_flops_per_image=cost["train_flops_per_image"],
        settings=settings,
    )
    device = settings.device
    return {
        "schema_version": SCHEMA_VERSION,
        "model": model_name,
        "dataset": dataset,
        "input_shape": list(input_shape),
        "num_classes": num_classes,
        **cost,
        "flops_unit": "FLOPs per image, 2 per multiply-add (torch.utils.flop_counter)",
        "device": provenance.device_name(device),
        "device_type": device.type,
        "dtype": "float32",
        "autocast": "bfloat16" if settings.amp else None,
        "precision": "bf16" if settings.amp else "fp32",
        "channels_last": settings.channels_last,
        "compile": settings.compile,
        "threads": torch.get_num_threads(),
        "repeats": settings.repeats,
        "train_step": TRAIN_STEP,
        "memory_measure": (
            "torch.cuda.max_memory_allocated"
            if device.type == "cuda"
            else "process resident set size (psutil), peak sampled during warm-up"
        ),
        "baseline_rss_bytes": baseline_rss,
        "torch": torch.__version__,
        "git_commit": provenance.git_commit(),
        "machine": provenance.machine_info(device),
        "load_average": {"before": list(load_before), "after": list(os.getloadavg())},
        "wall_s": time.perf_counter() - started,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "results": results,
    }
