"""Every modulation family on the same tasks, behind one context interface: notebook 07.

No single paper compares them; here each family learns the same task sets, and every number of
the comparison table is measured the same way. A *family* is a way a context vector ``c``
(``(B, T)``: one-hot for a known task, a mixture when the task is ambiguous, a noisy vector
otherwise; see :func:`neuromod_lib.modulation.context_vectors`) changes a shared network, each
with the formula of :mod:`neuromod_lib.modulation` that every model uses:

- ``deterministic_gain`` (Boeshertz et al.): ``h = relu(W x + b) * exp(c G)``;
- ``stochastic_gain`` (stochastic comodulation, as notebook 02 runs it): ``h = relu(W x + b) *
  exp(g m - sigma_m^2 g^2 / 2)`` with couplings ``g = c w²`` (``w`` starts at 1: every unit is
  coupled from the start) and a shared modulator ``m = 1 + sigma_m xi`` per sample in training
  (the mean gain ``exp(g)`` in evaluation), read out by the modulator-guided readout;
- ``excitability`` (Vedovati & Ching): ``h = relu((1 + c G) * (W x + b) + c B)``, a gain and a
  bias on every unit's input (the RNN's excitability, :func:`~neuromod_lib.modulation.excitability`);
- ``synaptic`` (Vedovati & Ching): ``h = relu((W + sum_k c_k U_k V_k^T) x + b)``, a rank-r change of
  the weights per task;
- ``random_weights`` (Hong & Pavlic): fixed sparse random weights and readout, a learned context
  and strength per task (:class:`~neuromod_lib.models.random_weights.RandomWeightNet`).

``finetune`` (the dense network trained task after task, :mod:`neuromod_lib.continual`) is the
reference that forgets. Every family and reference is built by name with
:func:`neuromod_lib.continual.make_learner` and called the same way
(:class:`~neuromod_lib.modulation.ContextModel`): ``model(x, context)`` with task ids or context
vectors, ``model.all_task_logits(x)``.

Task sets (``TASK_SETS``): ``attributes`` (binary attributes of the images of notebooks 01–02,
as features of the frozen pretrained CNN), ``digits`` (a continual digit sequence of notebook 06)
and ``cognitive`` (Yang et al.'s tasks of notebooks 04–05, for the families an RNN has:
``RNN_PATHWAYS``). The feedforward task sets are learned task after task by the runner of
notebook 06 (:func:`neuromod_lib.continual.run_learner`): accuracy matrix, forgetting,
parameters and bytes per task and seconds per task come from it.

Design choices (ours; the papers do not compare families):

- the shared layer ``W, b`` (width ``H``: the random-weight network's, ``expansion * D``) and, by
  default, one shared readout are learned on the first task together with that task's
  modulation, then frozen: the pretrain-then-modulate protocol of notebooks 01–03 in continual
  form. Every later task learns only its modulation (Adam, ``lr``; the shared layer
  ``trunk_lr``), so the context alone names the task, as in the RNNs and the random-weight
  network. ``readout="per_task"`` gives each task its own linear head instead (notebooks 01–03);
- stochastic gains keep the guided readout's per-task unit weights (statistics, stored: they
  count in the bytes per task, not in the learned values); they are mixed by the context too;
- per-task tensors live in ``(T, ...)`` tables; a one-hot context gives the other tasks' rows
  exactly zero gradient and a fresh Adam moves a zero-gradient entry by exactly 0, so earlier
  tasks cannot change (the tests check every column of the accuracy matrix is constant);
- ``rank=None`` matches the synaptic family's per-task count ``r (H + D)`` to excitability's ``2H``;
- robustness: accuracy of task ``a`` (with a per-task readout, its own head) under the context
  ``(1 - lam) e_a + lam e_b`` (``b`` the next task) and under ``e_a + sigma xi`` (``xi ~ N(0, I)`` per
  test sample), as a fraction of the accuracy under ``e_a``. ``finetune`` has no context beyond the
  head's index: n/a. :func:`needs` ranks robustness only among families within 10 accuracy
  points of the best (a family near chance keeps its accuracy under any context);
- cognitive tasks: the stacked RNNs of notebook 04 trained jointly on all tasks (not in sequence:
  forgetting n/a); performance, mixtures and noise as in notebook 05; seconds per task is the
  stack's time per network per task.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import continual, multitask
from .checks import check_fields, is_int, is_number
from .continual import (
    MODULATION_FAMILIES,
    READOUTS,
    ContinualConfig,
    ContinualResult,
    Learner,
    make_learner,
    run_learner,
)
from .data.sequences import Task, TaskSequence
from .device import seeded
from .models.rnn import ModulatedRNN
from .modulation import (
    apply_gain,
    draw_modulator,
    excitability,
    exp_gain,
    lowrank_change,
    mix,
    stochastic_log_gain,
)
from .readout import ModulatorStatistics, TaskHeads
from .training import TrainingDiverged

__all__ = [
    "FAMILIES",
    "REFERENCES",
    "RNN_PATHWAYS",
    "TASK_SETS",
    "ContextMLP",
    "FamilyConfig",
    "Row",
    "ambiguity_curve",
    "cognitive_rows",
    "feature_sequence",
    "needs",
    "noise_accuracy",
    "measure_family",
]

FAMILIES: tuple[str, ...] = (*MODULATION_FAMILIES, "random_weights")
REFERENCES: tuple[str, ...] = ("finetune",)  # learned task after task without any modulation
TASK_SETS: tuple[str, ...] = ("attributes", "digits", "cognitive")
#: the families an RNN has (notebooks 04-05), as ModulatedRNN pathways
RNN_PATHWAYS: dict[str, str] = {"excitability": "excitability", "synaptic": "synaptic"}


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class FamilyConfig:
    """How the feedforward families learn a task sequence; checked when made.

    ``epochs``/``batch``: per task; ``lr``: Adam on modulation and heads; ``trunk_lr``: Adam on the
    shared layer (first task only); ``rank``: synaptic rank (None: matched to excitability);
    ``sigma_m``: the stochastic modulator's std; ``expansion``/``inputs_per_unit``/``rw_lr``: the
    random-weight network (also sets the shared width ``H``); ``dense_lr``: the finetune reference.
    """

    epochs: int = 3
    batch: int = 128
    lr: float = 1e-2
    trunk_lr: float = 1e-3
    readout: str = "shared"
    rank: int | None = None
    sigma_m: float = 0.1
    expansion: float = 10.0
    inputs_per_unit: int = 7
    rw_lr: float = 1e-2
    dense_lr: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        positive = "a finite number > 0"
        check_fields(
            self,
            [
                ("epochs", is_int(self.epochs) and self.epochs >= 1, "an integer >= 1"),
                ("batch", is_int(self.batch) and self.batch >= 1, "an integer >= 1"),
                ("lr", is_number(self.lr) and self.lr > 0, positive),
                ("trunk_lr", is_number(self.trunk_lr) and self.trunk_lr > 0, positive),
                ("readout", self.readout in READOUTS, " or ".join(READOUTS)),
                (
                    "rank",
                    self.rank is None or is_int(self.rank) and self.rank >= 1,
                    "None or an integer >= 1",
                ),
                ("sigma_m", is_number(self.sigma_m) and self.sigma_m >= 0, "a finite number >= 0"),
                ("expansion", is_number(self.expansion) and self.expansion >= 1, "a finite number >= 1"),
                (
                    "inputs_per_unit",
                    is_int(self.inputs_per_unit) and self.inputs_per_unit >= 1,
                    "an integer >= 1",
                ),
                ("rw_lr", is_number(self.rw_lr) and self.rw_lr > 0, positive),
                ("dense_lr", is_number(self.dense_lr) and self.dense_lr > 0, positive),
                ("seed", is_int(self.seed) and self.seed >= 0, "an integer >= 0"),
            ],
        )

    def continual(self) -> ContinualConfig:
        """The runner's and the factory's config: the same values, under their names there."""
        return ContinualConfig(
            epochs=self.epochs,
            batch=self.batch,
            seed=self.seed,
            rw_lr=self.rw_lr,
            expansion=self.expansion,
            inputs_per_unit=self.inputs_per_unit,
            dense_lr=self.dense_lr,
            modulation_lr=self.lr,
            trunk_lr=self.trunk_lr,
            readout=self.readout,
            rank=self.rank,
            sigma_m=self.sigma_m,
        )


def check_families(
    families: Sequence[str], allowed: Sequence[str] = FAMILIES + REFERENCES, name: str = "families"
) -> tuple[str, ...]:
    """``families`` as a non-empty tuple of known names; ``ValueError`` naming parameter ``name`` and
    the allowed ones."""
    names = tuple(families)
    bad = [f for f in names if f not in allowed]
    if bad or not names:
        raise ValueError(f"{name}={list(names)!r}: unknown or empty; allowed: {', '.join(allowed)}")
    return names


# --------------------------------------------------------------------------- the model


def matched_rank(hidden: int, n_inputs: int) -> int:
    """The rank whose ``r (H + D)`` values per task come closest to excitability's ``2H`` (>= 1)."""
    return max(1, round(2 * hidden / (hidden + n_inputs)))


class _Family(nn.Module):
    """One family's per-task tables ``(T, ...)`` (its parameters) and where they act on the shared layer.

    ``drive(z, x, c)``: the drive ``z = W x + b`` ``(B, H)`` of inputs ``x`` ``(B, D)`` under context
    vectors ``c`` ``(B, T)``, before the ReLU; ``activity(h, c, tasks)``: the activity ``h`` ``(B, H)``
    after it. Both leave their input unchanged unless the family acts there; every formula is a
    function of :mod:`neuromod_lib.modulation`. ``noise``: the generator of any random draw, set by
    :class:`ContextMLP`. ``stored_per_task``: values stored per task beyond the parameters.
    """

    noise: torch.Generator | None = None
    stored_per_task: int = 0

    def drive(self, z: Tensor, x: Tensor, c: Tensor) -> Tensor:
        return z

    def activity(self, h: Tensor, c: Tensor, tasks: Tensor) -> Tensor:
        return h


class _DeterministicGain(_Family):
    """Boeshertz et al.: ``h * exp(c G)``, a positive gain per unit (G = 0: gain 1)."""

    def __init__(self, n_tasks: int, n_inputs: int, hidden: int, **_: Any) -> None:
        super().__init__()
        self.log_gain = nn.Parameter(torch.zeros(n_tasks, hidden))

    def activity(self, h: Tensor, c: Tensor, tasks: Tensor) -> Tensor:
        return exp_gain(h, mix(c, self.log_gain))


class _StochasticGain(_Family):
    """Stochastic comodulation as notebook 02 runs it (Boeshertz, Haimerl & Savin's reading):
    couplings ``g = c w²`` with ``w`` starting at 1, so that every unit is coupled to the modulator
    from the start and a new task's guided-readout statistics are not estimation noise; the gain
    ``h * exp(g m - sigma_m^2 g^2 / 2)`` with one modulator ``m = 1 + sigma_m xi`` per sample in
    training, and its mean gain ``exp(g)`` (m = 1, no variance term) in evaluation; then the guided
    readout's unit weights, mixed by the context too."""

    def __init__(self, n_tasks: int, n_inputs: int, hidden: int, *, sigma_m: float, **_: Any) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(n_tasks, hidden))  # coupling w², 1 at start
        self.sigma_m = sigma_m
        self.guide = ModulatorStatistics(n_tasks, hidden)  # per-task unit weights (statistics)
        self.stored_per_task = hidden

    def activity(self, h: Tensor, c: Tensor, tasks: Tensor) -> Tensor:
        coupling = mix(c, self.w.square())
        m = draw_modulator(
            len(h), self.sigma_m, draw=self.training, mean=1.0, generator=self.noise, device=h.device
        )
        if self.training:
            h = exp_gain(h, stochastic_log_gain(coupling, m, self.sigma_m))
            self.guide.update(h, tasks, m)
        else:
            h = exp_gain(h, coupling)  # the mean gain
        return apply_gain(h, mix(c, self.guide.weights))


class _Excitability(_Family):
    """Vedovati & Ching: ``relu((1 + c G) * (W x + b) + c B)``, a gain and a bias on every unit's input."""

    def __init__(self, n_tasks: int, n_inputs: int, hidden: int, **_: Any) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.zeros(n_tasks, hidden))
        self.bias = nn.Parameter(torch.zeros(n_tasks, hidden))

    def drive(self, z: Tensor, x: Tensor, c: Tensor) -> Tensor:
        return excitability(z, c, self.gain, self.bias)


class _Synaptic(_Family):
    """Vedovati & Ching: ``relu((W + sum_k c_k U_k V_k^T) x + b)``, a rank-r change of the weights per
    task; ``U`` starts at 0 ("no change", like LoRA), ``V`` random, stored as ``V^T`` ``(T, r, D)``."""

    def __init__(
        self, n_tasks: int, n_inputs: int, hidden: int, *, rank: int | None, gen: torch.Generator, **_: Any
    ) -> None:
        super().__init__()
        r = rank or matched_rank(hidden, n_inputs)
        self.u = nn.Parameter(torch.zeros(n_tasks, hidden, r))
        self.v = nn.Parameter(torch.randn(n_tasks, r, n_inputs, generator=gen) / math.sqrt(n_inputs))

    def drive(self, z: Tensor, x: Tensor, c: Tensor) -> Tensor:
        return z + lowrank_change(c, self.u, self.v.transpose(1, 2), x)


#: family -> its modulation of the shared layer
_FAMILIES: dict[str, type[_Family]] = {
    "deterministic_gain": _DeterministicGain,
    "stochastic_gain": _StochasticGain,
    "excitability": _Excitability,
    "synaptic": _Synaptic,
}


class ContextMLP(Learner):
    """A shared layer ``D -> H`` modulated by one of the four MLP families, then a linear readout.

    ``readout="shared"``: one readout for every task, learned with the shared layer on the first
    task and frozen with it, so the context alone tells the network which task it does (as in the
    RNNs and the random-weight network). ``"per_task"``: a head per task (notebooks 01–03's
    protocol), which carries part of the task itself.

    A :class:`~neuromod_lib.modulation.ContextModel`: ``net(x (B, D), context)`` with task ids
    ``(B,)`` or context vectors ``(B, T)`` (``T``: the tasks it was made for); every training and
    evaluation pass (one-hot, mixed or noisy contexts) goes through :meth:`_modulated`. The family
    (``modulation``, see :data:`_FAMILIES`) acts on the drive ``W x + b`` or on the activity after the
    ReLU.
    """

    def __init__(
        self,
        family: str,
        n_inputs: int,
        hidden: int,
        n_classes: int,
        n_tasks: int,
        gen: torch.Generator,
        *,
        readout: str = "shared",
        rank: int | None = None,
        sigma_m: float = 0.1,
        lr: float = 1e-2,
        trunk_lr: float = 1e-3,
    ) -> None:
        super().__init__()
        check_families([family], MODULATION_FAMILIES)
        if readout not in READOUTS:
            raise ValueError(f"readout={readout!r} is unknown; allowed: {', '.join(READOUTS)}")
        self.family, self.lrs = family, (lr, trunk_lr)
        self.shared_readout = readout == "shared"
        self.total, self.seen = n_tasks, 0
        self.trunk = continual._linear(n_inputs, hidden, gen)
        self.modulation = _FAMILIES[family](
            n_tasks, n_inputs, hidden, rank=rank, sigma_m=float(sigma_m), gen=gen
        )  # the synaptic family draws V from gen here
        self.heads = TaskHeads(1 if self.shared_readout else n_tasks, hidden, n_classes)
        bound = 1 / math.sqrt(hidden)
        with torch.no_grad():  # nn.Linear's init, drawn from gen (not the global RNG)
            self.heads.weight.uniform_(-bound, bound, generator=gen)
            self.heads.bias.uniform_(-bound, bound, generator=gen)
        self.modulation.noise = torch.Generator().manual_seed(int(torch.randint(2**31, (1,), generator=gen)))

    # --- Learner interface (continual.run_learner) ------------------------------------------
    @property
    def n_tasks(self) -> int:
        return self.seen

    @property
    def n_contexts(self) -> int:
        """Context vectors have one weight per task the network was made for (seen or not)."""
        return self.total

    def begin_task(self, task: int) -> None:
        if task >= self.total:
            raise ValueError(f"task {task} is beyond the {self.total} tasks this network was made for")
        self.seen = task + 1

    def _task_tensors(self) -> list[Tensor]:
        """The ``(T, ...)`` tables of per-task values (a task's values are row ``t`` of each)."""
        tables = list(self.modulation.parameters())
        return tables if self.shared_readout else tables + list(self.heads.parameters())

    def _shared(self) -> list[Tensor]:
        return list(self.trunk.parameters()) + (list(self.heads.parameters()) if self.shared_readout else [])

    def parameters_for(self, task: int) -> list[Tensor]:
        return (self._shared() if task == 0 else []) + self._task_tensors()

    def optimizer(self, params: list[Tensor], config: ContinualConfig) -> torch.optim.Optimizer:
        lr, trunk_lr = self.lrs
        trunk = {id(p) for p in self.trunk.parameters()}
        groups = [
            {"params": [p for p in params if id(p) not in trunk], "lr": lr},
            {"params": [p for p in params if id(p) in trunk], "lr": trunk_lr},
        ]
        return torch.optim.Adam([g for g in groups if g["params"]])

    def end_task(self, task: int, x: Tensor, y: Tensor) -> None:
        if task == 0:
            for p in self._shared():
                p.requires_grad_(False)

    def _logits(self, x: Tensor, task_ids: Tensor) -> Tensor:
        return self._modulated(x, F.one_hot(task_ids, self.total).to(x.dtype), task_ids)

    def _all_task_logits(self, x: Tensor) -> Tensor:
        t, b = self.seen, x.shape[0]
        ids = torch.arange(t, device=x.device).repeat_interleave(b)
        return self._logits(x.repeat(t, 1), ids).view(t, b, -1)

    def _context_logits(self, x: Tensor, context: Tensor, tasks: Tensor) -> Tensor:
        return self._modulated(x, context, tasks)

    @property
    def learned_params_per_task(self) -> int:
        return sum(p[0].numel() for p in self._task_tensors())

    @property
    def bytes_per_task(self) -> int:
        """float32 values stored per task: the learned ones, plus the guided readout's unit weights."""
        return 4 * (self.learned_params_per_task + self.modulation.stored_per_task)

    @property
    def fixed_bytes(self) -> int:
        """float32 values stored once: the shared trunk (and the shared readout)."""
        return 4 * sum(p.numel() for p in self._shared())

    # --- the family -----------------------------------------------------------------------
    def context_logits(self, x: Tensor, context: Tensor, tasks: Tensor) -> Tensor:
        """Logits ``(B, C)``: inputs ``(B, D)``, context vectors ``(B, T)``, each sample's task ``(B,)``.

        ``tasks`` picks the head (per-task readout) and the statistics a training batch updates;
        everything else depends on the context alone. ``ValueError`` naming ``context`` if it is
        not ``(B, T)`` or holds NaN or infinite values. The same as ``self(x, context, tasks)``.
        """
        return self(x, context, tasks)

    def _modulated(self, x: Tensor, context: Tensor, tasks: Tensor) -> Tensor:
        """The network under checked context vectors ``(B, T)``; the family acts on the drive or activity."""
        z = self.trunk(x)
        c = context.to(z)
        h = torch.relu(self.modulation.drive(z, x, c))
        h = self.modulation.activity(h, c, tasks)
        heads = torch.zeros_like(tasks) if self.shared_readout else tasks
        return self.heads(h, heads)


# --------------------------------------------------------------------------- robustness


def _test_set(sequence: TaskSequence, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    x = torch.cat([t.x_test for t in sequence.tasks]).to(device)
    y = torch.cat([t.y_test for t in sequence.tasks]).to(device)
    task = torch.cat([torch.full((len(t.y_test),), i) for i, t in enumerate(sequence.tasks)]).to(device)
    return x, y, task


def _per_task_accuracy(correct: Tensor, task: Tensor, n_tasks: int) -> float:
    """Mean over tasks of each task's accuracy (tasks weigh the same whatever their test size)."""
    hits = torch.zeros(n_tasks, device=correct.device, dtype=torch.float64).index_add_(
        0, task, correct.double()
    )
    return float((hits / torch.bincount(task, minlength=n_tasks).clamp(min=1)).mean())


@torch.no_grad()
def ambiguity_curve(
    learner: Learner, sequence: TaskSequence, lambdas: Sequence[float], device: Any = "cpu"
) -> Tensor:
    """Accuracy ``(L,)`` (mean over tasks) when task ``a`` is shown with ``(1 - lam) e_a + lam e_b``.

    ``b = a + 1`` (cyclically); each sample is decoded by its own task's head.
    """
    x, y, a = _test_set(sequence, torch.device(device))
    n = len(sequence.tasks)
    eye = torch.eye(n, device=x.device)
    learner.eval()
    out = []
    for lam in lambdas:
        context = (1 - lam) * eye[a] + lam * eye[(a + 1) % n]
        correct = learner(x, context, a).argmax(-1) == y
        out.append(_per_task_accuracy(correct, a, n))
    return torch.tensor(out, dtype=torch.float64)


@torch.no_grad()
def noise_accuracy(
    learner: Learner, sequence: TaskSequence, sigmas: Sequence[float], device: Any = "cpu", seed: int = 0
) -> Tensor:
    """Accuracy ``(S,)`` (mean over tasks) under ``e_a + sigma xi``, one ``xi ~ N(0, I)`` per test sample.

    The same ``xi`` for every sigma (common random numbers), drawn from ``seed``.
    """
    x, y, a = _test_set(sequence, torch.device(device))
    n = len(sequence.tasks)
    xi = torch.randn(len(y), n, generator=torch.Generator().manual_seed(seed)).to(x.device)
    eye = torch.eye(n, device=x.device)
    learner.eval()
    return torch.tensor(
        [_per_task_accuracy(learner(x, eye[a] + s * xi, a).argmax(-1) == y, a, n) for s in sigmas],
        dtype=torch.float64,
    )


# --------------------------------------------------------------------------- one table row


@dataclass
class Row:
    """One line of the comparison: a family on a task set. Accuracy in %, robustness as the
    fraction of the clean accuracy kept; None where a measure does not apply."""

    task_set: str
    family: str
    accuracy: float
    params_per_task: int
    bytes_per_task: int
    seconds_per_task: float
    forgetting: float | None = None
    ambiguity: float | None = None
    noise: float | None = None
    curves: dict[str, list[float]] = field(default_factory=dict, repr=False)
    fixed_bytes: int | None = None

    def metrics(self) -> dict[str, Any]:
        """The row's machine-independent numbers, rounded (seconds are timings, kept apart)."""
        out: dict[str, Any] = {
            "accuracy": round(self.accuracy, 2),
            "params_per_task": self.params_per_task,
            "bytes_per_task": self.bytes_per_task,
        }
        if self.fixed_bytes is not None:
            out["fixed_bytes"] = self.fixed_bytes
        for name in ("forgetting", "ambiguity", "noise"):
            value = getattr(self, name)
            if value is not None:
                out[name] = round(value, 2 if name == "forgetting" else 3)
        return out


def _retained(curve: Tensor, index: int) -> float:
    clean = float(curve[0])
    return float(curve[index]) / clean if clean > 0 else 0.0


def measure_family(
    family: str,
    sequence: TaskSequence,
    config: FamilyConfig,
    *,
    lambdas: Sequence[float] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
    sigmas: Sequence[float] = (0.0, 0.5),
    ambiguity_at: float = 0.4,
    task_set: str | None = None,
    device: Any = "cpu",
    progress: bool | None = None,
) -> tuple[Row, ContinualResult]:
    """Learn ``sequence`` task after task with ``family`` (or the finetune reference); measure it.

    ``task_set`` names the row's task set (default: the sequence's benchmark). Returns the table
    row (robustness at ``ambiguity_at`` and at the last of ``sigmas``) and the runner's full result
    (accuracy matrix). All checks happen before any training.
    """
    check_families([family])
    if not isinstance(config, FamilyConfig):
        raise TypeError(f"config must be a FamilyConfig, not {type(config).__name__}")
    lambdas, sigmas = [float(v) for v in lambdas], [float(v) for v in sigmas]
    if not lambdas or lambdas[0] != 0 or ambiguity_at not in lambdas:
        raise ValueError(f"lambdas={lambdas} must start at 0 and contain ambiguity_at={ambiguity_at}")
    if not sigmas or sigmas[0] != 0 or min(sigmas) < 0:
        raise ValueError(f"sigmas={sigmas} must start at 0 and be >= 0")
    ccfg = config.continual()
    learner = make_learner(family, sequence, ccfg, torch.Generator().manual_seed(config.seed))
    result = run_learner(family, learner, sequence, ccfg, device=device, progress=progress)
    row = Row(
        task_set or sequence.benchmark,
        family,
        100 * result.average_accuracy,
        result.learned_params_per_task,
        result.bytes_per_task,
        result.typical_seconds_per_task,
        forgetting=100 * result.forgetting,
        fixed_bytes=result.fixed_bytes,
    )
    if family in FAMILIES:
        amb = ambiguity_curve(learner, sequence, lambdas, device)
        noisy = noise_accuracy(learner, sequence, sigmas, device, seed=config.seed)
        row.ambiguity, row.noise = _retained(amb, lambdas.index(ambiguity_at)), _retained(noisy, -1)
        row.curves = {"lambda": lambdas, "ambiguity": amb.tolist(), "sigma": sigmas, "noise": noisy.tolist()}
    return row, result


# --------------------------------------------------------------------------- task sets


@torch.no_grad()
def feature_sequence(setup: Any, device: Any = "cpu", chunk: int = 512) -> TaskSequence:
    """The held-out attribute tasks of a :func:`neuromod_lib.setups.attribute_setup` as a task sequence.

    Inputs: the frozen backbone's pooled features of every image, standardised with the training
    images' mean and std; each task: its binary labels on the training / test images (images
    without a label for the task, -1, are left out).
    """
    from .adaptation import to_input  # local: the CNN stack is only needed for this task set

    split, backbone = setup.tasks, setup.backbone.eval()
    device = torch.device(device)
    feats = torch.cat(
        [backbone.features(to_input(b, device)).cpu() for b in split.images.split(chunk)]
    ).float()
    train = feats[split.train]
    mean, std = train.mean(0), train.std(0, unbiased=False).clamp(min=1e-6)  # defined for one image too
    feats = (feats - mean) / std
    tasks = []
    for t, name in enumerate(split.names):

        def part(idx: Tensor, t: int = t) -> tuple[Tensor, Tensor]:
            keep = idx[split.labels[idx, t] >= 0]
            return feats[keep], split.labels[keep, t]

        (xtr, ytr), (xte, yte) = part(split.train), part(split.test)
        tasks.append(Task(name, xtr, ytr, xte, yte))
    return TaskSequence("attributes", tasks, feats.shape[1], split.n_classes, None)


def cognitive_rows(
    families: Sequence[str],
    tasks: Sequence[str],
    setup: multitask.RNNSetup,
    *,
    n_neurons: int,
    replicates: int,
    lambdas: Sequence[float] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
    sigmas: Sequence[float] = (0.0, 0.5),
    ambiguity_at: float = 0.4,
    lrs: dict[str, float] | None = None,
    device: Any = "cpu",
    progress: bool | None = None,
) -> list[Row]:
    """Train ``replicates`` RNNs per family (those in :data:`RNN_PATHWAYS`) on ``tasks``; one row each.

    Each learning rate chosen (``lrs``: family -> rate; default the setup's) trains one stack of
    *every* family, as :func:`rnn_search` trained it, and keeps the rows of the families that chose
    it: the stack stops when all its networks are at criterion and its start depends on its members,
    so a family is measured exactly as it was selected (should that stack diverge, on a seed the
    search did not see, the families that chose the rate train alone, with a warning).

    Accuracy: the fraction of correct trials (%) under each task's own context on test trials (drawn
    apart from the training trials and from the final evaluation that a learning-rate search reads);
    robustness as for the feedforward sets, with the trials of notebook 05
    (:func:`neuromod_lib.multitask.mixture_performance`, :func:`~neuromod_lib.multitask.noise_performance`).
    Families without an RNN form are skipped.
    """
    names = [f for f in check_families(families) if f in RNN_PATHWAYS]
    stack = _rnn_stack(names)
    lrs = lrs or {}
    chosen = {f: float(lrs.get(f, setup.train_config.lr)) for f in names}
    rows: dict[str, Row] = {}
    for lr in dict.fromkeys(chosen.values()):
        tuned_setup = dataclasses.replace(setup, train_config=dataclasses.replace(setup.train_config, lr=lr))
        members = [f for f in names if chosen[f] == lr]
        trained_stack = stack
        try:
            model, trained = _train_rnns(stack, tasks, tuned_setup, n_neurons, replicates, device, progress)
        except TrainingDiverged:  # a family that did not choose this rate diverged at it (another seed)
            warnings.warn(
                f"RNN families {stack} diverged together at lr={lr}: {members} trained without the others",
                stacklevel=2,
            )
            trained_stack = members
            model, trained = _train_rnns(members, tasks, tuned_setup, n_neurons, replicates, device, progress)
        every = _rnn_rows(trained_stack, tasks, model, trained, tuned_setup, replicates, lambdas, sigmas,
                          ambiguity_at)  # fmt: skip
        rows.update({f: every[f] for f in members})
    return [rows[f] for f in names]


def _rnn_stack(families: Sequence[str]) -> list[str]:
    """The families with an RNN form among ``families``, in :data:`RNN_PATHWAYS`' order: the one stack
    that the search and the final runs train, whatever order the families were asked in."""
    return [f for f in RNN_PATHWAYS if f in families]


def _train_rnns(
    names: Sequence[str],
    tasks: Sequence[str],
    setup: multitask.RNNSetup,
    n_neurons: int,
    replicates: int,
    device: Any,
    progress: bool | None = None,
) -> tuple[ModulatedRNN, multitask.TrainResult]:
    """``replicates`` RNNs per family of ``names`` on ``tasks`` as one stack. Every draw (the start, the
    trials, the networks' noise) comes from the training seed, torch's global random state is left as
    it was: the same stack at the same rate trains the same networks in the search and after it
    (bit for bit where training is deterministic, as on the CPU)."""
    pathways = [RNN_PATHWAYS[f] for f in names for _ in range(replicates)]
    seed = setup.train_config.seed
    with seeded(seed, device):
        start = torch.Generator().manual_seed(seed)
        model = ModulatedRNN(setup.network(n_neurons, len(tasks)), pathways, start).to(device)
        trained = multitask.train_networks(model, [tuple(tasks)] * len(pathways), setup.task_config,
                                           setup.train_config, progress=progress)  # fmt: skip
    model.eval()
    return model, trained


def _rnn_rows(
    names: Sequence[str],
    tasks: Sequence[str],
    model: ModulatedRNN,
    trained: multitask.TrainResult,
    setup: multitask.RNNSetup,
    replicates: int,
    lambdas: Sequence[float],
    sigmas: Sequence[float],
    ambiguity_at: float,
) -> dict[str, Row]:
    """The rows of a trained stack: test accuracy, sizes, seconds and robustness per family."""
    lambdas, sigmas = [float(v) for v in lambdas], [float(v) for v in sigmas]
    k, seed = len(tasks), setup.train_config.seed
    mixed = torch.stack(
        [
            multitask.mixture_performance(
                model, tasks, a, (a + 1) % k, lambdas, setup.task_config, seed=seed + _TEST_TRIALS
            )[0]
            for a in range(k)
        ]
    ).mean(0)  # (S, L); at lambda = 0 each task under its own context: the test accuracy
    noisy = multitask.noise_performance(
        model, tasks, sigmas, setup.task_config, seed=seed + _TEST_TRIALS + 1
    )  # (S, len(sigmas))
    per_task = [n // k for n in model.context_parameters()]
    rows = {}
    for i, family in enumerate(names):
        net = slice(i * replicates, (i + 1) * replicates)
        amb, noise = mixed[net].mean(0), noisy[net].mean(0)
        rows[family] = Row(
            "cognitive",
            family,
            100 * float(amb[lambdas.index(0.0)]),
            per_task[i * replicates],
            4 * per_task[i * replicates],
            trained.seconds / model.n_networks / k,
            ambiguity=_retained(amb, lambdas.index(ambiguity_at)),
            noise=_retained(noise, -1),
            curves={"lambda": lambdas, "ambiguity": amb.tolist(), "sigma": sigmas, "noise": noise.tolist()},
        )
    return rows


#: seed offset of the RNNs' test trials: apart from training (seed) and the evaluations (seed + 1, + 2)
_TEST_TRIALS = 7
#: learning rates searched for the RNN families (validation: the final evaluation of training)
RNN_RATES: tuple[float, ...] = (3e-3, 1e-2, 3e-2, 1e-1)


def rnn_search(p: Plan, device: Any = "cpu") -> dict[str, Any]:
    """Family -> :class:`~neuromod_lib.selection.Selection` of its RNN learning rate: the plan's
    networks trained at every rate of :data:`RNN_RATES`, scored by their mean performance on the
    final evaluation trials (fresh trials, never the test trials of :func:`cognitive_rows`)."""
    from .selection import Selection, best_index

    names = _rnn_stack(p.families)
    scores: dict[str, list[float]] = {f: [] for f in names}
    for lr in RNN_RATES:
        setup = dataclasses.replace(
            p.rnn_setup, train_config=dataclasses.replace(p.rnn_setup.train_config, lr=lr)
        )
        try:
            _, trained = _train_rnns(names, p.rnn_tasks, setup, p.rnn_neurons, p.rnn_replicates, device)
        except TrainingDiverged:  # too fast a rate: it loses the search
            for f in names:
                scores[f].append(math.nan)
            continue
        for i, f in enumerate(names):
            scores[f].append(float(trained.perf[i * p.rnn_replicates : (i + 1) * p.rnn_replicates].nanmean()))
    if names and all(math.isnan(v) for v in scores[names[0]]):
        raise TrainingDiverged(f"RNN families {names}: training diverged at every lr of {list(RNN_RATES)}")
    out = {}
    for f in names:
        out[f] = Selection(f, "lr", RNN_RATES, tuple(scores[f]), RNN_RATES[best_index(scores[f])], None)
    return out


# --------------------------------------------------------------------------- what it teaches

#: need -> (Row field, True if larger is better)
NEEDS: dict[str, tuple[str, bool]] = {
    "accuracy": ("accuracy", True),
    "smallest storage per task": ("bytes_per_task", False),
    "robust to an ambiguous context": ("ambiguity", True),
    "robust to a noisy context": ("noise", True),
    "fastest training": ("seconds_per_task", False),
}


#: the needs ranked only with a confidence interval over seeds (:func:`needs`)
ROBUSTNESS = ("ambiguity", "noise")
#: fewest seeds a robustness ranking rests on
MIN_SEEDS = 3


def needs(
    rows: Sequence[Row],
    include_time: bool = False,
    margin: float = 10.0,
    seed_rows: Sequence[Row] = (),
) -> dict[str, dict[str, list[str]]]:
    """For each need, per task set, the families that do best (ties share the place).

    Only the modulation families compete (the finetune reference is not a family); a measure
    that is None does not compete. Robustness and speed only matter for a family that works, so
    for every need but accuracy only families within ``margin`` accuracy points of that task
    set's most accurate family compete (a family at chance "keeps" its accuracy trivially).
    ``include_time``: also rank by seconds (machine-dependent).

    Robustness is ranked over ``rows`` and ``seed_rows`` (the same runs with other seeds, in seed
    order) by :func:`robustness_winner`; an empty list there means that no family qualifies.
    """
    out: dict[str, dict[str, list[str]]] = {}
    for need, (name, larger) in NEEDS.items():
        if name == "seconds_per_task" and not include_time:
            continue
        per_set: dict[str, list[str]] = {}
        for task_set in dict.fromkeys(r.task_set for r in rows):
            here = [r for r in rows if r.task_set == task_set and r.family in FAMILIES]
            if name in ROBUSTNESS:
                if any(getattr(r, name) is not None for r in here):
                    per_set[task_set] = robustness_winner([*here, *seed_rows], task_set, name, margin)
                continue
            if name != "accuracy" and here:
                top = max(r.accuracy for r in here)
                here = [r for r in here if r.accuracy >= top - margin]
            scored = [(getattr(r, name), r.family) for r in here if getattr(r, name) is not None]
            if scored:
                best = max(v for v, _ in scored) if larger else min(v for v, _ in scored)
                per_set[task_set] = [f for v, f in scored if v == best]
        out[need] = per_set
    return out


def robustness_winner(rows: Sequence[Row], task_set: str, measure: str, margin: float) -> list[str]:
    """``[family]`` that is the most robust on ``measure`` on ``task_set``, or ``[]`` if none qualifies.

    Per family, its rows of that task set, one per seed. A family competes if it ran on at least
    :data:`MIN_SEEDS` seeds and its mean accuracy is within ``margin`` points of the best mean; at
    least two must compete (one family that works has nothing to be more robust than). The family
    of highest mean robustness wins only if, against every other competitor, the 95 % t interval
    of the paired difference over seeds lies above 0.
    """
    from .results import t_quantile

    by_family: dict[str, list[Row]] = {}
    for r in rows:
        if r.task_set == task_set and r.family in FAMILIES and getattr(r, measure) is not None:
            by_family.setdefault(r.family, []).append(r)
    n = min((len(v) for v in by_family.values()), default=0)
    if n < MIN_SEEDS:
        return []
    mean = {f: sum(r.accuracy for r in v[:n]) / n for f, v in by_family.items()}
    top = max(mean.values())
    compete = [f for f in by_family if mean[f] >= top - margin]
    if len(compete) < 2:
        return []
    values = {f: torch.tensor([float(getattr(r, measure)) for r in by_family[f][:n]]) for f in compete}
    leader = max(compete, key=lambda f: float(values[f].mean()))
    for other in compete:
        if other == leader:
            continue
        d = values[leader] - values[other]
        half = t_quantile(n - 1) * float(d.std()) / math.sqrt(n)
        if float(d.mean()) - half <= 0:
            return []
    return [leader]


# --------------------------------------------------------------------------- notebook 07


@dataclass(frozen=True)
class Plan:
    """Everything notebook 07 runs, built and checked from its parameters before any training."""

    task_sets: tuple[str, ...]
    families: tuple[str, ...]
    configs: dict[str, FamilyConfig]  # feedforward task set -> its config
    rnn_tasks: tuple[str, ...]
    rnn_setup: multitask.RNNSetup
    rnn_neurons: int
    rnn_replicates: int
    lambdas: tuple[float, ...]
    sigmas: tuple[float, ...]
    ambiguity_at: float
    search: bool = True
    #: feedforward task set -> family -> its search on validation (filled by :func:`with_search`)
    selections: dict[str, dict[str, Any]] = field(default_factory=dict)


#: :class:`~neuromod_lib.continual.ContinualConfig` fields searched -> the :class:`FamilyConfig` field
_FAMILY_FIELDS = {"modulation_lr": "lr", "rw_lr": "rw_lr", "dense_lr": "dense_lr"}


def tuned(config: FamilyConfig, chosen: Any | None) -> FamilyConfig:
    """``config`` with the value a :class:`~neuromod_lib.selection.Selection` chose (as is if None)."""
    if chosen is None:
        return config
    return dataclasses.replace(config, **{_FAMILY_FIELDS[chosen.field]: chosen.chosen})


def with_readout(p: Plan, readout: str) -> Plan:
    """``p`` with every feedforward family learning through ``readout`` (one of
    :data:`~neuromod_lib.continual.READOUTS`); its searches dropped, since the best rates may differ,
    and the cognitive task set too (an RNN has one readout)."""
    configs = {name: dataclasses.replace(c, readout=readout) for name, c in p.configs.items()}
    task_sets = tuple(s for s in p.task_sets if s != "cognitive")
    return dataclasses.replace(p, configs=configs, selections={}, task_sets=task_sets)


def with_search(p: Plan, sequences: dict[str, TaskSequence], device: Any = "cpu") -> Plan:
    """``p`` with every family's hyperparameter chosen on validation data of each feedforward task set
    (:func:`neuromod_lib.selection.select`: the same search for every family and the reference) and
    the RNN families' learning rate on the cognitive tasks (:func:`rnn_search`); ``p`` itself if its
    ``search`` is off. Other seeds reuse these choices."""
    from . import selection

    if not p.search:
        return p
    chosen = {
        name: {f: selection.select(f, seq, p.configs[name].continual(), device=device) for f in p.families}
        for name, seq in sequences.items()
    }
    if "cognitive" in p.task_sets and any(f in RNN_PATHWAYS for f in p.families):
        chosen["cognitive"] = rnn_search(p, device=device)
    return dataclasses.replace(p, selections=chosen)


def plan(cfg: Any) -> Plan:
    """The :class:`Plan` of notebook 07's config (:class:`neuromod_lib.configs.FamiliesConfig`, which
    has checked every value): the families' budgets, and notebook 05's networks under the same
    profile for the cognitive tasks."""
    from .profiles import resolve

    rnn_cfg = resolve(
        "05_rnn_ambiguity_and_dynamics", cfg.profile, seed=cfg.seed, pathways=list(RNN_PATHWAYS),
        steps=cfg.rnn_steps, eval_every=math.gcd(cfg.rnn_steps, 100), replicates=cfg.rnn_replicates,
        n_neurons=cfg.rnn_neurons, tasks=list(cfg.rnn_tasks), task_a=cfg.rnn_tasks[0],
        task_b=cfg.rnn_tasks[1], full_budget=False,
    )  # fmt: skip
    task_sets, families, rnn_tasks = tuple(cfg.task_sets), tuple(cfg.families), tuple(cfg.rnn_tasks)
    common = {
        k: cfg[k]
        for k in ("epochs", "batch", "lr", "trunk_lr", "readout", "sigma_m", "inputs_per_unit", "rw_lr")
    }
    common.update(dense_lr=cfg.dense_lr, rank=cfg.rank or None, seed=cfg.seed)
    configs = {
        "attributes": FamilyConfig(expansion=cfg.attribute_expansion, **common),
        "digits": FamilyConfig(expansion=cfg.digit_expansion, **common),
    }
    lam = cfg.ambiguity_lambda
    return Plan(
        task_sets,
        families,
        configs,
        rnn_tasks,
        multitask.rnn_setup(rnn_cfg),
        cfg.rnn_neurons,
        cfg.rnn_replicates,
        tuple(sorted({0.0, 0.2, lam, 0.5, 0.6, 0.8, 1.0})),
        tuple(cfg.context_noise * f for f in (0.0, 0.25, 0.5, 0.75, 1.0)),  # robustness read at the last
        lam,
        search=cfg.search,
    )


def run_sequence(
    name: str,
    sequence: TaskSequence,
    families: Sequence[str],
    config: FamilyConfig,
    p: Plan,
    device: Any = "cpu",
) -> tuple[list[Row], dict[str, ContinualResult]]:
    """Every family (and reference) of ``families`` on one feedforward task sequence, rows named ``name``,
    each with the hyperparameter the plan's search chose for it on that task set (if any)."""
    rows, results = [], {}
    for family in families:
        chosen = tuned(config, p.selections.get(name, {}).get(family))
        row, results[family] = measure_family(
            family, sequence, chosen, lambdas=p.lambdas, sigmas=p.sigmas, ambiguity_at=p.ambiguity_at,
            task_set=name, device=device,
        )  # fmt: skip
        rows.append(row)
    return rows, results


def run_cognitive(p: Plan, families: Sequence[str], device: Any = "cpu") -> list[Row]:
    """The families that have an RNN form, on the plan's cognitive tasks, each at the learning rate the
    plan's search chose for it (if any)."""
    lrs = {f: chosen.chosen for f, chosen in p.selections.get("cognitive", {}).items()}
    return cognitive_rows(
        families, p.rnn_tasks, p.rnn_setup, n_neurons=p.rnn_neurons, replicates=p.rnn_replicates,
        lambdas=p.lambdas, sigmas=p.sigmas, ambiguity_at=p.ambiguity_at, lrs=lrs, device=device,
    )  # fmt: skip
