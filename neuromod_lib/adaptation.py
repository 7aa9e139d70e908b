"""Adapting one frozen, pretrained backbone to many new tasks: the protocol of notebooks 01–03.

The question of Boeshertz, Haimerl & Savin (2023) is how much of a new task a pretrained
network already "knows", and how little has to be learned to bring it out. The protocol is
the same for every condition, so that only the adaptation mechanism differs:

1. :func:`pretrain` trains a backbone (with one head per task) on a set of pretraining
   tasks, then freezes it.
2. :func:`adapt` learns each *held-out* task with one condition of :data:`CONDITIONS`: a
   linear head per task (all conditions), plus per-task gains (deterministic, or stochastic
   comodulation read out by the modulator-guided readout), FiLM, task-specific
   squeeze-and-excitation gains, or fine-tuning the whole backbone. Same optimiser, step
   budget, batch and early stopping for all.

Tasks are classification problems on a shared image set: ``labels[i, t]`` is image i's class
in task t, or -1 where image i does not belong to task t (a superclass task only sees its
own images). Binary attributes are tasks with two classes and no -1.

Vectorised: every (seed, task) pair is one *context* with its own parameters, and one batch
holds samples of all contexts, so all tasks and seeds of a condition train in one pass.
Adam updates each context's parameters from its own samples only, so this equals separate
runs. Everything below the first modulated site is computed once and cached. Full
fine-tuning changes the backbone, so it trains one backbone copy per seed, shared by that
seed's tasks (multi-task fine-tuning — our design choice).
"""

from __future__ import annotations

import copy
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
from .modulation import make_modulation
from .readout import ModulatorGuidedReadout, TaskHeads
from .training import FitConfig, fit

#: condition -> (modulation kind, modulator-guided readout?, fine-tune the backbone?)
CONDITIONS: dict[str, tuple[str, bool, bool]] = {
    "head_only": ("none", False, False),
    "deterministic_gain": ("deterministic_gain", False, False),
    "stochastic_gain": ("stochastic_gain", True, False),
    "stochastic_gain_plain_readout": ("stochastic_gain", False, False),
    "film": ("film", False, False),
    "se_gain": ("se_gain", False, False),
    "full_finetune": ("none", False, True),
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

    Everything below ``start`` (the first modulated site) is the same for every task, so its
    output is computed once for all images and cached (the frozen backbone makes this exact);
    ``start=None`` caches the pooled features themselves (head-only). Images that would not
    fit in ``max_bytes`` go through the prefix batch by batch instead.
    """

    def __init__(
        self,
        backbone: nn.Module,
        images: torch.Tensor,
        start: str | None,
        device: torch.device | str,
        max_bytes: float = 2e9,
    ) -> None:
        self.backbone, self.images, self.start, self.device = backbone, images, start, device
        self.cache = None
        probe = self._compute(images[:1])
        if probe.numel() * probe.element_size() * len(images) <= max_bytes:
            self.cache = torch.cat([self._compute(images[i]) for i in torch.arange(len(images)).split(512)])

    @torch.no_grad()
    def _compute(self, images: torch.Tensor) -> torch.Tensor:
        x = to_input(images, self.device)
        return self.backbone.features(x) if self.start is None else self.backbone.prefix(x, self.start)

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
    ``heads`` (a :class:`TaskHeads` for these tasks) to keep the trained heads.
    """
    torch.manual_seed(seed)
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


@dataclass(frozen=True)
class AdaptConfig:
    """One budget for every condition. ``sites``: where gains / FiLM / SE act."""

    sites: tuple[str, ...]
    steps: int = 300
    batch_per_task: int = 8
    eval_every: int = 50
    lr: float = 1e-2
    lr_backbone: float = 1e-3
    patience: int | None = None
    sigma_m: float = 0.1
    seeds: tuple[int, ...] = (0, 1, 2)
    eval_batch: int = 1024  # (context, image) pairs per evaluation chunk: bounds peak memory
    cache_bytes: float = 2.5e8  # largest cache of below-site activations (else computed per batch)

    def __post_init__(self) -> None:
        def count(name: str) -> Check:
            value = getattr(self, name)
            wording = f"{name}={value!r} " + ("must be >= 1" if is_int(value) else "is not an integer")
            return (name, is_int(value) and value >= 1, "an integer >= 1", wording)

        steps, every, seeds = self.steps, self.eval_every, self.seeds
        divides = is_int(steps) and is_int(every) and every >= 1 and steps % every == 0
        sites_ok = isinstance(self.sites, (tuple, list)) and all(isinstance(s, str) for s in self.sites)
        seeds_ok = isinstance(seeds, (tuple, list)) and all(is_int(x) and x >= 0 for x in seeds)
        empty = isinstance(seeds, (tuple, list)) and not seeds
        multiple = f"steps={steps!r} must be a multiple of eval_every={every!r}"
        positive = "a finite number > 0"
        check_fields(
            self,
            [
                ("sites", sites_ok, "a tuple of site names"),
                *(count(n) for n in ("steps", "batch_per_task", "eval_every", "eval_batch")),
                ("steps", divides, "a multiple of eval_every", multiple),
                ("lr", is_number(self.lr) and self.lr > 0, positive),
                ("lr_backbone", is_number(self.lr_backbone) and self.lr_backbone > 0, positive),
                ("patience", _none_or_count(self.patience), "None or an integer >= 1"),
                ("sigma_m", is_number(self.sigma_m) and self.sigma_m >= 0, "sigma_m >= 0, a finite number"),
                ("seeds", not empty, "a tuple of integers >= 0", "seeds must name at least one seed"),
                ("seeds", seeds_ok, "a tuple of integers >= 0"),
                ("cache_bytes", is_number(self.cache_bytes) and self.cache_bytes >= 0, "a number >= 0"),
            ],
        )


@dataclass
class AdaptResult:
    """What one condition achieved: errors in %, shapes (S seeds, T tasks)."""

    condition: str
    tasks: tuple[str, ...]
    seeds: tuple[int, ...]
    test_error: torch.Tensor  # (S, T), at the best validation point
    curve_steps: list[int]  # evaluation points
    val_curve: torch.Tensor  # (P, S, T)
    trainable_per_task: int
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    def mean_error(self) -> torch.Tensor:
        """Mean test error over tasks, per seed (S,)."""
        return self.test_error.mean(1)

    def steps_to(self, target: float) -> list[int | None]:
        """Per seed: the first evaluation step whose mean validation error is <= ``target`` (%)."""
        reached = self.val_curve.mean(2) <= target  # (P, S)
        first = [reached[:, s].nonzero() for s in range(reached.shape[1])]
        return [self.curve_steps[f[0].item()] if len(f) else None for f in first]

    def row(self) -> dict[str, Any]:
        """Headline numbers: mean ± sd over seeds of the mean test error over tasks."""
        per_seed = self.mean_error()
        sd = per_seed.std().item() if len(per_seed) > 1 else 0.0
        return {
            "condition": self.condition,
            "error_mean": round(per_seed.mean().item(), 2),
            "error_sd": round(sd, 2),
            "params_per_task": self.trainable_per_task,
            "seconds": round(self.seconds, 1),
        }


class _Adapter(nn.Module):
    """Backbone + modulation + per-context heads for one group of contexts."""

    def __init__(
        self,
        backbone: nn.Module,
        condition: str,
        n_contexts: int,
        n_classes: int,
        config: AdaptConfig,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        kind, guided, finetune = CONDITIONS[condition]
        self.backbone, self.finetune, self.guided = backbone, finetune, guided
        sites = {s: backbone.sites[s] for s in config.sites} if kind != "none" else {}
        extra = {"sigma_m": config.sigma_m, "generator": generator} if kind == "stochastic_gain" else {}
        self.modulation = make_modulation(kind, sites, n_contexts, **extra)
        if sites:
            self.modulation.attach(backbone)
        heads = TaskHeads(n_contexts, backbone.feature_dim, n_classes)
        self.readout = ModulatorGuidedReadout(heads) if guided else heads
        self.modulated = bool(sites)
        order = list(backbone.sites)
        #: where the cached inputs enter: the first modulated site; the first site when
        #: fine-tuning (images go in); None for a head on fixed features
        self.start = order[0] if finetune else min(sites, key=order.index) if sites else None
        self.last_m: torch.Tensor | None = None

    def features(self, z: torch.Tensor, contexts: torch.Tensor) -> torch.Tensor:
        """``z``: inputs of the ``start`` site's stage (pooled features if ``start`` is None)."""
        with self.modulation.context(contexts):
            h = z if self.start is None else self.backbone.from_site(z, self.start)
            self.last_m = getattr(self.modulation, "last_m", None)
        return h

    def head(self, h: torch.Tensor, contexts: torch.Tensor) -> torch.Tensor:
        return self.readout(h, contexts, self.last_m) if self.guided else self.readout(h, contexts)

    def forward(self, z: torch.Tensor, contexts: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(z, contexts), contexts)

    def train(self, mode: bool = True) -> _Adapter:
        super().train(mode)
        self.backbone.eval()  # BatchNorm statistics stay those of pretraining in every condition
        return self


def _run_group(
    backbone: nn.Module,
    data: TaskSplit,
    condition: str,
    config: AdaptConfig,
    seeds: tuple[int, ...],
    device: torch.device | str,
) -> tuple[torch.Tensor, list, int, dict[str, Any]]:
    """Train one group of contexts (seeds x tasks) sharing one backbone.

    Returns the test errors (S, T) at the best validation point, the validation errors at
    every evaluation [(S, T)], the trainable parameters per task and the learned tensors worth
    plotting (:func:`_learned`).
    """
    n_seeds, n_tasks = len(seeds), len(data.names)
    torch.manual_seed(seeds[0])
    gen = torch.Generator().manual_seed(seeds[0])
    mod_gen = torch.Generator(device=device).manual_seed(seeds[0] + 1)
    pool, lengths = data.pools(data.train)
    if (lengths == 0).any():
        empty = [n for n, k in zip(data.names, lengths.tolist(), strict=True) if k == 0]
        raise ValueError(f"tasks {empty} have no training images; use more images (n_images) or other tasks")
    adapter = _Adapter(backbone, condition, n_seeds * n_tasks, data.n_classes, config, mod_gen).to(device)
    try:  # whatever happens, the shared backbone gets its hooks removed and is frozen again
        group = _Group.build(adapter, backbone, data, config, n_seeds, pool, lengths, device)
        return _train_group(group, gen)
    finally:
        if adapter.modulated:
            adapter.modulation.detach()
        backbone.freeze()


@dataclass
class _Group:
    """One group of contexts trained together, and everything its steps and evaluations need.

    Context ``i`` is seed ``i // n_tasks`` learning task ``task_of[i] = i % n_tasks``. ``pool``
    ``(n_ctx, L)`` and ``lengths`` ``(n_ctx,)``: the training images of each context's task (padded);
    ``contexts``: the context of each sample of a training batch (``batch_per_task`` per context);
    ``evaluation``: per split (``val``, ``test``), every (image, context, label) pair to score;
    ``curve``/``test_at``: the errors ``(S, T)`` at each evaluation.
    """

    adapter: _Adapter
    backbone: nn.Module
    data: TaskSplit
    config: AdaptConfig
    n_seeds: int
    n_tasks: int
    task_of: torch.Tensor
    device: torch.device | str
    inputs: _Inputs
    pool: torch.Tensor
    lengths: torch.Tensor
    contexts: torch.Tensor
    evaluation: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    curve: list[torch.Tensor] = field(default_factory=list)
    test_at: list[torch.Tensor] = field(default_factory=list)

    @property
    def n_ctx(self) -> int:
        return self.n_seeds * self.n_tasks

    @classmethod
    def build(
        cls,
        adapter: _Adapter,
        backbone: nn.Module,
        data: TaskSplit,
        config: AdaptConfig,
        n_seeds: int,
        pool: torch.Tensor,
        lengths: torch.Tensor,
        device: torch.device | str,
    ) -> _Group:
        """The group of ``adapter``'s contexts; ``pool``/``lengths``: each task's training images."""
        n_tasks = len(data.names)
        if adapter.finetune:
            backbone.requires_grad_(True)
        contexts = torch.arange(n_seeds * n_tasks, device=device).repeat_interleave(config.batch_per_task)
        cache_bytes = 0 if adapter.finetune else config.cache_bytes
        inputs = _Inputs(backbone, data.images, adapter.start, device, max_bytes=cache_bytes)
        task_of = torch.arange(n_seeds * n_tasks) % n_tasks
        group = cls(
            adapter=adapter, backbone=backbone, data=data, config=config, n_seeds=n_seeds, n_tasks=n_tasks,
            task_of=task_of, device=device, inputs=inputs, pool=pool[task_of], lengths=lengths[task_of],
            contexts=contexts,
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
    """One epoch (``eval_every`` steps): per step ``batch_per_task`` random training images per context."""
    shape = (group.n_ctx, group.config.batch_per_task)
    for _ in range(group.config.eval_every):
        pos = (torch.rand(shape, generator=g) * group.lengths[:, None]).long()
        yield group.pool.gather(1, pos)


def _loss(group: _Group, model: nn.Module, idx: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of every context on its own images ``idx`` ``(n_ctx, batch_per_task)``."""
    y = group.data.labels[idx, group.task_of[:, None]].flatten().to(group.device)
    return F.cross_entropy(model(group.inputs(idx.flatten()), group.contexts), y)


@torch.no_grad()
def _errors(group: _Group, model: nn.Module, which: str) -> torch.Tensor:
    """Error (%) of every context on the images of a split that belong to its task: (S, T)."""
    idx, ctx, labels = group.evaluation[which]
    n_ctx, chunk = group.n_ctx, group.config.eval_batch
    wrong, count = torch.zeros(n_ctx), torch.bincount(ctx, minlength=n_ctx).clamp(min=1)
    if not model.modulated:  # same features in every context: compute each image once
        images, where = idx.unique(return_inverse=True)
        h = torch.cat(
            [
                model.features(group.inputs(i), torch.zeros(len(i), dtype=torch.long, device=group.device))
                for i in images.split(chunk)
            ]
        )
    for part in torch.arange(len(idx)).split(chunk):
        c = ctx[part].to(group.device)
        if model.modulated:
            logits = model(group.inputs(idx[part]), c)
        else:
            model.last_m = None
            logits = model.head(h[where[part].to(h.device)], c)
        wrong.index_add_(0, ctx[part], (logits.argmax(1).cpu() != labels[part]).float())
    return (100 * wrong / count).view(group.n_seeds, group.n_tasks)


def _evaluate(group: _Group, model: nn.Module) -> dict[str, float]:
    """Record the validation and test errors; the mean validation error is what :func:`fit` monitors."""
    group.curve.append(_errors(group, model, "val"))
    group.test_at.append(_errors(group, model, "test"))
    return {"val_error": group.curve[-1].mean().item()}


def _optimizer(group: _Group) -> torch.optim.Optimizer:
    """Adam on the adapter's own parameters (``lr``) and, when fine-tuning, the backbone (``lr_backbone``)."""
    adapter, config = group.adapter, group.config
    own = [p for n, p in adapter.named_parameters() if p.requires_grad and not n.startswith("backbone.")]
    groups = [{"params": own, "lr": config.lr}]
    if adapter.finetune:
        groups.append({"params": list(group.backbone.parameters()), "lr": config.lr_backbone})
    return torch.optim.Adam(groups)


def _params_per_task(group: _Group) -> int:
    """Trainable parameters per task: the adapter's per context, plus, when fine-tuning, a share of
    the backbone copy that the seed's tasks train together."""
    adapter, backbone = group.adapter, group.backbone
    if not adapter.finetune:
        return count_parameters(adapter) // group.n_ctx
    own = (count_parameters(adapter) - count_parameters(backbone)) // group.n_ctx
    return own + count_parameters(backbone) // group.n_tasks


def _train_group(group: _Group, gen: torch.Generator) -> tuple[torch.Tensor, list, int, dict[str, Any]]:
    """Train the group with :func:`fit`, evaluating every ``eval_every`` steps; collect the results."""
    config = group.config
    fit_config = FitConfig(
        max_epochs=config.steps // config.eval_every,
        patience=config.patience,
        monitor="val_error",
        restore_best=False,
    )
    step = (partial(f, group) for f in (_loss, _batches, _evaluate))
    fit(group.adapter, _optimizer(group), *step, fit_config, generator=gen)
    extra = _learned(group.adapter, group.n_seeds, group.n_tasks)
    # each context's test error at its own best validation point (early stopping per task)
    best = torch.stack(group.curve).argmin(0)  # (S, T)
    test = torch.stack(group.test_at).gather(0, best[None]).squeeze(0)
    return test, group.curve, _params_per_task(group), extra


def _learned(adapter: _Adapter, n_seeds: int, n_tasks: int) -> dict[str, Any]:
    """Learned per-context tensors worth plotting, reshaped to (S, T, ...): gains' coupling per
    site and, with the guided readout, its unit weights and covariances with the modulator."""
    out: dict[str, Any] = {}
    coupling = getattr(adapter.modulation, "coupling", None)
    if adapter.modulated and coupling is not None:
        out["coupling"] = {k: v.detach().cpu().view(n_seeds, n_tasks, -1) for k, v in coupling.items()}
    if adapter.guided:
        out["readout_weights"] = adapter.readout.weights.detach().cpu().view(n_seeds, n_tasks, -1)
        out["readout_covariance"] = adapter.readout.covariance.detach().cpu().view(n_seeds, n_tasks, -1)
    return out


def adapt(
    backbone: nn.Module,
    data: TaskSplit,
    condition: str,
    config: AdaptConfig,
    *,
    device: torch.device | str = "cpu",
) -> AdaptResult:
    """Learn every task of ``data`` on the frozen ``backbone`` with ``condition``, for every seed.

    The backbone is left unchanged (full fine-tuning works on copies). Errors are in %; the
    test error of each task is taken at its best validation point.
    """
    check_condition(condition)
    missing = [s for s in config.sites if s not in backbone.sites]
    if missing:
        raise ValueError(
            f"sites {missing} are not layers of this backbone; allowed: {', '.join(backbone.sites)}"
        )
    start = time.perf_counter()
    if CONDITIONS[condition][2]:  # full fine-tuning: one backbone copy per seed
        runs = [
            _run_group(copy.deepcopy(backbone), data, condition, config, (s,), device) for s in config.seeds
        ]
        points = min(len(r[1]) for r in runs)
        extra: dict[str, Any] = {}
        test = torch.cat([r[0] for r in runs])
        curve = [torch.cat([r[1][p] for r in runs]) for p in range(points)]
        per_task = runs[0][2]
    else:
        test, curve, per_task, extra = _run_group(backbone, data, condition, config, config.seeds, device)
    steps = [config.eval_every * (p + 1) for p in range(len(curve))]
    return AdaptResult(
        condition,
        data.names,
        tuple(config.seeds),
        test,
        steps,
        torch.stack(curve),
        per_task,
        time.perf_counter() - start,
        extra,
    )
