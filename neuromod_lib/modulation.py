"""Modulators: a context (task ids) mapped to a change of activity at chosen sites of a backbone.

This is the method of Boeshertz, Haimerl & Savin (2023), "Task adaption by biologically inspired
stochastic comodulation": a pretrained backbone stays frozen and is adapted to many tasks by a
few per-task parameters acting on chosen layers. Every modulator here has the same small API:

- ``attach(backbone)`` registers forward hooks on ``backbone.site_module(site)`` for each of its
  sites, so it works with any backbone (torchvision's included) without touching its code;
  ``detach()`` removes them;
- ``set_context(task_ids)`` (or ``with modulator.context(task_ids): ...``) gives the hooks the
  task id of every sample, ``(B,)`` long; call it once per batch.

Modulators (all per task, per channel of a conv map ``(B, C, H, W)`` or per unit of ``(B, D)``):

- :class:`GainModulation`: ``y = x * exp(c * m - Var(m) * c**2 / 2)`` with a learned coupling
  ``c`` (initialised to 0, i.e. gain 1). ``mode="deterministic"``: m = 1, Var(m) = 0, so
  ``y = x * exp(c)``. ``mode="stochastic"`` (*stochastic comodulation*): m ~ N(0, sigma_m²), one
  scalar per sample shared by every modulated unit at every site, drawn afresh by each
  ``set_context``; the ``-Var(m) c²/2`` term keeps the mean gain at exactly 1, so the task
  information lies in *which* units fluctuate with m, read out by
  :class:`neuromod_lib.readout.ModulatorGuidedReadout` from ``last_m``. ``mode="off"``: identity.
- :class:`FiLM`: ``y = gamma * x + beta`` (gamma 1, beta 0 at start).
- :class:`SEGain`: task-specific squeeze-and-excitation (Maninis et al. 2019): a per-task
  bottleneck MLP on the globally pooled features gives gains ``2 * sigmoid(.)``, exactly 1 at start.

Design choice, stochastic gains in eval mode: by default (``eval_noise=False``) evaluation uses
the modulator's expected value m = 0 with the variance term kept, i.e. gains
``exp(-sigma_m² c² / 2)``: the gain at the typical (mean, and median) modulator value, so that
evaluation is deterministic. Note it is not the *mean* gain (exactly 1); the two differ by the
factor ``exp(-sigma_m² c² / 2)``, about 1 - sigma_m² c² / 2 (0.5 % for sigma_m = 0.1, c = 1).
``eval_noise=True`` draws m in eval mode as in training. Whether m is drawn is decided when the
context is set, from the mode the module is in at that moment.

Randomness: m is drawn from ``generator`` if one is given (its state is then part of the
module's ``state_dict``, so checkpoints resume exactly), else from torch's global RNG (seeded by
:func:`neuromod_lib.device.seed_everything` and saved in :func:`neuromod_lib.training.fit`'s
checkpoints).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from .checks import check_finite, is_int, is_number

GAIN_MODES = ("deterministic", "stochastic", "off")
KINDS = ("deterministic_gain", "stochastic_gain", "film", "se_gain", "none")


def check_task_ids(task_ids: Any, n_tasks: int, batch: int | None = None) -> torch.Tensor:
    """Check that ``task_ids`` is a ``(B,)`` integer tensor with values in ``[0, n_tasks)``; return it.

    ``batch``: the expected B, if known. Raises ``ValueError`` naming ``task_ids``.
    """
    if not isinstance(task_ids, torch.Tensor) or task_ids.dim() != 1 or task_ids.dtype.is_floating_point:
        shape = list(task_ids.shape) if isinstance(task_ids, torch.Tensor) else type(task_ids).__name__
        raise ValueError(f"task_ids must be a (B,) integer tensor; got {shape}")
    if batch is not None and task_ids.shape[0] != batch:
        raise ValueError(f"task_ids has {task_ids.shape[0]} entries but the batch has {batch} samples")
    if task_ids.numel() and (int(task_ids.min()) < 0 or int(task_ids.max()) >= n_tasks):
        raise ValueError(
            f"task_ids must lie in [0, {n_tasks - 1}] (n_tasks={n_tasks}); "
            f"got values in [{int(task_ids.min())}, {int(task_ids.max())}]"
        )
    return task_ids.long()


def context_vectors(context: Any, n_contexts: int) -> torch.Tensor:
    """A context as vectors ``(..., n_contexts)``: task ids become one-hot rows, vectors are checked.

    The one representation of "which task" that every modulator family accepts: a task id
    ``e_k``, a mixture ``(1 - lam) e_A + lam e_B`` for an ambiguous context, or a noisy vector.
    ``context``: an integer tensor of task ids ``(...)`` with values in ``[0, n_contexts)``, or a
    float tensor ``(..., n_contexts)`` of finite values. Raises ``ValueError`` naming ``context``.
    """
    if not isinstance(context, torch.Tensor):
        raise ValueError(
            f"context must be a tensor of task ids or of context vectors; got {type(context).__name__}"
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


def _per_channel(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``(B, C)`` per-sample per-channel values shaped to broadcast over ``x`` (B, C, *spatial)."""
    return values.reshape(*values.shape, *([1] * (x.dim() - 2))).to(x.dtype)


class Modulation(nn.Module):
    """Base class: sites, hooks and context. Subclasses implement :meth:`modulate`."""

    def __init__(self, sites: dict[str, int], n_tasks: int) -> None:
        super().__init__()
        self.sites = _check_sites(sites)
        if not (is_int(n_tasks) and n_tasks >= 1):
            raise ValueError(f"n_tasks={n_tasks!r} must be an integer >= 1")
        self.n_tasks = n_tasks
        self.task_ids: torch.Tensor | None = None
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
            return self.modulate(site, output)

        return hook

    # --- context ----------------------------------------------------------------------------
    def _device(self, default: torch.device | None = None) -> torch.device:
        """The device of the parameters (``default``, else the CPU, for a modulator without any)."""
        tensor = next(iter(self.parameters()), None)
        return tensor.device if tensor is not None else (default or torch.device("cpu"))

    def set_context(self, task_ids: torch.Tensor) -> None:
        """Store the task id of each sample ``(B,)`` for the hooks (call once per batch)."""
        task_ids = check_task_ids(task_ids, self.n_tasks)
        self.task_ids = task_ids.to(self._device(default=task_ids.device))

    def clear_context(self) -> None:
        self.task_ids = None

    @contextmanager
    def context(self, task_ids: torch.Tensor) -> Iterator[Modulation]:
        """``with modulator.context(task_ids): features = backbone(x)``; clears the task ids after."""
        self.set_context(task_ids)
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


class GainModulation(Modulation):
    """Per-task multiplicative gains ``x * exp(c * m - Var(m) c² / 2)``; see the module docstring.

    Parameters: ``coupling[site]`` of shape ``(n_tasks, C)``, initialised to 0 (gain 1); in
    ``mode="off"`` they exist (so state_dicts match across modes) but are not trainable.
    ``last_m``: the modulator of the last context, ``(B,)``, in stochastic mode (None otherwise).
    """

    def __init__(
        self,
        sites: dict[str, int],
        n_tasks: int,
        mode: str = "deterministic",
        sigma_m: float = 0.1,
        generator: torch.Generator | None = None,
        eval_noise: bool = False,
    ) -> None:
        super().__init__(sites, n_tasks)
        if mode not in GAIN_MODES:
            raise ValueError(f"mode={mode!r} is unknown; allowed: {', '.join(GAIN_MODES)}")
        if not (is_number(sigma_m) and sigma_m >= 0):
            raise ValueError(f"sigma_m={sigma_m!r} is not allowed; allowed: a finite number >= 0")
        if not isinstance(eval_noise, bool):
            raise ValueError(f"eval_noise={eval_noise!r} is not allowed; allowed: True or False")
        self.mode, self.sigma_m, self.generator, self.eval_noise = mode, float(sigma_m), generator, eval_noise
        self.coupling = nn.ParameterDict(
            {
                name: nn.Parameter(torch.zeros(n_tasks, c), requires_grad=mode != "off")
                for name, c in self.sites.items()
            }
        )
        self.last_m: torch.Tensor | None = None

    def set_context(self, task_ids: torch.Tensor) -> None:
        """Store task ids; in stochastic mode also draw ``last_m`` (B,) ~ N(0, sigma_m²).

        m is drawn in training mode or with ``eval_noise``; otherwise m = 0 (expected modulator).
        """
        super().set_context(task_ids)
        if self.mode != "stochastic":
            self.last_m = None
            return
        batch, device = self.task_ids.shape[0], self.task_ids.device
        if not (self.training or self.eval_noise):
            self.last_m = torch.zeros(batch, device=device)
        elif self.generator is None:
            self.last_m = self.sigma_m * torch.randn(batch, device=device)
        else:
            g = self.generator
            self.last_m = (self.sigma_m * torch.randn(batch, generator=g, device=g.device)).to(device)

    def log_gain(self, site: str, task_ids: torch.Tensor) -> torch.Tensor:
        """Per-sample log gains ``(B, C)`` at ``site`` for the current modulator (0 in off mode)."""
        c = self.coupling[site][task_ids]
        if self.mode == "off":
            return torch.zeros_like(c)
        if self.mode == "deterministic":
            return c
        m = self.last_m.to(c.device)
        return c * m[:, None] - (self.sigma_m**2 / 2) * c.square()

    def modulate(self, site: str, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "off":
            return x
        task_ids = self._context_for(x)
        return x * _per_channel(self.log_gain(site, task_ids).exp(), x)

    # The generator's state travels with the state_dict, so a checkpoint resumes the same draws.
    def get_extra_state(self) -> torch.Tensor:
        return self.generator.get_state() if self.generator is not None else torch.empty(0, dtype=torch.uint8)

    def set_extra_state(self, state: torch.Tensor) -> None:
        if self.generator is not None and state.numel() > 0:
            self.generator.set_state(state)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, sigma_m={self.sigma_m}, n_tasks={self.n_tasks}, sites={self.sites}"


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
        return _per_channel(self.gamma[site][task_ids], x) * x + _per_channel(self.beta[site][task_ids], x)


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
        hidden = torch.relu(torch.einsum("bc,bcr->br", z, self.w1[site][task_ids]) + self.b1[site][task_ids])
        return 2 * torch.sigmoid(
            torch.einsum("br,brc->bc", hidden, self.w2[site][task_ids]) + self.b2[site][task_ids]
        )

    def modulate(self, site: str, x: torch.Tensor) -> torch.Tensor:
        task_ids = self._context_for(x)
        return x * _per_channel(self.gains(site, x, task_ids), x)


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
