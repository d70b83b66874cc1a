"""`stnbench bench`: throughput, latency, memory, parameters and FLOPs of one model."""

import argparse
from pathlib import Path

from stnbench.cli.common import add_device_argument, add_threads_argument


def register(subparsers: argparse._SubParsersAction, name: str, help_line: str) -> None:
    parser = subparsers.add_parser(
        name,
        help=help_line,
        description=(
            "Time inference and one SGD training step on random inputs of the dataset's geometry, "
            "for each batch size: images/s, latency (median and IQR over timed blocks after "
            "warm-up), peak memory, parameters, FLOPs and achieved FLOP/s. Writes one JSON file "
            "(schema: stnbench/bench_schema.json)."
        ),
    )
    parser.add_argument("--model", required=True, help="zoo model name or model YAML path")
    parser.add_argument("--dataset", required=True, help="mnist or gtsrb (sets the input geometry)")
    parser.add_argument(
        "--size", type=int, default=None, help="image size in px (default: the dataset's own)"
    )
    add_device_argument(parser)
    parser.add_argument(
        "--batch-sizes", default="1,64,256", help="comma-separated batch sizes (default: 1,64,256)"
    )
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument(
        "--channels-last", action="store_true", help="channels-last memory format"
    )
    add_threads_argument(parser)
    parser.add_argument(
        "--repeats", type=int, default=10, help="least number of timed blocks (default: 10)"
    )
    parser.add_argument("--out", required=True, type=Path, help="output JSON file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from stnbench.bench import BenchSettings, parse_batch_sizes, run_bench
    from stnbench.bench_file import describe, validate_bench
    from stnbench.device import resolve_device, set_threads
    from stnbench.io import atomic_write_json

    batch_sizes = parse_batch_sizes(args.batch_sizes)
    set_threads(args.threads)
    settings = BenchSettings(
        device=resolve_device(args.device),
        batch_sizes=batch_sizes,
        amp=args.amp,
        compile=args.compile,
        channels_last=args.channels_last,
        repeats=args.repeats,
    )
    report = run_bench(args.model, args.dataset, size=args.size, settings=settings)
    validate_bench(report)
    atomic_write_json(args.out, report)
    print(describe(report))
    print(f"wrote {args.out}")
    return 0
