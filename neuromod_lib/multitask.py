"""Training many context-modulated RNNs on cognitive tasks at once, and the experiments on them.

The protocol of Vedovati & Ching (2024) on the tasks of :mod:`neuromod_lib.data.tasks`:

- :func:`train_networks` trains a stack of networks (:class:`~neuromod_lib.models.rnn.ModulatedRNN`,
  one pathway each), each on its own list of tasks, in one batched forward pass per step,
  with :func:`neuromod_lib.training.fit` (an "epoch" is ``eval_every`` steps). Network ``s``
  learns task ``j`` of its list under the one-hot context ``e_j``. It trains the whole budget,
  or (``stop_when_solved``) until every network is at criterion on every task, and scores the
  verdict on a large evaluation at the end and at 2/3 of the budget (the saturation check).
  The packing experiment built on it is :mod:`neuromod_lib.packing`; the ambiguity analysis
  :mod:`neuromod_lib.ambiguity`.
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
from dataclasses import dataclass, field, fields
from typing import Any

import torch

from .analysis import FixedPoints, find_fixed_points
from .checks import Check, check_fields, is_int, is_number
from .data.tasks import TASKS, TaskConfig, TrialBatch, generate, performance, task_index
from .models.rnn import ModulatedRNN, RNNConfig, check_pathways, masked_mse
from .tables import Table, table
from .training import FitConfig, fit


@dataclass(frozen=True)
class TrainConfig:
    """How :func:`train_networks` trains (defaults follow Yang et al.: Adam, lr 1e-3, batch 64).

    ``batch``: trials per network per step, spread evenly over its tasks; ``eval_every``: steps
    between evaluations on ``eval_trials`` fixed trials per task (the learning curves and the
    steps to criterion); ``criterion``: the performance every task must reach for a network to
    count as having learned its tasks. The verdict "solved" comes from a larger evaluation,
    ``final_trials`` fixed trials per task, at the end of training; the same evaluation at
    :attr:`check_step` (about 2/3 of the budget) says whether that verdict was already reached
    there (the saturation check). ``stop_when_solved``: stop as soon as every network is at
    criterion on every task (on the small evaluation); else train the whole budget.
    """

    steps: int = 2000
    batch: int = 64
    lr: float = 1e-3
    grad_clip: float = 1.0
    eval_every: int = 100
    eval_trials: int = 64
    criterion: float = 0.9
    seed: int = 0
    final_trials: int = 256
    stop_when_solved: bool = True

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
                *(count(n) for n in ("steps", "batch", "eval_every", "eval_trials", "final_trials")),
                ("steps", divides, "a multiple of eval_every", multiple),
                ("lr", is_number(self.lr) and 0 < self.lr <= 1, "a number in (0, 1]"),
                ("grad_clip", is_number(self.grad_clip) and self.grad_clip > 0, "a finite number > 0"),
                ("criterion", is_number(self.criterion) and 0 < self.criterion <= 1, "a number in (0, 1]"),
                ("seed", is_int(self.seed) and self.seed >= 0, "an integer >= 0"),
                ("stop_when_solved", isinstance(self.stop_when_solved, bool), "True or False"),
            ],
        )

    @property
    def check_step(self) -> int:
        """The evaluation step nearest 2/3 of the budget, where the saturation check is made."""
        return self.eval_every * max(1, round(2 * self.steps / (3 * self.eval_every)))


@dataclass
class TrainResult:
    """What :func:`train_networks` returns; performances are NaN beyond a network's K.

    ``perf`` ``(S, Kmax)``: performance per network and task position on ``final_trials`` trials
    at the end, which the verdict ``solved`` reads; ``at_check``: the same at ``check_step`` (NaN
    if training stopped earlier); ``history`` ``(E, S, Kmax)`` on ``eval_trials`` trials after each
    of the steps in ``history_steps``; ``solved_at`` ``(S,)``: the first evaluated step at which
    every task was at criterion (NaN if never): the steps to criterion.
    """

    pathways: tuple[str, ...]
    tasks: list[tuple[str, ...]]
    perf: torch.Tensor
    history: torch.Tensor
    history_steps: list[int]
    solved_at: torch.Tensor
    criterion: float
    seconds: float
    at_check: torch.Tensor
    check_step: int
    losses: list[float] = field(default_factory=list)

    @property
    def solved(self) -> torch.Tensor:
        """``(S,)`` bool: every task of the network at criterion at the end (large evaluation)."""
        return _solved(self.perf, self.criterion)

    @property
    def solved_at_check(self) -> torch.Tensor:
        """``(S,)`` bool: the same verdict at ``check_step`` (False where it was not evaluated)."""
        return _solved(self.at_check, self.criterion) & ~self.at_check.isnan().all(-1)

    @property
    def saturated(self) -> torch.Tensor:
        """``(S,)`` bool: the verdict at the end is the one at ``check_step`` (more steps changed nothing)."""
        checked = ~self.at_check.isnan().all(-1)
        return checked & (self.solved == self.solved_at_check)

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


@dataclass
class Evaluation:
    """Fixed evaluation trials shared by every network of a stack: ``trials`` per task of the union
    of their task lists, ``batch`` ``(U, trials)``; ``context`` ``(S, U)``: each task's position in
    network ``s``'s list (0 where it is not one of its tasks); ``where`` ``(S, Kmax)``: the index
    into the union of each network's task position; ``valid`` ``(S, Kmax)``: positions below K."""

    batch: TrialBatch
    context: torch.Tensor
    where: torch.Tensor
    valid: torch.Tensor


def evaluation_batch(
    table: torch.Tensor, k: torch.Tensor, trials: int, task_config: TaskConfig, seed: int
) -> Evaluation:
    """The fixed evaluation trials of the task ``table`` ``(S, Kmax)`` (``k`` tasks each), from ``seed``."""
    kmax = table.shape[1]
    valid = torch.arange(kmax)[None] < k[:, None]
    union = torch.unique(table[valid])
    where = (table[..., None] == union).float().argmax(-1)
    context = torch.zeros(table.shape[0], len(union), dtype=torch.long)
    rows = torch.arange(table.shape[0])[:, None].expand(-1, kmax)
    context[rows[valid], where[valid]] = torch.arange(kmax).expand_as(table)[valid]
    ids = union[:, None].expand(-1, trials).contiguous()
    batch = generate(ids, task_config, torch.Generator().manual_seed(seed))
    return Evaluation(batch, context, where, valid)


#: floats an evaluation chunk may hold in inputs, states and outputs together (about 60 MB each)
_EVAL_CHUNK = 15_000_000


def _floats_per_trial(model: ModulatedRNN, steps: int, groups: int) -> int:
    """Floats one trial costs in a forward pass of every network under ``groups`` contexts: the
    inputs (expanded per network), the hidden states and the outputs, all ``steps`` long."""
    c = model.config
    return steps * model.n_networks * groups * (c.n_inputs + c.n_neurons + c.n_outputs)


def evaluate_networks(model: ModulatedRNN, evaluation: Evaluation) -> torch.Tensor:
    """Performance ``(S, Kmax)`` of each network on the evaluation trials of its tasks (NaN beyond its K).

    Run with the networks' noise, as in training (Yang et al. evaluate with noise too), in chunks of
    trials so that memory stays bounded whatever the stack.
    """
    device = model.w_in.device
    batch = evaluation.batch
    u, trials = batch.shape
    chunk = max(1, min(trials, _EVAL_CHUNK // _floats_per_trial(model, batch.steps, u)))
    context = evaluation.context.to(device)
    scores = []
    with torch.no_grad():
        for start in range(0, trials, chunk):
            part = _trials_slice(batch, start, start + chunk)
            outputs, _ = model(part.inputs.to(device), context, noise=True)
            scores.append(performance(outputs, part.to(device)).sum(-1).cpu())
    perf = torch.stack(scores).sum(0) / trials  # (S, U)
    perf = perf.gather(1, evaluation.where)
    return perf.masked_fill(~evaluation.valid, math.nan)


def _trials_slice(batch: TrialBatch, start: int, stop: int) -> TrialBatch:
    """Trials ``start:stop`` of the last batch axis of ``batch`` (every field sliced alike)."""
    moved = {}
    for f in fields(batch):
        value = getattr(batch, f.name)
        if f.name == "config":
            moved[f.name] = value
        elif value.dim() == batch.task.dim():
            moved[f.name] = value[..., start:stop]
        else:  # (*shape, T[, units])
            extra = value.dim() - batch.task.dim()
            index = (slice(None),) * (batch.task.dim() - 1) + (slice(start, stop),) + (slice(None),) * extra
            moved[f.name] = value[index]
    return TrialBatch(**moved)


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
    routine = evaluation_batch(table, k, config.eval_trials, task_config, config.seed + 1)
    large = evaluation_batch(table, k, config.final_trials, task_config, config.seed + 2)
    per_group = math.ceil(config.batch / table.shape[1])
    epochs = config.steps // config.eval_every
    history: list[torch.Tensor] = []
    state: dict[str, Any] = {"step": 0, "at_check": None}

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
        perf = evaluate_networks(net, routine)
        history.append(perf)
        if state["step"] == config.check_step:
            state["at_check"] = evaluate_networks(net, large)
        return {"solved": float(_solved(perf, config.criterion).float().mean())}

    start = time.perf_counter()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    fit_config = FitConfig(
        epochs,
        monitor="solved",
        mode="max",
        target=1.0 if config.stop_when_solved else None,
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
    final = evaluate_networks(model, large)
    hist = torch.stack(history)
    steps = [config.eval_every * (e + 1) for e in range(len(history))]
    solved = _solved(hist, config.criterion)  # (E, S)
    first = torch.where(solved.any(0), solved.float().argmax(0).float(), torch.tensor(math.nan))
    solved_at = torch.where(first.isnan(), first, (first + 1) * config.eval_every)
    at_check = state["at_check"] if state["at_check"] is not None else torch.full_like(final, math.nan)
    return TrainResult(
        model.pathways,
        [tuple(t) for t in task_lists],
        final,
        hist,
        steps,
        solved_at,
        config.criterion,
        time.perf_counter() - start,
        at_check,
        config.check_step,
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
        final_trials=cfg.final_trials,
        stop_when_solved=not cfg.full_budget,
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


def context_parameter_table(model: ModulatedRNN) -> Table:
    """What each network of ``model`` (one per pathway) learns per task set: its context parameters,
    with the shared parameters (the same for every pathway) in the caption."""
    c = model.config
    rows = list(zip(model.pathways, model.context_parameters(), strict=True))
    caption = f"N = {c.n_neurons}, K = {c.n_contexts}: shared parameters {model.shared_parameters()[0]:,}"
    return table(rows, ["pathway", "context parameters"], caption=caption)


def largest_task_network(
    result: TrainResult, pathway: str, *, sizes: Sequence[int] | None = None, n_neurons: int | None = None
) -> tuple[int, tuple[str, ...]]:
    """The first network of ``pathway`` (and, given each network's ``sizes``, of ``n_neurons``) among
    those trained on the most tasks: its index in the stack and its task list."""
    if pathway not in result.pathways:
        raise ValueError(
            f"pathway={pathway!r} is not in the stack; it has: {', '.join(dict.fromkeys(result.pathways))}"
        )
    rows = [
        i
        for i, p in enumerate(result.pathways)
        if p == pathway and (sizes is None or n_neurons is None or sizes[i] == n_neurons)
    ]
    if not rows:
        raise ValueError(
            f"n_neurons={n_neurons!r}: no {pathway} network of that size; sizes: {sorted(set(sizes))}"
        )
    most = max(len(result.tasks[i]) for i in rows)
    first = next(i for i in rows if len(result.tasks[i]) == most)
    return first, result.tasks[first]


# --- ambiguity ------------------------------------------------------------------------------
def _score(
    model: ModulatedRNN, task: str, contexts: torch.Tensor, trials: int, task_config: TaskConfig, seed: int
) -> torch.Tensor:
    """Mean performance ``(S, C)`` on ``trials`` trials of ``task`` under each context ``(C, K)``.

    Paired: the same trials (drawn from ``seed``) and the same network noise under every context
    (contexts run in chunks, each with the noise generator seeded alike, so memory stays bounded).
    """
    ids = task_index(task).expand(trials).contiguous()
    batch = generate(ids, task_config, torch.Generator().manual_seed(seed)).to(model.w_in.device)
    chunk = max(1, _EVAL_CHUNK // (_floats_per_trial(model, batch.steps, 1) * trials))
    scores = []
    with torch.no_grad():
        for start in range(0, contexts.shape[0], chunk):
            part = contexts[start : start + chunk].to(model.w_in.device)
            inputs = batch.inputs[None].expand(part.shape[0], -1, -1, -1)
            noise = torch.Generator().manual_seed(seed + 1)
            outputs, _ = model(inputs, part, noise=True, generator=noise, paired_noise=True)
            scores.append(performance(outputs, batch).mean(-1).cpu())
    return torch.cat(scores, 1)


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
    """Performance ``(S, L)`` on task ``tasks[a]`` and on ``tasks[b]`` under ``(1-lam) e_a + lam e_b``.

    Paired: every λ sees the same trials and the same network noise; both tasks' trials come from
    the same draws (so two tasks of one family, such as Go and Anti, see the very same stimuli).
    """
    contexts = mixtures(model.config.n_contexts, a, b, lambdas)
    return (
        _score(model, tasks[a], contexts, trials, task_config, seed),
        _score(model, tasks[b], contexts, trials, task_config, seed),
    )


def noise_performance(
    model: ModulatedRNN,
    tasks: Sequence[str],
    sigmas: Sequence[float],
    task_config: TaskConfig,
    *,
    draws: int = 16,
    trials: int = 16,
    seed: int = 0,
) -> torch.Tensor:
    """Performance ``(S, len(sigmas))`` averaged over the tasks, with contexts ``e_j + sigma * xi``.

    For each task, ``draws`` Gaussian directions ``xi`` (over all K entries) are drawn once and
    scaled by each sigma, and the same ``trials`` trials run under each of them with the same
    network noise: the levels differ by sigma alone.
    """
    k = model.config.n_contexts
    gen = torch.Generator().manual_seed(seed)
    xi = torch.randn(len(tasks), draws, k, generator=gen)
    sig = torch.tensor([float(v) for v in sigmas])
    scores = []
    for j, task in enumerate(tasks):
        contexts = (torch.eye(k)[j] + sig[:, None, None] * xi[j]).reshape(-1, k)  # (len(sigmas) * draws, K)
        score = _score(model, task, contexts, trials, task_config, seed + 1 + j)
        scores.append(score.reshape(-1, len(sig), draws).mean(-1))
    return torch.stack(scores, 1).mean(1)


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
    "RNNSetup",
    "TrainConfig",
    "TrainResult",
    "Evaluation",
    "evaluate_networks",
    "evaluation_batch",
    "fixed_points",
    "mixture_performance",
    "context_parameter_table",
    "largest_task_network",
    "mixtures",
    "network_trials",
    "noise_performance",
    "rnn_setup",
    "rnn_config",
    "train_networks",
    "trajectories",
]
