"""Speed and storage of random-weight contexts against a dense network of the same width.

Hong & Pavlic (2022) claim that learning only a per-task context on fixed random weights trains
faster and stores far less per task than a dense network. This script measures both, on the
library's own code path (:func:`neuromod_lib.continual.learn_sequence`), with the same data, epochs and
hidden width for every method, and prints one Markdown table per benchmark:

- seconds per task (mean over the sequence) and the ratio to fine-tuning the dense network;
- learned parameters and stored bytes per additional task, and how many times less than the
  whole dense network (float32) the random-weight method stores (target: >= 100x).

Usage::

    python benchmarks/continual_speed.py                       # digits and MNIST-1D sequences (~1 min)
    python benchmarks/continual_speed.py --benchmarks permuted_mnist --root data   # real MNIST
    python benchmarks/continual_speed.py --device cuda --threads 1

A synthetic "mnist-size" row (784 inputs, 7 840 hidden units, random data) shows the paper's
scale without the data set. Timings depend on the machine; nothing here is asserted by the tests.
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from neuromod_lib import continual  # noqa: E402
from neuromod_lib.data import sequences  # noqa: E402
from neuromod_lib.device import pick_device  # noqa: E402

METHODS = ("random_weights", "finetune", "supermask")


def synthetic_sequence(n_tasks: int, n: int, seed: int = 0) -> sequences.TaskSequence:
    """MNIST-sized random data (784 inputs, 10 classes): speed does not depend on the content."""
    g = torch.Generator().manual_seed(seed)
    tasks = []
    for t in range(n_tasks):
        x, y = torch.randn(n, 784, generator=g), torch.randint(0, 10, (n,), generator=g)
        tasks.append(sequences.Task(f"random {t}", x, y, x[: n // 5], y[: n // 5], tuple(range(10))))
    return sequences.TaskSequence("mnist-size (random data)", tasks, 784, 10, None)


def measure(sequence, config: continual.ContinualConfig, device) -> list[dict]:
    rows = []
    warm = sequences.TaskSequence(
        sequence.benchmark, sequence.tasks[:1], sequence.n_inputs, sequence.n_classes, None
    )
    for method in METHODS:
        # warm-up: one-time costs
        continual.learn_sequence(method, warm, config, device=device, progress=False)
        start = time.perf_counter()
        result = continual.learn_sequence(method, sequence, config, device=device, progress=False)
        rows.append(
            {
                "method": method,
                "seconds_per_task": sum(result.seconds_per_task) / len(result.seconds_per_task),
                "params": result.learned_params_per_task,
                "bytes": result.bytes_per_task,
                "accuracy": result.average_accuracy,
                "wall": time.perf_counter() - start,
            }
        )
    return rows


def table(name: str, rows: list[dict], dense_bytes: int, *, synthetic: bool = False) -> str:
    base = next(r["seconds_per_task"] for r in rows if r["method"] == "finetune")
    lines = [
        f"\n### {name}\n",
        "| method | s / task | x fine-tuning | learned params / task | bytes / task | dense / this "
        "| avg acc % |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['seconds_per_task']:.3f} | {r['seconds_per_task'] / base:.2f} "
            f"| {r['params']:,} | {r['bytes']:,} | {dense_bytes / r['bytes']:.0f}x "
            f"| {'–' if synthetic else format(100 * r['accuracy'], '.1f')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmarks", default="permuted_digits,rotated_digits,split_mnist1d")
    parser.add_argument("--tasks", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--root", default=None, help="MNIST folder, for the *_mnist benchmarks")
    parser.add_argument(
        "--synthetic", type=int, default=6000, help="samples per task of the mnist-size row (0: skip)"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    config = continual.ContinualConfig(epochs=args.epochs)
    print(
        f"# Continual learning: speed and storage ({platform.processor() or platform.machine()}, {device}, "
        f"{args.threads} threads, torch {torch.__version__})"
    )
    runs = [
        sequences.make_sequence(b.strip(), args.tasks, root=args.root) for b in args.benchmarks.split(",")
    ]
    if args.synthetic:
        runs.append(synthetic_sequence(args.tasks, args.synthetic))
    for sequence in runs:
        rows = measure(sequence, config, device)
        dense_bytes = next(r["bytes"] for r in rows if r["method"] == "finetune")
        name = f"{sequence.benchmark}: {len(sequence)} tasks, {args.epochs} epochs"
        print(table(name, rows, dense_bytes, synthetic=sequence.benchmark.startswith("mnist-size")))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak memory of this process: {peak:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
