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
pathways start from the same network. ``matched=True`` gives every modulated pathway the same
``2 N K`` context parameters (design choice): excitability (gain + bias: ``N K`` each), synaptic
(a rank-1 change ``U_k V_k^T``: ``N K`` each), and both = half of each: the excitability
pathway's gain ``G`` (``N K``) and the synaptic pathway's learned ``V`` (``N K``), acting through
the fixed random initial ``U`` (``W_rec + sum_k c_k U0_k V_k^T``); the rule input has ``N K``.
Unmatched, ``both`` is the union of the two pathways (``4 N K``).
:meth:`ModulatedRNN.context_parameters` reports the counts.

**Stacks.** One :class:`ModulatedRNN` holds ``S`` independent networks of the same size, each
with its own pathway, trained together with batched matrix products (a sweep over seeds and
pathways is one model, not a Python loop over models). A network that does not use a pathway
has that pathway's parameters multiplied by a zero mask, so they get zero gradients and stay
at their initial value. Gradient clipping is per network (:meth:`clip_grad_norm_`), so that
networks in a stack train exactly as they would alone.

**Groups.** Inputs are ``(S, G, B, T, I)``: ``G`` groups of ``B`` trials, one context per
group ``(S, G, K)`` (or ``(G, K)``, shared by every network). The effective weights are made
once per group and forward pass, not per step. For per-trial contexts use ``B = 1``.

**Sizes.** ``sizes`` gives each network of a stack its own number of neurons (at most
``config.n_neurons``): a smaller network is padded with units whose weights, biases, context
parameters and noise are multiplied by a zero mask, so they never act and never learn, and a
sweep over network sizes trains as one stack too. ``seeds`` draws each network's initial
weights from its own seed (drawn at its own size), so that networks of different pathways can
start from the same weights (a paired comparison).

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


def _check_sizes(sizes: Sequence[int] | None, s: int, n: int) -> list[int]:
    """Each network's number of neurons: ``sizes`` (one per network, each in [1, n]) or ``n`` for all."""
    if sizes is None:
        return [n] * s
    sizes = list(sizes)
    if len(sizes) != s or any(not is_int(v) or not 1 <= v <= n for v in sizes):
        raise ValueError(
            f"sizes={sizes!r} must give each of the {s} networks a number of neurons in [1, n_neurons={n}]"
        )
    return [int(v) for v in sizes]


def _draw(config: RNNConfig, s: int, n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """The random initial weights of ``s`` networks of ``n`` neurons, drawn from ``gen`` in a fixed order."""
    i, o, k = config.n_inputs, config.n_outputs, config.n_contexts
    out = {
        "w_in": torch.randn(s, n, i, generator=gen) / math.sqrt(i),
        "w_rec": config.w_rec_scale * _orthogonal(s, n, gen),
        "w_out": torch.randn(s, o, n, generator=gen) / math.sqrt(n),
    }
    if config.synaptic == "lowrank":
        out["ctx_u"] = torch.randn(s, k, n, config.rank, generator=gen) / math.sqrt(n)
    return out


#: the neuron axes of each drawn tensor (leading network axis first)
_NEURON_AXES = {"w_in": (1,), "w_rec": (1, 2), "w_out": (2,), "ctx_u": (2,)}


def _pad(name: str, t: torch.Tensor, n: int) -> torch.Tensor:
    """``t`` (one drawn tensor ``name`` of networks of one size) with its neuron axes zero-padded to ``n``."""
    pads = [0] * (2 * t.dim())
    for axis in _NEURON_AXES[name]:
        pads[2 * (t.dim() - 1 - axis) + 1] = n - t.shape[axis]
    return torch.nn.functional.pad(t, pads)


class ModulatedRNN(nn.Module):
    """``S`` leaky RNNs, each with its own context pathway (and size); see the module docstring.

    ``pathways``: one name per network (a single name makes ``S = 1``). Parameters have a
    leading ``S`` dimension: ``w_in (S, N, I)``, ``w_rec (S, N, N)``, ``bias (S, N)``,
    ``w_out (S, O, N)``, ``b_out (S, O)``; context parameters ``ctx_gain``/``ctx_bias``
    ``(S, K, N)`` and ``ctx_scale (S, K, N, N)`` (elementwise) or ``ctx_u``/``ctx_v``
    ``(S, K, N, rank)`` (low-rank). Initialisation is drawn from ``generator`` on the CPU, or,
    with ``seeds``, network ``s`` from ``seeds[s]``. ``sizes``: each network's number of neurons
    (default ``config.n_neurons`` for all).
    """

    def __init__(
        self,
        config: RNNConfig,
        pathways: str | Sequence[str] = "both",
        generator: torch.Generator | None = None,
        *,
        sizes: Sequence[int] | None = None,
        seeds: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.config, self.pathways = config, check_pathways(pathways)
        s, n, k = len(self.pathways), config.n_neurons, config.n_contexts
        self.sizes = _check_sizes(sizes, s, n)
        if seeds is not None and len(seeds) != s:
            raise ValueError(
                f"seeds has {len(seeds)} entries but there are {s} networks; give one per network"
            )
        if seeds is None and not any(size < n for size in self.sizes):
            init = _draw(config, s, n, torch.Generator().manual_seed(0) if generator is None else generator)
        else:  # one network at a time, each at its own size, from its own seed or the shared generator
            shared = torch.Generator().manual_seed(0) if generator is None else generator
            gens = (
                [torch.Generator().manual_seed(int(x)) for x in seeds] if seeds is not None else [shared] * s
            )
            nets = [_draw(config, 1, size, gen) for size, gen in zip(self.sizes, gens, strict=True)]
            init = {name: torch.cat([_pad(name, net[name], n) for net in nets]) for name in nets[0]}
        self.w_in = nn.Parameter(init["w_in"])
        self.w_rec = nn.Parameter(init["w_rec"])
        self.bias = nn.Parameter(torch.zeros(s, n))
        self.w_out = nn.Parameter(init["w_out"])
        self.b_out = nn.Parameter(torch.zeros(s, config.n_outputs))
        self.ctx_gain = nn.Parameter(torch.zeros(s, k, n))
        self.ctx_bias = nn.Parameter(torch.zeros(s, k, n))
        if config.synaptic == "elementwise":
            self.ctx_scale = nn.Parameter(torch.zeros(s, k, n, n))
        else:
            self.ctx_u = nn.Parameter(init["ctx_u"])
            self.register_buffer("ctx_u0", self.ctx_u.detach().clone())  # matched "both": fixed U0, learned V
            self.ctx_v = nn.Parameter(torch.zeros(s, k, n, config.rank))
        uses = {name: self._uses(name) for name in ("gain", "bias", "synapse", "fixed_u")}
        for name, flags in uses.items():
            self.register_buffer(f"use_{name}", torch.tensor(flags, dtype=torch.float32), persistent=False)
        units = torch.arange(n)[None] < torch.tensor(self.sizes)[:, None]
        self.register_buffer("unit_mask", units.float(), persistent=False)
        self.padded = any(size < n for size in self.sizes)

    # --- which pathway uses what -------------------------------------------------------------
    def _uses(self, part: str) -> list[bool]:
        """Per network: whether its pathway uses ``part`` (gain, bias, synapse, fixed random U)."""
        matched = self.config.matched
        table = {
            "gain": {"excitability", "both"},
            "bias": {"rule", "excitability"} | (set() if matched else {"both"}),
            "synapse": {"synaptic", "both"},
            "fixed_u": {"both"} if matched else set(),
        }
        return [p in table[part] for p in self.pathways]

    @property
    def n_networks(self) -> int:
        return len(self.pathways)

    def context_parameters(self) -> list[int]:
        """Per network, the number of context-dependent (per-task) parameters its pathway trains."""
        k, r = self.config.n_contexts, self.config.rank
        counts = []
        for n, gain, bias, syn, fixed_u in zip(
            self.sizes, *(self._uses(p) for p in ("gain", "bias", "synapse", "fixed_u")), strict=True
        ):
            synapse = n * n * k if self.config.synaptic == "elementwise" else 2 * n * k * r
            counts.append(n * k * (gain + bias) + syn * (synapse // 2 if fixed_u else synapse))
        return counts

    def shared_parameters(self) -> list[int]:
        """Per network, the parameters it trains whatever its pathway (W_in, W_rec, biases, readout)."""
        c = self.config
        return [n * (c.n_inputs + n + 1) + c.n_outputs * (n + 1) for n in self.sizes]

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

    def _units(self, t: torch.Tensor, *dims: int) -> torch.Tensor:
        """``t`` with its neuron axes ``dims`` (negative) multiplied by the unit mask (padded sizes)."""
        if not self.padded:
            return t
        for d in dims:
            shape = [1] * t.dim()
            shape[0], shape[d] = self.n_networks, t.shape[d]
            t = t * self.unit_mask.reshape(shape)
        return t

    def effective(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The gain ``(S, G, N)``, total bias ``(S, G, N)`` and ``W_rec(c)`` ``(S, G|1, N, N)`` per group.

        Gain ``1 + G c`` and context bias ``B c`` are :func:`~neuromod_lib.modulation.excitability_terms`
        (the rule pathway is its bias alone); ``W_rec(c)`` is
        :func:`~neuromod_lib.modulation.elementwise_scaling` or ``W_rec +``
        :func:`~neuromod_lib.modulation.lowrank_change`. A network's unused parts are masked to 0,
        and so are the padded units of a smaller network.
        """
        c = self._context(context)
        gain, ctx_bias = excitability_terms(
            c,
            self._units(self.ctx_gain * self.use_gain[:, None, None], -1),
            self._units(self.ctx_bias * self.use_bias[:, None, None], -1),
        )
        bias = self._units(self.bias, -1)[:, None] + ctx_bias
        w = self._units(self.w_rec, -1, -2)[:, None]
        if bool(self.use_synapse.any()):
            on = self.use_synapse[:, None, None, None]
            if self.config.synaptic == "elementwise":
                w = elementwise_scaling(w, c, self.ctx_scale * on)
            else:
                fixed = self.use_fixed_u[:, None, None, None]
                u = fixed * self.ctx_u0 + (1 - fixed) * self.ctx_u
                w = w + lowrank_change(c, self._units(u * on, -2), self._units(self.ctx_v, -2))
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
        w_in = self._units(self.w_in, -2)
        drive = torch.einsum("spi,sni->spn", inputs.expand(self.n_networks, *inputs.shape[-2:]), w_in)
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
        paired_noise: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run every network on its trials: ``inputs`` ``(S, G, B, T, I)`` or ``(G, B, T, I)``.

        Returns ``(outputs (S, G, B, T, O), states (S, G, B, T, N))``; the state starts at 0.
        ``noise``: add input and recurrent noise (default: in training mode only); ``paired_noise``:
        draw it once and give every group the same draw (the same trials under several contexts
        then differ by the context alone).
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
            shape = (s, 1, *inputs.shape[2:]) if paired_noise else inputs.shape
            inputs = inputs + self._noise(shape, cfg.input_noise, generator)
        drive = torch.einsum(
            "sgbti,sni->tsgbn", inputs, self._units(self.w_in, -2)
        )  # time first: one slice per step
        drive = film(drive, gain[None, :, :, None], bias[None, :, :, None])  # excitability of the input drive
        if noise and cfg.rec_noise > 0:
            shape = (t, s, 1, b, drive.shape[-1]) if paired_noise else drive.shape
            rec_noise = self._noise(shape, cfg.rec_noise, generator).expand(drive.shape)
            drive = drive + (rec_noise * self.unit_mask[None, :, None, None] if self.padded else rec_noise)
        # the same gain on the recurrent drive, folded into W's rows: g * (W r) = (diag(g) W) r
        w_eff = (gain[..., None] * w).transpose(-1, -2)  # (S, G|1, N, N), acting on row vectors
        w_eff = w_eff.expand(s, g, -1, -1).reshape(s * g, *w_eff.shape[2:])
        drive = drive.reshape(t, s * g, b, -1)
        states = self._run(drive, w_eff).reshape(t, s, g, b, -1).permute(1, 2, 3, 0, 4)
        if self.padded:  # padded units never reach a real one; report them silent (softplus(0) > 0)
            states = states * self.unit_mask[:, None, None, None]
        outputs = torch.sigmoid(
            torch.einsum("sgbtn,son->sgbto", states, self._units(self.w_out, -1))
            + self.b_out[:, None, None, None]
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


#: Yang et al.'s extra weight of the fixation output (output 0) in the cost ("fixation is important")
FIXATION_COST = 2.0


def masked_mse(outputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-network cost ``(S,)``: Yang et al.'s masked squared error.

    ``outputs``/``targets`` ``(S, G, B, T, O)``, ``mask`` ``(S, G, B, T)`` (or broadcastable): the
    per-step cost weights (:class:`~neuromod_lib.data.tasks.TrialBatch`'s ``mask``), which, as in
    Yang's ``square((y - y_hat) * c_mask)``, multiply the error *before* it is squared, with the
    fixation output's weight doubled (:data:`FIXATION_COST`). Averaged over the weighted steps
    (``mask > 0``) and the outputs, so that padding a batch with unweighted steps changes nothing.
    """
    weights = torch.ones(outputs.shape[-1], device=outputs.device, dtype=outputs.dtype)
    weights[0] = FIXATION_COST
    err = ((outputs - targets) * weights).pow(2).mean(-1) * mask.pow(2)
    dims = tuple(range(1, err.dim()))
    return err.sum(dims) / (mask > 0).expand_as(err).sum(dims).clamp(min=1)
