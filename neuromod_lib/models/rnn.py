"""Leaky rate RNNs whose context acts through excitability, synapses, both, or a rule input.

This is the model of Vedovati & Ching (2024), "Synergistic pathways of modulation enable
robust task packing within neural dynamics", built on the standard multitask RNN of Yang et
al. (2019)::

    x_t = g(c) * (W_in u_t + W_rec(c) r_{t-1}) + b + b(c) + noise
    r_t = (1 - a) r_{t-1} + a f(x_t),        a = dt / tau
    y_t = sigmoid(W_out r_t + b_out)

A context ``c`` (a one-hot task vector, a mixture of two tasks, or a noisy vector: see
:func:`neuromod_lib.modulation.context_vectors`) reaches the network through one *pathway*:

- ``rule``: a context-dependent bias ``b(c) = B c``. This is exactly Yang et al.'s rule input
  (the one-hot rule appended to the input and multiplied by its input weights): an *additive*
  change of each neuron's excitability (its threshold). The baseline.
- ``excitability``: per-neuron gain ``g(c) = 1 + G c`` and bias ``b(c) = B c``: multiplicative
  and additive changes of excitability.
- ``synaptic``: context-dependent recurrent weights, either ``elementwise`` scaling
  ``W_rec(c) = W_rec * (1 + sum_k c_k M_k)`` (``K N²`` values) or a ``lowrank`` change
  ``W_rec(c) = W_rec + sum_k c_k U_k V_k^T`` (``2 K N rank`` values; cf. lindermanlab/nm-rnn).
- ``both``: excitability and synaptic together.

Each formula is the one function of :mod:`neuromod_lib.modulation` every model uses
(:func:`~neuromod_lib.modulation.excitability_terms` and :func:`~neuromod_lib.modulation.film`,
:func:`~neuromod_lib.modulation.elementwise_scaling`, :func:`~neuromod_lib.modulation.lowrank_change`),
here on a stack of networks.

Every context parameter starts at "no modulation" (gain 1, bias 0, scaling 1, ``V = 0``), so all
pathways start from the same network. ``matched=True`` gives every modulated pathway the
same ``2 N K`` context parameters (design choice): excitability (gain + bias), synaptic
(low-rank, rank 1), and both (gain + a *symmetric* rank-1 change ``U_k U_k^T - U0_k U0_k^T``,
with ``U0`` the random initial ``U``, so that it too starts at no change and still has a
gradient); the rule input has ``N K``. :meth:`ModulatedRNN.context_parameters` reports the counts.

**Stacks.** One :class:`ModulatedRNN` holds ``S`` independent networks of the same size, each
with its own pathway, trained together with batched matrix products (a sweep over seeds and
pathways is one model, not a Python loop over models). A network that does not use a pathway
has that pathway's parameters multiplied by a zero mask, so they get zero gradients and stay
at their initial value. Gradient clipping is per network (:meth:`clip_grad_norm_`), so that
networks in a stack train exactly as they would alone.

**Groups.** Inputs are ``(S, G, B, T, I)``: ``G`` groups of ``B`` trials, one context per
group ``(S, G, K)`` (or ``(G, K)``, shared by every network). The effective weights are made
once per group and forward pass, not per step. For per-trial contexts use ``B = 1``.

Noise (design, following Yang et al.): in training mode, Gaussian noise of std
``input_noise * sqrt(2 / a)`` is added to the inputs and ``rec_noise * sqrt(2 / a)`` to ``x_t``;
``forward(..., noise=...)`` overrides the mode. Draws come from ``generator`` when given.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..checks import Check, check_fields, is_int, is_number
from ..modulation import context_vectors, elementwise_scaling, excitability_terms, film, lowrank_change

PATHWAYS = ("rule", "excitability", "synaptic", "both")
SYNAPTIC_FORMS = ("elementwise", "lowrank")
ACTIVATIONS = {"softplus": nn.functional.softplus, "relu": torch.relu}


@dataclass(frozen=True)
class RNNConfig:
    """Sizes and dynamics of the networks in a :class:`ModulatedRNN`; checked when made.

    ``dt``/``tau`` in ms (``dt <= tau``); ``rec_noise``/``input_noise`` are Yang et al.'s
    ``sigma_rec``/``sigma_x`` (scaled by ``sqrt(2/a)`` when drawn); ``w_rec_scale`` scales the
    random orthogonal initial ``W_rec``; ``synaptic``/``rank``: the form of the synaptic pathway;
    ``matched``: equal context-parameter budgets (see the module docstring).
    """

    n_neurons: int = 64
    n_inputs: int = 65
    n_outputs: int = 33
    n_contexts: int = 2
    dt: float = 100.0
    tau: float = 200.0
    activation: str = "softplus"
    rec_noise: float = 0.05
    input_noise: float = 0.01
    w_rec_scale: float = 0.5
    synaptic: str = "lowrank"
    rank: int = 1
    matched: bool = False

    def __post_init__(self) -> None:
        def count(name: str) -> Check:
            value = getattr(self, name)
            return (name, is_int(value) and value >= 1, "an integer >= 1")

        def non_negative(name: str) -> Check:
            value = getattr(self, name)
            return (name, is_number(value) and value >= 0, "a finite number >= 0")

        dt, tau = self.dt, self.tau
        known_activation = isinstance(self.activation, str) and self.activation in ACTIVATIONS
        check_fields(
            self,
            [
                *(count(n) for n in ("n_neurons", "n_inputs", "n_outputs", "n_contexts", "rank")),
                ("dt", is_number(dt) and dt > 0, "a finite number > 0 (ms)"),
                ("tau", is_number(tau) and tau > 0, "a finite number > 0 (ms)"),
                (
                    "dt",
                    is_number(dt) and is_number(tau) and dt <= tau,
                    f"dt <= tau={tau} ms: the update a = dt/tau must be <= 1",
                    f"dt={dt} ms must not exceed tau={tau} ms",
                ),
                *(non_negative(n) for n in ("rec_noise", "input_noise", "w_rec_scale")),
                ("activation", known_activation, ", ".join(ACTIVATIONS)),
                ("synaptic", self.synaptic in SYNAPTIC_FORMS, ", ".join(SYNAPTIC_FORMS)),
                ("matched", isinstance(self.matched, bool), "True or False"),
                (
                    "matched",
                    not self.matched or self.synaptic == "lowrank" and self.rank == 1,
                    "False, or True with synaptic='lowrank' and rank=1 (the budget 2 N K per pathway)",
                ),
            ],
        )

    @property
    def alpha(self) -> float:
        """The update fraction ``a = dt / tau``."""
        return self.dt / self.tau


def check_pathways(pathways: str | Sequence[str]) -> tuple[str, ...]:
    """``pathways`` as a non-empty tuple of names from :data:`PATHWAYS`; ``ValueError`` otherwise."""
    names = (pathways,) if isinstance(pathways, str) else tuple(pathways)
    bad = [p for p in names if p not in PATHWAYS]
    if not names or bad:
        raise ValueError(f"pathways={list(names)!r}: unknown or empty; allowed: {', '.join(PATHWAYS)}")
    return names


def _orthogonal(s: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """``(s, n, n)`` random orthogonal matrices (Haar: QR of a Gaussian with the sign fix)."""
    q, r = torch.linalg.qr(torch.randn(s, n, n, generator=generator))
    return q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)


class ModulatedRNN(nn.Module):
    """``S`` leaky RNNs of one size, each with its own context pathway; see the module docstring.

    ``pathways``: one name per network (a single name makes ``S = 1``). Parameters have a
    leading ``S`` dimension: ``w_in (S, N, I)``, ``w_rec (S, N, N)``, ``bias (S, N)``,
    ``w_out (S, O, N)``, ``b_out (S, O)``; context parameters ``ctx_gain``/``ctx_bias``
    ``(S, K, N)`` and ``ctx_scale (S, K, N, N)`` (elementwise) or ``ctx_u``/``ctx_v``
    ``(S, K, N, rank)`` (low-rank). Initialisation is drawn from ``generator`` on the CPU.
    """

    def __init__(
        self,
        config: RNNConfig,
        pathways: str | Sequence[str] = "both",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.config, self.pathways = config, check_pathways(pathways)
        gen = torch.Generator().manual_seed(0) if generator is None else generator
        s, n, i, o, k = (
            len(self.pathways),
            config.n_neurons,
            config.n_inputs,
            config.n_outputs,
            config.n_contexts,
        )
        self.w_in = nn.Parameter(torch.randn(s, n, i, generator=gen) / math.sqrt(i))
        self.w_rec = nn.Parameter(config.w_rec_scale * _orthogonal(s, n, gen))
        self.bias = nn.Parameter(torch.zeros(s, n))
        self.w_out = nn.Parameter(torch.randn(s, o, n, generator=gen) / math.sqrt(n))
        self.b_out = nn.Parameter(torch.zeros(s, o))
        self.ctx_gain = nn.Parameter(torch.zeros(s, k, n))
        self.ctx_bias = nn.Parameter(torch.zeros(s, k, n))
        if config.synaptic == "elementwise":
            self.ctx_scale = nn.Parameter(torch.zeros(s, k, n, n))
        else:
            rank = config.rank
            self.ctx_u = nn.Parameter(torch.randn(s, k, n, rank, generator=gen) / math.sqrt(n))
            self.register_buffer("ctx_u0", self.ctx_u.detach().clone())  # tied form: change U U^T - U0 U0^T
            self.ctx_v = nn.Parameter(torch.zeros(s, k, n, rank))
        uses = {name: self._uses(name) for name in ("gain", "bias", "synapse", "tied")}
        for name, flags in uses.items():
            self.register_buffer(f"use_{name}", torch.tensor(flags, dtype=torch.float32), persistent=False)

    # --- which pathway uses what -------------------------------------------------------------
    def _uses(self, part: str) -> list[bool]:
        """Per network: whether its pathway uses ``part`` (gain, bias, synapse, tied low-rank)."""
        matched = self.config.matched
        table = {
            "gain": {"excitability", "both"},
            "bias": {"rule", "excitability"} | (set() if matched else {"both"}),
            "synapse": {"synaptic", "both"},
            "tied": {"both"} if matched else set(),
        }
        return [p in table[part] for p in self.pathways]

    @property
    def n_networks(self) -> int:
        return len(self.pathways)

    def context_parameters(self) -> list[int]:
        """Per network, the number of context-dependent (per-task) parameters its pathway trains."""
        n, k, r = self.config.n_neurons, self.config.n_contexts, self.config.rank
        synapse = n * n * k if self.config.synaptic == "elementwise" else 2 * n * k * r
        counts = []
        for gain, bias, syn, tied in zip(
            *(self._uses(p) for p in ("gain", "bias", "synapse", "tied")), strict=True
        ):
            counts.append(n * k * (gain + bias) + syn * (synapse // 2 if tied else synapse))
        return counts

    def shared_parameters(self) -> int:
        """Parameters every network trains whatever its pathway (W_in, W_rec, biases, readout)."""
        c = self.config
        return c.n_neurons * (c.n_inputs + c.n_neurons + 1) + c.n_outputs * (c.n_neurons + 1)

    # --- the effective network for a context -------------------------------------------------
    def _context(self, context: torch.Tensor) -> torch.Tensor:
        """Context vectors as ``(S, G, K)`` on the parameters' device."""
        c = context_vectors(context, self.config.n_contexts).to(self.w_rec.device, torch.float32)
        if c.dim() == 2:
            c = c.expand(self.n_networks, *c.shape)
        if c.dim() != 3 or c.shape[0] != self.n_networks:
            raise ValueError(
                f"context must be (G, K) or (S={self.n_networks}, G, K) vectors; "
                f"got shape {list(context.shape)}"
            )
        return c

    def effective(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The gain ``(S, G, N)``, total bias ``(S, G, N)`` and ``W_rec(c)`` ``(S, G|1, N, N)`` per group.

        Gain ``1 + G c`` and context bias ``B c`` are :func:`~neuromod_lib.modulation.excitability_terms`
        (the rule pathway is its bias alone); ``W_rec(c)`` is
        :func:`~neuromod_lib.modulation.elementwise_scaling` or ``W_rec +``
        :func:`~neuromod_lib.modulation.lowrank_change`. A network's unused parts are masked to 0.
        """
        c = self._context(context)
        gain, ctx_bias = excitability_terms(
            c, self.ctx_gain * self.use_gain[:, None, None], self.ctx_bias * self.use_bias[:, None, None]
        )
        bias = self.bias[:, None] + ctx_bias
        w = self.w_rec[:, None]
        if bool(self.use_synapse.any()):
            on = self.use_synapse[:, None, None, None]
            if self.config.synaptic == "elementwise":
                w = elementwise_scaling(w, c, self.ctx_scale * on)
            else:
                tied = self.use_tied[:, None, None, None]
                v = tied * self.ctx_u + (1 - tied) * self.ctx_v
                w = w + lowrank_change(c, self.ctx_u * on, v)
                if bool(self.use_tied.any()):  # U U^T - U0 U0^T: no modulation at initialisation
                    u0 = self.ctx_u0 * (tied * on)
                    w = w - lowrank_change(c, u0, u0)
        return gain, bias, w

    # --- dynamics ----------------------------------------------------------------------------
    def transition(
        self, inputs: torch.Tensor, context: torch.Tensor
    ) -> Callable[[torch.Tensor], torch.Tensor]:
        """The noise-free update ``F(r)`` for rows with their own constant input and context.

        ``inputs`` ``(S, P, I)`` or ``(P, I)``, ``context`` ``(S, P, K)`` or ``(P, K)`` (or task ids);
        returns ``F`` mapping states ``(S, P, N)`` to ``(S, P, N)``. The effective weights are made
        once here, not per call; rows are independent, as fixed-point analysis
        (:func:`neuromod_lib.analysis.find_fixed_points`) needs.
        """
        gain, bias, w = self.effective(context)
        inputs = inputs.to(self.w_in.device)
        drive = torch.einsum("spi,sni->spn", inputs.expand(self.n_networks, *inputs.shape[-2:]), self.w_in)
        act, a = ACTIVATIONS[self.config.activation], self.config.alpha

        def F(r: torch.Tensor) -> torch.Tensor:
            x = film(drive + torch.matmul(w, r.unsqueeze(-1)).squeeze(-1), gain, bias)  # excitability
            return torch.lerp(r, act(x), a)

        return F

    def forward(
        self,
        inputs: torch.Tensor,
        context: torch.Tensor,
        *,
        noise: bool | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run every network on its trials: ``inputs`` ``(S, G, B, T, I)`` or ``(G, B, T, I)``.

        Returns ``(outputs (S, G, B, T, O), states (S, G, B, T, N))``; the state starts at 0.
        ``noise``: add input and recurrent noise (default: in training mode only).
        """
        cfg, s = self.config, self.n_networks
        if inputs.dim() == 4:
            inputs = inputs.expand(s, *inputs.shape)
        if inputs.dim() != 5 or inputs.shape[0] != s or inputs.shape[-1] != cfg.n_inputs:
            raise ValueError(
                f"inputs must be (G, B, T, {cfg.n_inputs}) or ({s}, G, B, T, {cfg.n_inputs}); "
                f"got {list(inputs.shape)}"
            )
        _, g, b, t, _ = inputs.shape
        gain, bias, w = self.effective(context)
        if gain.shape[1] != g:
            raise ValueError(f"context has {gain.shape[1]} groups but inputs have G={g}")
        noise = self.training if noise is None else noise
        inputs = inputs.to(self.w_in.device)
        if noise and cfg.input_noise > 0:
            inputs = inputs + self._noise(inputs.shape, cfg.input_noise, generator)
        drive = torch.einsum("sgbti,sni->tsgbn", inputs, self.w_in)  # time first: one slice per step
        drive = film(drive, gain[None, :, :, None], bias[None, :, :, None])  # excitability of the input drive
        if noise and cfg.rec_noise > 0:
            drive = drive + self._noise(drive.shape, cfg.rec_noise, generator)
        # the same gain on the recurrent drive, folded into W's rows: g * (W r) = (diag(g) W) r
        w_eff = (gain[..., None] * w).transpose(-1, -2)  # (S, G|1, N, N), acting on row vectors
        w_eff = w_eff.expand(s, g, -1, -1).reshape(s * g, *w_eff.shape[2:])
        drive = drive.reshape(t, s * g, b, -1)
        states = self._run(drive, w_eff).reshape(t, s, g, b, -1).permute(1, 2, 3, 0, 4)
        outputs = torch.sigmoid(
            torch.einsum("sgbtn,son->sgbto", states, self.w_out) + self.b_out[:, None, None, None]
        )
        return outputs, states

    def _run(self, drive: torch.Tensor, w_eff: torch.Tensor) -> torch.Tensor:
        """The recurrence: ``drive`` ``(T, M, B, N)``, ``w_eff`` ``(M, N, N)`` → states ``(T, M, B, N)``."""
        act, a = ACTIVATIONS[self.config.activation], self.config.alpha
        r = drive.new_zeros(drive.shape[1:])
        states = []
        for x in drive:
            r = torch.lerp(r, act(torch.baddbmm(x, r, w_eff)), a)
            states.append(r)
        return torch.stack(states)

    def _noise(self, shape: torch.Size, std: float, generator: torch.Generator | None) -> torch.Tensor:
        scale = std * math.sqrt(2 / self.config.alpha)
        device = self.w_in.device
        if generator is not None and generator.device != device:
            return scale * torch.randn(shape, generator=generator).to(device)
        return scale * torch.randn(shape, generator=generator, device=device)

    # --- training helpers --------------------------------------------------------------------
    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        """Clip each network's gradient norm to ``max_norm`` separately; return the ``(S,)`` norms."""
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        if not grads:
            return torch.zeros(self.n_networks)
        norms = torch.stack([g.reshape(self.n_networks, -1).pow(2).sum(1) for g in grads]).sum(0).sqrt()
        factor = (max_norm / (norms + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(factor.reshape(-1, *([1] * (g.dim() - 1))))
        return norms

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"networks={self.n_networks}, pathways={self.pathways}, N={c.n_neurons}, K={c.n_contexts}, "
            f"a={c.alpha:g}, f={c.activation}, synaptic={c.synaptic}"
        )


def masked_mse(outputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-network cost ``(S,)``: squared error weighted by the cost mask, averaged as in Yang et al.

    ``outputs``/``targets`` ``(S, G, B, T, O)``, ``mask`` ``(S, G, B, T)`` (or broadcastable):
    ``sum(mask * err²) / (sum(mask) * O)`` per network.
    """
    err = (outputs - targets).pow(2).mean(-1) * mask
    dims = tuple(range(1, err.dim()))
    return err.sum(dims) / mask.expand_as(err).sum(dims).clamp(min=1e-12)
