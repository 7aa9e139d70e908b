"""Training many context-modulated RNNs on cognitive tasks at once, and the experiments on them.

The protocol of Vedovati & Ching (2024) on the tasks of :mod:`neuromod_lib.data.tasks`:

- :func:`train_networks` trains a stack of networks (:class:`~neuromod_lib.models.rnn.ModulatedRNN`,
  one pathway each), each on its own list of tasks, in one batched forward pass per step,
  with :func:`neuromod_lib.training.fit` (an "epoch" is ``eval_every`` steps). Network ``s``
  learns task ``j`` of its list under the one-hot context ``e_j``. Training stops when every
  network performs at criterion on every one of its tasks, or after ``steps``.
- :func:`packing_sweep`: the largest number of tasks K each network size and pathway
  packs with every task at criterion (the *packing* experiment); :class:`PackingSweep` lays
  out its tables and :func:`packing_answer` computes what notebook 04 concludes and records.
- :func:`mixture_performance` and :func:`noise_performance`: performance under an ambiguous
  context ``(1 - lam) e_A + lam e_B`` or a noisy one ``e_A + sigma * xi`` (the *ambiguity*
  experiment).
- :func:`trajectories` and :func:`fixed_points`: the dynamics under each context.

Every batch is a function of the seed: the data come from a CPU generator, the noise of the
networks from the global torch RNG seeded by :func:`neuromod_lib.device.seed_everything`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from IPython.display import Markdown

from .analysis import FixedPoints, find_fixed_points
from .checks import Check, check_fields, is_int, is_number
from .data.tasks import TASKS, TaskConfig, TrialBatch, generate, performance, task_index
from .models.rnn import ModulatedRNN, RNNConfig, check_pathways, masked_mse
from .tables import Table, format_value, table
from .training import FitConfig, fit


@dataclass(frozen=True)
class TrainConfig:
    """How :func:`train_networks` trains (defaults follow Yang et al.: Adam, lr 1e-3, batch 64).

    ``batch``: trials per network per step, spread evenly over its tasks; ``eval_every``: steps
    between evaluations on ``eval_trials`` fixed trials per task; ``criterion``: the performance
    every task must reach for a network to count as having learned its tasks.
    """

    steps: int = 2000
    batch: int = 64
    lr: float = 1e-3
    grad_clip: float = 1.0
    eval_every: int = 100
    eval_trials: int = 64
    criterion: float = 0.9
    seed: int = 0

    def __post_init__(self) -> None:
        def count(name: str) -> Check:
            value = getattr(self, name)
            return (name, is_int(value) and value >= 1, "an integer >= 1")

        steps, every = self.steps, self.eval_every
        divides = is_int(steps) and is_int(every) and every >= 1 and steps % every == 0
        multiple = f"steps={steps!r} must be a multiple of eval_every={every!r}"
        check_fields(
            self,
            [
                *(count(n) for n in ("steps", "batch", "eval_every", "eval_trials")),
                ("steps", divides, "a multiple of eval_every", multiple),
                ("lr", is_number(self.lr) and 0 < self.lr <= 1, "a number in (0, 1]"),
                ("grad_clip", is_number(self.grad_clip) and self.grad_clip > 0, "a finite number > 0"),
                ("criterion", is_number(self.criterion) and 0 < self.criterion <= 1, "a number in (0, 1]"),
                ("seed", is_int(self.seed) and self.seed >= 0, "an integer >= 0"),
            ],
        )


@dataclass
class TrainResult:
    """What :func:`train_networks` returns; ``perf`` and ``history`` are NaN beyond a network's K.

    ``perf`` ``(S, Kmax)``: final performance per network and task position; ``history``
    ``(E, S, Kmax)`` after each of the ``steps`` in ``history_steps``; ``solved_at`` ``(S,)``:
    the first evaluated step at which every task was at criterion (NaN if never).
    """

    pathways: tuple[str, ...]
    tasks: list[tuple[str, ...]]
    perf: torch.Tensor
    history: torch.Tensor
    history_steps: list[int]
    solved_at: torch.Tensor
    criterion: float
    seconds: float
    losses: list[float] = field(default_factory=list)

    @property
    def solved(self) -> torch.Tensor:
        """``(S,)`` bool: every task of the network at criterion at the end."""
        return _solved(self.perf, self.criterion)

    @property
    def n_tasks(self) -> torch.Tensor:
        return torch.tensor([len(t) for t in self.tasks])


def _task_table(task_lists: Sequence[Sequence[str]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Task lists → ``(S, Kmax)`` task indices (padded by repeating each list) and ``(S,)`` K."""
    if not task_lists:
        raise ValueError("task_lists must name at least one list of tasks per network")
    rows = [task_index(list(tasks)) for tasks in task_lists]
    k = torch.tensor([len(r) for r in rows])
    kmax = int(k.max())
    table = torch.stack([r[torch.arange(kmax) % len(r)] for r in rows])
    return table, k


def _groups(table: torch.Tensor, k: torch.Tensor, shift: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Group ``g`` of network ``s`` holds its task at position ``(g + shift) % k_s``: ids and positions."""
    kmax = table.shape[1]
    pos = (torch.arange(kmax)[None] + shift) % k[:, None]
    return table.gather(1, pos), pos


def _group_trials(
    table: torch.Tensor,
    k: torch.Tensor,
    trials: int,
    task_config: TaskConfig,
    gen: torch.Generator,
    shift: int = 0,
) -> tuple[TrialBatch, torch.Tensor]:
    """``trials`` trials per group, ``(S, Kmax, trials)``, and each group's task position ``(S, Kmax)``."""
    ids, pos = _groups(table, k, shift)
    return generate(ids[..., None].expand(-1, -1, trials).contiguous(), task_config, gen), pos


def _solved(perf: torch.Tensor, criterion: float) -> torch.Tensor:
    """``(..., S)`` bool from performance ``(..., S, Kmax)``: every task (NaN = none) at criterion."""
    return (perf.nan_to_num(1.0) >= criterion).all(-1)


def evaluation_batch(
    table: torch.Tensor, k: torch.Tensor, trials: int, task_config: TaskConfig, seed: int
) -> tuple[TrialBatch, torch.Tensor]:
    """The fixed evaluation trials: ``trials`` per task position, as ``(S, Kmax, trials)``, and positions."""
    return _group_trials(table, k, trials, task_config, torch.Generator().manual_seed(seed))


def evaluate_networks(
    model: ModulatedRNN, batch: TrialBatch, positions: torch.Tensor, k: torch.Tensor
) -> torch.Tensor:
    """Performance ``(S, Kmax)`` of each network on its evaluation trials (NaN beyond its K)."""
    device = model.w_in.device
    with torch.no_grad():
        outputs, _ = model(batch.inputs.to(device), positions.to(device), noise=True)
        perf = performance(outputs, batch.to(device)).mean(-1).cpu()
    return perf.masked_fill(torch.arange(perf.shape[1])[None] >= k[:, None], math.nan)


def train_networks(
    model: ModulatedRNN,
    task_lists: Sequence[Sequence[str]],
    task_config: TaskConfig,
    config: TrainConfig,
    *,
    progress: bool | None = None,
) -> TrainResult:
    """Train network ``s`` of ``model`` on the tasks ``task_lists[s]`` (see the module docstring).

    All checks happen before any training: one task list per network, known task names, at
    most ``model``'s number of contexts per list, inputs/outputs sized for ``task_config``.
    """
    table, k = _task_table(task_lists)
    check_model(model, task_config, n_networks=len(task_lists), n_contexts=int(k.max()))
    device = model.w_in.device
    eval_batch, eval_pos = evaluation_batch(table, k, config.eval_trials, task_config, config.seed + 1)
    per_group = math.ceil(config.batch / table.shape[1])
    epochs = config.steps // config.eval_every
    history: list[torch.Tensor] = []
    state = {"step": 0}

    def batches(gen: torch.Generator):
        for _ in range(config.eval_every):
            batch, pos = _group_trials(table, k, per_group, task_config, gen, shift=state["step"])
            state["step"] += 1
            yield batch.to(device), pos

    def loss_fn(net: ModulatedRNN, item) -> torch.Tensor:
        batch, pos = item
        outputs, _ = net(batch.inputs, pos.to(device))
        return masked_mse(outputs, batch.targets, batch.mask).sum()

    def evaluate(net: ModulatedRNN) -> dict[str, float]:
        perf = evaluate_networks(net, eval_batch, eval_pos, k)
        history.append(perf)
        return {"solved": float(_solved(perf, config.criterion).float().mean())}

    start = time.perf_counter()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    fit_config = FitConfig(
        epochs,
        monitor="solved",
        mode="max",
        target=1.0,
        restore_best=False,
        grad_clip=config.grad_clip,
        progress=progress,
    )
    result = fit(
        model,
        optimizer,
        loss_fn,
        batches,
        evaluate,
        fit_config,
        generator=torch.Generator().manual_seed(config.seed),
    )
    hist = torch.stack(history)
    steps = [config.eval_every * (e + 1) for e in range(len(history))]
    solved = _solved(hist, config.criterion)  # (E, S)
    first = torch.where(solved.any(0), solved.float().argmax(0).float(), torch.tensor(math.nan))
    solved_at = torch.where(first.isnan(), first, (first + 1) * config.eval_every)
    return TrainResult(
        model.pathways,
        [tuple(t) for t in task_lists],
        hist[-1],
        hist,
        steps,
        solved_at,
        config.criterion,
        time.perf_counter() - start,
        [row["train_loss"] for row in result.history],
    )


def check_model(model: ModulatedRNN, task_config: TaskConfig, *, n_networks: int, n_contexts: int) -> None:
    """``ValueError`` unless ``model`` has ``n_networks`` networks, ``n_contexts`` contexts, the right I/O."""
    cfg = model.config
    if model.n_networks != n_networks:
        raise ValueError(
            f"task_lists has {n_networks} lists but the model stacks {model.n_networks} networks"
        )
    if n_contexts > cfg.n_contexts:
        raise ValueError(
            f"a task list has K={n_contexts} tasks but the networks have n_contexts={cfg.n_contexts}"
        )
    if (cfg.n_inputs, cfg.n_outputs) != (task_config.n_inputs, task_config.n_outputs):
        raise ValueError(
            f"the networks have {cfg.n_inputs} inputs / {cfg.n_outputs} outputs but the tasks need "
            f"{task_config.n_inputs} / {task_config.n_outputs} (n_ring={task_config.n_ring})"
        )


def rnn_config(task_config: TaskConfig, n_neurons: int, n_contexts: int, **kw) -> RNNConfig:
    """An :class:`RNNConfig` sized for ``task_config``'s inputs/outputs, with its ``dt``."""
    return RNNConfig(
        n_neurons=n_neurons,
        n_inputs=task_config.n_inputs,
        n_outputs=task_config.n_outputs,
        n_contexts=n_contexts,
        dt=task_config.dt,
        **kw,
    )


# --- notebook set-up --------------------------------------------------------------------------
@dataclass(frozen=True)
class RNNSetup:
    """Everything an RNN notebook needs, built and checked from its parameters before any training."""

    task_config: TaskConfig
    train_config: TrainConfig
    pathways: tuple[str, ...]
    rnn_kw: dict

    def network(self, n_neurons: int, n_contexts: int) -> RNNConfig:
        """The :class:`RNNConfig` of one network of ``n_neurons`` with ``n_contexts`` contexts."""
        return rnn_config(self.task_config, n_neurons, n_contexts, **self.rnn_kw)


def rnn_setup(cfg) -> RNNSetup:
    """The :class:`RNNSetup` of notebook 04's or 05's config (:mod:`neuromod_lib.configs`, which has
    checked every value): the task, training and network configurations the library's models take,
    built once, before any training."""
    task_config = TaskConfig(dt=cfg.dt, n_ring=cfg.n_ring)
    train_config = TrainConfig(
        steps=cfg.steps,
        batch=cfg.batch,
        lr=cfg.lr,
        eval_every=cfg.eval_every,
        eval_trials=cfg.eval_trials,
        criterion=cfg.criterion,
        seed=cfg.seed,
    )
    rnn_kw = {
        "tau": cfg.tau,
        "activation": cfg.activation,
        "rec_noise": cfg.rec_noise,
        "input_noise": cfg.input_noise,
        "synaptic": cfg.synaptic,
        "rank": cfg.rank,
        "matched": cfg.matched,
    }
    setup = RNNSetup(task_config, train_config, check_pathways(cfg.pathways), rnn_kw)
    setup.network(1, 1)  # checks dt <= tau and the pathway options now
    return setup


# --- packing --------------------------------------------------------------------------------
@dataclass
class PackingSweep:
    """One row per trained network: its size, pathway, replicate, K, context parameters, outcome."""

    rows: list[dict]
    criterion: float

    def capacity(self) -> dict[tuple[int, str], list[int]]:
        """``(N, pathway) -> [capacity per replicate]``: the largest K solved (0 if none).

        "Largest K for which every task reaches criterion", over the K values trained.
        """
        out: dict[tuple[int, str], dict[int, int]] = {}
        for row in self.rows:
            best = out.setdefault((row["n_neurons"], row["pathway"]), {})
            rep = row["replicate"]
            best[rep] = max(best.get(rep, 0), row["k"] if row["solved"] else 0)
        return {key: [reps[r] for r in sorted(reps)] for key, reps in out.items()}

    @property
    def sizes(self) -> list[int]:
        """The network sizes N, in the order they were trained."""
        return list(dict.fromkeys(row["n_neurons"] for row in self.rows))

    @property
    def pathways(self) -> list[str]:
        """The pathways, in the order they were given."""
        return list(dict.fromkeys(row["pathway"] for row in self.rows))

    @property
    def ks(self) -> list[int]:
        """The task counts K, in the order they were given."""
        return list(dict.fromkeys(row["k"] for row in self.rows))

    @property
    def replicates(self) -> int:
        """Networks per (N, pathway, K)."""
        return len({row["replicate"] for row in self.rows})

    def solved_count(self, n_neurons: int, pathway: str, k: int) -> int:
        """How many of the replicates of size ``n_neurons`` and ``pathway`` solved all ``k`` tasks."""
        return sum(
            r["solved"]
            for r in self.rows
            if (r["n_neurons"], r["pathway"], r["k"]) == (n_neurons, pathway, k)
        )

    def capacity_table(self) -> Table:
        """Size N (rows) × pathway (columns): the mean capacity over replicates and, in brackets,
        each replicate's capacity (:meth:`capacity`)."""
        capacity = self.capacity()
        rows = [
            [
                n,
                *(
                    f"{sum(capacity[(n, p)]) / len(capacity[(n, p)]):.2f} {capacity[(n, p)]}"
                    for p in self.pathways
                ),
            ]
            for n in self.sizes
        ]
        return table(
            rows, ["N", *self.pathways], caption="capacity: the mean over replicates [and per replicate]"
        )

    def solved_table(self) -> Table:
        """The fraction of networks that solved each K (columns), per size and pathway (rows):
        where the packing stops, and whether it stops at one K or fails at some task on the way."""
        rows = [
            [n, p, *(self.solved_count(n, p, k) / self.replicates for k in self.ks)]
            for n in self.sizes
            for p in self.pathways
        ]
        columns = ["N", "pathway", *(f"K={k}" for k in self.ks)]
        return table(
            rows,
            columns,
            formats={f"K={k}": ".2f" for k in self.ks},
            caption="fraction of the networks that solved all K tasks",
        )

    def training_check(self) -> tuple[bool, str]:
        """``(passed, what was checked)`` for :func:`neuromod_lib.results.record`: at the largest N,
        at least half the networks of every pathway solve the smallest K. A verdict is judged only
        from runs that pass it."""
        k_min, n_max, reps = min(self.ks), max(self.sizes), self.replicates
        solved_first = {p: self.solved_count(n_max, p, k_min) for p in self.pathways}
        return (
            all(2 * v >= reps for v in solved_first.values()),
            f"at N = {n_max}, at least half the networks of every pathway solve K = {k_min}: "
            + ", ".join(f"{p} {v}/{reps}" for p, v in solved_first.items()),
        )


@dataclass(frozen=True)
class PackingAnswer:
    """Notebook 04's answer: which pathway packs the most tasks, whether both pathways together
    pack at least as many as the better single one, and whether capacity grows with N.

    ``capacity``: ``(N, pathway) -> [capacity per replicate]`` (:meth:`PackingSweep.capacity`);
    ``mean_capacity``: pathway -> mean over sizes of the mean over replicates; ``synergy``: None
    when the sweep lacks ``both`` or the single pathways.
    """

    capacity: dict[tuple[int, str], list[int]]
    sizes: list[int]
    pathways: list[str]
    replicates: int
    mean_capacity: dict[str, float]
    best: str
    synergy: bool | None
    grows: bool

    @property
    def singles(self) -> list[str]:
        """The single modulated pathways of the sweep (``excitability``, ``synaptic``)."""
        return [p for p in ("excitability", "synaptic") if p in self.pathways]

    def mean_capacity_table(self) -> Table:
        """``pathway | mean capacity over sizes``."""
        rows = list(self.mean_capacity.items())
        return table(
            rows, ["pathway", "mean capacity over sizes"], formats={"mean capacity over sizes": ".2f"}
        )

    def conclusions(self) -> Markdown:
        """The answer in sentences, every one computed."""
        lines = [f"Packs the most tasks: {self.best}."]
        if self.synergy is not None:
            lines.append(
                "Both pathways together pack at least as many tasks as the better single pathway at "
                f"every N: **{format_value(self.synergy)}**."
            )
        lines.append(
            f"Capacity grows (never shrinks) with N for every pathway: **{format_value(self.grows)}**."
        )
        return Markdown("\n\n".join(lines))

    def metrics(self) -> dict[str, Any]:
        """The headline numbers recorded: capacity per size and pathway, mean per pathway, the answer."""
        metrics: dict[str, Any] = {
            f"capacity_N{n}_{p}": round(sum(self.capacity[(n, p)]) / self.replicates, 2)
            for n in self.sizes
            for p in self.pathways
        }
        metrics.update({f"mean_capacity_{p}": round(v, 2) for p, v in self.mean_capacity.items()})
        metrics.update(
            {
                "best_pathway": self.best,
                "both_at_least_best_single": self.synergy,
                "capacity_grows_with_n": self.grows,
            }
        )
        return metrics

    def samples(self) -> dict[str, list[float]]:
        """Per replicate, what the report's verdict is judged from: ``both`` minus the better single
        pathway's capacity, averaged over sizes (none without ``both`` and a single pathway)."""
        if "both" not in self.pathways or not self.singles:
            return {}
        cap = self.capacity
        return {
            "both_minus_best_single_capacity": [
                sum(cap[(n, "both")][r] - max(cap[(n, p)][r] for p in self.singles) for n in self.sizes)
                / len(self.sizes)
                for r in range(self.replicates)
            ]
        }


def packing_answer(sweep: PackingSweep) -> PackingAnswer:
    """:class:`PackingAnswer` of a :class:`PackingSweep`.

    Mean capacity: per pathway, the mean over sizes of the mean capacity over replicates; the best
    pathway has the largest (the first on a tie). *Synergy*: at every N, the summed capacity of
    ``both`` over replicates is at least that of the better single pathway. *Grows*: for every
    pathway, the summed capacity never drops from one size to the next (in the order trained).
    """
    capacity, sizes, pathways, reps = sweep.capacity(), sweep.sizes, sweep.pathways, sweep.replicates
    if not sizes:
        raise ValueError("sweep has no rows: nothing was trained")
    mean_capacity = {p: sum(sum(capacity[(n, p)]) / reps for n in sizes) / len(sizes) for p in pathways}
    singles = [p for p in ("excitability", "synaptic") if p in mean_capacity]
    synergy = None
    if "both" in mean_capacity and singles:
        synergy = all(
            sum(capacity[(n, "both")]) >= max(sum(capacity[(n, p)]) for p in singles) for n in sizes
        )
    grows = all(
        sum(capacity[(a, p)]) <= sum(capacity[(b, p)])
        for p in pathways
        for a, b in zip(sizes, sizes[1:], strict=False)
    )
    return PackingAnswer(
        capacity,
        sizes,
        pathways,
        reps,
        mean_capacity,
        max(mean_capacity, key=mean_capacity.get),
        synergy,
        grows,
    )


def context_parameter_table(model: ModulatedRNN) -> Table:
    """What each network of ``model`` (one per pathway) learns per task set: its context parameters,
    with the shared parameters (the same for every pathway) in the caption."""
    c = model.config
    rows = list(zip(model.pathways, model.context_parameters(), strict=True))
    caption = f"N = {c.n_neurons}, K = {c.n_contexts}: shared parameters {model.shared_parameters():,}"
    return table(rows, ["pathway", "context parameters"], caption=caption)


def training_time_table(stacks: dict[int, tuple[ModulatedRNN, TrainResult]]) -> Table:
    """Per size N of a :func:`packing_sweep`: how many networks trained together, for how many
    steps, in how many seconds (machine-dependent)."""
    rows = [
        [n, model.n_networks, result.history_steps[-1], result.seconds]
        for n, (model, result) in stacks.items()
    ]
    return table(rows, ["N", "networks trained together", "steps", "seconds"], formats={"seconds": ".0f"})


def largest_task_network(result: TrainResult, pathway: str) -> tuple[int, tuple[str, ...]]:
    """The first network of ``pathway`` among those trained on the most tasks: its index in the
    stack and its task list (a network worth looking inside)."""
    if pathway not in result.pathways:
        raise ValueError(
            f"pathway={pathway!r} is not in the stack; it has: {', '.join(dict.fromkeys(result.pathways))}"
        )
    most = max(len(t) for p, t in zip(result.pathways, result.tasks, strict=True) if p == pathway)
    for i, (p, t) in enumerate(zip(result.pathways, result.tasks, strict=True)):
        if p == pathway and len(t) == most:
            return i, t
    raise AssertionError("unreachable")  # pragma: no cover


def packing_sweep(
    sizes: Sequence[int],
    ks: Sequence[int],
    pathways: Sequence[str],
    replicates: int,
    task_config: TaskConfig,
    config: TrainConfig,
    *,
    order: Sequence[str] | None = None,
    device: torch.device | str = "cpu",
    rnn_kw: dict | None = None,
    progress: bool | None = None,
) -> tuple[PackingSweep, dict[int, tuple[ModulatedRNN, TrainResult]]]:
    """Train every (pathway, replicate, K) for each size N as one stack; see :class:`PackingSweep`.

    Network with K tasks learns the first K of ``order`` (default
    :data:`neuromod_lib.data.tasks.PACKING_ORDER`). Returns the sweep and, per N, the trained
    stack and its :class:`TrainResult` (for figures and widgets).
    """
    from .data.tasks import PACKING_ORDER

    order = tuple(PACKING_ORDER if order is None else order)
    pathways = check_pathways(pathways)
    check_grid(sizes, ks, replicates, len(order))
    combos = [(p, r, kk) for kk in ks for r in range(replicates) for p in pathways]
    rows, stacks = [], {}
    for n in sizes:
        gen = torch.Generator().manual_seed(config.seed * 1000 + n)
        model = ModulatedRNN(
            rnn_config(task_config, n, max(ks), **(rnn_kw or {})), [c[0] for c in combos], gen
        ).to(device)
        result = train_networks(
            model, [order[: c[2]] for c in combos], task_config, config, progress=progress
        )
        counts = model.context_parameters()
        for s, (p, r, kk) in enumerate(combos):
            rows.append(
                {
                    "n_neurons": n,
                    "pathway": p,
                    "replicate": r,
                    "k": kk,
                    "context_params": counts[s] * kk // max(ks),
                    "shared_params": model.shared_parameters(),
                    "solved": bool(result.solved[s]),
                    "min_perf": float(result.perf[s].nan_to_num(1.0).min()),
                    "solved_at": float(result.solved_at[s]),
                }
            )
        stacks[n] = (model, result)
    return PackingSweep(rows, config.criterion), stacks


def check_grid(sizes: Sequence[int], ks: Sequence[int], replicates: int, n_available: int) -> None:
    if not sizes or any(not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in sizes):
        raise ValueError(f"sizes={list(sizes)!r} must be network sizes N >= 1")
    if not ks or any(not isinstance(k, int) or isinstance(k, bool) or k < 1 for k in ks):
        raise ValueError(f"ks={list(ks)!r} must be task counts K >= 1")
    if max(ks) > n_available:
        raise ValueError(f"K={max(ks)} is larger than the {n_available} tasks available")
    if not isinstance(replicates, int) or isinstance(replicates, bool) or replicates < 1:
        raise ValueError(f"replicates={replicates!r} must be an integer >= 1")


# --- ambiguity ------------------------------------------------------------------------------
def _score(
    model: ModulatedRNN, task: str, contexts: torch.Tensor, trials: int, task_config: TaskConfig, seed: int
) -> torch.Tensor:
    """Mean performance ``(S, C)`` on ``trials`` trials of ``task`` under each context ``(C, K)``."""
    ids = task_index(task).expand(contexts.shape[0], trials).contiguous()
    batch = generate(ids, task_config, torch.Generator().manual_seed(seed))
    device = model.w_in.device
    with torch.no_grad():
        outputs, _ = model(batch.inputs.to(device), contexts.to(device), noise=True)
    return performance(outputs, batch.to(device)).mean(-1).cpu()


def mixtures(k: int, a: int, b: int, lambdas: Sequence[float]) -> torch.Tensor:
    """Context vectors ``(L, k)``: ``(1 - lam) e_a + lam e_b`` for each lam."""
    lam = torch.as_tensor(list(lambdas), dtype=torch.float32)
    eye = torch.eye(k)
    return (1 - lam)[:, None] * eye[a] + lam[:, None] * eye[b]


def mixture_performance(
    model: ModulatedRNN,
    tasks: Sequence[str],
    a: int,
    b: int,
    lambdas: Sequence[float],
    task_config: TaskConfig,
    *,
    trials: int = 64,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Performance ``(S, L)`` on task ``tasks[a]`` and on ``tasks[b]`` under ``(1-lam) e_a + lam e_b``."""
    contexts = mixtures(model.config.n_contexts, a, b, lambdas)
    return (
        _score(model, tasks[a], contexts, trials, task_config, seed),
        _score(model, tasks[b], contexts, trials, task_config, seed + 1),
    )


def noise_performance(
    model: ModulatedRNN,
    tasks: Sequence[str],
    sigmas: Sequence[float],
    task_config: TaskConfig,
    *,
    draws: int = 16,
    trials: int = 8,
    seed: int = 0,
) -> torch.Tensor:
    """Performance ``(S, len(sigmas))`` averaged over the tasks, with contexts ``e_j + sigma * xi``.

    For each task and sigma, ``draws`` noisy contexts (Gaussian ``xi`` over all K entries) are
    drawn and ``trials`` trials run under each.
    """
    k = model.config.n_contexts
    gen = torch.Generator().manual_seed(seed)
    xi = torch.randn(len(tasks), draws, k, generator=gen)
    out = []
    for sigma in sigmas:
        scores = [
            _score(model, task, torch.eye(k)[j] + sigma * xi[j], trials, task_config, seed + j).mean(1)
            for j, task in enumerate(tasks)
        ]
        out.append(torch.stack(scores, 1).mean(1))
    return torch.stack(out, 1)


def network_trials(
    model: ModulatedRNN,
    network: int,
    task: str,
    context: int,
    task_config: TaskConfig,
    *,
    trials: int = 4,
    seed: int = 0,
) -> tuple[TrialBatch, torch.Tensor]:
    """Outputs ``(B, T, O)`` of network ``network`` of ``model`` on ``trials`` trials of ``task``
    under the one-hot context ``context`` (noise-free), with the trials' :class:`TrialBatch`."""
    if not 0 <= network < model.n_networks:
        raise ValueError(f"network={network} must lie in [0, {model.n_networks - 1}]")
    batch = generate(
        task_index(task).expand(trials).contiguous(), task_config, torch.Generator().manual_seed(seed)
    )
    device = model.w_in.device
    with torch.no_grad():
        outputs, _ = model(batch.inputs.to(device)[None], torch.tensor([context], device=device), noise=False)
    return batch, outputs[network, 0].cpu()


# --- dynamics -------------------------------------------------------------------------------
def trajectories(
    model: ModulatedRNN,
    task: str,
    contexts: torch.Tensor,
    task_config: TaskConfig,
    *,
    trials: int = 16,
    seed: int = 0,
) -> tuple[TrialBatch, torch.Tensor, torch.Tensor]:
    """Noise-free states ``(S, C, B, T, N)`` and outputs of ``trials`` trials of ``task`` per context.

    The same trials (same stimuli and timing) are run under every context ``(C, K)``.
    """
    ids = task_index(task).expand(trials)
    batch = generate(ids.contiguous(), task_config, torch.Generator().manual_seed(seed))
    device = model.w_in.device
    inputs = batch.inputs.to(device)[None].expand(contexts.shape[0], -1, -1, -1)
    with torch.no_grad():
        outputs, states = model(inputs, contexts.to(device), noise=False)
    return batch, states.cpu(), outputs.cpu()


def fixed_points(
    model: ModulatedRNN,
    inputs: torch.Tensor,
    contexts: torch.Tensor,
    initial: torch.Tensor,
    *,
    steps: int = 1500,
    lr: float = 1e-2,
    tol: float = 1e-6,
    noise: float = 0.0,
    seed: int = 0,
) -> FixedPoints:
    """Fixed points of every network for a constant input ``(I,)`` under each context ``(C, K)``.

    ``initial`` ``(S, C, P, N)``: P starting states per network and context (e.g. states
    visited by trajectories). Returns :class:`~neuromod_lib.analysis.FixedPoints` whose
    ``points`` are ``(S * C * P, N)`` in that order.
    """
    s, c, p, n = initial.shape
    device = model.w_in.device
    ctx = contexts.to(device).repeat_interleave(p, 0)  # (C*P, K)
    u = inputs.to(device).expand(c * p, -1)

    with torch.no_grad():  # the weights are constants here: gradients (and Jacobians) only w.r.t. r
        step = model.transition(u, ctx)

    def F(r: torch.Tensor) -> torch.Tensor:
        return step(r.reshape(s, c * p, n)).reshape(s * c * p, n)

    return find_fixed_points(
        F,
        initial.reshape(-1, n).to(device),
        steps=steps,
        lr=lr,
        tol=tol,
        noise=noise,
        generator=torch.Generator().manual_seed(seed),
    )


__all__ = [
    "TASKS",
    "PackingAnswer",
    "PackingSweep",
    "RNNSetup",
    "TrainConfig",
    "TrainResult",
    "evaluate_networks",
    "fixed_points",
    "mixture_performance",
    "check_grid",
    "context_parameter_table",
    "largest_task_network",
    "packing_answer",
    "training_time_table",
    "mixtures",
    "network_trials",
    "noise_performance",
    "rnn_setup",
    "packing_sweep",
    "rnn_config",
    "train_networks",
    "trajectories",
]
