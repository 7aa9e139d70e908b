"""Speed of the modulated RNNs: how far from ``torch.nn.RNN``, and what batching and stacking buy.

Prints five Markdown tables (see ``benchmarks/README.md``, section "RNN speed"):

1. one training step (forward, backward, per-network gradient clipping, Adam) of ONE
   :class:`~neuromod_lib.models.rnn.ModulatedRNN` network per pathway, against
   ``torch.nn.RNN(nonlinearity="relu")`` + a ``Linear`` readout of the same size, batch and trials;
2. whether ``torch.compile`` (of the recurrence ``_run`` or of the whole model) makes that step faster,
   and how long compiling takes;
3. all K tasks in one forward pass (the task groups of ``train_networks``) against one
   forward/backward pass per task, per Adam step;
4. S networks trained as one stack against S single-network models trained one after another,
   per network size N, with the time to generate the stack's trials;
5. the peak memory of the process.

Usage::

    python benchmarks/rnn_speed.py                 # N in 16 32 64, S in 4 16 36 (~1-1.5 min, 2 CPU cores)
    python benchmarks/rnn_speed.py --quick         # fewer repeats, smaller grid (~35 s; ~10 s if compiled)
    python benchmarks/rnn_speed.py --device cuda --json rnn_speed.json
    python benchmarks/rnn_speed.py --no-compile --sizes 32,64 --stacks 4,16

Compiling takes ~25 s per variant the first time (inductor caches the result on disk; ``--cold-compile``
measures a first-ever compile in a fresh cache; ``--no-compile`` skips it). The trials are real ones
(:func:`neuromod_lib.data.tasks.generate`, ``TaskConfig(n_ring=16)``: 33 inputs, 17 outputs,
dt = 100 ms, about 30 time steps). Timings are medians over repeats after
warm-up steps, the compared variants taking turns step by step. Nothing here is asserted by the
tests: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import json
import logging
import math
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from neuromod_lib.data.tasks import TaskConfig, TrialBatch, first_tasks, generate, task_index  # noqa: E402
from neuromod_lib.device import describe_device, pick_device  # noqa: E402
from neuromod_lib.models.rnn import PATHWAYS, ModulatedRNN, masked_mse  # noqa: E402
from neuromod_lib.multitask import _groups, _task_table, rnn_config  # noqa: E402

K_TASKS = 6  # contexts / task groups per network (the first 6 tasks of PACKING_ORDER)
LR, CLIP = 1e-3, 1.0  # Adam learning rate and gradient clipping, as TrainConfig's defaults

# Table 1 rows: (label, pathway, synaptic form, activation).
VARIANTS = (
    ("rule", "rule", "lowrank", "relu"),
    ("excitability", "excitability", "lowrank", "relu"),
    ("synaptic-lowrank", "synaptic", "lowrank", "relu"),
    ("synaptic-elementwise", "synaptic", "elementwise", "relu"),
    ("both", "both", "lowrank", "relu"),
    ("both", "both", "lowrank", "softplus"),
)


@dataclass(frozen=True)
class Settings:
    """What to run: sizes, batch, how often, on which device."""

    device: torch.device
    n_neurons: int  # tables 1-3
    batch: int  # trials per network and step
    sizes: tuple[int, ...]  # table 4
    stacks: tuple[int, ...]  # table 4
    activation: str  # tables 2-4
    warmup: int
    repeats: int
    stack_repeats: int
    compile_targets: tuple[str, ...]  # "_run", "forward"
    task_config: TaskConfig

    @property
    def per_group(self) -> int:
        """Trials per task group, as ``train_networks``: ``ceil(batch / K)``."""
        return math.ceil(self.batch / K_TASKS)


# --- timing --------------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def interleaved(
    fns: list[Callable[[], None]], device: torch.device, warmup: int, repeats: int
) -> list[list[float]]:
    """Seconds per call of every ``fn``, after ``warmup`` untimed calls each; the fns take turns.

    Taking turns makes a change of the machine's load hit every variant alike.
    """
    for fn in fns:
        for _ in range(warmup):
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, spent in zip(fns, times, strict=True):
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            spent.append(time.perf_counter() - start)
    return times


def _ms(seconds: float) -> str:
    return f"{1e3 * seconds:.2f}"


# --- data and models -----------------------------------------------------------------------------
def task_batch(
    n_networks: int, per_group: int, task_config: TaskConfig, seed: int
) -> tuple[TrialBatch, torch.Tensor]:
    """Trials ``(S, K, per_group)`` of the first K tasks, and the context positions ``(S, K)``.

    Built as ``train_networks`` builds a step's batch (``_task_table``, ``_groups``, ``generate``).
    """
    table, k = _task_table([first_tasks(K_TASKS)] * n_networks)
    ids, pos = _groups(table, k)
    gen = torch.Generator().manual_seed(seed)
    return generate(ids[..., None].expand(-1, -1, per_group).contiguous(), task_config, gen), pos


def modulated(
    settings: Settings, n_neurons: int, pathways: str | list[str], synaptic: str, activation: str, seed: int
) -> ModulatedRNN:
    config = rnn_config(settings.task_config, n_neurons, K_TASKS, activation=activation, synaptic=synaptic)
    model = ModulatedRNN(config, pathways, torch.Generator().manual_seed(seed)).to(settings.device)
    return model.train()  # training mode: input and recurrent noise, as in train_networks


def modulated_step(
    model: ModulatedRNN,
    batch: TrialBatch,
    pos: torch.Tensor,
    forward: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> Callable[[], None]:
    """One training step of ``model`` on ``batch`` as ``train_networks``/``fit`` run it (no ``.item()``)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    forward = model if forward is None else forward
    pos = pos.to(model.w_in.device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        outputs, _ = forward(batch.inputs, pos)
        masked_mse(outputs, batch.targets, batch.mask).sum().backward()
        model.clip_grad_norm_(CLIP)
        optimizer.step()

    return step


def split_steps(
    model: ModulatedRNN, batches: list[TrialBatch], positions: list[torch.Tensor]
) -> Callable[[], None]:
    """One Adam step made of one forward/backward pass per task (gradients accumulated)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    positions = [p.to(model.w_in.device) for p in positions]

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        for batch, pos in zip(batches, positions, strict=True):
            outputs, _ = model(batch.inputs, pos)
            masked_mse(outputs, batch.targets, batch.mask).sum().backward()
        model.clip_grad_norm_(CLIP)
        optimizer.step()

    return step


class TorchRNN(torch.nn.Module):
    """The reference: ``nn.RNN(relu, batch_first)`` and a sigmoid ``Linear`` readout (no leak, no noise)."""

    def __init__(self, n_inputs: int, n_neurons: int, n_outputs: int) -> None:
        super().__init__()
        self.rnn = torch.nn.RNN(n_inputs, n_neurons, nonlinearity="relu", batch_first=True)
        self.readout = torch.nn.Linear(n_neurons, n_outputs)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        states, _ = self.rnn(inputs)
        return torch.sigmoid(self.readout(states))


def torch_rnn_step(settings: Settings, batch: TrialBatch) -> tuple[Callable[[], None], int]:
    """A training step of :class:`TorchRNN` on the same trials (flattened to ``(B, T, I)``)."""
    torch.manual_seed(0)
    tc = settings.task_config
    model = TorchRNN(tc.n_inputs, settings.n_neurons, tc.n_outputs).to(settings.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    t = batch.steps
    x = batch.inputs.reshape(-1, t, tc.n_inputs)
    y = batch.targets.reshape(-1, t, tc.n_outputs)
    mask = batch.mask.reshape(-1, t)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        masked_mse(model(x)[None], y[None], mask[None]).sum().backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()

    return step, sum(p.numel() for p in model.parameters())


def _reason(error: Exception) -> str:
    """``failed: <type>: <first line of the message>``, for a table cell or note."""
    text = str(error).splitlines()[0] if str(error) else ""
    return f"failed: {type(error).__name__}: {text}"[:200]


def _failure(step: Callable[[], None]) -> str | None:
    """Run ``step`` once (an extra warm-up step); the reason it failed, or None."""
    try:
        step()
    except Exception as error:  # a failure is a result: reported in the table
        return _reason(error)
    return None


def _params(model: ModulatedRNN) -> int:
    """Parameters one network trains: shared + its pathway's context parameters."""
    return model.shared_parameters()[0] + model.context_parameters()[0]


# --- table 1: pathways vs nn.RNN -----------------------------------------------------------------
def pathway_table(settings: Settings) -> tuple[list[str], list[dict]]:
    dev, n = settings.device, settings.n_neurons
    b = settings.batch
    # B trials of the K tasks (in turn) in ONE group under one context: one weight matrix, like nn.RNN.
    ids = task_index(first_tasks(K_TASKS)).repeat(math.ceil(b / K_TASKS))[:b].reshape(1, 1, b)
    batch = generate(ids.contiguous(), settings.task_config, torch.Generator().manual_seed(0)).to(dev)
    pos = torch.zeros(1, 1, dtype=torch.long)
    steps, labels, failed = [], [], {}
    for label, pathway, synaptic, act in VARIANTS:
        model = modulated(settings, n, pathway, synaptic, act, seed=0)
        step = modulated_step(model, batch, pos)
        reason = _failure(step)
        if reason:
            failed[(label, act)] = (_params(model), reason)
        else:
            steps.append(step)
            labels.append(("ModulatedRNN", label, act, _params(model), f"1 x {b}", batch.steps))
    # The same network in train_networks' layout: K task groups, one context (and W_rec(c)) each.
    grouped, grouped_pos = task_batch(1, settings.per_group, settings.task_config, seed=0)
    model = modulated(settings, n, "both", "lowrank", "relu", seed=0)
    steps.append(modulated_step(model, grouped.to(dev), grouped_pos))
    layout = f"{K_TASKS} x {settings.per_group}"
    labels.append(("ModulatedRNN", "both", "relu", _params(model), layout, grouped.steps))
    ref_step, ref_params = torch_rnn_step(settings, batch)
    steps.append(ref_step)
    labels.append(("nn.RNN + Linear", "–", "relu", ref_params, f"1 x {b}", batch.steps))
    times = interleaved(steps, dev, settings.warmup, settings.repeats)
    ref = statistics.median(times[-1])
    rows = [
        f"N = {n}, I = {settings.task_config.n_inputs}, O = {settings.task_config.n_outputs}; "
        f"groups x trials: 1 x {b} = one context for the whole batch (one weight matrix, like nn.RNN), "
        f"{layout} = the {K_TASKS} task groups of train_networks (one context and W_rec(c) per group)",
        "",
        "| model | pathway | f | parameters | groups x trials | T | step ms (median) | min–max ms "
        "| steps / s | x nn.RNN |",
        "|---|---|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    records = []
    for (model_name, label, act, params, trials, t), spent in zip(labels, times, strict=True):
        med = statistics.median(spent)
        rows.append(
            f"| {model_name} | {label} | {act} | {params:,} | {trials} | {t} | {_ms(med)} "
            f"| {_ms(min(spent))}–{_ms(max(spent))} | {1 / med:,.0f} | {med / ref:.2f}x |"
        )
        records.append(
            {
                "table": "pathways",
                "model": model_name,
                "pathway": label,
                "activation": act,
                "n_neurons": n,
                "groups_x_trials": trials,
                "steps_T": t,
                "parameters": params,
                "step_ms": 1e3 * med,
                "min_ms": 1e3 * min(spent),
                "max_ms": 1e3 * max(spent),
                "steps_per_s": 1 / med,
                "x_nn_rnn": med / ref,
                "status": "ok",
            }
        )
    for (label, act), (params, reason) in failed.items():
        rows.append(f"| ModulatedRNN | {label} | {act} | {params:,} | 1 x {b} | – | – | – | – | {reason} |")
        records.append(
            {
                "table": "pathways",
                "model": "ModulatedRNN",
                "pathway": label,
                "activation": act,
                "status": reason,
            }
        )
    return rows, records


# --- table 2: torch.compile ----------------------------------------------------------------------
def compile_table(settings: Settings) -> tuple[list[str], list[dict]]:
    dev, n = settings.device, settings.n_neurons
    batch, pos = task_batch(1, settings.per_group, settings.task_config, seed=0)
    batch = batch.to(dev)
    variants: list[tuple[str, Callable[[], None] | None, float, str]] = []
    eager = modulated(settings, n, "both", "lowrank", settings.activation, seed=0)
    variants.append(("eager", modulated_step(eager, batch, pos), 0.0, "ok"))
    if settings.compile_targets:
        torch._logging.set_logs(dynamo=logging.ERROR)  # graph breaks are counted in the table instead
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    for target in settings.compile_targets:
        model = modulated(settings, n, "both", "lowrank", settings.activation, seed=0)
        counters = _dynamo_counters()
        try:
            if target == "_run":
                model._run = torch.compile(model._run)  # the instance attribute shadows the method
                step = modulated_step(model, batch, pos)
            else:
                step = modulated_step(model, batch, pos, forward=torch.compile(model))
            _sync(dev)
            start = time.perf_counter()
            step()  # compiles forward and backward
            _sync(dev)
            spent = time.perf_counter() - start
            breaks = sum(counters["graph_break"].values())
            status = "ok" + (f", {breaks} graph break{'s' * (breaks != 1)}" if breaks else "")
            variants.append((f"torch.compile({target})", step, spent, status))
        except Exception as error:  # a failure is a result: reported in the table
            variants.append((f"torch.compile({target})", None, math.nan, _reason(error)))
    ran = [v for v in variants if v[1] is not None]
    times = interleaved([v[1] for v in ran], dev, settings.warmup, settings.repeats)
    medians = {v[0]: statistics.median(t) for v, t in zip(ran, times, strict=True)}
    base = medians["eager"]
    rows = [
        f"pathway both (low-rank), f = {settings.activation}, N = {n}, "
        f"{K_TASKS} groups x {settings.per_group} trials, T = {batch.steps}",
        "",
        "| variant | first step s (compiling) | step ms (median) | x eager | status |",
        "|---|---:|---:|---:|---|",
    ]
    records = []
    for name, _, compile_s, status in variants:
        med = medians.get(name)
        first = "–" if name == "eager" else ("–" if math.isnan(compile_s) else f"{compile_s:.1f}")
        rows.append(
            f"| {name} | {first} | {_ms(med) if med else '–'} | {f'{med / base:.2f}x' if med else '–'} "
            f"| {status} |"
        )
        records.append(
            {
                "table": "compile",
                "variant": name,
                "n_neurons": n,
                "compile_s": None if name == "eager" or math.isnan(compile_s) else compile_s,
                "step_ms": 1e3 * med if med else None,
                "x_eager": med / base if med else None,
                "status": status,
            }
        )
    return rows, records


def _dynamo_counters() -> dict:
    """TorchDynamo's event counters (cleared): ``["graph_break"]`` counts the breaks of what compiles next."""
    from torch._dynamo.utils import counters

    counters.clear()
    return counters


# --- table 3: all tasks in one pass vs one pass per task -----------------------------------------
def groups_table(settings: Settings) -> tuple[list[str], list[dict]]:
    dev, n = settings.device, settings.n_neurons
    batch, pos = task_batch(1, settings.per_group, settings.task_config, seed=0)
    batch = batch.to(dev)
    # (b): each task's trials generated on their own, as a per-task loop would: T is that task's own.
    singles, single_pos = [], []
    for j in range(K_TASKS):
        ids = batch.task[:, j : j + 1].cpu()
        gen = torch.Generator().manual_seed(1 + j)
        singles.append(generate(ids.contiguous(), settings.task_config, gen).to(dev))
        single_pos.append(pos[:, j : j + 1])
    t_single = sorted(b.steps for b in singles)
    rows = [
        f"N = {n}, f = {settings.activation}, {K_TASKS} tasks x {settings.per_group} trials = "
        f"{K_TASKS * settings.per_group} trials per Adam step; "
        f"(a) T = {batch.steps} (longest trial of the batch), "
        f"(b) T = {t_single[0]}–{t_single[-1]} (each task's own)",
        "",
        "| pathway | (a) one pass, ms / step | (b) one pass per task, ms / step | speed-up (b / a) |",
        "|---|---:|---:|---:|",
    ]
    records = []
    for label, pathway, synaptic, _ in VARIANTS[:5]:
        one = modulated(settings, n, pathway, synaptic, settings.activation, seed=0)
        split = modulated(settings, n, pathway, synaptic, settings.activation, seed=0)
        steps = [modulated_step(one, batch, pos), split_steps(split, singles, single_pos)]
        reason = _failure(steps[0]) or _failure(steps[1])
        if reason:
            rows.append(f"| {label} | – | – | {reason} |")
            records.append({"table": "groups", "pathway": label, "n_neurons": n, "status": reason})
            continue
        times = interleaved(steps, dev, settings.warmup, settings.repeats)
        a, b = (statistics.median(t) for t in times)
        rows.append(f"| {label} | {_ms(a)} | {_ms(b)} | {b / a:.2f}x |")
        records.append(
            {
                "table": "groups",
                "pathway": label,
                "n_neurons": n,
                "one_pass_ms": 1e3 * a,
                "per_task_ms": 1e3 * b,
                "speedup": b / a,
                "status": "ok",
            }
        )
    return rows, records


# --- table 4: stacked vs separate networks -------------------------------------------------------
def stack_table(settings: Settings) -> tuple[list[str], list[dict]]:
    dev = settings.device
    rows = [
        f"mixed pathways ({', '.join(PATHWAYS)}, cycled; low-rank synapses), f = {settings.activation}, "
        f"per network {K_TASKS} groups x {settings.per_group} trials",
        "",
        "| N | S | stacked ms / step | stacked ms / network-step | separate ms / network-step "
        "| speed-up | data: generate ms / step | data / stacked step |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    records = []
    for n in settings.sizes:
        for s in settings.stacks:
            pathways = [PATHWAYS[i % len(PATHWAYS)] for i in range(s)]
            batch, pos = task_batch(s, settings.per_group, settings.task_config, seed=s)
            batch = batch.to(dev)
            stacked = modulated_step(
                modulated(settings, n, pathways, "lowrank", settings.activation, 0), batch, pos
            )
            parts = [_network_slice(batch, i) for i in range(s)]
            separate = [
                modulated_step(
                    modulated(settings, n, p, "lowrank", settings.activation, i), part, pos[i : i + 1]
                )
                for i, (p, part) in enumerate(zip(pathways, parts, strict=True))
            ]

            def one_after_another(steps: list[Callable[[], None]] = separate) -> None:
                for step in steps:
                    step()

            table, k = _task_table([first_tasks(K_TASKS)] * s)
            ids, _ = _groups(table, k)
            ids = ids[..., None].expand(-1, -1, settings.per_group).contiguous()
            gen = torch.Generator().manual_seed(0)

            def make_data(ids: torch.Tensor = ids, gen: torch.Generator = gen) -> None:
                generate(ids, settings.task_config, gen).to(dev)

            times = interleaved(
                [stacked, one_after_another, make_data], dev, min(2, settings.warmup), settings.stack_repeats
            )
            st, sep, data = (statistics.median(t) for t in times)
            rows.append(
                f"| {n} | {s} | {_ms(st)} | {_ms(st / s)} | {_ms(sep / s)} | {sep / st:.1f}x "
                f"| {_ms(data)} | {100 * data / st:.0f}% |"
            )
            records.append(
                {
                    "table": "stacking",
                    "n_neurons": n,
                    "networks": s,
                    "stacked_ms": 1e3 * st,
                    "stacked_ms_per_network": 1e3 * st / s,
                    "separate_ms_per_network": 1e3 * sep / s,
                    "speedup": sep / st,
                    "generate_ms": 1e3 * data,
                    "generate_fraction": data / st,
                }
            )
    return rows, records


def _network_slice(batch: TrialBatch, i: int) -> TrialBatch:
    """Network ``i``'s trials ``(1, K, B)`` of a stacked batch, as contiguous tensors."""
    return TrialBatch(
        **{
            name: value[i : i + 1].contiguous() if isinstance(value, torch.Tensor) else value
            for name, value in batch.__dict__.items()
        }
    )


# --- table 5: memory -----------------------------------------------------------------------------
def memory_table(device: torch.device) -> tuple[list[str], list[dict]]:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_mib = peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux
    rows = ["| memory | peak |", "|---|---:|", f"| process resident set (ru_maxrss) | {peak_mib:,.0f} MiB |"]
    record = {"table": "memory", "ru_maxrss_mib": peak_mib}
    if device.type == "cuda":
        cuda_mib = torch.cuda.max_memory_allocated(device) / 2**20
        rows.append(f"| CUDA tensors (max_memory_allocated) | {cuda_mib:,.0f} MiB |")
        record["cuda_max_allocated_mib"] = cuda_mib
    return rows, [record]


# --- main ----------------------------------------------------------------------------------------
def _ints(text: str, name: str, parser: argparse.ArgumentParser) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        parser.error(f"{name} must be a comma list of integers, got {text!r}")
    if not values or min(values) < 1:
        parser.error(f"{name} must list integers >= 1, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: 2 on CPU)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller grid (< 90 s, 2 cores)")
    parser.add_argument(
        "--sizes", default=None, help="N of table 4, comma list (default 16,32,64; quick 32,64)"
    )
    parser.add_argument(
        "--stacks", default=None, help="S of table 4, comma list (default 4,16,36; quick 4,16)"
    )
    parser.add_argument("--neurons", type=int, default=64, help="N of tables 1-3 (default 64)")
    parser.add_argument("--batch", type=int, default=64, help="trials per network and step (default 64)")
    parser.add_argument("--activation", default="relu", choices=("relu", "softplus"), help="tables 2-4")
    parser.add_argument("--no-compile", action="store_true", help="skip table 2 (torch.compile)")
    parser.add_argument(
        "--cold-compile",
        action="store_true",
        help="compile into a fresh inductor cache (the time of a first-ever compile)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write every row to this JSON file")
    args = parser.parse_args(argv)
    device = pick_device(args.device)
    threads = args.threads if args.threads is not None else (2 if device.type == "cpu" else 0)
    if threads:
        torch.set_num_threads(threads)
    if args.neurons < 1 or args.batch < K_TASKS:
        parser.error(f"--neurons must be >= 1 and --batch >= {K_TASKS}")
    sizes = _ints(args.sizes or ("32,64" if args.quick else "16,32,64"), "--sizes", parser)
    stacks = _ints(args.stacks or ("4,16" if args.quick else "4,16,36"), "--stacks", parser)
    if args.cold_compile:
        cache = tempfile.mkdtemp(prefix="rnn_speed_inductor_")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
        atexit.register(shutil.rmtree, cache, ignore_errors=True)
    settings = Settings(
        device=device,
        n_neurons=args.neurons,
        batch=args.batch,
        sizes=sizes,
        stacks=stacks,
        activation=args.activation,
        warmup=3,
        repeats=15 if args.quick else 40,
        stack_repeats=5 if args.quick else 7,
        compile_targets=() if args.no_compile else (("_run",) if args.quick else ("_run", "forward")),
        task_config=TaskConfig(n_ring=16),
    )
    start = time.perf_counter()
    header = (
        f"# RNN speed benchmark — {describe_device(device)}, torch {torch.__version__}, "
        f"Python {platform.python_version()}, {platform.machine()}"
    )
    print(header)
    records: list[dict] = []
    sections = [
        ("1. One training step of one network per pathway vs torch.nn.RNN", pathway_table),
        ("2. torch.compile", None if args.no_compile else compile_table),
        ("3. All tasks in one forward pass vs one pass per task (one Adam step)", groups_table),
        ("4. S networks as one stack vs S separate models, one after another", stack_table),
    ]
    for title, table in sections:
        if table is None:
            continue
        print(f"\n## {title}\n", flush=True)
        rows, recs = table(settings)
        print("\n".join(rows), flush=True)
        records += recs
    print("\n## 5. Peak memory (whole run)\n")
    rows, recs = memory_table(device)
    print("\n".join(rows))
    records += recs
    elapsed = time.perf_counter() - start
    print(f"\nWhole run: {elapsed:.0f} s.")
    if args.json is not None:
        meta = {
            "device": describe_device(device),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "date": datetime.date.today().isoformat(),
            "threads": torch.get_num_threads(),
            "quick": args.quick,
            "seconds": elapsed,
        }
        args.json.write_text(json.dumps({"meta": meta, "rows": records}, indent=2) + "\n")
        print(f"Rows written to {args.json}.")


if __name__ == "__main__":
    main()
