"""Adapting one frozen, pretrained backbone to many new tasks: the protocol of notebooks 01–03.

The question of Boeshertz, Haimerl & Savin (2023) is how much of a new task a pretrained
network already "knows", and how little has to be learned to bring it out. The protocol is
the same for every condition, so that only the adaptation mechanism differs:

1. :func:`pretrain` trains a backbone (with one head per task) on a set of pretraining
   tasks, then freezes it.
2. :func:`adapt_many` learns each *held-out* task with the conditions of :data:`CONDITIONS`: a
   linear head per task (all conditions), plus per-task gains (deterministic, or one of the
   variants of stochastic comodulation, :data:`STOCHASTIC_VARIANTS`), FiLM, task-specific
   squeeze-and-excitation gains, or fine-tuning the whole backbone. The same for all: optimiser
   (Adam), step budget, batch, evaluation (at step 0, then every ``eval_every`` steps), the
   learning-rate search (each condition keeps the rate with the lowest validation error), the
   test error of each task at its best validation point, and the saturation check of the budget
   (:func:`saturation`).

Tasks are classification problems on a shared image set: ``labels[i, t]`` is image i's class
in task t, or -1 where image i does not belong to task t (a superclass task only sees its
own images). Binary attributes are tasks with two classes and no -1.

Vectorised: every (arm, seed, task) triple — an arm is a condition and a learning rate — is
one *context* with its own parameters, and one batch holds samples of all contexts, so every
gain variant, learning rate, seed and task trains in one pass
(:class:`~neuromod_lib.training.ContextAdam` gives each context its rate). The loss is each
context's own mean loss, summed over contexts, and it reaches only that context's parameters, so
a context trains as it would alone; the arms of a seed see the same batches and start from the
same heads (a paired comparison). Only the modulator draws of the noisy arms come from one
generator for the group. Everything up to the first modulated site is computed once and cached.
Full fine-tuning changes the backbone, so it trains one backbone copy per seed and learning rate,
shared by that seed's tasks (multi-task fine-tuning — our design choice), all copies in one
vectorised call.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .checks import Check, check_fields, is_int, is_number
from .models.cnn import IMAGENET_MEAN, IMAGENET_STD, count_parameters
from .modulation import GainModulation, GainVariant, SEGain, make_modulation
from .readout import ModulatorGuidedReadout, TaskHeads
from .training import ContextAdam, FitConfig, fit


@dataclass(frozen=True)
class Condition:
    """One way of adapting the frozen backbone to a task.

    ``family``: the modulator (``none``, ``gain``, ``film``, ``se_gain``); ``variant``: for gains, how
    they are parametrised and driven (:class:`~neuromod_lib.modulation.GainVariant`); ``finetune``:
    train the backbone too; ``description``: one line for a notebook's table of conditions.
    """

    family: str
    variant: GainVariant | None = None
    finetune: bool = False
    description: str = ""


def _gain(description: str, coupling: str = "signed", mean: float = 1.0, **drive: bool) -> Condition:
    """A gain condition: its :class:`~neuromod_lib.modulation.GainVariant` and what it is, in words."""
    return Condition("gain", GainVariant(coupling, mean, **drive), description=description)


#: every condition by name; the gain variants follow Boeshertz, Haimerl & Savin (2023) and the
#: predecessor code (``../shared/papers.md`` section A)
CONDITIONS: dict[str, Condition] = {
    "head_only": Condition("none", description="a new linear head per task on the frozen features"),
    "deterministic_gain": _gain("gains exp(c), c = w signed, w0 = 0 (gain 1 at start)"),
    "deterministic_gain_nonneg": _gain(
        "gains exp(c), c = w² with w0 = 1 (the predecessor's gain model)", "nonneg"
    ),
    "stochastic_gain": _gain(
        "m = 1 + ξ in training, c = w² (w0 = 1), guided readout from paired modulator draws",
        "nonneg",
        noisy=True,
        guided=True,
    ),
    "stochastic_gain_routing": _gain(
        "predecessor protocol: couplings trained at m = 1, noise only in the routing pass",
        "nonneg",
        guided=True,
    ),
    "stochastic_gain_signed": _gain(
        "as stochastic_gain, but signed couplings c = w starting at 0", noisy=True, guided=True
    ),
    "stochastic_gain_plain_readout": _gain(
        "as stochastic_gain, but a plain readout (ablation: is it the readout?)", "nonneg", noisy=True
    ),
    "stochastic_gain_zero_mean": _gain(
        "m = ξ (mean gain 1), signed couplings from 0: this library's earlier version",
        mean=0.0,
        noisy=True,
        guided=True,
    ),
    "film": Condition("film", description="FiLM: gamma x + beta per channel"),
    "se_gain": Condition("se_gain", description="task-specific squeeze-and-excitation gains"),
    "full_finetune": Condition(
        "none", finetune=True, description="fine-tune the whole backbone (one copy per seed), heads too"
    ),
}

#: the stochastic-comodulation variants of notebook 02, each with the deterministic baseline of the
#: same coupling parametrisation it is paired with
STOCHASTIC_VARIANTS: dict[str, str] = {
    "stochastic_gain": "deterministic_gain_nonneg",
    "stochastic_gain_routing": "deterministic_gain_nonneg",
    "stochastic_gain_plain_readout": "deterministic_gain_nonneg",
    "stochastic_gain_signed": "deterministic_gain",
    "stochastic_gain_zero_mean": "deterministic_gain",
}


#: where gains act, as a share of the backbone's sites (in forward order)
PLACEMENTS = ("early", "late", "all")


def check_condition(condition: str) -> str:
    """Return ``condition`` if known, else raise ValueError naming the allowed ones."""
    if condition not in CONDITIONS:
        raise ValueError(f"condition={condition!r} is unknown; allowed: {', '.join(CONDITIONS)}")
    return condition


def placement_sites(backbone: nn.Module, placement: str) -> tuple[str, ...]:
    """Sites for ``early`` (first half), ``late`` (second half), ``all``, or a comma list of sites."""
    sites = list(backbone.sites)
    half = len(sites) // 2
    named = {"early": sites[: max(half, 1)], "late": sites[half:], "all": sites}
    chosen = named.get(placement) or [s.strip() for s in placement.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in sites]
    if unknown or not chosen:
        raise ValueError(
            f"gain_sites={placement!r} names no sites of this backbone; allowed: "
            f"{', '.join(PLACEMENTS)} or a comma list of {', '.join(sites)}"
        )
    return tuple(chosen)


_MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
_STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def to_input(images: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """uint8 images (B, 3, H, W) -> float input on ``device``, normalised as ImageNet weights expect."""
    x = images.to(device, non_blocking=True).float() / 255.0
    return (x - _MEAN.to(x.device)) / _STD.to(x.device)


@dataclass(frozen=True)
class TaskSplit:
    """Classification tasks on one image set, split into train / validation / test indices.

    ``images`` uint8 (N, 3, H, W); ``labels`` long (N, T): class of image i in task t, or -1
    where image i is not part of task t; ``names`` the T task names; ``n_classes`` per task.
    """

    images: torch.Tensor
    labels: torch.Tensor
    names: tuple[str, ...]
    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    n_classes: int = 2

    @classmethod
    def random(
        cls,
        images: torch.Tensor,
        labels: torch.Tensor,
        names: tuple[str, ...],
        *,
        n_val: int,
        n_test: int,
        seed: int = 0,
        n_classes: int = 2,
    ) -> TaskSplit:
        """A seeded random split: ``n_val`` and ``n_test`` images held out, the rest for training."""
        n = images.shape[0]
        if n_val < 1 or n_test < 1 or n_val + n_test >= n:
            raise ValueError(f"n_val={n_val}, n_test={n_test} must be >= 1 and leave training images (N={n})")
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        n_train = n - n_val - n_test
        return cls(
            images,
            labels.long(),
            tuple(names),
            order[:n_train],
            order[n_train : n_train + n_val],
            order[n_train + n_val :],
            n_classes,
        )

    def tasks(self, names: list[str] | tuple[str, ...]) -> TaskSplit:
        """The same split restricted to the tasks ``names``."""
        missing = [n for n in names if n not in self.names]
        if missing:
            raise ValueError(f"attributes {missing} are unknown; allowed: {', '.join(self.names)}")
        cols = [self.names.index(n) for n in names]
        return TaskSplit(
            self.images, self.labels[:, cols], tuple(names), self.train, self.val, self.test, self.n_classes
        )

    def limit_train(self, n: int) -> TaskSplit:
        """The same split with only the first ``n`` training images (0: all of them): less data to
        learn new tasks from, so that adaptation saturates within a CPU budget."""
        if not (is_int(n) and n >= 0):
            raise ValueError(f"n_adapt={n!r} is not allowed; allowed: an integer >= 0 (0: all)")
        return self if n == 0 else dataclasses.replace(self, train=self.train[:n])

    def pools(self, split: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per task, the images of ``split`` that belong to it: padded (T, L) indices and lengths (T,)."""
        member = self.labels[split] >= 0  # (n, T)
        lengths = member.sum(0)
        pool = torch.zeros(len(self.names), int(lengths.max()), dtype=torch.long)
        for t in range(len(self.names)):  # once per task at set-up, not per step
            pool[t, : lengths[t]] = split[member[:, t]]
        return pool, lengths


class _Inputs:
    """What the model consumes for a batch of image indices, computed once where possible.

    Everything up to the first modulated site, ``start``, is the same for every task: its output
    *before* modulation is computed once for all images and cached (the frozen backbone makes
    this exact); ``start=None`` caches the pooled features themselves (head-only), and
    ``through=False`` the input of ``start``'s stage (fine-tuning: the first site, images in).
    Images that would not fit in ``max_bytes`` go through the backbone batch by batch instead,
    with ``suspend`` (the modulator's :meth:`~neuromod_lib.modulation.Modulation.suspend`) keeping
    the site unmodulated.
    """

    def __init__(
        self,
        backbone: nn.Module,
        images: torch.Tensor,
        start: str | None,
        device: torch.device | str,
        max_bytes: float = 2e9,
        *,
        through: bool = True,
        suspend: Any = contextlib.nullcontext,
    ) -> None:
        self.backbone, self.images, self.start, self.device = backbone, images, start, device
        self.through, self.suspend = through, suspend
        self.cache = None
        probe = self._compute(images[:1])
        if probe.numel() * probe.element_size() * len(images) <= max_bytes:
            self.cache = torch.cat([self._compute(images[i]) for i in torch.arange(len(images)).split(512)])

    @torch.no_grad()
    def _compute(self, images: torch.Tensor) -> torch.Tensor:
        x = to_input(images, self.device).contiguous(memory_format=torch.channels_last)
        if self.start is None:
            return self.backbone.features(x)
        if not self.through:
            return self.backbone.prefix(x, self.start)
        with self.suspend():
            return self.backbone.through(x, self.start)

    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        if self.cache is None:
            return self._compute(self.images[idx])
        return self.cache[idx.to(self.cache.device)]


@dataclass(frozen=True)
class PretrainConfig:
    """Backbone pretraining: epochs over the training images, one head per pretraining task."""

    epochs: int = 6
    batch_size: int = 128
    lr: float = 2e-3
    patience: int | None = 2

    def __post_init__(self) -> None:
        check_fields(
            self,
            [
                ("epochs", is_int(self.epochs) and self.epochs >= 1, "an integer >= 1"),
                ("batch_size", is_int(self.batch_size) and self.batch_size >= 1, "an integer >= 1"),
                ("lr", is_number(self.lr) and self.lr > 0, "a finite number > 0"),
                ("patience", _none_or_count(self.patience), "None or an integer >= 1"),
            ],
        )


def _none_or_count(value: object) -> bool:
    return value is None or is_int(value) and value >= 1


def pretrain(
    backbone: nn.Module,
    data: TaskSplit,
    config: PretrainConfig,
    *,
    seed: int = 0,
    device: torch.device | str = "cpu",
    checkpoint: Any = None,
    heads: TaskHeads | None = None,
) -> dict[str, float]:
    """Train ``backbone`` with a linear head per task on all of ``data``'s tasks, then freeze it.

    Returns the validation error (%) per task at the best epoch. With ``checkpoint`` (a path)
    a finished pretraining is loaded instead of repeated: the cache notebooks share. Pass
    ``heads`` (a :class:`TaskHeads` for these tasks) to keep the trained heads. Every draw comes
    from ``seed``; torch's global random state is left as it was.
    """
    with torch.random.fork_rng(devices=range(torch.cuda.device_count())):
        torch.manual_seed(seed)
        return _pretrain(backbone, data, config, seed=seed, device=device, checkpoint=checkpoint, heads=heads)


def _pretrain(
    backbone: nn.Module,
    data: TaskSplit,
    config: PretrainConfig,
    *,
    seed: int,
    device: torch.device | str,
    checkpoint: Any,
    heads: TaskHeads | None,
) -> dict[str, float]:
    heads = heads if heads is not None else TaskHeads(len(data.names), backbone.feature_dim, data.n_classes)
    model = nn.ModuleDict({"backbone": backbone, "heads": heads}).to(device)

    def all_logits(m: nn.Module, idx: torch.Tensor) -> torch.Tensor:
        h = m["backbone"].features(to_input(data.images[idx], device))  # (B, D)
        return m["heads"].all_tasks(h)  # (B, T, K)

    def loss_fn(m: nn.Module, idx: torch.Tensor) -> torch.Tensor:
        logits = all_logits(m, idx)
        return F.cross_entropy(logits.flatten(0, 1), data.labels[idx].flatten().to(device), ignore_index=-1)

    labelled = data.train[(data.labels[data.train] >= 0).any(1)]  # images of some pretraining task

    def batches(gen: torch.Generator):
        return labelled[torch.randperm(len(labelled), generator=gen)].split(config.batch_size)

    def evaluate(m: nn.Module) -> dict[str, float]:
        pred = torch.cat([all_logits(m, i).argmax(2).cpu() for i in data.val.split(512)])
        err = _masked_error(pred, data.labels[data.val])
        return {"val_error": err.mean().item(), **{n: e.item() for n, e in zip(data.names, err, strict=True)}}

    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    fit_config = FitConfig(
        max_epochs=config.epochs, patience=config.patience, monitor="val_error", checkpoint=checkpoint
    )
    result = fit(
        model,
        optimizer,
        loss_fn,
        batches,
        evaluate,
        fit_config,
        generator=torch.Generator().manual_seed(seed),
    )
    backbone.freeze()
    return {n: round(100 * result.best[n], 2) for n in data.names}


def _masked_error(pred: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Error rate per task (column) over the images that belong to it; ``pred``, ``labels`` (n, T)."""
    member = labels >= 0
    wrong = ((pred != labels) & member).sum(0).float()
    return wrong / member.sum(0).clamp(min=1)


#: the guided readout's running-average time constant, in training steps (the predecessor's ~100 batches)
READOUT_WINDOW = 100


@dataclass(frozen=True)
class AdaptConfig:
    """One budget and one learning-rate search for every condition. ``sites``: where gains / FiLM / SE act.

    Every condition trains ``steps`` steps with each learning rate of ``lrs`` (fine-tuning: the
    heads with ``lr`` and the backbone with ``lr / 10``), side by side; the learning rate with the
    lowest mean validation error (over seeds and tasks, each at its best evaluation) is the
    condition's. ``draws``: modulator draws per routed image for the guided readout, the training
    pass's own draw included; ``route_images``: how many of each guided context's ``batch_per_task``
    images are routed (at most all of them), every ``route_every`` steps. Routing every few steps
    keeps the readout's cost within 10 % of a step (a routing pass has a fixed cost per call); the
    readout's running average keeps a time constant of :data:`READOUT_WINDOW` training steps.
    ``saturation_tol``: the validation error may still fall by less than this (points) over the last
    third of the budget for the budget to count as saturated (:func:`saturation`).
    """

    sites: tuple[str, ...]
    steps: int = 300
    batch_per_task: int = 8
    eval_every: int = 50
    lrs: tuple[float, ...] = (3e-3, 1e-2, 3e-2)
    patience: int | None = None
    sigma_m: float = 0.1
    draws: int = 2
    route_images: int = 8
    route_every: int = 8
    saturation_tol: float = 0.5
    seeds: tuple[int, ...] = (0, 1, 2)
    eval_batch: int = 1024  # (context, image) pairs per evaluation chunk: bounds peak memory
    cache_bytes: float = 2.5e8  # largest cache of below-site activations (else computed per batch)

    def __post_init__(self) -> None:
        def count(name: str) -> Check:
            value = getattr(self, name)
            wording = f"{name}={value!r} " + ("must be >= 1" if is_int(value) else "is not an integer")
            return (name, is_int(value) and value >= 1, "an integer >= 1", wording)

        steps, every, seeds, lrs = self.steps, self.eval_every, self.seeds, self.lrs
        divides = is_int(steps) and is_int(every) and every >= 1 and steps % every == 0
        sites_ok = isinstance(self.sites, (tuple, list)) and all(isinstance(s, str) for s in self.sites)
        seeds_ok = isinstance(seeds, (tuple, list)) and all(is_int(x) and x >= 0 for x in seeds)
        empty = isinstance(seeds, (tuple, list)) and not seeds
        lrs_ok = isinstance(lrs, (tuple, list)) and bool(lrs) and all(is_number(x) and x > 0 for x in lrs)
        multiple = f"steps={steps!r} must be a multiple of eval_every={every!r}"
        check_fields(
            self,
            [
                ("sites", sites_ok, "a tuple of site names"),
                *(count(n) for n in ("steps", "batch_per_task", "eval_every", "eval_batch")),
                ("steps", divides, "a multiple of eval_every", multiple),
                ("lrs", lrs_ok, "a non-empty tuple of finite numbers > 0"),
                ("patience", _none_or_count(self.patience), "None or an integer >= 1"),
                ("sigma_m", is_number(self.sigma_m) and self.sigma_m >= 0, "sigma_m >= 0, a finite number"),
                ("draws", is_int(self.draws) and self.draws >= 2, "an integer >= 2"),
                ("route_images", is_int(self.route_images) and self.route_images >= 1, "an integer >= 1"),
                ("route_every", is_int(self.route_every) and self.route_every >= 1, "an integer >= 1"),
                (
                    "saturation_tol",
                    is_number(self.saturation_tol) and self.saturation_tol >= 0,
                    "a number >= 0",
                ),
                ("seeds", not empty, "a tuple of integers >= 0", "seeds must name at least one seed"),
                ("seeds", seeds_ok, "a tuple of integers >= 0"),
                ("cache_bytes", is_number(self.cache_bytes) and self.cache_bytes >= 0, "a number >= 0"),
            ],
        )


def saturation(steps: list[int], curve: torch.Tensor, tol: float) -> tuple[bool, float]:
    """Has a validation ``curve`` (%, one value per evaluation at ``steps``) stopped improving?

    ``improvement`` = best error up to two thirds of the last step minus best error after it
    (> 0 while the curve still falls); saturated when it is below ``tol`` points. Returns
    ``(saturated, improvement)``.
    """
    if len(steps) != len(curve) or len(steps) < 2:
        raise ValueError(f"steps ({len(steps)}) and curve ({len(curve)}) need the same length >= 2")
    cut = 2 * steps[-1] / 3
    early = torch.tensor([s <= cut for s in steps])
    if early.all() or not early.any():
        raise ValueError(f"steps {steps} leave no evaluation on one side of two thirds of the budget")
    improvement = (curve[early].min() - curve[~early].min()).item()
    return improvement < tol, improvement


@dataclass
class AdaptResult:
    """What one condition achieved at its chosen learning rate: errors in %, shapes (S seeds, T tasks).

    ``val_curve`` ``(P, S, T)`` at ``curve_steps`` (step 0 first: before any training); ``lr`` the
    chosen learning rate and ``lr_scores`` every tried one's mean validation error; ``saturated``
    and ``improvement``: :func:`saturation` of the mean validation curve.
    """

    condition: str
    tasks: tuple[str, ...]
    seeds: tuple[int, ...]
    test_error: torch.Tensor  # (S, T), each context at its best validation point
    curve_steps: list[int]
    val_curve: torch.Tensor  # (P, S, T)
    trainable_per_task: int
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)
    lr: float = float("nan")
    lr_scores: dict[float, float] = field(default_factory=dict)
    saturated: bool = True
    improvement: float = 0.0

    def mean_error(self) -> torch.Tensor:
        """Mean test error over tasks, per seed (S,)."""
        return self.test_error.mean(1)

    def best_val_error(self) -> torch.Tensor:
        """Mean over tasks of each context's best validation error, per seed (S,): what a choice
        between runs is made on (never the test error)."""
        return self.val_curve.min(0).values.mean(1)

    def steps_to(self, target: float | torch.Tensor) -> list[int | None]:
        """Per seed: the first evaluation step whose mean validation error over tasks is <= ``target``
        (%; a number, or one per seed ``(S,)``); None where the seed never gets there."""
        target = torch.as_tensor(target, dtype=self.val_curve.dtype).expand(len(self.seeds))
        reached = self.val_curve.mean(2) <= target  # (P, S)
        first = [reached[:, s].nonzero() for s in range(reached.shape[1])]
        return [self.curve_steps[f[0].item()] if len(f) else None for f in first]


class _Copies(nn.Module):
    """``n`` trainable copies of a frozen backbone, stacked: every parameter ``(n, ...)``.

    Full fine-tuning of many (seed, learning-rate) arms at once: a batch sorted by copy with the
    same number of samples per copy runs all copies in one vectorised call (``torch.func.vmap``
    over ``functional_call``); any other batch runs copy by copy. BatchNorm keeps the pretrained
    statistics (the backbone stays in eval mode), as in every other condition.
    """

    def __init__(self, backbone: nn.Module, n: int) -> None:
        super().__init__()
        self.base, self.n = [backbone], n  # a list: the frozen base is not a submodule to train
        self.names = [name for name, _ in backbone.named_parameters()]
        self.buffers_of_base = dict(backbone.named_buffers())  # BatchNorm statistics, shared and fixed
        self.stacked = nn.ParameterList(
            nn.Parameter(p.detach()[None].repeat(n, *([1] * p.dim())).clone())
            for _, p in backbone.named_parameters()
        )

    def _one(self, params: tuple[torch.Tensor, ...], x: torch.Tensor) -> torch.Tensor:
        weights = dict(zip(self.names, params, strict=True))
        return torch.func.functional_call(self.base[0], ({**weights, **self.buffers_of_base},), (x,))

    def forward(self, x: torch.Tensor, copy: torch.Tensor) -> torch.Tensor:
        """Pooled features ``(B, D)`` of images ``x`` ``(B, 3, H, W)``, each through its ``copy`` ``(B,)``."""
        counts = torch.bincount(copy, minlength=self.n)
        params = tuple(self.stacked)
        if bool((counts == counts[0]).all()) and bool((copy[1:] >= copy[:-1]).all()) and counts[0] > 0:
            per = x.view(self.n, -1, *x.shape[1:])
            return torch.func.vmap(self._one)(params, per).flatten(0, 1)
        out = None
        for k in copy.unique().tolist():
            rows = copy == k
            h = self._one(tuple(p[k] for p in params), x[rows])
            out = h.new_empty(len(x), h.shape[1]) if out is None else out
            out[rows] = h
        return out


class _Adapter(nn.Module):
    """Backbone + modulation + per-context heads for one group of contexts.

    ``variants``: the gain variant of each context (gain family), else None.
    """

    def __init__(
        self,
        backbone: nn.Module,
        family: str,
        finetune: bool,
        n_contexts: int,
        n_classes: int,
        config: AdaptConfig,
        generator: torch.Generator,
        variants: list[GainVariant] | None = None,
        n_tasks: int = 1,
    ) -> None:
        super().__init__()
        self.backbone, self.finetune, self.n_tasks = backbone, finetune, n_tasks
        #: full fine-tuning: one trainable backbone copy per (arm, seed), shared by its tasks
        self.copies = _Copies(backbone, n_contexts // n_tasks) if finetune else None
        sites = {s: backbone.sites[s] for s in config.sites} if family != "none" else {}
        extra = {"sigma_m": config.sigma_m, "generator": generator, "variants": variants} if variants else {}
        self.modulation = make_modulation(
            "deterministic_gain" if variants else family, sites, n_contexts, **extra
        )
        if sites:
            self.modulation.attach(backbone)
        heads = TaskHeads(n_contexts, backbone.feature_dim, n_classes)
        guided = (
            torch.tensor([v.guided for v in variants])
            if variants
            else torch.zeros(n_contexts, dtype=torch.bool)
        )
        self.guided = bool(guided.any())
        # the predecessor's time constant of ~100 training batches, counted in routing updates
        window = max(1, round(READOUT_WINDOW / config.route_every))
        self.readout = ModulatorGuidedReadout(heads, window=window) if self.guided else heads
        if self.guided:
            self.readout.guided.copy_(guided)
        self.modulated = bool(sites)
        #: per context, the validation-accuracy drop when each last-layer unit is removed (gain groups)
        self.relevance: torch.Tensor | None = None
        order = list(backbone.sites)
        #: where the cached inputs enter: the first modulated site; the first site when
        #: fine-tuning (images go in); None for a head on fixed features
        self.start = order[0] if finetune else min(sites, key=order.index) if sites else None

    def features(self, z: torch.Tensor, contexts: torch.Tensor, draw: str | None = None) -> torch.Tensor:
        """``z``: the ``start`` site's output before modulation (:class:`_Inputs`); the input of its
        stage when fine-tuning; pooled features if ``start`` is None."""
        if self.copies is not None:
            return self.copies(z, contexts // self.n_tasks)
        if not self.modulated:
            return z if self.start is None else self.backbone.from_site(z, self.start)
        with self.modulation.context(contexts, draw):
            return self.backbone.after(self.modulation.modulate(self.start, z), self.start)

    def head(self, h: torch.Tensor, contexts: torch.Tensor) -> torch.Tensor:
        return self.readout(h, contexts)

    def forward(self, z: torch.Tensor, contexts: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(z, contexts), contexts)

    @torch.no_grad()
    def route(
        self, z: torch.Tensor, h: torch.Tensor, m: torch.Tensor, contexts: torch.Tensor, draws: int
    ) -> None:
        """The routing pass, paired with the training pass: ``h`` ``(B, D)`` and ``m`` ``(B,)`` are the
        training pass's units and modulator for the inputs ``z``; ``draws - 1`` further modulator draws
        of the same inputs (no gradient) complete the ``draws`` per input, and the guided readout's
        covariances take the units' modulator-driven covariance with m (within each input).

        Reusing the training draw makes the readout cost ``draws - 1`` forward passes of the routed
        inputs, not ``draws``. For a context trained at the mean (the routing protocol) the pair is
        (mean, one noisy draw): the same covariance up to a factor, which the mean-1 normalisation
        removes.
        """
        extra = draws - 1
        # cat, not repeat: it keeps the cached inputs' channels_last layout (pooling is ~3x faster in it)
        h_more = self.features(torch.cat([z] * extra), contexts.repeat(extra), draw="route")
        m_more = self.modulation.last_m.view(extra, len(z))
        self.readout.update_draws(
            torch.cat([h.detach()[None], h_more.view(extra, len(z), -1)]),
            contexts,
            torch.cat([m[None], m_more]),
        )

    def train(self, mode: bool = True) -> _Adapter:
        super().train(mode)
        self.backbone.eval()  # BatchNorm statistics stay those of pretraining in every condition
        return self


@dataclass
class _Group:
    """One group of contexts trained together, and everything its steps and evaluations need.

    Context ``i`` is arm ``i // (S T)`` (a condition and a learning rate), seed ``(i // T) % S``,
    task ``i % T``. ``pool`` ``(n_ctx, L)`` and ``lengths``: the training images of each context's
    task (padded); ``contexts``: the context of each sample of a training batch; ``routed``: which
    of those samples the routing pass sees (guided contexts); ``evaluation``: per split every
    (image, context, label) triple to score; ``curve``: the validation errors ``(n_ctx,)`` per
    evaluation; ``best``: per context its best validation error, and ``snapshot`` its per-context
    tensors then (so test is scored once, at the end, at each context's best point).
    """

    adapter: _Adapter
    backbone: nn.Module
    data: TaskSplit
    config: AdaptConfig
    n_seeds: int
    n_tasks: int
    n_ctx: int
    task_of: torch.Tensor
    device: torch.device | str
    inputs: _Inputs
    pool: torch.Tensor
    lengths: torch.Tensor
    contexts: torch.Tensor
    routed: torch.Tensor | None
    generators: list[torch.Generator] = field(default_factory=list)
    evaluation: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    curve: list[torch.Tensor] = field(default_factory=list)
    best: torch.Tensor | None = None
    snapshot: dict[str, torch.Tensor] = field(default_factory=dict)
    steps_done: int = 0

    @classmethod
    def build(
        cls, adapter: _Adapter, data: TaskSplit, config: AdaptConfig, n_seeds: int, n_ctx: int, device
    ) -> _Group:
        """The group of ``adapter``'s ``n_ctx`` contexts (arms x seeds x tasks of ``data``)."""
        n_tasks, backbone = len(data.names), adapter.backbone
        pool, lengths = data.pools(data.train)
        if (lengths == 0).any():
            empty = [n for n, k in zip(data.names, lengths.tolist(), strict=True) if k == 0]
            raise ValueError(
                f"tasks {empty} have no training images; use more images (n_images) or other tasks"
            )
        contexts = torch.arange(n_ctx, device=device).repeat_interleave(config.batch_per_task)
        routed = None
        if adapter.guided:  # the first route_images samples of each guided context's batch
            first = torch.arange(len(contexts), device=device) % config.batch_per_task < config.route_images
            routed = adapter.readout.guided.to(device)[contexts] & first
        suspend = adapter.modulation.suspend if adapter.modulated else contextlib.nullcontext
        inputs = _Inputs(
            backbone,
            data.images,
            adapter.start,
            device,
            max_bytes=config.cache_bytes,
            through=not adapter.finetune,
            suspend=suspend,
        )
        task_of = torch.arange(n_ctx) % n_tasks
        group = cls(
            adapter=adapter, backbone=backbone, data=data, config=config, n_seeds=n_seeds, n_tasks=n_tasks,
            n_ctx=n_ctx, task_of=task_of, device=device, inputs=inputs, pool=pool[task_of],
            lengths=lengths[task_of], contexts=contexts, routed=routed,
        )  # fmt: skip
        group.evaluation = {"val": _pairs(group, data.val), "test": _pairs(group, data.test)}
        return group


def _pairs(group: _Group, split: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every (context, image) pair to evaluate on ``split``: image indices, contexts, labels."""
    task_of = group.task_of
    pool, lengths = group.data.pools(split)
    pool, lengths = pool[task_of], lengths[task_of]
    mask = torch.arange(pool.shape[1])[None] < lengths[:, None]
    ctx = torch.arange(group.n_ctx)[:, None].expand_as(pool)[mask]
    idx = pool[mask]
    return idx, ctx, group.data.labels[idx, task_of[ctx]]


def _batches(group: _Group, g: torch.Generator) -> Iterator[torch.Tensor]:
    """One epoch (``eval_every`` steps): per step ``batch_per_task`` random training images per context.

    The images depend on the seed and the task only (each seed has its own generator): every arm
    (condition, learning rate) of a seed sees the same batches, as separate runs with that seed
    would — a paired comparison. ``g``, :func:`fit`'s generator, is not used.
    """
    base = group.n_seeds * group.n_tasks
    shape, arms = (group.n_tasks, group.config.batch_per_task), group.n_ctx // base
    for _ in range(group.config.eval_every):
        u = torch.cat([torch.rand(shape, generator=gen) for gen in group.generators])  # per seed
        pos = (u * group.lengths[:base, None]).long().repeat(arms, 1)
        yield group.pool.gather(1, pos)


def _loss(group: _Group, model: _Adapter, idx: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of every context on its own images ``idx`` ``(n_ctx, batch_per_task)``. For the
    guided contexts, every ``route_every`` steps (the first included), the routing pass pairs the
    training pass's modulator draw of the routed images with further draws, and updates the readout
    before it decodes this batch."""
    y = group.data.labels[idx, group.task_of[:, None]].flatten().to(group.device)
    z = group.inputs(idx.flatten())
    h = model.features(z, group.contexts)
    routing = group.routed is not None and group.steps_done % group.config.route_every == 0
    group.steps_done += 1
    if routing:
        r = group.routed
        m = model.modulation.last_m[r]
        model.route(z[r], h[r], m, group.contexts[r], group.config.draws)
    # each context's own mean loss, summed: a context's gradient does not depend on how many
    # contexts train beside it (a mean over all samples would shrink it, and Adam's eps would notice)
    losses = F.cross_entropy(model.head(h, group.contexts), y, reduction="none")
    return losses.view(group.n_ctx, -1).mean(1).sum()


@torch.no_grad()
def _errors(group: _Group, model: _Adapter, which: str) -> torch.Tensor:
    """Error (%) of every context on the images of a split that belong to its task: (n_ctx,)."""
    idx, ctx, labels = group.evaluation[which]
    n_ctx, chunk = group.n_ctx, group.config.eval_batch
    wrong, count = torch.zeros(n_ctx), torch.bincount(ctx, minlength=n_ctx).clamp(min=1)
    shared = not model.modulated and model.copies is None
    if shared:  # same features in every context: compute each image once
        images, where = idx.unique(return_inverse=True)
        h = torch.cat([model.features(group.inputs(i), None) for i in images.split(chunk)])
    for part in torch.arange(len(idx)).split(chunk):
        c = ctx[part].to(group.device)
        if not shared:
            logits = model(group.inputs(idx[part]), c)
        else:
            logits = model.head(h[where[part].to(h.device)], c)
        wrong.index_add_(0, ctx[part], (logits.argmax(1).cpu() != labels[part]).float())
    return 100 * wrong / count


def _per_context(model: _Adapter) -> dict[str, torch.Tensor]:
    """The tensors that differ between contexts (parameters and readout statistics), by name."""
    state = model.state_dict(keep_vars=False)
    return {
        k: v
        for k, v in state.items()
        if not k.startswith("backbone.") and v.dim() >= 1 and not k.endswith("_extra_state")
    }


def _evaluate(group: _Group, model: _Adapter) -> dict[str, float]:
    """Record the validation errors; keep each context's tensors where its error is the best so far
    (a fine-tuned backbone copy and its tasks' heads: where the mean over its tasks is). The mean
    validation error is what :func:`fit` monitors."""
    errors = _errors(group, model, "val")
    group.curve.append(errors)
    score = errors.view(-1, group.n_tasks).mean(1) if model.copies is not None else errors
    better = torch.ones_like(score, dtype=torch.bool) if group.best is None else score < group.best
    group.best = score if group.best is None else torch.minimum(score, group.best)
    per_context = better.repeat_interleave(group.n_tasks) if model.copies is not None else better
    for name, value in _per_context(model).items():
        rows = (better if value.shape[0] == len(better) else per_context).to(value.device)
        kept = group.snapshot.setdefault(name, value.detach().clone())
        kept[rows] = value.detach()[rows]
    return {"val_error": errors.mean().item()}


def _optimizer(group: _Group, lrs: torch.Tensor) -> ContextAdam:
    """Adam with each context's learning rate ``lrs`` ``(n_ctx,)`` on the adapter's own parameters
    and, when fine-tuning, each backbone copy's at a tenth of its contexts' rate."""
    adapter = group.adapter
    own = [p for n, p in adapter.named_parameters() if p.requires_grad and not n.startswith("copies.")]
    groups = [{"params": own, "lr": lrs}]
    if adapter.copies is not None:
        groups.append(
            {"params": list(adapter.copies.parameters()), "lr": lrs.view(-1, group.n_tasks)[:, 0] / 10}
        )
    return ContextAdam(groups)


def _params_per_task(group: _Group) -> int:
    """Trainable parameters per task: the adapter's per context, plus, when fine-tuning, a share of
    the backbone copy that its tasks train together."""
    adapter = group.adapter
    own = sum(
        p.numel() for n, p in adapter.named_parameters() if p.requires_grad and not n.startswith("copies.")
    )
    per_task = own // group.n_ctx
    if adapter.copies is not None:
        per_task += count_parameters(group.backbone, trainable_only=False) // group.n_tasks
    return per_task


def _train_group(group: _Group, lrs: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Train the group with :func:`fit` (evaluating first at step 0, then every ``eval_every`` steps);
    return the validation curve ``(P, n_ctx)`` and each context's test error at its best point."""
    config, adapter = group.config, group.adapter
    adapter.eval()
    _evaluate(group, adapter)
    fit_config = FitConfig(
        max_epochs=config.steps // config.eval_every,
        patience=config.patience,
        monitor="val_error",
        restore_best=False,
    )
    step = (partial(f, group) for f in (_loss, _batches, _evaluate))
    fit(adapter, _optimizer(group, lrs), *step, fit_config, generator=gen)
    adapter.load_state_dict({**adapter.state_dict(), **group.snapshot})
    if isinstance(adapter.modulation, GainModulation) and adapter.modulated:
        adapter.relevance = unit_relevance(group, adapter)
    return torch.stack(group.curve), _errors(group, adapter, "test")


@torch.no_grad()
def unit_relevance(group: _Group, model: _Adapter) -> torch.Tensor:
    """How much each context's decision needs each last-layer unit: the drop in validation accuracy
    (points) when the unit is removed from the readout, ``(n_ctx, D)``.

    Measured on the trained model at the mean modulator, from the logits alone: removing unit k
    takes its term ``W[:, k] a_k h_k`` out of every logit (one tensor operation for all units).
    """
    idx, ctx, labels = group.evaluation["val"]
    n_ctx, chunk = group.n_ctx, max(1, group.config.eval_batch // 8)
    heads = model.readout.heads if model.guided else model.readout
    weights = model.readout.weights if model.guided else None
    drop = torch.zeros(n_ctx, heads.in_features)
    count = torch.bincount(ctx, minlength=n_ctx).clamp(min=1)
    for part in torch.arange(len(idx)).split(chunk):
        c = ctx[part].to(group.device)
        h = model.features(group.inputs(idx[part]), c)
        if weights is not None:
            h = h * weights[c].to(h.dtype)
        logits = heads._decode(h, c)
        without = logits[:, :, None] - heads.weight[c] * h[:, None, :]  # (n, K, D): unit d removed
        y = labels[part].to(group.device)
        right = (logits.argmax(1) == y).float()[:, None] - (without.argmax(1) == y[:, None]).float()
        drop.index_add_(0, ctx[part], right.cpu())
    return 100 * drop / count[:, None]


def _learned(adapter: _Adapter, rows: torch.Tensor, n_seeds: int, n_tasks: int) -> dict[str, Any]:
    """Learned per-context tensors of the contexts ``rows`` worth plotting, reshaped to (S, T, ...):
    the gains' couplings c per site and, with the guided readout, its unit weights and covariances."""
    out: dict[str, Any] = {}
    mod = adapter.modulation
    if adapter.modulated and isinstance(mod, GainModulation):
        out["coupling"] = {
            k: mod.couplings(k).detach().cpu()[rows].view(n_seeds, n_tasks, -1) for k in mod.coupling
        }
    if adapter.guided and bool(adapter.readout.guided[rows].all()):
        out["readout_weights"] = adapter.readout.weights.detach().cpu()[rows].view(n_seeds, n_tasks, -1)
        out["readout_covariance"] = adapter.readout.covariance.detach().cpu()[rows].view(n_seeds, n_tasks, -1)
    if adapter.relevance is not None:
        out["unit_relevance"] = adapter.relevance[rows].view(n_seeds, n_tasks, -1)
    return out


def _run_arms(
    backbone: nn.Module,
    data: TaskSplit,
    arms: list[tuple[str, float]],
    config: AdaptConfig,
    seeds: tuple[int, ...],
    device: torch.device | str,
) -> tuple[torch.Tensor, torch.Tensor, int, _Adapter]:
    """Train every arm (condition, learning rate) of one family x seeds x tasks as one group.

    Returns the validation curves ``(P, A, S, T)``, the test errors ``(A, S, T)``, the trainable
    parameters per task and the trained adapter (hooks removed).
    """
    n_seeds, n_tasks = len(seeds), len(data.names)
    n_ctx = len(arms) * n_seeds * n_tasks
    backbone.to(memory_format=torch.channels_last)  # CPU convolutions and pooling: 1.5-5x faster
    first = CONDITIONS[arms[0][0]]
    torch.manual_seed(seeds[0])
    gen = torch.Generator().manual_seed(seeds[0])
    mod_gen = torch.Generator(device=device).manual_seed(seeds[0] + 1)
    per_arm = n_seeds * n_tasks
    variants = (
        [CONDITIONS[c].variant for c, _ in arms for _ in range(per_arm)] if first.family == "gain" else None
    )
    lrs = torch.tensor([lr for _, lr in arms for _ in range(per_arm)])
    adapter = _Adapter(
        backbone, first.family, first.finetune, n_ctx, data.n_classes, config, mod_gen, variants, n_tasks
    ).to(device)
    _same_start_in_every_arm(adapter, len(arms), seeds)
    try:  # whatever happens, the shared backbone gets its hooks removed and is frozen again
        group = _Group.build(adapter, data, config, n_seeds, n_ctx, device)
        group.generators = [torch.Generator().manual_seed(s) for s in seeds]
        curve, test = _train_group(group, lrs, gen)
        shape = (len(arms), n_seeds, n_tasks)
        return curve.view(-1, *shape), test.view(shape), _params_per_task(group), adapter
    finally:
        if adapter.modulated:
            adapter.modulation.detach()
        backbone.freeze()


@torch.no_grad()
def _same_start_in_every_arm(adapter: _Adapter, n_arms: int, seeds: tuple[int, ...]) -> None:
    """Start every arm from one random initialisation of the heads (and SE gains) per seed, drawn
    from that seed alone: a context's start depends on its seed and task, not on which other arms
    or seeds train beside it. Gain couplings start where their variant says; FiLM at the identity."""
    heads = adapter.readout.heads if adapter.guided else adapter.readout
    n_tasks = adapter.n_tasks
    n_seeds = heads.n_tasks // n_arms // n_tasks
    for s, seed in enumerate(seeds):
        torch.manual_seed(seed)
        pairs = [(heads, TaskHeads(n_tasks, heads.in_features, heads.n_outputs))]
        if isinstance(adapter.modulation, SEGain):
            mod = adapter.modulation
            pairs.append((mod, SEGain(mod.sites, n_tasks, mod.reduction)))
        for module, template in pairs:
            for p, start in zip(module.parameters(), template.parameters(), strict=True):
                p.view(n_arms, n_seeds, n_tasks, *p.shape[1:])[:, s] = start.to(p.device)[None]


def _families(conditions: list[str]) -> list[list[str]]:
    """The conditions that train together: every gain variant in one group; each other alone."""
    gains = [c for c in conditions if CONDITIONS[c].family == "gain"]
    return ([gains] if gains else []) + [[c] for c in conditions if CONDITIONS[c].family != "gain"]


def adapt_many(
    backbone: nn.Module,
    data: TaskSplit,
    conditions: list[str] | tuple[str, ...],
    config: AdaptConfig,
    *,
    device: torch.device | str = "cpu",
) -> dict[str, AdaptResult]:
    """Learn every task of ``data`` on the frozen ``backbone`` with each of ``conditions``, for every
    seed and every learning rate of ``config.lrs``; keep each condition's best learning rate.

    The gain variants train side by side as one vectorised group; full fine-tuning trains one
    backbone copy per seed and learning rate. The backbone is left unchanged. Errors are in %; a
    context's test error is taken at its best validation point.
    """
    for c in conditions:
        check_condition(c)
    missing = [s for s in config.sites if s not in backbone.sites]
    if missing:
        raise ValueError(
            f"sites {missing} are not layers of this backbone; allowed: {', '.join(backbone.sites)}"
        )
    results: dict[str, AdaptResult] = {}
    for family in _families(list(dict.fromkeys(conditions))):
        start = time.perf_counter()
        arms = [(c, lr) for c in family for lr in config.lrs]
        curve, test, per_task, adapter = _run_arms(backbone, data, arms, config, tuple(config.seeds), device)
        seconds = (time.perf_counter() - start) / len(family)
        for condition in family:
            results[condition] = _choose(
                condition, data, config, arms, curve, test, per_task, seconds, adapter
            )
    return {c: results[c] for c in dict.fromkeys(conditions)}  # in the order asked for


def _choose(
    condition: str,
    data: TaskSplit,
    config: AdaptConfig,
    arms: list[tuple[str, float]],
    curve: torch.Tensor,
    test: torch.Tensor,
    per_task: int,
    seconds: float,
    adapter: _Adapter,
) -> AdaptResult:
    """The result of ``condition`` at its best learning rate on validation (``arms``: its family's)."""
    mine = [a for a, (c, _) in enumerate(arms) if c == condition]
    finetune = CONDITIONS[condition].finetune
    # each context's selected validation error: its own best point (fine-tuning: the copy's best mean)
    if finetune:
        at = curve.mean(3, keepdim=True).argmin(0, keepdim=True).expand(1, *curve.shape[1:])
        chosen_val = curve.gather(0, at)[0]
    else:
        chosen_val = curve.min(0).values  # (A, S, T)
    scores = {arms[a][1]: chosen_val[a].mean().item() for a in mine}
    best = min(mine, key=lambda a: chosen_val[a].mean().item())
    steps = [config.eval_every * p for p in range(curve.shape[0])]
    saturated, improvement = saturation(steps, curve[:, best].mean((1, 2)), config.saturation_tol)
    n_s, n_t = len(config.seeds), len(data.names)
    extra = _learned(adapter, torch.arange(best * n_s * n_t, (best + 1) * n_s * n_t), n_s, n_t)
    return AdaptResult(
        condition, data.names, tuple(config.seeds), test[best], steps, curve[:, best], per_task, seconds,
        extra, lr=arms[best][1], lr_scores=scores, saturated=saturated, improvement=improvement,
    )  # fmt: skip


def adapt(
    backbone: nn.Module,
    data: TaskSplit,
    condition: str,
    config: AdaptConfig,
    *,
    device: torch.device | str = "cpu",
) -> AdaptResult:
    """:func:`adapt_many` for one condition."""
    check_condition(condition)
    return adapt_many(backbone, data, [condition], config, device=device)[condition]
