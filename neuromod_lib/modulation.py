"""Modulation: how a context (task ids, a mixture of tasks, a noisy vector) changes activity or weights.

One idea runs through the library: a *context* ``c`` selects per-task modulation, and that
modulation changes a network multiplicatively or additively, on its activity or on its weights.
This module holds each formula once, as a small pure function over a batch of contexts; every
model calls them (the CNN hooks below, :class:`~neuromod_lib.models.rnn.ModulatedRNN`,
:class:`~neuromod_lib.models.random_weights.RandomWeightNet` and every family of
:class:`~neuromod_lib.families.ContextMLP`).

**Contexts.** A context is either task ids ``(B,)`` (one task per sample) or context vectors
``(B, K)``: a one-hot row ``e_t`` for task ``t``, a mixture ``(1 - lam) e_a + lam e_b`` for an
ambiguous context, or a noisy vector ``e_t + sigma xi``. :func:`mix` is the one way a context
selects modulation from per-task tables ``(K, ...)``: ``c @ table``, i.e. a one-hot row picks that
task's row and a mixture mixes the rows linearly; task ids pick rows directly (exactly the product
with their one-hot rows). :func:`check_task_ids` and :func:`context_vectors` are the checks of
both forms, used by every model.

**The formulas** (``x``: activity ``(B, C, *spatial)`` or ``(B, D)``; per-sample values ``(B, C)``
act per channel, see :func:`per_channel`):

- :func:`exp_gain`: deterministic multiplicative gain ``x * exp(log_gain)`` (Boeshertz et al.);
- :func:`stochastic_log_gain`: the log gain of stochastic comodulation ``c m - sigma_m^2 c^2 / 2``,
  with :func:`draw_modulator` the shared modulator ``m = mean + sigma_m xi`` per sample;
- :func:`add_bias`: additive bias ``x + b``; :func:`film`: ``gamma * x + beta`` (Perez et al. 2018);
- :func:`excitability`: gain and bias on a unit's input drive, ``(1 + c G) * drive + c B``
  (Vedovati & Ching 2024's ``g(c)`` and ``b(c)``; :func:`excitability_terms` gives the two terms);
- :func:`lowrank_change`: a low-rank synaptic change ``sum_k c_k U_k V_k^T`` of a weight matrix, as
  matrices or applied to an input without forming them; :func:`elementwise_scaling`: the
  elementwise change ``W * (1 + sum_k c_k M_k)``;
- :func:`random_weight_modulation` / :func:`random_weight_logits`: Hong & Pavlic's learned context
  on fixed random weights, ``h * (sum_t c_t s_t ctx_t)`` read out by ``W_R``.

**One protocol** (:class:`ContextModel`, in the spirit of Avalanche's multi-task modules): a
model is called as ``model(x, context)`` with task ids ``(B,)`` or context vectors ``(B, K)`` and
gives the logits of every task at once with ``model.all_task_logits(x)`` ``(T, B, C)``. Notebook
07 and the continual runner build every model by name with one factory,
:func:`neuromod_lib.continual.make_learner`.

**CNN hooks.** The modulators below adapt a frozen backbone (Boeshertz, Haimerl & Savin 2023,
"Task adaption by biologically inspired stochastic comodulation"): a few per-task parameters act
on chosen layers through forward hooks, so they work with any backbone (torchvision's included)
without touching its code. Every modulator has the same small API:

- ``attach(backbone)`` registers forward hooks on ``backbone.site_module(site)`` for each of its
  sites; ``detach()`` removes them;
- ``set_context(task_ids)`` (or ``with modulator.context(task_ids): ...``) gives the hooks the
  task id of every sample, ``(B,)`` long; call it once per batch.

Modulators (all per task, per channel of a conv map ``(B, C, H, W)`` or per unit of ``(B, D)``):

- :class:`GainModulation`: ``y = x * exp(c * m - Var(m) * c**2 / 2)`` with a learned coupling ``c``
  per task and a shared modulator ``m``, one scalar per sample for every modulated unit at every
  site. Each task (context) has a :class:`GainVariant`, as in Boeshertz, Haimerl & Savin's
  predecessor code: couplings ``signed`` (c = w, w starts at 0: gain 1) or ``nonneg`` (c = w², w
  starts at 1); ``m = mean + sigma_m xi`` with mean 1 (the predecessor's ``m = 1 + xi``: mean gain
  ``exp(c)``) or 0 (the zero-mean ablation: mean gain 1); noise in training passes or not; and a
  guided readout, whose covariances come from no-gradient *routing passes* that draw m
  (``set_context(task_ids, draw="route")``). ``mode="deterministic"``: signed couplings, m = 1,
  no noise, i.e. ``y = x * exp(c)``; ``mode="stochastic"``: the paper's reading (c = w², m = 1 + xi
  in training, guided); ``mode="off"``: identity.
- :class:`FiLM`: ``y = gamma * x + beta`` (gamma 1, beta 0 at start).
- :class:`SEGain`: task-specific squeeze-and-excitation (Maninis et al. 2019): a per-task
  bottleneck MLP on the globally pooled features gives gains ``2 * sigmoid(.)``, exactly 1 at start.

Evaluation uses the mean gain: in eval mode m is its mean and the variance term is dropped, so the
gain is ``exp(c * mean)`` — what the predecessor code evaluates (``test`` at ``mumean``), and the
expected gain in training. Whether m is drawn is decided when the context is set (``draw``, or the
mode the module is in at that moment).

Randomness: m is drawn from ``generator`` if one is given (its state is then part of the
module's ``state_dict``, so checkpoints resume exactly), else from torch's global RNG (seeded by
:func:`neuromod_lib.device.seed_everything` and saved in :func:`neuromod_lib.training.fit`'s
checkpoints).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from .checks import check_finite, check_trained, is_int, is_number

GAIN_MODES = ("deterministic", "stochastic", "off")
KINDS = ("deterministic_gain", "stochastic_gain", "film", "se_gain", "none")


# --------------------------------------------------------------------------- contexts


def is_task_ids(context: Any) -> bool:
    """Whether ``context`` is given as task ids (an integer, or a tensor of integers)."""
    if isinstance(context, Tensor):
        return not context.dtype.is_floating_point and context.dtype != torch.bool
    return is_int(context)


def check_task_ids(
    task_ids: Any, n_tasks: int, batch: int | None = None, *, learned: bool = False
) -> torch.Tensor:
    """Check that ``task_ids`` is a ``(B,)`` integer tensor of ids in ``[0, n_tasks)``; return it as long.

    ``batch``: the expected B, if known; then an integer means that one task for the whole batch.
    ``learned``: the ids name tasks a continual model has learned so far (``n_tasks`` of them), and
    an id beyond them is reported as such (:func:`~neuromod_lib.checks.check_trained`: "task 5
    was never trained; trained tasks: 0..2"). Raises ``ValueError`` naming ``task_ids`` otherwise.
    """
    if batch is not None and is_int(task_ids):
        task_ids = torch.full((batch,), int(task_ids), dtype=torch.long)
    if not (isinstance(task_ids, Tensor) and task_ids.dim() == 1 and is_task_ids(task_ids)):
        tensor = isinstance(task_ids, Tensor)
        got = f"{list(task_ids.shape)} {task_ids.dtype}" if tensor else type(task_ids).__name__
        size = "B" if batch is None else batch
        raise ValueError(f"task_ids must be a ({size},) integer tensor (one id per sample); got {got}")
    if batch is not None and task_ids.shape[0] != batch:
        raise ValueError(f"task_ids has {task_ids.shape[0]} entries but the batch has {batch} samples")
    if learned:
        check_trained(task_ids, n_tasks)
    elif task_ids.numel() and (int(task_ids.min()) < 0 or int(task_ids.max()) >= n_tasks):
        raise ValueError(
            f"task_ids must lie in [0, {n_tasks - 1}] (n_tasks={n_tasks}); "
            f"got values in [{int(task_ids.min())}, {int(task_ids.max())}]"
        )
    return task_ids.long()


def context_vectors(context: Any, n_contexts: int, batch: int | None = None) -> torch.Tensor:
    """A context as vectors ``(..., n_contexts)``: task ids become one-hot rows, vectors are checked.

    The one representation of "which task" that every modulator family accepts: a task id
    ``e_k``, a mixture ``(1 - lam) e_A + lam e_B`` for an ambiguous context, or a noisy vector.
    ``context``: an integer tensor of task ids ``(...)`` with values in ``[0, n_contexts)``, or a
    float tensor ``(..., n_contexts)`` of finite values. ``batch``: if given, the context must be
    ``(batch,)`` ids or ``(batch, n_contexts)`` vectors. Raises ``ValueError`` naming ``context``.
    """
    if not isinstance(context, Tensor):
        raise ValueError(
            f"context must be a tensor of task ids or of context vectors; got {type(context).__name__}"
        )
    expected = None if batch is None else ((batch,), (batch, n_contexts))
    if expected is not None and tuple(context.shape) != expected[context.dtype.is_floating_point]:
        raise ValueError(
            f"context must be ({batch}, {n_contexts}) vectors, a weight per task, or ({batch},) task ids; "
            f"got shape {list(context.shape)} {context.dtype}"
        )
    if not context.dtype.is_floating_point:
        if context.dtype == torch.bool:
            raise ValueError("context must hold integer task ids or float context vectors, not booleans")
        if context.numel() and (int(context.min()) < 0 or int(context.max()) >= n_contexts):
            raise ValueError(
                f"context task ids must lie in [0, {n_contexts - 1}] (n_contexts={n_contexts}); "
                f"got values in [{int(context.min())}, {int(context.max())}]"
            )
        return nn.functional.one_hot(context.long(), n_contexts).float()
    if context.dim() == 0 or context.shape[-1] != n_contexts:
        raise ValueError(
            f"context vectors must have length n_contexts={n_contexts} in their last dimension; "
            f"got shape {list(context.shape)}"
        )
    return check_finite("context", context)


def mix(context: Tensor, table: Tensor) -> Tensor:
    """Each sample's values from per-task rows: ``context @ table``.

    ``context``: vectors ``(..., B, K)``, or task ids ``(B,)`` (which pick rows: exactly the product
    with their one-hot rows, without the product). ``table``: ``(..., K, *F)``, one row per task,
    with the same leading dimensions ``...`` as the context (a stack of networks). Returns
    ``(..., B, *F)``. Linear in the context: a mixture of tasks mixes their rows.
    """
    if is_task_ids(context):
        return table[context]
    lead = context.dim() - 2
    if table.dim() < lead + 1 or table.shape[lead] != context.shape[-1]:
        raise ValueError(
            f"context {list(context.shape)} and table {list(table.shape)} do not match: "
            f"the table needs one row per context entry (K={context.shape[-1]})"
        )
    features = table.shape[lead + 1 :]
    out = torch.matmul(context, table.reshape(*table.shape[: lead + 1], -1))
    return out.reshape(*out.shape[:-1], *features)


def per_channel(values: Tensor, x: Tensor) -> Tensor:
    """Per-sample values shaped to broadcast over ``x`` (in ``x``'s dtype).

    Values with fewer dimensions than ``x`` are per channel: ``(B, C)`` over ``(B, C, *spatial)``
    becomes ``(B, C, 1, ...)``. Values with as many dimensions as ``x`` broadcast as they are.
    """
    return values.reshape(*values.shape, *([1] * (x.dim() - values.dim()))).to(x.dtype)


# --------------------------------------------------------------------------- the formulas


def apply_gain(x: Tensor, gain: Tensor) -> Tensor:
    """Multiplicative modulation ``x * gain``: ``x`` ``(B, C, *spatial)`` or ``(B, D)``, ``gain`` ``(B, C)``
    per sample and channel (or unit), or a tensor with ``x``'s number of dimensions."""
    return x * per_channel(gain, x)


def exp_gain(x: Tensor, log_gain: Tensor) -> Tensor:
    """Deterministic gain ``x * exp(log_gain)`` (Boeshertz et al.): ``log_gain`` ``(B, C)`` per sample
    and channel (or unit) of ``x``; a log gain of 0 is no modulation (gain 1), and the gain stays > 0."""
    return apply_gain(x, log_gain.exp())


def stochastic_log_gain(coupling: Tensor, m: Tensor, sigma_m: float | Tensor) -> Tensor:
    """Log gain of stochastic comodulation: ``c m - Var(m) c^2 / 2`` per sample and unit ``(B, C)``.

    ``coupling`` c ``(B, C)``; ``m`` ``(B,)`` the shared modulator of each sample (see
    :func:`draw_modulator`); ``sigma_m`` its std, a number or one per sample ``(B,)``. For Gaussian
    ``m`` with mean ``mu`` the mean gain ``E exp(.)`` is exactly ``exp(c mu)``: the noise makes the
    gains fluctuate without changing their mean. ``m = 1``, ``sigma_m = 0`` is the deterministic gain
    ``exp(c)``. Use with :func:`exp_gain`.
    """
    var = sigma_m.square()[:, None] if isinstance(sigma_m, Tensor) else sigma_m**2
    return coupling * m[:, None] - (var / 2) * coupling.square()


def draw_modulator(
    batch: int,
    sigma_m: float | Tensor,
    *,
    draw: bool,
    mean: float | Tensor = 0.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """The shared modulator ``m = mean + sigma_m xi``, ``xi ~ N(0, 1)`` per sample ``(B,)`` if ``draw``,
    else its expected value ``mean``.

    ``mean`` and ``sigma_m``: numbers, or one value per sample ``(B,)``. Boeshertz, Haimerl & Savin's
    predecessor code uses ``mean = 1`` (``m = 1 + xi``: mean gain ``exp(c)``); ``mean = 0`` makes the
    mean gain 1 (no deterministic modulation left). Drawn from ``generator`` on its own device (then
    moved to ``device``) if given, else from torch's global RNG on ``device``.
    """
    mean = mean.to(device) if isinstance(mean, Tensor) else torch.full((batch,), float(mean), device=device)
    if not draw:
        return mean.clone()
    if generator is None:
        xi = torch.randn(batch, device=device)
    else:
        xi = torch.randn(batch, generator=generator, device=generator.device).to(device)
    sigma = sigma_m.to(device) if isinstance(sigma_m, Tensor) else sigma_m
    return mean + sigma * xi


def add_bias(x: Tensor, bias: Tensor) -> Tensor:
    """Additive modulation ``x + bias``: ``bias`` ``(B, C)`` per sample and channel (or broadcastable)."""
    return x + per_channel(bias, x)


def film(x: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
    """Feature-wise affine modulation ``gamma * x + beta`` (FiLM, Perez et al. 2018).

    ``gamma``, ``beta``: ``(B, C)`` per sample and channel of ``x`` ``(B, C, *spatial)``, or tensors
    with ``x``'s number of dimensions that broadcast against it.
    """
    return add_bias(per_channel(gamma, x) * x, beta)


def excitability_terms(context: Tensor, gain: Tensor, bias: Tensor) -> tuple[Tensor, Tensor]:
    """The gain ``1 + c G`` and bias ``c B`` that a context gives each unit's input drive.

    ``context`` ``(..., B, K)`` (or task ids ``(B,)``); ``gain`` G and ``bias`` B ``(..., K, N)``
    per-task tables, 0 for no modulation. Returns both ``(..., B, N)``; see :func:`excitability`.
    """
    return 1 + mix(context, gain), mix(context, bias)


def excitability(drive: Tensor, context: Tensor, gain: Tensor, bias: Tensor) -> Tensor:
    """Excitability (Vedovati & Ching 2024): ``(1 + c G) * drive + c B``.

    A context changes how strongly each unit responds to its input (gain ``g(c) = 1 + G c``) and its
    threshold (bias ``b(c) = B c``): ``drive`` ``(B, N)`` is the unit's input (``W x + b``, before
    the nonlinearity), ``context`` ``(B, K)`` (or task ids), ``gain``/``bias`` ``(K, N)``. The RNN of
    :mod:`neuromod_lib.models.rnn` uses the same terms (:func:`excitability_terms`) on its input
    and recurrent drive.
    """
    return film(drive, *excitability_terms(context, gain, bias))


def lowrank_change(context: Tensor, u: Tensor, v: Tensor, x: Tensor | None = None) -> Tensor:
    """Low-rank synaptic change ``dW(c) = sum_k c_k U_k V_k^T`` of an ``(N, M)`` weight matrix.

    ``u`` ``(..., K, N, r)``, ``v`` ``(..., K, M, r)`` (a stack ``...`` of networks allowed),
    ``context`` ``(..., B, K)``. Without ``x``: the matrices ``(..., B, N, M)``, for a change used
    many times (every time step of an RNN). With ``x`` ``(B, M)`` (no stack): the change applied to
    it, ``dW(c) x`` ``(B, N)``, computed as ``sum_k U_k (c_k V_k^T x)`` without forming the
    per-sample matrices. ``V = 0`` (or ``c = 0``) is no change.
    """
    if x is None:
        return torch.einsum("...bk,...knr,...kmr->...bnm", context, u, v)
    vx = torch.einsum("kmr,bm->bkr", v, x)
    return torch.einsum("knr,bkr->bn", u, context[:, :, None] * vx)


def elementwise_scaling(weight: Tensor, context: Tensor, scale: Tensor) -> Tensor:
    """Elementwise synaptic change ``W(c) = W * (1 + sum_k c_k M_k)``.

    ``weight`` ``(..., N, M)`` broadcast against the per-sample change; ``scale`` M ``(..., K, N, M)``;
    ``context`` ``(..., B, K)``. Returns ``(..., B, N, M)``; ``M = 0`` is no change.
    """
    return weight * (1 + mix(context, scale))


def random_weight_modulation(
    h: Tensor, context: Tensor, contexts: Tensor, strengths: Tensor | None = None
) -> Tensor:
    """Hong & Pavlic's context on fixed random weights: ``h * (sum_t c_t s_t ctx_t)``.

    ``h`` ``(B, H)`` hidden activity, ``context`` ``(B, T)`` (or task ids), ``contexts`` ctx ``(T, H)``
    and ``strengths`` s ``(T,)`` per task (None: the contexts unscaled). A one-hot row gives task
    t's modulated activity ``s_t ctx_t * h``; a mixture mixes the tasks' scaled contexts.
    """
    return h * mix(context, contexts if strengths is None else strengths[:, None] * contexts)


def random_weight_logits(
    h: Tensor, context: Tensor | None, contexts: Tensor, strengths: Tensor, readout: Tensor
) -> Tensor:
    """The random-weight network's logits ``W_R (h * sum_t c_t s_t ctx_t)``; ``readout`` W_R ``(C, H)``.

    ``context``: vectors ``(B, T)`` -> ``(B, C)`` through :func:`random_weight_modulation`; task ids
    ``(B,)`` -> ``(B, C)`` as ``s_t W_R (ctx_t * h)``, the paper's order; None -> every task's logits
    ``(T, B, C)`` through each task's effective readout ``ctx_t * W_R^T`` ``(T, H, C)`` (smaller than
    the ``(T, B, H)`` modulated activities when ``C < B``). The three agree up to rounding.
    """
    if context is None:
        return strengths[:, None, None] * (h @ (contexts[:, :, None] * readout.t()))
    if is_task_ids(context):
        strength = mix(context, strengths)[:, None]
        return strength * (random_weight_modulation(h, context, contexts) @ readout.t())
    return random_weight_modulation(h, context, contexts, strengths) @ readout.t()


# --------------------------------------------------------------------------- one protocol


@runtime_checkable
class ContextModel(Protocol):
    """What every model of notebooks 06-07 is: a classifier that takes its task as a context.

    - ``model(x, context)``: logits ``(B, C)`` of inputs ``x`` ``(B, ...)`` under ``context``, task
      ids ``(B,)`` or context vectors ``(B, n_contexts)`` (one-hot rows give the task ids' logits;
      mixtures and noisy vectors are the ambiguous and noisy contexts of notebook 07). Bad contexts
      are ``ValueError`` naming ``task_ids`` or ``context`` (:func:`check_task_ids`,
      :func:`context_vectors`).
    - ``model.all_task_logits(x)``: ``(T, B, C)``, row ``t`` the logits under task ``t``, for every
      task learned so far (task-id inference, :func:`~neuromod_lib.models.random_weights.infer_task`).
    - ``n_contexts``: the length K of the context vectors.

    Built by name with :func:`neuromod_lib.continual.make_learner`.
    """

    n_contexts: int

    def __call__(self, x: Tensor, context: Tensor) -> Tensor: ...

    def all_task_logits(self, x: Tensor) -> Tensor: ...


# --------------------------------------------------------------------------- CNN hooks


def _check_sites(sites: dict[str, int]) -> dict[str, int]:
    ok = isinstance(sites, dict) and all(
        isinstance(k, str)
        and k
        and "." not in k
        and isinstance(v, int)
        and not isinstance(v, bool)
        and v >= 1
        for k, v in sites.items()
    )
    if not ok:
        raise ValueError(f"sites={sites!r} must be a dict {{name without '.': channels >= 1}}")
    return dict(sites)


class Modulation(nn.Module):
    """Base class: sites, hooks and context. Subclasses implement :meth:`modulate`."""

    def __init__(self, sites: dict[str, int], n_tasks: int) -> None:
        super().__init__()
        self.sites = _check_sites(sites)
        if not (is_int(n_tasks) and n_tasks >= 1):
            raise ValueError(f"n_tasks={n_tasks!r} must be an integer >= 1")
        self.n_tasks = n_tasks
        self.task_ids: torch.Tensor | None = None
        self.suspended = False
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    # --- attaching --------------------------------------------------------------------------
    def attach(self, backbone: nn.Module) -> Modulation:
        """Hook every site of ``backbone``; return self. Re-attaching first detaches.

        Raises ``ValueError`` naming ``sites`` (before registering anything) if the backbone
        lacks a site or has another number of channels there.
        """
        available: dict[str, int] = dict(getattr(backbone, "sites", {}))
        missing = [name for name in self.sites if name not in available]
        if missing:
            raise ValueError(
                f"sites {missing} are not sites of {type(backbone).__name__}; available sites: {available}"
            )
        wrong = {n: (c, available[n]) for n, c in self.sites.items() if available[n] != c}
        if wrong:
            raise ValueError(f"sites have the wrong number of channels (ours, backbone's): {wrong}")
        self.detach()
        for name in self.sites:
            hook = self._make_hook(name)
            self._handles.append(backbone.site_module(name).register_forward_hook(hook))
        return self

    def detach(self) -> Modulation:
        """Remove every hook this modulator registered."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        return self

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    def _make_hook(self, site: str):
        def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
            if output.dim() < 2 or output.shape[1] != self.sites[site]:
                raise ValueError(
                    f"site {site!r} gave an output of shape {list(output.shape)}; "
                    f"expected (B, {self.sites[site]}, ...)"
                )
            return output if self.suspended else self.modulate(site, output)

        return hook

    @contextmanager
    def suspend(self) -> Iterator[Modulation]:
        """``with modulator.suspend(): ...``: the hooks leave activity unchanged (e.g. to compute
        and cache what a site gives before it is modulated)."""
        before, self.suspended = self.suspended, True
        try:
            yield self
        finally:
            self.suspended = before

    # --- context ----------------------------------------------------------------------------
    def _device(self, default: torch.device | None = None) -> torch.device:
        """The device of the parameters (``default``, else the CPU, for a modulator without any)."""
        tensor = next(iter(self.parameters()), None)
        return tensor.device if tensor is not None else (default or torch.device("cpu"))

    def set_context(self, task_ids: torch.Tensor, draw: str | None = None) -> None:
        """Store the task id of each sample ``(B,)`` for the hooks (call once per batch).

        ``draw``: what a modulator with a random part draws (:class:`GainModulation`, see
        :data:`DRAWS`); the others have nothing to draw and ignore it.
        """
        task_ids = check_task_ids(task_ids, self.n_tasks)
        self.task_ids = task_ids.to(self._device(default=task_ids.device))

    def clear_context(self) -> None:
        self.task_ids = None

    @contextmanager
    def context(self, task_ids: torch.Tensor, draw: str | None = None) -> Iterator[Modulation]:
        """``with modulator.context(task_ids): features = backbone(x)``; clears the task ids after."""
        self.set_context(task_ids, draw)
        try:
            yield self
        finally:
            self.clear_context()

    def _context_for(self, x: torch.Tensor) -> torch.Tensor:
        """The stored task ids on ``x``'s device, checked against ``x``'s batch size."""
        if self.task_ids is None:
            raise RuntimeError(
                f"{type(self).__name__} has no context: call set_context(task_ids) or use "
                "`with modulator.context(task_ids):` around the forward pass"
            )
        if self.task_ids.shape[0] != x.shape[0]:
            raise ValueError(f"task_ids has {self.task_ids.shape[0]} entries but the batch has {x.shape[0]}")
        return self.task_ids.to(x.device, non_blocking=True)

    def modulate(self, site: str, x: torch.Tensor) -> torch.Tensor:
        """The modulated output at ``site``: ``x`` (B, C, ...) → same shape."""
        raise NotImplementedError


#: how a coupling is parametrised: ``signed`` c = w (w starts at 0: gain 1); ``nonneg`` c = w**2
#: (w starts at 1: every unit coupled from the start, as in the predecessor code's ``MG_target``)
COUPLINGS = ("signed", "nonneg")


@dataclass(frozen=True)
class GainVariant:
    """How one context's gains are parametrised and driven (Boeshertz, Haimerl & Savin 2023).

    - ``coupling``: ``signed`` (c = w, w0 = 0) or ``nonneg`` (c = w², w0 = 1, the predecessor's);
    - ``mean``: the modulator's mean, 1 (the predecessor's ``m = 1 + xi``: mean gain ``exp(c)``) or
      0 (the zero-mean ablation: mean gain 1, no deterministic modulation left);
    - ``noisy``: whether training passes draw the modulator (``m = mean + sigma_m xi``) or keep it at
      its mean (deterministic training);
    - ``guided``: whether no-gradient *routing passes* draw the modulator to set a modulator-guided
      readout (:class:`neuromod_lib.readout.ModulatorGuidedReadout`).

    Evaluation always uses the mean modulator and no variance: the mean gain ``exp(c * mean)``.
    """

    coupling: str = "signed"
    mean: float = 1.0
    noisy: bool = False
    guided: bool = False

    def __post_init__(self) -> None:
        if self.coupling not in COUPLINGS:
            raise ValueError(f"coupling={self.coupling!r} is unknown; allowed: {', '.join(COUPLINGS)}")
        if not is_number(self.mean):
            raise ValueError(f"mean={self.mean!r} is not allowed; allowed: a finite number")
        for name in ("noisy", "guided"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}={getattr(self, name)!r} is not allowed; allowed: True or False")


#: the variants of the ``mode`` argument of :class:`GainModulation`
MODE_VARIANTS = {
    "deterministic": GainVariant(),
    "stochastic": GainVariant(coupling="nonneg", noisy=True, guided=True),
}
#: what a forward pass draws: ``train`` (noisy contexts draw m), ``mean`` (m at its mean, no variance:
#: evaluation), ``route`` (guided contexts draw m: the routing pass of the guided readout)
DRAWS = ("train", "mean", "route")


class GainModulation(Modulation):
    """Per-task multiplicative gains ``x * exp(c * m - Var(m) c² / 2)``; see the module docstring.

    Each context (task) has its :class:`GainVariant`: ``variants`` is one variant for every context,
    or a sequence of one per context (variants of a method trained side by side); ``mode`` names a
    variant for all (``deterministic``, ``stochastic``) or ``off`` (identity, nothing trainable).
    Parameters: ``coupling[site]`` ``(n_tasks, C)``, the raw weights w (c = w or w², see
    :data:`COUPLINGS`); :meth:`couplings` gives c. ``last_m``: the modulator of the last context ``(B,)``.
    """

    def __init__(
        self,
        sites: dict[str, int],
        n_tasks: int,
        mode: str = "deterministic",
        sigma_m: float = 0.1,
        generator: torch.Generator | None = None,
        variants: GainVariant | Sequence[GainVariant] | None = None,
    ) -> None:
        super().__init__(sites, n_tasks)
        if mode not in GAIN_MODES:  # a named variant for every context, or off
            raise ValueError(f"mode={mode!r} is unknown; allowed: {', '.join(GAIN_MODES)}")
        if not (is_number(sigma_m) and sigma_m >= 0):
            raise ValueError(f"sigma_m={sigma_m!r} is not allowed; allowed: a finite number >= 0")
        variants = MODE_VARIANTS.get(mode, GainVariant()) if variants is None else variants
        variants = [variants] * n_tasks if isinstance(variants, GainVariant) else list(variants)
        if len(variants) != n_tasks or not all(isinstance(v, GainVariant) for v in variants):
            raise ValueError(f"variants must be a GainVariant or {n_tasks} of them (one per task)")
        self.mode, self.sigma_m, self.generator, self.variants = mode, float(sigma_m), generator, variants
        nonneg = torch.tensor([v.coupling == "nonneg" for v in variants])
        self.register_buffer("nonneg", nonneg, persistent=False)
        self.register_buffer("mean", torch.tensor([float(v.mean) for v in variants]), persistent=False)
        noisy, guided = (torch.tensor([getattr(v, k) for v in variants]) for k in ("noisy", "guided"))
        self.register_buffer("train_sigma", self.sigma_m * noisy.float(), persistent=False)
        self.register_buffer("route_sigma", self.sigma_m * guided.float(), persistent=False)
        self.coupling = nn.ParameterDict(
            {
                name: nn.Parameter(
                    nonneg[:, None].float().expand(n_tasks, c).clone(), requires_grad=mode != "off"
                )
                for name, c in self.sites.items()
            }
        )
        self.last_m: torch.Tensor | None = None
        self.last_sigma: torch.Tensor | None = None

    def set_context(self, task_ids: torch.Tensor, draw: str | None = None) -> None:
        """Store task ids and draw the modulator ``last_m`` (B,) for them (see :data:`DRAWS`).

        ``draw=None``: ``train`` in training mode, ``mean`` in eval mode.
        """
        super().set_context(task_ids)
        draw = draw or ("train" if self.training else "mean")
        if draw not in DRAWS:
            raise ValueError(f"draw={draw!r} is unknown; allowed: {', '.join(DRAWS)}")
        if self.mode == "off":
            self.last_m = self.last_sigma = None
            return
        ids = self.task_ids.to(self.mean.device)
        sigma = {"train": self.train_sigma, "route": self.route_sigma}.get(draw)
        self.last_sigma = torch.zeros(len(ids), device=ids.device) if sigma is None else sigma[ids]
        self.last_m = draw_modulator(
            len(ids),
            self.last_sigma,
            draw=sigma is not None,
            mean=self.mean[ids],
            generator=self.generator,
            device=ids.device,
        )

    def couplings(self, site: str, task_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The couplings c at ``site``: every task's ``(n_tasks, C)``, or each sample's ``(B, C)``."""
        w = self.coupling[site] if task_ids is None else mix(task_ids, self.coupling[site])
        nonneg = self.nonneg if task_ids is None else self.nonneg[task_ids.to(self.nonneg.device)]
        return torch.where(nonneg.to(w.device)[:, None], w.square(), w)

    def log_gain(self, site: str, task_ids: torch.Tensor) -> torch.Tensor:
        """Per-sample log gains ``(B, C)`` at ``site`` for the current modulator (0 in off mode)."""
        c = self.couplings(site, task_ids)
        if self.mode == "off":
            return torch.zeros_like(c)
        return stochastic_log_gain(c, self.last_m.to(c.device), self.last_sigma.to(c.device))

    def modulate(self, site: str, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "off":
            return x
        task_ids = self._context_for(x)
        return exp_gain(x, self.log_gain(site, task_ids))

    # The generator's state travels with the state_dict, so a checkpoint resumes the same draws.
    def get_extra_state(self) -> torch.Tensor:
        return self.generator.get_state() if self.generator is not None else torch.empty(0, dtype=torch.uint8)

    def set_extra_state(self, state: torch.Tensor) -> None:
        if self.generator is not None and state.numel() > 0:
            self.generator.set_state(state)

    def extra_repr(self) -> str:
        kinds = sorted({(v.coupling, v.mean, v.noisy, v.guided) for v in self.variants})
        return (
            f"mode={self.mode!r}, sigma_m={self.sigma_m}, n_tasks={self.n_tasks}, sites={self.sites}, "
            f"variants={kinds}"
        )


class FiLM(Modulation):
    """Per-task feature-wise affine modulation ``gamma[t] * x + beta[t]`` (gamma 1, beta 0 at start)."""

    def __init__(self, sites: dict[str, int], n_tasks: int) -> None:
        super().__init__(sites, n_tasks)
        self.gamma = nn.ParameterDict(
            {n: nn.Parameter(torch.ones(n_tasks, c)) for n, c in self.sites.items()}
        )
        self.beta = nn.ParameterDict(
            {n: nn.Parameter(torch.zeros(n_tasks, c)) for n, c in self.sites.items()}
        )

    def modulate(self, site: str, x: torch.Tensor) -> torch.Tensor:
        task_ids = self._context_for(x)
        return film(x, mix(task_ids, self.gamma[site]), mix(task_ids, self.beta[site]))


class SEGain(Modulation):
    """Task-specific squeeze-and-excitation gains (Maninis, Radosavovic & Kokkinos 2019).

    Per site and task: ``z = mean over space of x`` (B, C); ``g = 2 * sigmoid(W2 relu(W1 z + b1) + b2)``;
    ``y = x * g``. The bottleneck has ``min(C, max(4, C // reduction))`` units. ``W2`` and ``b2``
    start at 0, so every gain is exactly 1 at start. The per-sample weights are gathered from the
    ``(n_tasks, ...)`` tensors by task id and applied with one einsum (no loop over tasks).
    """

    def __init__(self, sites: dict[str, int], n_tasks: int, reduction: int = 16) -> None:
        super().__init__(sites, n_tasks)
        if not (is_int(reduction) and reduction >= 1):
            raise ValueError(f"reduction={reduction!r} must be an integer >= 1")
        self.reduction = reduction
        self.hidden = {n: min(c, max(4, c // reduction)) for n, c in self.sites.items()}
        self.w1, self.b1, self.w2, self.b2 = (nn.ParameterDict() for _ in range(4))
        for name, c in self.sites.items():
            r, bound = self.hidden[name], 1 / math.sqrt(c)
            self.w1[name] = nn.Parameter(torch.empty(n_tasks, c, r).uniform_(-bound, bound))
            self.b1[name] = nn.Parameter(torch.empty(n_tasks, r).uniform_(-bound, bound))
            self.w2[name] = nn.Parameter(torch.zeros(n_tasks, r, c))
            self.b2[name] = nn.Parameter(torch.zeros(n_tasks, c))

    def gains(self, site: str, x: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        """Per-sample per-channel gains ``(B, C)`` at ``site`` for the output ``x``."""
        z = x.mean(dim=tuple(range(2, x.dim()))) if x.dim() > 2 else x
        z = z.to(self.w1[site].dtype)
        w1, b1, w2, b2 = (mix(task_ids, table[site]) for table in (self.w1, self.b1, self.w2, self.b2))
        hidden = torch.relu(torch.einsum("bc,bcr->br", z, w1) + b1)
        return 2 * torch.sigmoid(torch.einsum("br,brc->bc", hidden, w2) + b2)

    def modulate(self, site: str, x: torch.Tensor) -> torch.Tensor:
        task_ids = self._context_for(x)
        return apply_gain(x, self.gains(site, x, task_ids))


def make_modulation(kind: str, sites: dict[str, int], n_tasks: int, **kw: Any) -> Modulation:
    """Build a modulator by name (see :data:`KINDS`); ``kw`` go to its constructor.

    ``deterministic_gain``/``stochastic_gain``/``none``: :class:`GainModulation` in mode
    ``deterministic``/``stochastic``/``off``; ``film``: :class:`FiLM`; ``se_gain``: :class:`SEGain`.
    """
    modes = {"deterministic_gain": "deterministic", "stochastic_gain": "stochastic", "none": "off"}
    if kind in modes:
        return GainModulation(sites, n_tasks, mode=modes[kind], **kw)
    if kind == "film":
        return FiLM(sites, n_tasks, **kw)
    if kind == "se_gain":
        return SEGain(sites, n_tasks, **kw)
    raise ValueError(f"kind={kind!r} is unknown; allowed: {', '.join(KINDS)}")


def trainable_parameters_per_task(module: nn.Module, n_tasks: int | None = None) -> int:
    """Trainable parameters of ``module`` divided by ``n_tasks`` (default ``module.n_tasks``).

    Raises ``ValueError`` if the total is not a multiple of ``n_tasks`` (shared parameters).
    """
    n_tasks = getattr(module, "n_tasks", None) if n_tasks is None else n_tasks
    if not (is_int(n_tasks) and n_tasks >= 1):
        raise ValueError(f"n_tasks={n_tasks!r}: pass an integer >= 1 (module has no n_tasks attribute)")
    total = sum(p.numel() for p in module.parameters() if p.requires_grad)
    if total % n_tasks:
        raise ValueError(f"{total} trainable parameters are not a multiple of n_tasks={n_tasks}")
    return total // n_tasks
