"""Throughput of the ``paper`` profile's training steps, on generated data of paper size.

One table, one row per workload: the training step each paper-profile notebook repeats, timed on
the chosen device with inputs of the real data's shape (generated, so no download is needed):

- ``01-03 pretrain``: ResNet-18 at 64x64, batch 128, forward + backward + Adam (images/s);
- ``01-03 inference``: the frozen ResNet-18's forward pass alone, batch 256 (images/s): the
  evaluations, and the adaptation conditions whose features cannot be cached at 64x64;
- ``01-02 adapt (gains)``: the same frozen ResNet-18 with per-task deterministic gains on its late
  sites and a head per task, 20 tasks x 32 images per step (images/s);
- ``02 adapt (stochastic)``: the same with stochastic comodulation and the guided readout;
- ``04-05 RNN``: 4 modulated RNNs of N = 256 stacked (excitability, synaptic x 2), Yang et al.'s
  dt = 20 ms and 32-unit rings, 64 trials per network per step (trials/s);
- ``06 random weights``: the random-weight network at MNIST size (784 -> 7 840), batch 128
  (samples/s);
- ``07 synaptic family``: the synaptic family's shared layer at the same size (samples/s).

Below the table, :data:`WORK` (each paper run's items of these workloads, counted from the code)
turns the rates into hours per paper run and days for the whole reproduction on 1, 8 and 32
devices (:data:`RECIPES`, the README's recipes).

Timings are medians over ``--repeats`` steps after warm-up (CUDA synchronised). ``--write``
replaces ``benchmarks/RESULTS.md``'s table for the device measured (atomically), keeping the
tables of other devices. Not a test: timings depend on the machine.

Usage::

    python benchmarks/paper_throughput.py                      # the best device here
    python benchmarks/paper_throughput.py --device cuda --write
    python benchmarks/paper_throughput.py --device cpu --repeats 3 --write
"""

from __future__ import annotations

import argparse
import datetime
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from neuromod_lib import families  # noqa: E402
from neuromod_lib.data.tasks import TaskConfig, generate, task_index  # noqa: E402
from neuromod_lib.device import describe_device, pick_device  # noqa: E402
from neuromod_lib.models import build_backbone  # noqa: E402
from neuromod_lib.models.random_weights import RandomWeightConfig, RandomWeightNet  # noqa: E402
from neuromod_lib.models.rnn import ModulatedRNN, RNNConfig, masked_mse  # noqa: E402
from neuromod_lib.modulation import GainModulation  # noqa: E402
from neuromod_lib.readout import ModulatorGuidedReadout, TaskHeads  # noqa: E402
from neuromod_lib.storage import write_text  # noqa: E402

RESULTS = Path(__file__).with_name("RESULTS.md")

PRETRAIN = "01-03 pretrain (ResNet-18, 64x64)"
INFERENCE = "01-03 inference (ResNet-18, 64x64)"
GAINS = "01-02 adapt, gains (20 tasks x 32)"
STOCHASTIC = "02 adapt, stochastic comodulation (20 tasks x 32)"
RNN = "04-05 RNN (4 x N = 256, dt = 20 ms)"
RANDOM_WEIGHTS = "06 random weights (784 -> 7 840)"
SYNAPTIC = "07 synaptic family (784 -> 7 840, first task)"

#: The work of one ``paper`` run (one seed) of each notebook, in items of the workloads timed here,
#: counted from the code (the profiles, the conditions and searches each notebook runs, its
#: evaluations). Upper bounds where training can stop early (pretraining's patience, 07's RNNs);
#: rough where a workload stands in for another (the factors in the comments).
WORK: dict[str, dict[str, float]] = {
    "01_gain_modulation": {
        PRETRAIN: 15 * 162_770  # <= 15 epochs of CelebA's training split
        + 3 * 5 * 40 * 32 * 3000,  # full fine-tuning: 3 lrs x 5 seeds x 40 tasks x 32 images x 3000 steps
        GAINS: 3 * (3 * 5 * 40 * 32 * 3000),  # deterministic gains, FiLM, SE gains
        INFERENCE: 3 * 5 * 40 * 32 * 3000  # head only: the whole backbone forward (nothing cached at 64 px)
        + 584e6,  # 11 validation passes + test, every context x every image
    },
    "02_stochastic_comodulation": {
        PRETRAIN: 15 * 162_770,  # 0 when 01's cached backbone is found
        GAINS: 2 * (3 * 5 * 40 * 32 * 3000),  # two deterministic conditions
        STOCHASTIC: 5 * (3 * 5 * 40 * 32 * 3000),  # five stochastic variants
        INFERENCE: 1085e6,  # 4 200 contexts x (11 validation passes + test + relevance)
    },
    "03_architecture_study": {  # CIFAR-100 at 32 px on ResNet-18, ResNet-50, a wide ConvNet:
        # x 1.08 ResNet-18-at-64-px equivalents (1/4 the pixels; ResNet-50 ~2.3x ResNet-18's FLOPs)
        PRETRAIN: 1.08 * 15 * 22_500,
        GAINS: 1.08 * 3 * (3 * 5 * 10 * 32 * 3000),  # 3 placements (early/all backpropagate further)
        STOCHASTIC: 1.08 * 3 * (3 * 5 * 10 * 32 * 3000),
        INFERENCE: 0.58 * (3 * 5 * 10 * 32 * 3000)  # ResNet-50's head only: its features are not cached
        + 0.36 * 6e6,  # evaluations: ~1 M forward passes per group, 2 groups per backbone
    },
    "04_rnn_task_packing": {  # 700 networks padded to N = 256, 65 trials each per step, the whole budget
        RNN: 700 * 65 * 20_000 + 98e6 / 3,  # + evaluations (forward only: ~1/3 of a training step)
    },
    "05_rnn_ambiguity_and_dynamics": {  # 64 networks of N = 32 (timed as N = 256: an upper bound)
        RNN: 64 * 66 * 20_000 + 5.5e6 / 3,
    },
    "06_random_weight_continual_learning": {  # permuted MNIST: 10 tasks x 60 000 x 3 epochs per method,
        # + the search: 4 values x 3 tasks x 48 000 x 3 epochs; evaluations ~1/3 of training on top
        RANDOM_WEIGHTS: 4 / 3 * (1.8e6 + 1.728e6),
        SYNAPTIC: 4 / 3 * 5 * (1.8e6 + 1.728e6),  # fine-tune, EWC, SI, joint, supermask: dense layers
    },
    "07_modulation_families_compared": {
        PRETRAIN: 15 * 162_770,
        INFERENCE: 202_599,  # CelebA features, once
        SYNAPTIC: 106.56e6  # rotated MNIST: 6 families x (2 searches + 4 runs: 2 readouts, 2 more seeds)
        + 0.1 * (484.4e6 + 600e6 / 3),  # attributes: an MLP 512 -> 1 024, ~1/10 of a 784 -> 7 840 step
        RNN: 4 * 10 * 64 * 20_000 + 2 * 3 * 10 * 64 * 20_000,  # rate search + <= 2 rates x 3 seeds
    },
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step: Callable[[], None], device: torch.device, repeats: int, warmup: int = 2) -> float:
    """Median seconds of ``step()`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        step()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _adam_step(params, loss_fn: Callable[[], torch.Tensor]) -> Callable[[], None]:
    optimizer = torch.optim.Adam(params, lr=1e-3)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn().backward()
        optimizer.step()

    return step


def cnn_steps(device: torch.device) -> dict[str, tuple[Callable[[], None], int, str]]:
    """Pretraining and adaptation steps of the CNN notebooks at paper size."""
    net = build_backbone("resnet18").to(device)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(128, 3, 64, 64, generator=gen).to(device)
    y = torch.randint(2, (128,), generator=gen).to(device)
    head = torch.nn.Linear(net.feature_dim, 2).to(device)

    trained = build_backbone("resnet18").to(device)  # its own: `net` is frozen below, before any timing

    def pretrain_loss() -> torch.Tensor:
        return torch.nn.functional.cross_entropy(head(trained.features(x)), y)

    pretrain = _adam_step([*trained.parameters(), *head.parameters()], pretrain_loss)
    steps = {PRETRAIN: (pretrain, 128, "images/s")}
    net.freeze()
    xi = torch.randn(256, 3, 64, 64, generator=gen).to(device)

    def infer() -> None:
        with torch.inference_mode():
            net.features(xi)

    steps[INFERENCE] = (infer, 256, "images/s")
    sites = list(net.sites)[len(net.sites) // 2 :]
    n_tasks, per_task = 20, 32
    xa = torch.randn(n_tasks * per_task, 3, 64, 64, generator=gen).to(device)
    ya = torch.randint(2, (n_tasks * per_task,), generator=gen).to(device)
    ids = torch.arange(n_tasks).repeat_interleave(per_task).to(device)
    for mode in ("deterministic", "stochastic"):
        mod = GainModulation({s: net.sites[s] for s in sites}, n_tasks, mode=mode).to(device)
        heads = TaskHeads(n_tasks, net.feature_dim).to(device)
        readout = ModulatorGuidedReadout(heads).to(device) if mode == "stochastic" else heads

        def loss(mod=mod, readout=readout, mode=mode) -> torch.Tensor:
            mod.attach(net)
            try:
                with mod.context(ids):
                    h = net.features(xa)
                    out = readout(h, ids, mod.last_m) if mode == "stochastic" else readout(h, ids)
            finally:
                mod.detach()
            return torch.nn.functional.cross_entropy(out, ya)

        steps[GAINS if mode == "deterministic" else STOCHASTIC] = (
            _adam_step([*mod.parameters(), *heads.parameters()], loss), n_tasks * per_task, "images/s"
        )  # fmt: skip
    return steps


def rnn_step(device: torch.device) -> tuple[Callable[[], None], int, str]:
    """One training step of 4 stacked paper-size RNNs on mixed cognitive tasks."""
    task_config = TaskConfig(dt=20.0, n_ring=32)
    config = RNNConfig(n_neurons=256, n_inputs=task_config.n_inputs, n_outputs=task_config.n_outputs,
                       n_contexts=4, dt=20.0, tau=100.0, activation="softplus")  # fmt: skip
    model = ModulatedRNN(config, ["excitability", "synaptic"] * 2, torch.Generator().manual_seed(0)).to(
        device
    )
    names = ["go", "anti", "dm1", "dly_go"]
    ids = task_index(names)[:, None].expand(4, 16).contiguous()  # (G = 4 tasks, 16 trials each)
    batch = generate(ids, task_config, torch.Generator().manual_seed(0)).to(device)
    contexts = torch.arange(4, device=device)  # group g runs under context e_g

    def loss() -> torch.Tensor:
        outputs, _ = model(batch.inputs, contexts)
        return masked_mse(outputs, batch.targets, batch.mask).sum()

    return _adam_step(model.parameters(), loss), 4 * 64, "trials/s"


def mnist_steps(device: torch.device) -> dict[str, tuple[Callable[[], None], int, str]]:
    """Random-weight and synaptic-family training steps at MNIST size (784 inputs, H = 7 840)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(128, 784, generator=gen).to(device)
    y = torch.randint(10, (128,), generator=gen).to(device)
    net = RandomWeightNet(
        RandomWeightConfig(n_inputs=784, n_classes=10, expansion=10.0, inputs_per_unit=7)
    ).to(device)
    net.add_task(gen)
    rw = _adam_step(net.task_parameters(0), lambda: torch.nn.functional.cross_entropy(net(x, 0), y))
    mlp = families.ContextMLP("synaptic", 784, 7840, 10, 10, gen).to(device)
    mlp.begin_task(0)
    ids = torch.zeros(128, dtype=torch.long, device=device)
    syn = _adam_step(mlp.parameters_for(0), lambda: torch.nn.functional.cross_entropy(mlp.logits(x, ids), y))
    return {RANDOM_WEIGHTS: (rw, 128, "samples/s"), SYNAPTIC: (syn, 128, "samples/s")}


def measure(device: torch.device, repeats: int, only: str | None = None) -> list[tuple[str, float, str]]:
    """``(workload, items per second, unit)`` for every workload (or those whose name contains ``only``)."""
    steps = {
        **cnn_steps(device),
        RNN: rnn_step(device),
        **mnist_steps(device),
    }
    rows = []
    for name, (step, items, unit) in steps.items():
        if only and only not in name:
            continue
        seconds = timed(step, device, repeats)
        rows.append((name, items / seconds, unit))
        print(f"  {name}: {items / seconds:,.0f} {unit}", flush=True)
    return rows


#: the README's recipes (``Scaling out``): devices working at once, and how the README names them
RECIPES = (
    (1, "a laptop or one machine: a local cluster, 1 device"),
    (8, "the SLURM recipe: 4 jobs x 2 GPUs, 8 devices"),
    (32, "an existing Dask cluster of 32 devices"),
)


def run_hours(rates: dict[str, float]) -> dict[str, float]:
    """Notebook -> hours of one ``paper`` run (one seed) at ``rates`` (workload -> items per second);
    NaN for a notebook with a workload not measured."""
    return {nb: sum(n / rates.get(w, math.nan) for w, n in work.items()) / 3600 for nb, work in WORK.items()}


def recipe_hours(hours: dict[str, float], seeds: int, devices: int) -> float:
    """Wall time of ``sweep all --seeds`` (``seeds`` runs of every notebook) on ``devices`` workers of
    one device each: the runs' total shared out, but never less than the longest run (a lower bound:
    runs do not split, so the last ones may leave devices idle)."""
    runs = [h for h in hours.values() for _ in range(seeds)]
    return max(sum(runs) / devices, max(runs))


def estimate_table(rows: list[tuple[str, float, str]], seeds: int = 5) -> str:
    """Markdown: hours per ``paper`` run of each notebook at these throughputs, and the whole
    reproduction (every notebook x ``seeds`` seeds) on 1, 8 and 32 such devices."""
    rates = {name: value for name, value, _ in rows}
    hours = run_hours(rates)
    lines = ["| paper run (one seed) | estimated hours |", "|---|---:|"]
    lines += [f"| {nb} | {h:,.1f} |" for nb, h in hours.items()]
    whole = f"whole reproduction (`sweep all --profile paper --seeds 0-{seeds - 1}`)"
    lines += ["", f"| {whole} | days, at least |", "|---|---:|"]
    for devices, recipe in RECIPES:
        lines.append(f"| {recipe} | {recipe_hours(hours, seeds, devices) / 24:,.1f} |")
    return "\n".join(lines)


def table(device: torch.device, rows: list[tuple[str, float, str]], repeats: int) -> str:
    """A Markdown section for ``device``: when, torch version, one row per workload."""
    when = datetime.date.today().isoformat()
    lines = [
        f"## {describe_device(device)}",
        "",
        f"Measured {when} with torch {torch.__version__}, median of {repeats} steps after 2 warm-up steps.",
        "",
        "| paper-profile training step | throughput |",
        "|---|---:|",
        *(f"| {name} | {value:,.0f} {unit} |" for name, value, unit in rows),
        "",
    ]
    if {w for work in WORK.values() for w in work} <= {name for name, _, _ in rows}:
        lines += [
            "Expected wall time at these rates (`WORK`: the items each paper run trains and evaluates,",
            "counted from the code; upper bounds where training may stop early, rough where one workload",
            "stands in for another; 00 takes seconds):",
            "",
            estimate_table(rows),
            "",
        ]
    return "\n".join(lines)


def write_results(section: str, device: torch.device) -> None:
    """Replace this device's section of RESULTS.md (others kept), atomically."""
    header = (
        "# Paper-profile throughput\n\n"
        "Written by `python benchmarks/paper_throughput.py --write` (see its docstring): the training\n"
        "steps of the `paper` profile on generated data of paper size, one section per device.\n\n"
    )
    title = section.splitlines()[0]
    old = RESULTS.read_text() if RESULTS.exists() else header
    parts = old.split("\n## ")
    kept = [p for p in parts[1:] if f"## {p.splitlines()[0]}" != title]
    body = parts[0].rstrip("\n") + "\n\n" + "".join(f"## {p.rstrip()}\n\n" for p in kept) + section
    write_text(RESULTS, body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, cuda:N, mps")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--only", default=None, help="only workloads whose name contains this text")
    parser.add_argument("--write", action="store_true", help=f"update {RESULTS.name}")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats={args.repeats} must be >= 1")
    if args.only and args.write:
        parser.error("--only and --write do not go together: RESULTS.md keeps a device's whole table")
    device = pick_device(args.device)
    torch.manual_seed(0)
    print(f"measuring on {describe_device(device)}", flush=True)
    rows = measure(device, args.repeats, args.only)
    section = table(device, rows, args.repeats)
    print("\n" + section)
    if args.write:
        write_results(section, device)
        print(f"written: {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
