"""Adapting one frozen, pretrained backbone to many new tasks: the protocol of notebooks 01–03.

The question of Boeshertz, Haimerl & Savin (2023) is how much of a new task a pretrained
network already "knows", and how little has to be learned to bring it out. The protocol is
the same for every condition, so that only the adaptation mechanism differs:

1. :func:`pretrain` trains a backbone on one set of binary tasks (attributes), then freezes it.
2. :func:`adapt` learns each *held-out* task with one condition of :data:`CONDITIONS`: a
   linear head per task (all conditions), plus per-task gains (deterministic or stochastic
   comodulation with the modulator-guided readout), FiLM, task-specific squeeze-and-excitation
   gains, or fine-tuning the whole backbone. Same optimiser, step budget, batch and early
   stopping for all.

Vectorised: every (seed, task) pair is one *context* with its own parameters, and one batch
holds samples of all contexts, so all tasks and seeds of a condition train in one pass.
Adam updates each context's parameters from its own samples only, so this equals separate
runs. Full fine-tuning changes the shared backbone, so it trains one backbone per seed
(shared by that seed's tasks, multi-task fine-tuning — our design choice).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .models.cnn import IMAGENET_MEAN, IMAGENET_STD
from .modulation import make_modulation
from .readout import ModulatorGuidedReadout, TaskHeads
from .training import FitConfig, fit

#: condition -> (modulation kind, modulator-guided readout?, fine-tune the backbone?)
CONDITIONS: dict[str, tuple[str, bool, bool]] = {
    "head_only": ("none", False, False),
    "deterministic_gain": ("deterministic_gain", False, False),
    "stochastic_gain": ("stochastic_gain", True, False),
    "film": ("film", False, False),
    "se_gain": ("se_gain", False, False),
    "full_finetune": ("none", False, True),
}


def check_condition(condition: str) -> str:
    """Return ``condition`` if known, else raise ValueError naming the allowed ones."""
    if condition not in CONDITIONS:
        raise ValueError(f"condition={condition!r} is unknown; allowed: {', '.join(CONDITIONS)}")
    return condition


_MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
_STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def to_input(images: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """uint8 images (B, 3, H, W) -> float input on ``device``, normalised as ImageNet weights expect."""
    x = images.to(device, non_blocking=True).float() / 255.0
    return (x - _MEAN.to(x.device)) / _STD.to(x.device)


class _Inputs:
    """What the adapter consumes for a batch of image indices, computed once where possible.

    Everything below ``start`` (the first modulated site) is the same for every task, so its
    output is computed once for all images and cached (the frozen backbone makes this exact);
    ``start=None`` caches the pooled features themselves (head-only). Images that would not
    fit in ``max_bytes`` are pushed through the prefix batch by batch instead.
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
        probe = self._compute(images[:1])
        self.cache = None
        if probe.numel() * probe.element_size() * len(images) <= max_bytes:
            with torch.no_grad():
                self.cache = torch.cat(
                    [self._compute(images[i]) for i in torch.arange(len(images)).split(512)]
                )

    @torch.no_grad()
    def _compute(self, images: torch.Tensor) -> torch.Tensor:
        x = to_input(images, self.device)
        if self.start is None:
            return self.backbone.features(x)
        return self.backbone.prefix(x, self.start)

    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        return (
            self.cache[idx.to(self.cache.device)]
            if self.cache is not None
            else self._compute(self.images[idx])
        )


@dataclass(frozen=True)
class TaskSplit:
    """Binary tasks on one image set, split into train / validation / test indices.

    ``labels`` (N, T) in {0, 1}; ``names`` the T task names; index tensors into the N images.
    """

    images: torch.Tensor
    labels: torch.Tensor
    names: tuple[str, ...]
    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor

    @classmethod
    def from_arrays(
        cls,
        images: torch.Tensor,
        labels: torch.Tensor,
        names: tuple[str, ...],
        *,
        n_val: int,
        n_test: int,
        seed: int = 0,
    ) -> TaskSplit:
        """Random split (seeded) of N images: the last ``n_val + n_test`` of a permutation are held out."""
        n = images.shape[0]
        if n_val < 1 or n_test < 1 or n_val + n_test >= n:
            raise ValueError(f"n_val={n_val}, n_test={n_test} must be >= 1 and leave training images (N={n})")
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        n_train = n - n_val - n_test
        return cls(
            images,
            labels.float(),
            tuple(names),
            order[:n_train],
            order[n_train : n_train + n_val],
            order[n_train + n_val :],
        )

    def tasks(self, names: list[str] | tuple[str, ...]) -> TaskSplit:
        """The same split restricted to the tasks ``names``."""
        missing = [n for n in names if n not in self.names]
        if missing:
            raise ValueError(f"attributes {missing} are unknown; allowed: {', '.join(self.names)}")
        cols = [self.names.index(n) for n in names]
        return TaskSplit(self.images, self.labels[:, cols], tuple(names), self.train, self.val, self.test)


@dataclass(frozen=True)
class PretrainConfig:
    """Backbone pretraining on the pretraining tasks (multi-label, one logistic output each)."""

    epochs: int = 4
    batch_size: int = 128
    lr: float = 2e-3
    patience: int | None = 2


def _error(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return ((logits > 0).float() != labels).float().mean(0)


def pretrain(
    backbone: nn.Module,
    data: TaskSplit,
    config: PretrainConfig,
    *,
    seed: int = 0,
    device: torch.device | str = "cpu",
    checkpoint: Any = None,
) -> dict[str, float]:
    """Train ``backbone`` with a linear multi-label head on ``data``'s tasks, then freeze it.

    Returns the validation error (%) per task of the best epoch. With ``checkpoint`` (a path)
    a finished pretraining is loaded instead of repeated — the cache notebooks share.
    """
    torch.manual_seed(seed)
    head = nn.Linear(backbone.feature_dim, len(data.names))
    model = nn.ModuleDict({"backbone": backbone, "head": head}).to(device)

    def loss_fn(m: nn.Module, idx: torch.Tensor) -> torch.Tensor:
        logits = m["head"](m["backbone"].features(to_input(data.images[idx], device)))
        return F.binary_cross_entropy_with_logits(logits, data.labels[idx].to(device))

    def batches(gen: torch.Generator):
        order = data.train[torch.randperm(len(data.train), generator=gen)]
        return order.split(config.batch_size)

    def evaluate(m: nn.Module) -> dict[str, float]:
        logits = torch.cat(
            [
                m["head"](m["backbone"].features(to_input(data.images[i], device))).cpu()
                for i in data.val.split(512)
            ]
        )
        errors = _error(logits, data.labels[data.val])
        return {
            "val_error": errors.mean().item(),
            **{n: e.item() for n, e in zip(data.names, errors, strict=True)},
        }

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
    freeze(backbone)
    return {n: round(100 * result.best[n], 2) for n in data.names}


def freeze(module: nn.Module) -> nn.Module:
    """Eval mode (BatchNorm statistics fixed) and no gradients."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


@dataclass(frozen=True)
class AdaptConfig:
    """One budget for every condition. ``sites``: where gains/FiLM/SE act."""

    sites: tuple[str, ...]
    steps: int = 300
    batch_per_task: int = 16
    eval_every: int = 50
    lr: float = 1e-3
    lr_backbone: float = 1e-4
    patience: int | None = None
    sigma_m: float = 0.1
    seeds: tuple[int, ...] = (0, 1, 2)
    eval_batch: int = 1024

    def __post_init__(self) -> None:
        if self.steps < 1 or self.eval_every < 1 or self.batch_per_task < 1:
            raise ValueError("steps, eval_every and batch_per_task must be >= 1")
        if self.sigma_m < 0:
            raise ValueError(f"sigma_m={self.sigma_m} must be >= 0")
        if not self.seeds:
            raise ValueError("seeds must name at least one seed")


@dataclass
class AdaptResult:
    """What one condition achieved: errors in %, shapes (S seeds, T tasks)."""

    condition: str
    tasks: tuple[str, ...]
    seeds: tuple[int, ...]
    test_error: torch.Tensor  # (S, T)
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
        mean = self.val_curve.mean(2)  # (P, S)
        out: list[int | None] = []
        for s in range(mean.shape[1]):
            hit = (mean[:, s] <= target).nonzero()
            out.append(self.curve_steps[hit[0].item()] if len(hit) else None)
        return out

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
        config: AdaptConfig,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        kind, guided, finetune = CONDITIONS[condition]
        self.backbone, self.finetune = backbone, finetune
        sites = {s: backbone.sites[s] for s in config.sites} if kind != "none" else {}
        extra = {"sigma_m": config.sigma_m, "generator": generator} if kind == "stochastic_gain" else {}
        self.modulation = make_modulation(kind, sites, n_contexts, **extra)
        if kind != "none":
            self.modulation.attach(backbone)
        heads = TaskHeads(n_contexts, backbone.feature_dim, 2)
        self.readout = ModulatorGuidedReadout(heads) if guided else heads
        self.guided = guided
        self.modulated = bool(sites)
        order = list(backbone.sites)
        #: where the cached inputs enter: the first modulated site (all sites when fine-tuning,
        #: none for a head on fixed features)
        self.start = order[0] if finetune else min(sites, key=order.index) if sites else None

    def features(self, z: torch.Tensor, contexts: torch.Tensor) -> torch.Tensor:
        """``z``: inputs of the ``start`` site's stage (pooled features if ``start`` is None)."""
        with self.modulation.context(contexts):
            h = z if self.start is None else self.backbone.from_site(z, self.start)
            self.last_m = getattr(self.modulation, "last_m", None)
        return h

    def forward(self, z: torch.Tensor, contexts: torch.Tensor) -> torch.Tensor:
        h = self.features(z, contexts)
        return self.readout(h, contexts, self.last_m) if self.guided else self.readout(h, contexts)

    def all_contexts(self, z: torch.Tensor, n_contexts: int) -> torch.Tensor:
        """Logits of every context for every input: (n_contexts * B, K), context-major.

        Without modulation the features are the same for every context: computed once.
        """
        ctx = torch.arange(n_contexts, device=z.device).repeat_interleave(len(z))
        if self.modulated:
            return self(z.repeat(n_contexts, *([1] * (z.dim() - 1))), ctx)
        h = self.features(z, torch.zeros(len(z), dtype=torch.long, device=z.device))
        return (
            self.readout(h.repeat(n_contexts, 1), ctx, None)
            if self.guided
            else self.readout(h.repeat(n_contexts, 1), ctx)
        )

    def train(self, mode: bool = True) -> _Adapter:
        super().train(mode)
        self.backbone.eval()  # BatchNorm statistics stay those of pretraining in every condition
        return self


def _trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _run_group(
    backbone: nn.Module,
    data: TaskSplit,
    condition: str,
    config: AdaptConfig,
    seeds: tuple[int, ...],
    device: torch.device | str,
) -> tuple[torch.Tensor, list, int]:
    """Train one group of contexts (seeds x tasks) sharing one backbone; return test errors (S, T),
    the per-evaluation validation errors [(S, T)] and the trainable parameters per task."""
    n_seeds, n_tasks = len(seeds), len(data.names)
    n_ctx = n_seeds * n_tasks
    torch.manual_seed(seeds[0])
    gen = torch.Generator().manual_seed(seeds[0])
    mod_gen = torch.Generator(device=device).manual_seed(seeds[0] + 1)
    adapter = _Adapter(backbone, condition, n_ctx, config, mod_gen).to(device)
    if adapter.finetune:
        for p in backbone.parameters():
            p.requires_grad_(True)
    task_of = torch.arange(n_ctx) % n_tasks
    contexts = torch.arange(n_ctx).repeat_interleave(config.batch_per_task).to(device)
    inputs = _Inputs(backbone, data.images, adapter.start, device, max_bytes=0 if adapter.finetune else 2e9)

    def loss_fn(model: nn.Module, idx: torch.Tensor) -> torch.Tensor:
        y = data.labels[idx, task_of[:, None]].flatten().long().to(device)
        return F.cross_entropy(model(inputs(idx.flatten()), contexts), y)

    def batches(g: torch.Generator):
        return (
            data.train[torch.randint(len(data.train), (n_ctx, config.batch_per_task), generator=g)]
            for _ in range(config.eval_every)
        )

    def errors(model: nn.Module, split: torch.Tensor) -> torch.Tensor:
        """Error (%) of every context on ``split``: (S, T)."""
        wrong = torch.zeros(n_ctx)
        chunk = max(1, config.eval_batch // n_ctx)
        for idx in split.split(chunk):
            pred = model.all_contexts(inputs(idx), n_ctx).argmax(1).cpu().view(n_ctx, len(idx))
            wrong += (pred != data.labels[idx][:, task_of].T.long()).sum(1)
        return (100 * wrong / len(split)).view(n_seeds, n_tasks)

    curve: list[torch.Tensor] = []

    def evaluate(model: nn.Module) -> dict[str, float]:
        curve.append(errors(model, data.val))
        return {"val_error": curve[-1].mean().item()}

    groups = [
        {
            "params": [
                p for n, p in adapter.named_parameters() if p.requires_grad and not n.startswith("backbone.")
            ],
            "lr": config.lr,
        }
    ]
    if adapter.finetune:
        groups.append({"params": list(backbone.parameters()), "lr": config.lr_backbone})
    optimizer = torch.optim.Adam(groups)
    fit_config = FitConfig(
        max_epochs=-(-config.steps // config.eval_every), patience=config.patience, monitor="val_error"
    )
    fit(adapter, optimizer, loss_fn, batches, evaluate, fit_config, generator=gen)
    adapter.eval()
    with torch.no_grad():
        test = errors(adapter, data.test)
    per_task = _trainable(adapter) // n_ctx + (_trainable(backbone) // n_tasks if adapter.finetune else 0)
    if adapter.modulation is not None and hasattr(adapter.modulation, "detach"):
        adapter.modulation.detach()
    freeze(backbone)
    return test, curve, per_task


def adapt(
    backbone: nn.Module,
    data: TaskSplit,
    condition: str,
    config: AdaptConfig,
    *,
    device: torch.device | str = "cpu",
) -> AdaptResult:
    """Learn every task of ``data`` on the frozen ``backbone`` with ``condition``, for every seed.

    The backbone is not changed (full fine-tuning works on copies). Errors are in %.
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
        test = torch.cat([r[0] for r in runs])
        curve = [torch.cat([r[1][p] for r in runs]) for p in range(len(runs[0][1]))]
        per_task = runs[0][2]
    else:
        test, curve, per_task = _run_group(backbone, data, condition, config, config.seeds, device)
    steps = [min(config.eval_every * (p + 1), config.steps) for p in range(len(curve))]
    return AdaptResult(
        condition,
        data.names,
        tuple(config.seeds),
        test,
        steps,
        torch.stack(curve),
        per_task,
        time.perf_counter() - start,
    )
