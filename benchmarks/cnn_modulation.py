"""Speed of the CNN adaptation conditions: is stochastic comodulation as cheap as plain gains?

Prints three Markdown tables (see ``benchmarks/README.md`` for what every column means):

1. the time of one adaptation training step (forward, backward, Adam step) for each condition
   on the same frozen backbone and the same batch, through the library's own code path: the
   ``_Group`` (its ``_Adapter``, ``_Inputs`` cache and ``_loss``, with the guided readout's
   routing pass: every ``route_every`` steps, ``route_images`` images per context under ``draws - 1``
   further modulator draws, paired with the training pass's own; timed over whole routing periods)
   exactly as :func:`neuromod_lib.adaptation.adapt_many` builds
   them, and the ratio stochastic comodulation / deterministic gains (target: <= 1.10);
2. images per second of the backbones themselves: training (full network, as in pretraining)
   and inference (pooled features);
3. the peak memory of the process.

Usage::

    python benchmarks/cnn_modulation.py          # convnet 16x16 and resnet18 64x64 (1-2 min, 2 CPU cores)
    python benchmarks/cnn_modulation.py --quick  # convnet only, fewer repeats (a smoke run)
    python benchmarks/cnn_modulation.py --full   # + resnet50 64x64, and the paper profile's 20 tasks x 32
    python benchmarks/cnn_modulation.py --device cuda --threads 1

Timings are medians over repeats after warm-up steps; the images are random (speed does not
depend on their content). Nothing here is asserted by the tests: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from neuromod_lib.adaptation import (  # noqa: E402
    CONDITIONS,
    AdaptConfig,
    TaskSplit,
    _Adapter,
    _batches,
    _Group,
    _loss,
    _optimizer,
    _params_per_task,
    placement_sites,
)
from neuromod_lib.device import describe_device, pick_device  # noqa: E402
from neuromod_lib.models.cnn import build_backbone, count_parameters  # noqa: E402

#: the library's default routing period (its default ``route_images`` too)
ROUTE_EVERY = AdaptConfig.route_every


@dataclass(frozen=True)
class Bench:
    """One backbone at one image size, the contexts adapted at once, and how often to repeat."""

    backbone: str
    size: int
    seeds: int
    tasks: int
    batch_per_task: int
    repeats: int  # timed adaptation steps per condition
    throughput_batch: int
    throughput_repeats: int

    @property
    def label(self) -> str:
        return f"{self.backbone} {self.size}x{self.size}"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def timed(fn: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> list[float]:
    """Seconds per call of ``fn`` for ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def _frozen(bench: Bench, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_backbone(bench.backbone).to(device).freeze().eval()


def _images(n: int, size: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)


@dataclass
class Stepper:
    """One condition ready to train: ``step()`` runs one training step while ``attached``."""

    condition: str
    adapter: _Adapter
    net: torch.nn.Module
    step: Callable[[], None]
    trainable_per_task: int

    @contextmanager
    def attached(self) -> Iterator[None]:
        """The modulator hooked on the backbone (one condition at a time shares the backbone)."""
        if self.adapter.modulated:
            self.adapter.modulation.attach(self.net)
        try:
            yield
        finally:
            self.adapter.modulation.detach()


def adaptation_step(
    backbone: torch.nn.Module,
    images: torch.Tensor,
    condition: str,
    bench: Bench,
    sites: tuple[str, ...],
    device: torch.device,
) -> Stepper:
    """One training step of ``condition`` exactly as ``adapt_many`` runs it: its ``_Group``, its
    ``_loss`` (with the guided readout's routing pass, paired with the training draw) and its
    per-context Adam. Fine-tuning trains its backbone copies, as in ``adapt_many``. Returned detached.
    """
    n_ctx, per = bench.seeds * bench.tasks, bench.batch_per_task
    cond = CONDITIONS[condition]
    seeds = tuple(range(bench.seeds))
    config = AdaptConfig(
        sites=sites,
        batch_per_task=per,
        seeds=seeds,
        steps=1,
        eval_every=1,
        lrs=(0.01,),
        route_every=ROUTE_EVERY,
    )
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(2, (len(images), bench.tasks), generator=g)
    names = tuple(f"task{t}" for t in range(bench.tasks))
    data = TaskSplit.random(images, labels, names, n_val=8, n_test=8)
    torch.manual_seed(0)
    variants = [cond.variant] * n_ctx if cond.variant else None
    modulator_generator = torch.Generator(device=device).manual_seed(1)
    adapter = _Adapter(
        backbone, cond.family, cond.finetune, n_ctx, 2, config, modulator_generator, variants, bench.tasks
    ).to(device)
    group = _Group.build(adapter, data, config, bench.seeds, n_ctx, device)
    group.generators = [torch.Generator().manual_seed(s) for s in seeds]
    adapter.modulation.detach()  # attached again around each step: conditions take turns on the backbone
    optimizer = _optimizer(group, torch.full((n_ctx,), 0.01))
    batch = next(_batches(group, g))
    adapter.train()

    def step() -> None:  # one routing period (every condition alike): one routing pass and the steps between
        for _ in range(config.route_every):
            optimizer.zero_grad(set_to_none=True)
            _loss(group, adapter, batch).backward()
            optimizer.step()

    return Stepper(condition, adapter, backbone, step, _params_per_task(group))


def step_times(steppers: list[Stepper], device: torch.device, warmup: int, repeats: int) -> list[list[float]]:
    """Seconds per step of every condition, the conditions taking turns period by period (a period:
    ``route_every`` steps, one of them with the guided readout's routing pass; its mean per step).

    Interleaving makes a change of the machine's load hit every condition alike, so the
    ratios between conditions stay meaningful on a shared machine.
    """
    for stepper in steppers:
        with stepper.attached():
            for _ in range(warmup):
                stepper.step()
    times: list[list[float]] = [[] for _ in steppers]
    for _ in range(repeats):
        for stepper, spent in zip(steppers, times, strict=True):
            with stepper.attached():
                _sync(device)
                start = time.perf_counter()
                stepper.step()
                _sync(device)
                spent.append((time.perf_counter() - start) / ROUTE_EVERY)
    return times


def _ratio(r: float) -> str:
    return f"{r:.2f}x" if r >= 0.1 else f"{r:.3f}x"


def step_table(benches: list[Bench], conditions: list[str], sites: str, device: torch.device) -> list[str]:
    rows = [
        "| backbone | contexts x batch | condition | cached up to | trainable / task | step ms (median) "
        "| min–max ms | samples / s | vs deterministic |",
        "|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    ratios = []
    for bench in benches:
        backbone = _frozen(bench, device)
        chosen = placement_sites(backbone, sites)
        samples = bench.seeds * bench.tasks * bench.batch_per_task
        images = _images(max(512, samples), bench.size)
        steppers = [adaptation_step(backbone, images, c, bench, chosen, device) for c in conditions]
        times = step_times(steppers, device, warmup=3, repeats=bench.repeats)
        medians = {s.condition: statistics.median(t) for s, t in zip(steppers, times, strict=True)}
        base = medians.get("deterministic_gain")
        for stepper, spent in zip(steppers, times, strict=True):
            med = medians[stepper.condition]
            rows.append(
                f"| {bench.label} | {bench.seeds}x{bench.tasks} ctx x {bench.batch_per_task} "
                f"| {stepper.condition} | {stepper.adapter.start or 'features'} "
                f"| {stepper.trainable_per_task:,} | {1e3 * med:.2f} "
                f"| {1e3 * min(spent):.2f}–{1e3 * max(spent):.2f} | {samples / med:,.0f} "
                f"| {_ratio(med / base) if base else '–'} |"
            )
        if "stochastic_gain" in medians and base:
            ratios.append((bench.label, medians["stochastic_gain"] / base))
    lines = ["", f"Gains / FiLM / SE at the `{sites}` sites; `cached up to`: where cached inputs enter."]
    for label, ratio in ratios:
        verdict = "within target" if ratio <= 1.10 else "ABOVE TARGET"
        lines.append(
            f"- {label}: stochastic comodulation (+ guided readout) / deterministic gains = "
            f"**{ratio:.2f}x** (target <= 1.10x: {verdict})"
        )
    return rows + lines


def backbone_throughput(bench: Bench, device: torch.device) -> tuple[float, float, int]:
    """Median seconds of a full training step and of an inference pass at ``bench.throughput_batch``."""
    torch.manual_seed(0)
    net = build_backbone(bench.backbone).to(device)
    head = torch.nn.Linear(net.feature_dim, 2).to(device)
    x = (_images(bench.throughput_batch, bench.size).to(device).float() / 255 - 0.5) / 0.25
    y = torch.randint(2, (bench.throughput_batch,), generator=torch.Generator().manual_seed(0)).to(device)
    optimizer = torch.optim.Adam([*net.parameters(), *head.parameters()], lr=1e-3)

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(head(net.features(x)), y).backward()
        optimizer.step()

    @torch.inference_mode()
    def infer() -> None:
        net.features(x)

    net.train()
    train = statistics.median(timed(train_step, device, warmup=2, repeats=bench.throughput_repeats))
    net.eval()
    inference = statistics.median(timed(infer, device, warmup=2, repeats=bench.throughput_repeats))
    return train, inference, count_parameters(net)


def throughput_table(benches: list[Bench], device: torch.device) -> list[str]:
    rows = [
        "| backbone | parameters | batch | train images / s | inference images / s |",
        "|---|---:|---:|---:|---:|",
    ]
    for bench in benches:
        train, inference, params = backbone_throughput(bench, device)
        rows.append(
            f"| {bench.label} | {params / 1e6:.2f} M | {bench.throughput_batch} "
            f"| {bench.throughput_batch / train:,.0f} | {bench.throughput_batch / inference:,.0f} |"
        )
    return rows


def memory_table(device: torch.device) -> list[str]:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_mib = peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux
    rows = ["| memory | peak |", "|---|---:|", f"| process resident set (ru_maxrss) | {peak_mib:,.0f} MiB |"]
    if device.type == "cuda":
        cuda_mib = torch.cuda.max_memory_allocated(device) / 2**20
        rows.append(f"| CUDA tensors (max_memory_allocated) | {cuda_mib:,.0f} MiB |")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    parser.add_argument("--quick", action="store_true", help="convnet only, fewer repeats (smoke run)")
    parser.add_argument(
        "--full", action="store_true", help="add resnet50; paper-size contexts (20 tasks x 32)"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's default)")
    parser.add_argument("--sites", default="late", help="where gains act: early, late, all or a comma list")
    parser.add_argument(
        "--conditions", default=",".join(CONDITIONS), help=f"comma list of {', '.join(CONDITIONS)}"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown:
        parser.error(f"--conditions {unknown} unknown; allowed: {', '.join(CONDITIONS)}")
    if args.quick and args.full:
        parser.error("--quick and --full exclude each other")

    gpu = device.type != "cpu"
    # the quick profile of notebooks 01-02: convnet at 16x16, 5 seeds x 3 tasks x 12 images
    benches = [Bench("convnet", 16, 5, 3, 12, 10 if args.quick else 30, 128, 5 if args.quick else 10)]
    if not args.quick:
        tasks, per = (20, 32) if args.full else (8, 8)
        benches.append(Bench("resnet18", 64, 3, tasks, per, 20 if gpu else 5, 64, 20 if gpu else 3))
    if args.full:
        benches.append(Bench("resnet50", 64, 3, 20, 32, 20 if gpu else 3, 64, 20 if gpu else 2))

    print(
        f"# CNN adaptation benchmark — {describe_device(device)}, torch {torch.__version__}, "
        f"Python {platform.python_version()}, {platform.machine()}"
    )
    print()
    print("## 1. One adaptation training step (forward + backward + Adam), same backbone and batch")
    print()
    print("\n".join(step_table(benches, conditions, args.sites, device)))
    print()
    print(f"## 2. Backbone throughput ({describe_device(device)}, torch {torch.__version__})")
    print()
    print("\n".join(throughput_table(benches, device)))
    print()
    print("## 3. Peak memory (whole run)")
    print()
    print("\n".join(memory_table(device)))


if __name__ == "__main__":
    main()
