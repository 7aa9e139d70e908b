"""Continual learning, task after task: the random-weight network of Hong & Pavlic and its baselines.

Hong & Pavlic (2022), "Learning to Modulate Random Weights: Neuromodulation-inspired Neural
Networks for Efficient Continual Learning", keep every weight of a network fixed at its random
initial value and learn, per task, only a small context that modulates it
(:class:`~neuromod_lib.models.random_weights.RandomWeightNet`). A task's context is frozen once
the task is learned, so, with the task id given, nothing learned earlier can be forgotten: by
construction, not by a penalty. :func:`learn_sequence` trains one method on a
:class:`~neuromod_lib.data.sequences.TaskSequence` and measures it the usual way (the accuracy
matrix of Lopez-Paz & Ranzato 2017, average accuracy, forgetting, backward transfer), so that
every method is compared on the same runner, data and evaluation.

``METHODS``:

- ``random_weights``: per task a new context, trained with RMSprop (``rw_lr``, as in the
  paper), then frozen.
- ``finetune``: a dense MLP ``D-H-C`` (ReLU) with one head ``Linear(H, C)`` per task (multi-head,
  task-incremental: the standard setting of Hsu et al. 2018), Adam (``dense_lr``) on the trunk and
  the current head: the lower bound.
- ``ewc``: finetune + online EWC (Schwarz et al. 2018 with ``gamma = 1``): the penalty
  ``ewc_lambda / 2 * sum F (theta - theta*)^2`` on the trunk, ``F`` the empirical Fisher of each
  task summed over tasks, ``theta*`` the trunk after the latest task.
- ``si``: finetune + Synaptic Intelligence (Zenke et al. 2017) on the trunk.
- ``supermask``: Supermasks in Superposition (Wortsman et al. 2020): fixed signed-constant random
  weights ``D-H-C`` without biases; per task a binary mask keeping the top ``mask_sparsity`` of
  learned scores in each layer.
- ``joint``: the finetune network trained on the union of all tasks at once: the upper bound.

:data:`MODULATION_FAMILIES` (notebook 07, :class:`neuromod_lib.families.ContextMLP`) are learners
too: a shared layer learned on the first task, then only a per-task modulation of it.

Every learner has the same small interface (``begin_task``, ``parameters_for``, ``logits``,
``all_task_logits``, ``penalty``, ``end_task``) and is trained by the library's one loop,
:func:`~neuromod_lib.training.fit` (:func:`_train`). Every
learner is also a :class:`~neuromod_lib.modulation.ContextModel`: ``learner(x, context)`` takes
task ids ``(B,)`` or context vectors ``(B, K)``, so notebook 07 swaps any of them by name through
one factory, :func:`make_learner`. A task id the learner was never given is a ``ValueError``
naming it and the trained ones, checked in one place for every learner
(:func:`~neuromod_lib.modulation.check_task_ids`, :func:`~neuromod_lib.checks.check_trained`).

Design choices (marked because the papers leave them open):

- width: the dense baselines and the supermask network have the random-weight network's hidden
  size unless ``ContinualConfig.hidden`` says otherwise (same width, not same parameter count);
- optimizers are new for every task (no state carried over); the data order comes from a CPU
  generator seeded by ``seed + 1``, the initial weights from one seeded by ``seed``;
- EWC's Fisher is the *per-sample* empirical Fisher (squared gradients of each training sample's
  log-likelihood of its true label, averaged over the task's training set), computed exactly for
  the trunk's one linear layer from the per-sample gradients at its output (no loop over samples);
- SI's path integral uses the gradient of the task loss alone (not of the penalty), as Zenke et
  al.'s code does;
- supermask: scores start uniform in ``±1/sqrt(fan_in)`` (edge-popup), the straight-through
  estimator passes the mask's gradient to the scores unchanged, and the scores are trained with
  SGD + momentum 0.9 at ``mask_lr`` (SupSup's optimizer, without its cosine schedule). Only the
  binary masks are kept after a task, so earlier tasks cannot change;
- joint: the union is shuffled together, each sample scored by its own task's head, for
  ``epochs`` passes over the union; only the last row of its accuracy matrix exists, so its
  forgetting and backward transfer are NaN and ``seconds_per_task`` is its total time / T;
- storage, as the continual-learning literature counts it: ``bytes_per_task``, what one more
  task *adds* in float32 storage, and ``fixed_bytes``, what is stored once whatever the number of
  tasks. Random weights: the context and strength per task, and the seed the fixed weights are
  regenerated from (8 bytes); supermask: one bit per weight per task, and the seed; the dense
  baselines: one head per task, and the trunk (EWC: plus its Fisher and anchor; SI: plus its
  importance and anchor, each the trunk's size);
- task-id inference (every method: the dense baselines use the heads of all tasks seen), two
  protocols: per test sample, the task whose softmax has the lowest entropy (:func:`infer_task`),
  then that task's prediction; and per test batch of ``batch`` samples of one task, the task of
  lowest mean entropy for the whole batch (SupSup's protocol). A prediction counts as correct
  when it names the right class (``Task.classes``:
  label ``k`` of a task is class ``classes[k]``), so in the split benchmarks a right label under
  the wrong task is wrong.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checks import check_fields, check_trained, is_int, is_number
from .models.random_weights import RandomWeightConfig, RandomWeightNet, infer_task
from .modulation import check_task_ids, context_vectors, is_task_ids
from .progress import progress_bar
from .training import FitConfig, fit

__all__ = [
    "LEARNERS",
    "METHODS",
    "MODULATION_FAMILIES",
    "ContinualConfig",
    "ContinualResult",
    "Learner",
    "make_learner",
    "learn_sequence",
    "run_learner",
]

METHODS: tuple[str, ...] = ("random_weights", "finetune", "ewc", "si", "supermask", "joint")
#: the modulated MLPs of notebook 07 (:class:`neuromod_lib.families.ContextMLP`)
MODULATION_FAMILIES: tuple[str, ...] = ("deterministic_gain", "stochastic_gain", "excitability", "synaptic")
#: every name :func:`make_learner` builds
LEARNERS: tuple[str, ...] = METHODS + MODULATION_FAMILIES
#: the readouts of the modulation families: one shared by every task, or a head per task
READOUTS: tuple[str, ...] = ("shared", "per_task")
_EVAL_CHUNK = 8192  # test samples per forward pass when evaluating
#: bytes of the seed that regenerates fixed random weights
SEED_BYTES = 8


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class ContinualConfig:
    """How :func:`learn_sequence` trains; every field is checked when the config is made.

    ``epochs``/``batch``: passes over each task's training set and mini-batch size; ``seed``: the
    initial weights and the data order. ``rw_lr``: RMSprop on the random-weight contexts (the
    paper's optimizer); ``expansion``/``inputs_per_unit``: the random-weight network (see
    :class:`~neuromod_lib.models.random_weights.RandomWeightConfig`). ``hidden``: the dense
    baselines' and supermask's width (None = the random-weight network's hidden size);
    ``dense_lr``: Adam on the dense baselines. ``ewc_lambda``: online EWC strength; ``si_c``/``si_xi``:
    SI strength and damping; ``mask_sparsity``: fraction of weights each supermask keeps;
    ``mask_lr``: SGD (momentum 0.9) on the supermask scores. The modulation families
    (:class:`~neuromod_lib.families.ContextMLP`): ``modulation_lr`` Adam on the per-task modulation
    (and heads), ``trunk_lr`` Adam on the shared layer (first task only), ``readout`` (one of
    :data:`READOUTS`), ``rank`` of the synaptic family (None: matched to excitability), ``sigma_m``
    the stochastic modulator's std.
    """

    epochs: int = 3
    batch: int = 128
    seed: int = 0
    rw_lr: float = 1e-2
    expansion: float = 10.0
    inputs_per_unit: int = 7
    hidden: int | None = None
    dense_lr: float = 1e-3
    ewc_lambda: float = 100.0
    si_c: float = 0.5
    si_xi: float = 0.1
    mask_sparsity: float = 0.5
    mask_lr: float = 0.1
    modulation_lr: float = 1e-2
    trunk_lr: float = 1e-3
    readout: str = "shared"
    rank: int | None = None
    sigma_m: float = 0.1

    def __post_init__(self) -> None:
        positive = "a finite number > 0"
        checks = [
            ("epochs", is_int(self.epochs) and self.epochs >= 1, "an integer >= 1"),
            ("batch", is_int(self.batch) and self.batch >= 1, "an integer >= 1"),
            ("seed", is_int(self.seed) and self.seed >= 0, "an integer >= 0"),
            ("rw_lr", is_number(self.rw_lr) and self.rw_lr > 0, positive),
            ("expansion", is_number(self.expansion) and self.expansion >= 1, "a finite number >= 1"),
            (
                "inputs_per_unit",
                is_int(self.inputs_per_unit) and self.inputs_per_unit >= 1,
                "an integer >= 1",
            ),
            (
                "hidden",
                self.hidden is None or is_int(self.hidden) and self.hidden >= 1,
                "None or an integer >= 1",
            ),
            ("dense_lr", is_number(self.dense_lr) and self.dense_lr > 0, positive),
            ("ewc_lambda", is_number(self.ewc_lambda) and self.ewc_lambda >= 0, "a finite number >= 0"),
            ("si_c", is_number(self.si_c) and self.si_c >= 0, "a finite number >= 0"),
            ("si_xi", is_number(self.si_xi) and self.si_xi > 0, positive),
            (
                "mask_sparsity",
                is_number(self.mask_sparsity) and 0 < self.mask_sparsity <= 1,
                "a number in (0, 1]",
            ),
            ("mask_lr", is_number(self.mask_lr) and self.mask_lr > 0, positive),
            ("modulation_lr", is_number(self.modulation_lr) and self.modulation_lr > 0, positive),
            ("trunk_lr", is_number(self.trunk_lr) and self.trunk_lr > 0, positive),
            ("readout", self.readout in READOUTS, " or ".join(READOUTS)),
            ("rank", self.rank is None or is_int(self.rank) and self.rank >= 1, "None or an integer >= 1"),
            ("sigma_m", is_number(self.sigma_m) and self.sigma_m >= 0, "a finite number >= 0"),
        ]
        check_fields(self, checks)


# --------------------------------------------------------------------------- result


@dataclass
class ContinualResult:
    """What :func:`learn_sequence` returns.

    ``accuracy`` ``(T, T)`` float64: ``accuracy[i, j]`` is the test accuracy on task ``j`` (task id
    given) after training tasks ``0..i``; NaN for ``j > i`` (and, for ``joint``, in every row but
    the last). ``seconds_per_task``: training time of each task. ``inferred_accuracy``: class
    accuracy over all test sets after the last task when the task id is inferred;
    ``task_inference_accuracy``: the fraction of test samples whose task was inferred correctly;
    both with the task inferred per sample (close to domain-incremental learning: each sample on its
    own). ``batch_inferred_accuracy`` and ``batch_task_inference_accuracy``: the same with one task
    inferred per test batch of ``batch`` samples of one task (SupSup's protocol).
    ``bytes_per_task`` / ``fixed_bytes``: what one more task adds to storage / what is stored once.
    """

    method: str
    benchmark: str
    task_names: list[str]
    accuracy: Tensor
    seconds_per_task: list[float]
    learned_params_per_task: int
    bytes_per_task: int
    inferred_accuracy: float | None
    task_inference_accuracy: float | None
    batch_inferred_accuracy: float | None = None
    batch_task_inference_accuracy: float | None = None
    fixed_bytes: int | None = None

    @property
    def typical_seconds_per_task(self) -> float:
        """Median training seconds of the tasks after the first: repeated measurements, warmed up.

        The first task pays for first calls (allocations, kernel selection) and, for the modulation
        families, trains the shared trunk too, so it is left out unless it is the only one; a median
        is robust to a slow task on a busy machine. ``joint``: its total time / T.
        """
        seconds = self.seconds_per_task[1:] or self.seconds_per_task
        return statistics.median(seconds)

    @property
    def average_accuracy(self) -> float:
        """Mean accuracy over all tasks after the last one (the last row)."""
        return float(self.accuracy[-1].mean())

    @property
    def forgetting(self) -> float:
        """Mean over ``j < T-1`` of the best earlier accuracy on task ``j`` minus its final one.

        ``max_{j <= i <= T-2} accuracy[i, j] - accuracy[T-1, j]``; 0.0 when ``T == 1``, NaN when a
        needed entry is NaN (``joint``).
        """
        acc = self.accuracy
        if acc.shape[0] == 1:
            return 0.0
        earlier = acc[:-1, :-1]
        seen = torch.ones_like(earlier, dtype=torch.bool).triu().T  # i >= j
        best = earlier.masked_fill(~seen, -math.inf).max(0).values  # max propagates NaN
        return float((best - acc[-1, :-1]).mean())

    @property
    def backward_transfer(self) -> float:
        """Mean over ``j < T-1`` of ``accuracy[T-1, j] - accuracy[j, j]`` (0.0 when ``T == 1``)."""
        acc = self.accuracy
        if acc.shape[0] == 1:
            return 0.0
        return float((acc[-1, :-1] - acc.diagonal()[:-1]).mean())

    def row(self) -> dict[str, Any]:
        """A rounded one-line summary for tables."""

        def r(x: float | None, digits: int = 4) -> float | None:
            return None if x is None else round(x, digits)

        return {
            "method": self.method,
            "benchmark": self.benchmark,
            "tasks": len(self.task_names),
            "average_accuracy": r(self.average_accuracy),
            "forgetting": r(self.forgetting),
            "backward_transfer": r(self.backward_transfer),
            "inferred_accuracy": r(self.inferred_accuracy),
            "task_inference_accuracy": r(self.task_inference_accuracy),
            "batch_inferred_accuracy": r(self.batch_inferred_accuracy),
            "batch_task_inference_accuracy": r(self.batch_task_inference_accuracy),
            "seconds_per_task": r(self.typical_seconds_per_task, 3),
            "learned_params_per_task": self.learned_params_per_task,
            "bytes_per_task": self.bytes_per_task,
            "fixed_bytes": self.fixed_bytes,
        }


# --------------------------------------------------------------------------- learners


def _linear(n_in: int, n_out: int, gen: torch.Generator) -> nn.Linear:
    """``nn.Linear(n_in, n_out)`` with PyTorch's default init drawn from ``gen`` (not the global RNG)."""
    layer = nn.Linear(n_in, n_out)
    bound = 1 / math.sqrt(n_in)
    with torch.no_grad():
        for p in layer.parameters():
            p.uniform_(-bound, bound, generator=gen)
    return layer


def _count(params: Sequence[Tensor]) -> int:
    return sum(p.numel() for p in params)


class Learner(nn.Module):
    """The interface :func:`_train`, :func:`_accuracy` and :func:`_inferred` use; subclasses fill it in.

    Every learner is a :class:`~neuromod_lib.modulation.ContextModel`: ``learner(x, context)``
    with task ids ``(B,)`` gives :meth:`logits`; with context vectors ``(B, n_contexts)`` it gives
    :meth:`_context_logits`: by default the mixture ``sum_t c_t logits_t`` of the tasks' outputs
    (the context picks or mixes the heads), replaced by a modulation of the network where the
    learner has one (random weights, the modulation families).
    """

    n_tasks: int

    @property
    def n_contexts(self) -> int:
        """The length K of context vectors: one weight per task so far (unless a learner says otherwise)."""
        return self.n_tasks

    def forward(self, x: Tensor, context: Tensor, tasks: Tensor | None = None) -> Tensor:
        """Logits ``(B, C)`` of ``x`` ``(B, D)`` under ``context``: task ids ``(B,)`` or vectors ``(B, K)``.

        ``tasks`` ``(B,)``: each sample's own task, for what a learner keeps per task outside its
        context (a per-task head, the guided readout's statistics); default: the task ids, or each
        context vector's largest weight. ``ValueError`` naming ``task_ids`` or ``context``
        (:func:`~neuromod_lib.modulation.check_task_ids`, :func:`~neuromod_lib.modulation.context_vectors`).
        """
        if is_task_ids(context):
            return self._logits(x, check_task_ids(context, self.n_tasks, len(x), learned=True).to(x.device))
        vectors = context_vectors(context, self.n_contexts, len(x)).to(x)
        return self._context_logits(x, vectors, vectors.argmax(-1) if tasks is None else tasks)

    def _context_logits(self, x: Tensor, context: Tensor, tasks: Tensor) -> Tensor:
        """Logits under checked context vectors ``(B, K)``: the mixture of every task's logits."""
        return torch.einsum("bt,tbc->bc", context, self.all_task_logits(x))

    def begin_task(self, task: int) -> None:
        """Make room for task ``task`` (``== n_tasks``): a new context, head or set of scores."""
        raise NotImplementedError

    def parameters_for(self, task: int) -> list[Tensor]:
        """The tensors trained while learning ``task``."""
        raise NotImplementedError

    def optimizer(self, params: list[Tensor], config: ContinualConfig) -> torch.optim.Optimizer:
        raise NotImplementedError

    def logits(self, x: Tensor, task_ids: Tensor) -> Tensor:
        """``(B, C)`` logits of each sample of ``x`` ``(B, D)`` under its task ``task_ids`` ``(B,)``.

        ``ValueError`` (:func:`~neuromod_lib.checks.check_trained`) for an id the learner was never
        given, before any work; subclasses implement :meth:`_logits`.
        """
        return self._logits(x, check_trained(task_ids, self.n_tasks))

    def all_task_logits(self, x: Tensor) -> Tensor:
        """``(T, B, C)``: the logits of ``x`` ``(B, D)`` under every task seen so far (at least one).

        Subclasses implement :meth:`_all_task_logits`.
        """
        if not self.n_tasks:
            raise ValueError(f"{type(self).__name__} has no task yet; trained tasks: none")
        return self._all_task_logits(x)

    def _logits(self, x: Tensor, task_ids: Tensor) -> Tensor:
        raise NotImplementedError

    def _all_task_logits(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def penalty(self) -> Tensor:
        """The consolidation penalty added to the task loss (0 if none); its gradient is added after
        :meth:`after_backward` (see :func:`~neuromod_lib.training.fit`)."""
        return torch.zeros(())

    def after_backward(self) -> None:
        """Called with the task loss's gradients in ``.grad`` (before the penalty's are added)."""

    def after_step(self) -> None:
        """Called after each optimizer step."""

    def end_task(self, task: int, x: Tensor, y: Tensor) -> None:
        """Called once ``task`` is learned, with its training data ``x`` ``(n, D)``, ``y`` ``(n,)``."""

    @property
    def learned_params_per_task(self) -> int:
        """Numbers learned for one more task."""
        raise NotImplementedError

    @property
    def bytes_per_task(self) -> int:
        """Bytes that one more task adds to what is stored (see the module docstring)."""
        raise NotImplementedError

    @property
    def fixed_bytes(self) -> int:
        """Bytes stored once, whatever the number of tasks (see the module docstring)."""
        raise NotImplementedError


class _RandomWeights(Learner):
    """Hong & Pavlic: fixed random weights, one learned context per task, frozen after its task."""

    def __init__(self, net: RandomWeightNet, gen: torch.Generator) -> None:
        super().__init__()
        self.net, self.gen = net, gen

    @property
    def n_tasks(self) -> int:
        return self.net.n_tasks

    def begin_task(self, task: int) -> None:
        self.net.add_task(generator=self.gen)

    def parameters_for(self, task: int) -> list[Tensor]:
        return list(self.net.task_parameters(task))

    def optimizer(self, params: list[Tensor], config: ContinualConfig) -> torch.optim.Optimizer:
        return torch.optim.RMSprop(params, lr=config.rw_lr)

    def _logits(self, x: Tensor, task_ids: Tensor) -> Tensor:
        return self.net(x, task_ids)

    def _all_task_logits(self, x: Tensor) -> Tensor:
        return self.net.all_task_logits(x)

    def _context_logits(self, x: Tensor, context: Tensor, tasks: Tensor) -> Tensor:
        return self.net(x, context)  # the mix of the tasks' scaled contexts

    def end_task(self, task: int, x: Tensor, y: Tensor) -> None:
        self.net.freeze(task)

    @property
    def learned_params_per_task(self) -> int:
        return self.net.learned_parameters_per_task()

    @property
    def bytes_per_task(self) -> int:
        return self.net.bytes_per_task()

    @property
    def fixed_bytes(self) -> int:
        return SEED_BYTES  # the fixed weights are regenerated from the seed


class _Dense(Learner):
    """An MLP ``D-H-C`` (ReLU) with one head per task; trains the trunk and the current head (finetune)."""

    def __init__(self, n_inputs: int, hidden: int, n_classes: int, gen: torch.Generator) -> None:
        super().__init__()
        self.trunk = _linear(n_inputs, hidden, gen)
        self.heads = nn.ModuleList()
        self.sizes, self.gen = (hidden, n_classes), gen

    @property
    def n_tasks(self) -> int:
        return len(self.heads)

    def begin_task(self, task: int) -> None:
        self.heads.append(_linear(*self.sizes, self.gen).to(self.trunk.weight.device))

    def parameters_for(self, task: int) -> list[Tensor]:
        return [*self.trunk.parameters(), *self.heads[task].parameters()]

    def optimizer(self, params: list[Tensor], config: ContinualConfig) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=config.dense_lr)

    def _heads(self) -> tuple[Tensor, Tensor]:
        """Every head's weight ``(T, C, H)`` and bias ``(T, C)``."""
        return torch.stack([h.weight for h in self.heads]), torch.stack([h.bias for h in self.heads])

    def _all_task_logits(self, x: Tensor) -> Tensor:
        weight, bias = self._heads()
        return torch.einsum("bh,tch->tbc", torch.relu(self.trunk(x)), weight) + bias[:, None]

    def _logits(self, x: Tensor, task_ids: Tensor) -> Tensor:
        weight, bias = self._heads()
        return torch.einsum("bh,bch->bc", torch.relu(self.trunk(x)), weight[task_ids]) + bias[task_ids]

    #: trunk-sized tensors kept besides the trunk itself (EWC: Fisher and anchor; SI: importance and anchor)
    trunk_copies = 0

    @property
    def learned_params_per_task(self) -> int:
        return _count(list(self.trunk.parameters())) + self.sizes[0] * self.sizes[1] + self.sizes[1]

    @property
    def bytes_per_task(self) -> int:
        """One more head: each task retrains the trunk, which is kept once (its latest state)."""
        return 4 * (self.sizes[0] * self.sizes[1] + self.sizes[1])

    @property
    def fixed_bytes(self) -> int:
        return 4 * (1 + self.trunk_copies) * _count(list(self.trunk.parameters()))


class _EWC(_Dense):
    """Finetune + online EWC on the trunk: accumulated diagonal Fisher, anchor = the latest trunk."""

    trunk_copies = 2

    def __init__(self, *args: Any, strength: float) -> None:
        super().__init__(*args)
        self.strength = strength
        self.fisher: list[Tensor] | None = None
        self.anchor: list[Tensor] | None = None

    def penalty(self) -> Tensor:
        if self.fisher is None:
            return torch.zeros(())
        terms = (
            (f * (p - a) ** 2).sum()
            for f, p, a in zip(self.fisher, self.trunk.parameters(), self.anchor, strict=True)
        )
        return self.strength / 2 * sum(terms)

    def end_task(self, task: int, x: Tensor, y: Tensor) -> None:
        fisher = _trunk_fisher(self, task, x, y)
        self.fisher = (
            fisher if self.fisher is None else [a + b for a, b in zip(self.fisher, fisher, strict=True)]
        )
        self.anchor = [p.detach().clone() for p in self.trunk.parameters()]


def _trunk_fisher(model: _Dense, task: int, x: Tensor, y: Tensor, chunk: int = 1024) -> list[Tensor]:
    """Empirical Fisher of the trunk on ``x`` ``(n, D)``, ``y`` ``(n,)``: ``[(H, D), (H,)]``.

    The per-sample gradient of a linear layer is ``delta_b x_b^T`` (``delta_b``: the gradient of
    sample ``b``'s loss at the layer's output), so the sum of its squares over samples is
    ``(delta^2)^T x^2``: exact, with one backward pass per chunk and no per-sample loop.
    """
    w_sum, b_sum = torch.zeros_like(model.trunk.weight), torch.zeros_like(model.trunk.bias)
    head = model.heads[task]
    for start in range(0, len(y), chunk):
        xb, yb = x[start : start + chunk], y[start : start + chunk]
        with torch.enable_grad():
            pre = model.trunk(xb).detach().requires_grad_()
            loss = F.cross_entropy(head(torch.relu(pre)), yb, reduction="sum")
            (delta,) = torch.autograd.grad(loss, pre)  # (b, H): row b is sample b's own gradient
        w_sum += (delta**2).T @ xb**2
        b_sum += (delta**2).sum(0)
    return [w_sum / len(y), b_sum / len(y)]


class _SI(_Dense):
    """Finetune + Synaptic Intelligence (Zenke et al. 2017) on the trunk."""

    trunk_copies = 2

    def __init__(self, *args: Any, strength: float, xi: float) -> None:
        super().__init__(*args)
        self.strength, self.xi = strength, xi
        self.omega: list[Tensor] = []  # running path integral over this task's steps
        self.importance: list[Tensor] = []  # Omega, summed over finished tasks
        self.anchor: list[Tensor] = []  # the trunk at the end of the previous task (or its start)
        self.step_grad: list[Tensor] = []
        self.step_start: list[Tensor] = []
        self.consolidated = False

    def begin_task(self, task: int) -> None:
        super().begin_task(task)
        if not self.anchor:  # made here, on the trunk's device
            params = [p.detach() for p in self.trunk.parameters()]
            self.omega = [torch.zeros_like(p) for p in params]
            self.importance = [torch.zeros_like(p) for p in params]
            self.anchor = [p.clone() for p in params]

    def penalty(self) -> Tensor:
        if not self.consolidated:
            return torch.zeros(())
        terms = (
            (o * (p - a) ** 2).sum()
            for o, p, a in zip(self.importance, self.trunk.parameters(), self.anchor, strict=True)
        )
        return self.strength * sum(terms)

    def after_backward(self) -> None:
        params = list(self.trunk.parameters())
        self.step_grad = [p.grad.detach().clone() for p in params]
        self.step_start = [p.detach().clone() for p in params]

    def after_step(self) -> None:
        for omega, g, p, p0 in zip(
            self.omega, self.step_grad, self.trunk.parameters(), self.step_start, strict=True
        ):
            omega -= g * (p.detach() - p0)

    def end_task(self, task: int, x: Tensor, y: Tensor) -> None:
        for omega, big, p, a in zip(
            self.omega, self.importance, self.trunk.parameters(), self.anchor, strict=True
        ):
            big += omega / ((p.detach() - a) ** 2 + self.xi)
            omega.zero_()
            a.copy_(p.detach())
        self.consolidated = True


class _TopMask(torch.autograd.Function):
    """Forward: the 0/1 mask of the ``keep`` largest scores; backward: straight through."""

    @staticmethod
    def forward(ctx: Any, scores: Tensor, keep: int) -> Tensor:
        return _top_mask(scores, keep).to(scores.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad, None


def _top_mask(scores: Tensor, keep: int) -> Tensor:
    """Bool mask of ``scores``' shape with ``True`` at its ``keep`` largest entries."""
    mask = torch.zeros(scores.numel(), dtype=torch.bool, device=scores.device)
    mask[scores.flatten().topk(keep).indices] = True
    return mask.view_as(scores)


def _signed_constant(n_in: int, n_out: int, gen: torch.Generator) -> Tensor:
    """``(n_out, n_in)`` weights ``± sqrt(2 / n_in)`` with random signs (SupSup's signed Kaiming constant)."""
    signs = torch.randint(0, 2, (n_out, n_in), generator=gen).float() * 2 - 1
    return signs * math.sqrt(2 / n_in)


class _Supermask(Learner):
    """SupSup: fixed random weights ``D-H-C``; per task a binary mask over every weight."""

    def __init__(
        self, n_inputs: int, hidden: int, n_classes: int, sparsity: float, gen: torch.Generator
    ) -> None:
        super().__init__()
        self.register_buffer("w1", _signed_constant(n_inputs, hidden, gen))
        self.register_buffer("w2", _signed_constant(hidden, n_classes, gen))
        self.keep = [max(1, round(sparsity * w.numel())) for w in (self.w1, self.w2)]
        self.masks: list[tuple[Tensor, Tensor]] = []  # bool (H, D), (C, H) per finished task
        self.scores = nn.ParameterList()  # the current task's scores only
        self.gen = gen

    @property
    def n_tasks(self) -> int:
        return len(self.masks) + (len(self.scores) > 0)

    def begin_task(self, task: int) -> None:
        self.scores = nn.ParameterList(
            [nn.Parameter(_uniform_scores(w.shape, self.gen).to(w.device)) for w in (self.w1, self.w2)]
        )

    def parameters_for(self, task: int) -> list[Tensor]:
        return list(self.scores)

    def optimizer(self, params: list[Tensor], config: ContinualConfig) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=config.mask_lr, momentum=0.9)

    def task_masks(self, task: int) -> tuple[Tensor, Tensor]:
        """The float masks of ``task``: stored if finished, else from the current scores (with STE)."""
        if task < len(self.masks):
            return tuple(m.to(self.w1.dtype) for m in self.masks[task])
        return tuple(_TopMask.apply(s, k) for s, k in zip(self.scores, self.keep, strict=True))

    def _forward(self, x: Tensor, task: int) -> Tensor:
        m1, m2 = self.task_masks(task)
        return torch.relu(x @ (self.w1 * m1).T) @ (self.w2 * m2).T

    def _logits(self, x: Tensor, task_ids: Tensor) -> Tensor:
        tasks = task_ids.unique().tolist()
        if len(tasks) == 1:
            return self._forward(x, tasks[0])
        out = x.new_zeros(x.shape[0], self.w2.shape[0])
        for t in tasks:
            rows = task_ids == t
            out[rows] = self._forward(x[rows], t)
        return out

    def _all_task_logits(self, x: Tensor) -> Tensor:
        return torch.stack([self._forward(x, t) for t in range(self.n_tasks)])

    def end_task(self, task: int, x: Tensor, y: Tensor) -> None:
        self.masks.append(
            tuple(_top_mask(s.detach(), k) for s, k in zip(self.scores, self.keep, strict=True))
        )
        self.scores = nn.ParameterList()

    @property
    def learned_params_per_task(self) -> int:
        return self.w1.numel() + self.w2.numel()

    @property
    def bytes_per_task(self) -> int:
        return math.ceil(self.learned_params_per_task / 8)

    @property
    def fixed_bytes(self) -> int:
        return SEED_BYTES  # the signed-constant weights are regenerated from the seed


def _uniform_scores(shape: torch.Size, gen: torch.Generator) -> Tensor:
    bound = 1 / math.sqrt(shape[1])
    return torch.empty(shape).uniform_(-bound, bound, generator=gen)


# --------------------------------------------------------------------------- building


def _random_weight_config(sequence: Any, config: ContinualConfig) -> RandomWeightConfig:
    """The random-weight network for ``sequence``; its fixed weights are drawn from ``config.seed``."""
    return RandomWeightConfig(
        n_inputs=sequence.n_inputs,
        n_classes=sequence.n_classes,
        expansion=config.expansion,
        inputs_per_unit=config.inputs_per_unit,
        seed=config.seed,
    )


def check_learner(name: str) -> str:
    """``name`` if :func:`make_learner` builds it (:data:`LEARNERS`); else ``ValueError`` naming them."""
    if name not in LEARNERS:
        raise ValueError(f"method={name!r} is unknown; choose from {', '.join(LEARNERS)}")
    return name


def make_learner(method: str, sequence: Any, config: ContinualConfig, gen: torch.Generator) -> Learner:
    """The learner called ``method`` (any of :data:`LEARNERS`) for ``sequence``; random initial values
    come from ``gen``. The one factory of notebooks 06 and 07: every learner it makes is a
    :class:`~neuromod_lib.modulation.ContextModel` trained by :func:`run_learner`.

    Widths: the random-weight network's ``H = expansion * D``; the other networks the same unless
    ``config.hidden`` says otherwise.
    """
    check_learner(method)
    rw_config = _random_weight_config(sequence, config)  # checked for every method: k <= n_inputs
    if method == "random_weights":
        return _RandomWeights(RandomWeightNet(rw_config), gen)
    hidden = rw_config.n_hidden if config.hidden is None else config.hidden
    sizes = (sequence.n_inputs, hidden, sequence.n_classes)
    if method in MODULATION_FAMILIES:
        from .families import ContextMLP  # local: families builds on this module

        return ContextMLP(
            method, *sizes, len(sequence.tasks), gen, readout=config.readout, rank=config.rank,
            sigma_m=config.sigma_m, lr=config.modulation_lr, trunk_lr=config.trunk_lr,
        )  # fmt: skip
    if method == "supermask":
        return _Supermask(*sizes, config.mask_sparsity, gen)
    if method == "ewc":
        return _EWC(*sizes, gen, strength=config.ewc_lambda)
    if method == "si":
        return _SI(*sizes, gen, strength=config.si_c, xi=config.si_xi)
    return _Dense(*sizes, gen)  # finetune, joint


# --------------------------------------------------------------------------- training and evaluation


def _train(
    learner: Learner,
    params: list[Tensor],
    x: Tensor,
    y: Tensor,
    task_ids: Tensor,
    config: ContinualConfig,
    gen: torch.Generator,
) -> None:
    """``config.epochs`` shuffled passes of mini-batches over ``x`` ``(n, D)``, ``y``, ``task_ids`` ``(n,)``.

    The library's one loop, :func:`~neuromod_lib.training.fit`, with a fixed number of epochs (no
    validation, early stopping or checkpoint: each task's budget is the same for every method) and
    its guard against a non-finite loss. Loss: cross-entropy of each sample under its task, plus
    ``learner.penalty()`` (its gradient is added after :meth:`Learner.after_backward` has seen the
    task loss's gradient; ``fit`` calls both, and :meth:`Learner.after_step`, at every step).
    """
    check_trained(task_ids, learner.n_tasks)  # once here, not per batch (each check waits for the GPU)

    def batches(g: torch.Generator) -> tuple[Tensor, ...]:
        return torch.randperm(len(y), generator=g).to(x.device).split(config.batch)

    def loss_fn(model: Learner, idx: Tensor) -> Tensor:
        return F.cross_entropy(model._logits(x[idx], task_ids[idx]), y[idx])

    budget = FitConfig(max_epochs=config.epochs, monitor="train_loss", restore_best=False, progress=False)
    fit(learner, learner.optimizer(params, config), loss_fn, batches, lambda model: {}, budget, generator=gen)


def _full(n: int, task: int, device: torch.device) -> Tensor:
    return torch.full((n,), task, dtype=torch.long, device=device)


@torch.no_grad()
def _accuracy(learner: Learner, x: Tensor, y: Tensor, task: int) -> float:
    """Test accuracy of ``learner`` on ``x`` ``(n, D)``, ``y`` ``(n,)`` with the task id ``task`` given."""
    correct = sum(
        int((learner.logits(xb, _full(len(xb), task, x.device)).argmax(-1) == yb).sum())
        for xb, yb in zip(x.split(_EVAL_CHUNK), y.split(_EVAL_CHUNK), strict=True)
    )
    return correct / max(len(y), 1)


@torch.no_grad()
def _inferred(
    learner: Learner, tests: list[tuple[Tensor, Tensor]], class_table: Tensor, batch: int | None = None
) -> tuple[float, float]:
    """Class accuracy and task-inference accuracy over every test set, the task id inferred.

    ``class_table`` ``(T, C)``: the class that label ``k`` of task ``t`` stands for. ``batch=None``:
    the task is inferred per sample; else per test batch of ``batch`` samples of one task, one task
    for the whole batch (SupSup's protocol; see :func:`infer_task`).
    """
    table = class_table.to(tests[0][0].device)
    chunk = _EVAL_CHUNK if batch is None else batch * max(1, _EVAL_CHUNK // batch)
    right_class = right_task = 0
    for t, (x, y) in enumerate(tests):
        for xb, yb in zip(x.split(chunk), y.split(chunk), strict=True):
            logits = learner.all_task_logits(xb)  # (T, b, C)
            index = torch.arange(len(yb), device=x.device)
            task = infer_task(logits, None if batch is None else index // batch)  # (b,)
            pred = logits[task, index].argmax(-1)
            right_class += int((table[task, pred] == table[t, yb]).sum())
            right_task += int((task == t).sum())
    n = sum(len(y) for _, y in tests)
    return right_class / n, right_task / n


def _class_table(sequence: Any) -> Tensor:
    """``(T, C)`` long: the class of label ``k`` in task ``t`` (``Task.classes``; else ``k`` itself)."""
    rows = []
    for task in sequence.tasks:
        classes = tuple(getattr(task, "classes", ()) or ())
        rows.append(list(classes) if len(classes) == sequence.n_classes else list(range(sequence.n_classes)))
    return torch.tensor(rows, dtype=torch.long)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------- entry point


def learn_sequence(
    method: str,
    sequence: Any,
    config: ContinualConfig,
    *,
    device: torch.device | str = "cpu",
    progress: bool | None = None,
) -> ContinualResult:
    """Train ``method`` (one of :data:`LEARNERS`) on ``sequence``'s tasks in order; see the module docstring.

    ``sequence`` is a :class:`~neuromod_lib.data.sequences.TaskSequence` (or anything with
    ``tasks``, ``n_inputs``, ``n_classes``, ``benchmark``). After each task, every task seen so
    far is evaluated with its task id; after the last one, also with the task id inferred. All
    checks happen before any training. Deterministic from ``config.seed`` on the CPU.
    """
    check_learner(method)
    if not isinstance(config, ContinualConfig):  # before building the learner from it
        raise TypeError(f"config must be a ContinualConfig, not {type(config).__name__}")
    init_gen = torch.Generator().manual_seed(config.seed)
    learner = make_learner(method, sequence, config, init_gen)
    return run_learner(
        method, learner, sequence, config, device=device, progress=progress, joint=method == "joint"
    )


def run_learner(
    name: str,
    learner: Learner,
    sequence: Any,
    config: ContinualConfig,
    *,
    device: torch.device | str = "cpu",
    progress: bool | None = None,
    joint: bool = False,
) -> ContinualResult:
    """Train any ``learner`` with the :class:`Learner` interface on ``sequence`` and measure it like
    :func:`learn_sequence` does (``config.epochs``, ``config.batch``; the data order from
    ``config.seed + 1``).

    The one runner behind :func:`learn_sequence` and :func:`neuromod_lib.families.measure_family`, so
    that every method and modulation family is trained, timed and evaluated the same way.
    ``learner`` is moved to ``device`` and trained in place; ``joint=True`` trains on the union of
    the tasks at once.
    """
    if not isinstance(config, ContinualConfig):
        raise TypeError(f"config must be a ContinualConfig, not {type(config).__name__}")
    if len(sequence.tasks) < 1:
        raise ValueError("the sequence has no tasks")
    device = torch.device(device)
    data_gen = torch.Generator().manual_seed(config.seed + 1)
    learner.to(device)
    tests = [(t.x_test.to(device), t.y_test.to(device)) for t in sequence.tasks]
    n = len(sequence.tasks)
    accuracy = torch.full((n, n), math.nan, dtype=torch.float64)
    if joint:
        seconds = _run_joint(learner, sequence, config, data_gen, device, tests, accuracy)
    else:
        seconds = []
        for t in progress_bar(range(n), desc=name, progress=progress):
            seconds.append(_learn_task(learner, sequence.tasks[t], t, config, data_gen, device))
            for j in range(t + 1):
                accuracy[t, j] = _accuracy(learner, *tests[j], j)
    classes = _class_table(sequence)
    inferred, task_inferred = _inferred(learner, tests, classes)
    batch_inferred, batch_task = _inferred(learner, tests, classes, config.batch)
    return ContinualResult(
        method=name,
        benchmark=str(getattr(sequence, "benchmark", "")),
        task_names=[t.name for t in sequence.tasks],
        accuracy=accuracy,
        seconds_per_task=seconds,
        learned_params_per_task=int(learner.learned_params_per_task),
        bytes_per_task=int(learner.bytes_per_task),
        inferred_accuracy=inferred,
        task_inference_accuracy=task_inferred,
        batch_inferred_accuracy=batch_inferred,
        batch_task_inference_accuracy=batch_task,
        fixed_bytes=int(learner.fixed_bytes),
    )


def _learn_task(
    learner: Learner, task: Any, t: int, config: ContinualConfig, gen: torch.Generator, device: torch.device
) -> float:
    """Train ``learner`` on task number ``t``; return the seconds it took."""
    start = time.perf_counter()
    x, y = task.x_train.to(device), task.y_train.to(device)
    learner.begin_task(t)
    _train(learner, learner.parameters_for(t), x, y, _full(len(y), t, device), config, gen)
    learner.end_task(t, x, y)
    _sync(device)
    return time.perf_counter() - start


def _run_joint(
    learner: Learner,
    sequence: Any,
    config: ContinualConfig,
    gen: torch.Generator,
    device: torch.device,
    tests: list[tuple[Tensor, Tensor]],
    accuracy: Tensor,
) -> list[float]:
    """Train on the union of all tasks at once; fill the last row of ``accuracy``; seconds per task."""
    start = time.perf_counter()
    tasks = sequence.tasks
    for t in range(len(tasks)):
        learner.begin_task(t)
    x = torch.cat([t.x_train for t in tasks]).to(device)
    y = torch.cat([t.y_train for t in tasks]).to(device)
    ids = torch.cat([_full(len(t.y_train), i, torch.device("cpu")) for i, t in enumerate(tasks)]).to(device)
    _train(learner, list(learner.parameters()), x, y, ids, config, gen)
    _sync(device)
    seconds = time.perf_counter() - start
    for j, test in enumerate(tests):
        accuracy[-1, j] = _accuracy(learner, *test, j)
    return [seconds / len(tasks)] * len(tasks)
