"""Ready-made experiments for notebooks 01–03: data, tasks, backbone and pretraining in one call.

Each setup checks every argument before it loads or trains anything, splits the tasks into
*pretraining* tasks (the backbone learns them) and *held-out* tasks (adapted later by
:func:`neuromod_lib.adaptation.adapt`), and pretrains the backbone once: the finished
pretraining is cached as a checkpoint named after all the arguments, so notebooks that
share a setup share the backbone, and an interrupted pretraining resumes.

- :func:`attribute_setup`: binary attribute tasks — the generated images (default) or CelebA.
- :func:`hierarchy_setup`: superclass tasks (5-way within a superclass) — the generated
  hierarchy (default) or CIFAR-100's 20 superclasses.

And what notebooks 01–03 show and conclude, computed here so that a notebook cell only calls
and displays: example images with their labels (:func:`attribute_examples`,
:func:`superclass_examples`), the comparison of adaptation conditions as tables
(:func:`conditions_table`, :func:`per_task_table`), each notebook's answer with its recorded
metrics (:func:`gain_adaptation` for 01, :func:`comodulation` for 02,
:func:`architecture_study` for 03), and the training-success check of a record
(:func:`training_check`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from IPython.display import Markdown
from torch import nn

from . import readout, results
from .adaptation import (
    CONDITIONS,
    STOCHASTIC_VARIANTS,
    AdaptConfig,
    AdaptResult,
    PretrainConfig,
    TaskSplit,
    adapt,
    adapt_many,
    placement_sites,
    pretrain,
    to_input,
)
from .data import load_celeba, load_cifar100_hierarchy, make_attributes, make_hierarchy
from .models.cnn import build_backbone
from .modulation import GainModulation
from .readout import TaskHeads
from .tables import Table, table

ATTRIBUTE_DATASETS = ("generated", "celeba")
#: which attributes pretrain the backbone and which the gains adapt to (:func:`attribute_setup`)
ATTRIBUTE_PROTOCOLS = ("held_out", "all")
#: binary attributes per data set
ATTRIBUTE_COUNTS = {"generated": 24, "celeba": 40}


def adaptable_attributes(dataset: str, protocol: str) -> int:
    """How many attribute tasks can be adapted to: the odd half (``held_out``) or all of them."""
    _check_choice("dataset", dataset, ATTRIBUTE_DATASETS)
    _check_choice("protocol", protocol, ATTRIBUTE_PROTOCOLS)
    total = ATTRIBUTE_COUNTS[dataset]
    return total // 2 if protocol == "held_out" else total


HIERARCHY_DATASETS = ("generated", "cifar100")


@dataclass
class AdaptationSetup:
    """A pretrained, frozen backbone and the held-out tasks to adapt it to."""

    backbone: nn.Module
    tasks: TaskSplit
    pretrain_tasks: TaskSplit
    pretrain_error: dict[str, float]
    source: str
    pretrain_heads: TaskHeads | None = None

    @torch.no_grad()
    def gain_response(
        self, image: torch.Tensor, site: str, channels: list[int], gains: list[float]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """What multiplying ``channels`` at ``site`` by ``gains`` does to one uint8 image (3, H, W).

        Returns the channels' feature maps at gain 1 and with the gains, (k, H', W'), and the
        pretraining heads' P(class 1) per pretraining task at gain 1 and with the gains, (T,).
        """
        if len(channels) != len(gains) or not channels:
            raise ValueError(f"channels={channels} and gains={gains} must be non-empty and of equal length")
        device = next(self.backbone.parameters()).device
        mod = GainModulation({site: self.backbone.sites[site]}, n_tasks=1).attach(self.backbone)
        captured: list[torch.Tensor] = []
        handle = self.backbone.site_module(site).register_forward_hook(  # runs after the gain hook
            lambda _m, _i, out: captured.append(out[0, channels].cpu())
        )
        log_gain = torch.log(torch.tensor(gains, dtype=torch.float32).clamp(min=1e-6)).to(device)
        x, ctx, probs = to_input(image[None], device), torch.zeros(1, dtype=torch.long, device=device), []
        try:
            for value in (torch.zeros_like(log_gain), log_gain):
                mod.coupling[site].data[0, channels] = value
                with mod.context(ctx):
                    h = self.backbone.features(x)
                probs.append(self.pretrain_heads.all_tasks(h)[0].softmax(-1)[:, 1].cpu())
        finally:
            handle.remove()
            mod.detach()
        return captured[0], captured[1], probs[0], probs[1]

    @torch.no_grad()
    def most_active_channels(self, image: torch.Tensor, site: str, k: int = 4) -> list[int]:
        """The ``k`` channels of ``site`` most active on one uint8 image (3, H, W), in index order.

        Activity: the channel's feature map at ``site`` (gain 1) averaged over space. These are
        the channels whose gains visibly change the image's features (notebook 01's gain figure).
        """
        if site not in self.backbone.sites:
            raise ValueError(
                f"site={site!r} is not a site of the backbone; allowed: {', '.join(self.backbone.sites)}"
            )
        channels = self.backbone.sites[site]
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= channels:
            raise ValueError(f"k={k!r} must be an integer from 1 to the {channels} channels of {site}")
        device = next(self.backbone.parameters()).device
        z = self.backbone.prefix(to_input(image[None], device), site)
        activity = self.backbone.site_module(site)(z)[0].mean(dim=(1, 2))
        return activity.topk(k).indices.sort().values.tolist()

    @property
    def mean_pretrain_error(self) -> float:
        """Validation error (%) of the pretrained backbone, averaged over the pretraining tasks."""
        return sum(self.pretrain_error.values()) / len(self.pretrain_error)

    def description(self) -> str:
        """Three lines: :meth:`summary`, then the pretraining tasks and the held-out tasks by name."""
        return (
            f"{self.summary()}\n"
            f"pretraining tasks: {', '.join(self.pretrain_tasks.names)}\n"
            f"{self._adapted + ':':<18} {', '.join(self.tasks.names)}"
        )

    @property
    def _adapted(self) -> str:
        """What the adapted tasks are: held out from pretraining, or pretrained too (protocol ``all``)."""
        pretrained = set(self.tasks.names) & set(self.pretrain_tasks.names)
        return "adapted tasks (also pretrained)" if pretrained else "held-out tasks"

    def summary(self) -> str:
        """One line: data, sizes, tasks and the pretraining error."""
        mean = sum(self.pretrain_error.values()) / len(self.pretrain_error)
        t = self.tasks
        return (
            f"{self.source}: {len(t.images)} images {tuple(t.images.shape[2:])} "
            f"({len(t.train)} train / {len(t.val)} val / {len(t.test)} test); "
            f"{len(self.pretrain_tasks.names)} pretraining tasks (val error {mean:.1f}%), "
            f"{len(t.names)} {self._adapted}"
        )


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is unknown; allowed: {', '.join(allowed)}")


def _backbone(name: str, weights: str, image_size: int, seed: int) -> nn.Module:
    """The backbone, initialised from ``seed`` alone: torch's global random state is neither read
    nor changed, so a set-up is the same whatever ran before it in the process."""
    kwargs = {"weights": weights} if weights else {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_backbone(name, **kwargs)
    net.check_input(image_size)
    return net


def _cache_path(cache_dir: str | os.PathLike | None, **key: object) -> Path | None:
    if cache_dir is None:
        return None
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Path(cache_dir) / f"pretrain-{digest}.pt"


def _held_out(n: int, fraction: float = 0.1) -> int:
    return max(1, int(n * fraction))


def attribute_setup(
    *,
    dataset: str = "generated",
    data_root: str = "../data",
    n_images: int = 6000,
    image_size: int = 32,
    backbone: str = "convnet",
    weights: str = "",
    n_tasks: int = 8,
    n_adapt: int = 0,
    protocol: str = "held_out",
    pretrain_config: PretrainConfig | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    cache_dir: str | os.PathLike | None = None,
    download: bool = False,
    verify: bool = True,
) -> AdaptationSetup:
    """Binary attribute tasks under one of two ``protocol`` s:

    - ``held_out``: the even-numbered attributes pretrain the backbone, the gains adapt it to the
      first ``n_tasks`` odd-numbered ones (tasks the backbone never saw);
    - ``all``: the literature's CelebA protocol (Sener & Koltun 2018): the gains adapt to the first
      ``n_tasks`` of all attributes, scored on the official test split. The backbone is ImageNet's
      (``weights``) when given, kept fixed while linear heads learn every attribute (what
      :meth:`AdaptationSetup.gain_response` reads); else it is trained on the training split's
      attributes, all of them.

    ``generated``: ``n_images`` images split 80/10/10 at random. ``celeba``: the official
    partition, at most ``n_images`` training images (0: all) and an eighth of that for
    validation and test each; images resized to ``image_size``. ``n_adapt``: the held-out tasks
    learn from the first ``n_adapt`` training images only (0: all); pretraining uses them all.
    """
    most = adaptable_attributes(dataset, protocol)
    if not 1 <= n_tasks <= most:
        wording = "held-out attributes" if protocol == "held_out" else "attributes"
        raise ValueError(f"n_tasks={n_tasks} is not allowed; allowed: 1 to {most} {wording}")
    net = _backbone(backbone, weights, image_size, seed)
    if dataset == "generated":
        data = make_attributes(n_images, size=image_size, seed=seed)
        n_out = _held_out(len(data))
        split = TaskSplit.random(
            data.images, data.labels.long(), data.names, n_val=n_out, n_test=n_out, seed=seed
        )
    else:
        limit = n_images or None
        parts = [
            load_celeba(
                data_root,
                s,
                size=image_size,
                download=download,
                verify=verify,
                limit=None if limit is None else (limit if s == "train" else max(1, limit // 8)),
            )
            for s in ("train", "valid", "test")
        ]
        sizes = [len(p) for p in parts]
        index = torch.arange(sum(sizes)).split(sizes)
        split = TaskSplit(
            torch.cat([p.images for p in parts]),
            torch.cat([p.labels for p in parts]).long(),
            parts[0].names,
            *index,
        )
    pre_names, held = split.names[0::2], split.names[1::2]
    if protocol == "all":
        pre_names = held = split.names
        if weights:  # ImageNet's features as they are: only the pretraining heads learn
            net.freeze()
    return _finish(
        net,
        split.tasks(list(held[:n_tasks])).limit_train(n_adapt),
        split.tasks(list(pre_names)),
        pretrain_config,
        seed,
        device,
        cache_dir,
        dict(
            kind="attributes",
            protocol=protocol,
            dataset=dataset,
            data_root=str(data_root) if dataset != "generated" else "",
            n=n_images,
            size=image_size,
            backbone=backbone,
            weights=weights,
            seed=seed,
        ),
        dataset,
    )


def hierarchy_setup(
    *,
    dataset: str = "generated",
    data_root: str = "../data",
    n_images: int = 6000,
    image_size: int = 32,
    backbone: str = "convnet",
    weights: str = "",
    n_pretrain: int = 10,
    n_tasks: int = 10,
    n_adapt: int = 0,
    pretrain_config: PretrainConfig | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    cache_dir: str | os.PathLike | None = None,
    download: bool = False,
    verify: bool = True,
) -> AdaptationSetup:
    """Superclass tasks: the first ``n_pretrain`` superclasses pretrain the backbone, the next
    ``n_tasks`` are held out; each task tells apart the 5 fine classes of its superclass.

    ``cifar100``: CIFAR-100's train split (last tenth for validation, at most ``n_images``
    images; 0: all) and its test split (at most a fifth of that). ``verify``: check the files'
    MD5 sums before unpickling them; False unpickles them unchecked (only for files you trust;
    see :func:`~neuromod_lib.data.vision.load_cifar100_hierarchy`). ``n_adapt``: the held-out
    tasks learn from the first ``n_adapt`` training images only (0: all).
    """
    _check_choice("dataset", dataset, HIERARCHY_DATASETS)
    net = _backbone(backbone, weights, image_size, seed)
    if n_pretrain < 1 or n_tasks < 1 or n_pretrain + n_tasks > 20:
        raise ValueError(
            f"n_pretrain={n_pretrain}, n_tasks={n_tasks} are not allowed; allowed: both >= 1 "
            f"and together at most the 20 superclasses"
        )
    if dataset == "generated":
        data = make_hierarchy(n_images, size=image_size, seed=seed)
        parts = None
    else:
        if image_size != 32:
            raise ValueError(f"image_size={image_size} is not allowed for cifar100; allowed: 32")
        limit = n_images or None
        parts = [
            load_cifar100_hierarchy(
                data_root,
                s,
                download=download,
                verify=verify,
                limit=None if limit is None else (limit if s == "train" else max(1, limit // 5)),
            )
            for s in ("train", "test")
        ]
        data = parts[0]
    if parts is None:
        n_out = _held_out(len(data))
        split = TaskSplit.random(
            data.images,
            _superclass_labels(data),
            tuple(data.coarse_names),
            n_val=n_out,
            n_test=n_out,
            seed=seed,
            n_classes=5,
        )
    else:
        train, test = parts
        n_val = _held_out(len(train))
        images = torch.cat([train.images, test.images])
        labels = torch.cat([_superclass_labels(train), _superclass_labels(test)])
        idx = torch.arange(len(images))
        split = TaskSplit(
            images,
            labels,
            tuple(train.coarse_names),
            idx[: len(train) - n_val],
            idx[len(train) - n_val : len(train)],
            idx[len(train) :],
            n_classes=5,
        )
    names = split.names
    return _finish(
        net,
        split.tasks(list(names[n_pretrain : n_pretrain + n_tasks])).limit_train(n_adapt),
        split.tasks(list(names[:n_pretrain])),
        pretrain_config,
        seed,
        device,
        cache_dir,
        dict(
            kind="hierarchy",
            dataset=dataset,
            data_root=str(data_root) if dataset != "generated" else "",
            n=n_images,
            size=image_size,
            backbone=backbone,
            weights=weights,
            seed=seed,
            n_pretrain=n_pretrain,
        ),
        dataset,
    )


def _superclass_labels(data) -> torch.Tensor:
    """(N, n_coarse): the within-superclass index in the image's own superclass column, -1 elsewhere."""
    labels = torch.full((len(data), len(data.coarse_names)), -1, dtype=torch.long)
    labels[torch.arange(len(data)), data.coarse] = data.within_labels()
    return labels


def _finish(
    net: nn.Module,
    tasks: TaskSplit,
    pre: TaskSplit,
    config: PretrainConfig | None,
    seed: int,
    device: torch.device | str,
    cache_dir: str | os.PathLike | None,
    key: dict,
    source: str,
) -> AdaptationSetup:
    config = config or PretrainConfig()
    path = _cache_path(cache_dir, **key, tasks=pre.names, pretrain=asdict(config))
    with torch.random.fork_rng(devices=[]):  # the heads, too, from the seed alone
        torch.manual_seed(seed)
        heads = TaskHeads(len(pre.names), net.feature_dim, pre.n_classes)
    error = pretrain(net, pre, config, seed=seed, device=device, checkpoint=path, heads=heads)
    return AdaptationSetup(net.to(device), tasks, pre, error, source, heads.requires_grad_(False).eval())


# --- what notebooks 01–03 show -----------------------------------------------------------------
def attribute_examples(
    split: TaskSplit, n: int = 16, *, max_chars: int = 40
) -> tuple[torch.Tensor, list[str]]:
    """The first ``n`` test images of ``split`` (n, 3, H, W) and, as their titles, the attributes
    each image has (``object_``/``background_`` shortened, cut to ``max_chars``): what a grid of
    examples shows so that a reader sees which features the tasks ask about."""
    first = split.test[:n]
    titles = [
        ", ".join(
            name.replace("object_", "").replace("background_", "bg_")
            for name, on in zip(split.names, split.labels[i], strict=True)
            if on == 1
        )[:max_chars]
        for i in first.tolist()
    ]
    return split.images[first], titles


def superclass_examples(split: TaskSplit, tasks: Sequence[str]) -> tuple[torch.Tensor, list[str]]:
    """One image of each class of each superclass task in ``tasks``: images (len(tasks) * K, 3, H, W),
    task by task and class by class (a grid with K columns has one superclass per row), and
    their titles (the task's name on its first class). Within a row only the feature that
    tells the superclass's classes apart changes, so the grid shows what each task needs.

    Raises ``ValueError`` naming a task of ``tasks`` that is not in ``split`` or a class of it
    that has no image.
    """
    picks, titles = [], []
    for name in tasks:
        if name not in split.names:
            raise ValueError(f"tasks: {name!r} is not a task of the split; allowed: {', '.join(split.names)}")
        column = split.names.index(name)
        for k in range(split.n_classes):
            members = (split.labels[:, column] == k).nonzero()
            if not len(members):
                raise ValueError(f"tasks: class {k} of {name!r} has no image")
            picks.append(members[0].item())
            titles.append(f"{name}\nclass {k}" if k == 0 else f"class {k}")
    return split.images[picks], titles


def per_task_table(runs: Mapping[str, AdaptResult]) -> Table:
    """Test error (%) per held-out task (rows) and condition (columns), mean over seeds: which tasks
    every condition finds hard, and which ones a condition helps."""
    if not runs:
        raise ValueError("runs is empty: there is no condition to show")
    tasks = next(iter(runs.values())).tasks
    rows = [
        {"task": name, **{c: run.test_error[:, t].mean().item() for c, run in runs.items()}}
        for t, name in enumerate(tasks)
    ]
    columns = {"task": "task", **{c: c for c in runs}}
    return table(
        rows,
        columns,
        formats=dict.fromkeys(runs, ".1f"),
        caption="test error (%) per held-out task, mean over seeds",
    )


def per_task_rows(runs: Mapping[str, AdaptResult]) -> list[dict[str, Any]]:
    """Every test error of ``runs`` as a row ``{condition, seed, task, test_error}`` (the CSV
    beside a notebook's record)."""
    return [
        {"condition": c, "seed": s, "task": task, "test_error": run.test_error[i, t].item()}
        for c, run in runs.items()
        for i, s in enumerate(run.seeds)
        for t, task in enumerate(run.tasks)
    ]


def training_check(setup: AdaptationSetup, run: AdaptResult, label: str) -> tuple[bool, str]:
    """Did training work at all? ``(passed, what was checked)`` for :func:`neuromod_lib.results.record`:
    the backbone's pretraining validation error below 25 % and the mean test error of ``run``
    (named ``label``) below 40 % on binary tasks (chance: 50 %). A verdict is judged only from
    runs that pass it."""
    pretrain_mean = setup.mean_pretrain_error
    mean = run.mean_error().mean().item()
    return (
        pretrain_mean < 25.0 and mean < 40.0,
        f"pretraining validation error {pretrain_mean:.1f}% < 25% and {label} test error "
        f"{mean:.1f}% < 40% (chance 50%)",
    )


def _require(runs: Mapping[str, AdaptResult], needed: Sequence[str]) -> None:
    missing = [c for c in needed if c not in runs]
    if missing:
        raise ValueError(f"runs lacks the conditions {missing}; it has: {', '.join(runs)}")


# --- notebook 01: what gains achieve ------------------------------------------------------------
@dataclass(frozen=True)
class GainAdaptation:
    """Notebook 01's answer: do per-task gains on a frozen backbone beat a new head alone, and how
    much of the gap to full fine-tuning do they close, at what cost in parameters?

    ``errors``: condition -> mean test error over tasks per seed (S,), in %; ``saturated``:
    condition -> whether its budget saturated.
    """

    errors: dict[str, torch.Tensor]
    gap_closed: float
    gain_params: int
    full_params: int
    saturated: dict[str, bool]

    @property
    def best(self) -> str:
        """The condition with the lowest mean error."""
        return min(self.errors, key=lambda c: self.errors[c].mean().item())

    @property
    def difference(self) -> dict[str, float]:
        """:func:`paired` statistics of gains minus head-only error, paired by seed."""
        return paired(self.errors["deterministic_gain"] - self.errors["head_only"])

    @property
    def gains_beat_head_only(self) -> bool:
        """The 95 % interval of the paired difference lies below 0."""
        return self.difference["ci_high"] < 0

    def conclusions(self) -> Markdown:
        """The answer in three sentences, every number computed."""
        err, d = self.errors, self.difference
        says = {"beats": "beat", "loses": "lose to", "matches": "neither beat nor lose to"}
        word = says[verdict(d["ci_low"], d["ci_high"])]
        full = f"full fine-tuning ({err['full_finetune'].mean():.2f}%)"
        cost = (
            f"{self.gain_params:,} gain parameters per task instead of {self.full_params:,} fine-tuned "
            f"weights ({self.full_params / self.gain_params:.0f}x fewer)"
        )
        if math.isnan(self.gap_closed):
            gap = f"There is no gap to close: {full} is no better than the head alone. They cost {cost}."
        else:
            gap = (
                f"They close {100 * self.gap_closed:.0f}% of the gap between head-only and {full}, "
                f"with {cost}."
            )
        saturated = (
            "Every condition's validation error had saturated."
            if all(self.saturated.values())
            else "Not saturated: " + ", ".join(c for c, ok in self.saturated.items() if not ok) + "."
        )
        return Markdown(
            f"Deterministic gains **{word}** the head-only baseline "
            f"({err['deterministic_gain'].mean():.2f}% vs {err['head_only'].mean():.2f}%; paired difference "
            f"{d['mean']:+.2f} points, 95 % CI [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}] over "
            f"{d['n']} seeds).\n\n{gap}\n\nLowest error: {self.best}. {saturated}"
        )

    def metrics(self) -> dict[str, Any]:
        """The headline numbers recorded: each condition's error, then the answer."""
        d = self.difference
        metrics: dict[str, Any] = {f"{c}_error": round(e.mean().item(), 2) for c, e in self.errors.items()}
        metrics.update(
            {
                "gain_minus_head_only": round(d["mean"], 2),
                "gain_minus_head_only_ci_low": round(d["ci_low"], 2),
                "gain_minus_head_only_ci_high": round(d["ci_high"], 2),
                "gains_beat_head_only": self.gains_beat_head_only,
                "gap_closed_by_gains": round(self.gap_closed, 3),
                "gain_params_per_task": self.gain_params,
                "full_params_per_task": self.full_params,
                "n_seeds": d["n"],
                "budget_saturated": all(self.saturated.values()),
            }
        )
        return metrics

    def samples(self) -> dict[str, list[float]]:
        """Per seed, what the report's verdict is judged from: gain minus head-only error."""
        return {
            "gain_minus_head_only_error": (
                self.errors["deterministic_gain"] - self.errors["head_only"]
            ).tolist()
        }


def gain_adaptation(runs: Mapping[str, AdaptResult]) -> GainAdaptation:
    """:class:`GainAdaptation` from notebook 01's ``runs`` (condition -> result; needs
    ``head_only``, ``deterministic_gain`` and ``full_finetune``).

    Gains *beat* the head alone when the 95 % t interval of their paired difference lies below 0;
    the *gap closed* is (head-only − gains) / (head-only − full fine-tuning), the mean errors over
    seeds (NaN when fine-tuning is no better than the head). Parameters per task are counted beyond
    the head's.
    """
    _require(runs, ("head_only", "deterministic_gain", "full_finetune"))
    err = {c: r.mean_error() for c, r in runs.items()}
    gap = (err["head_only"] - err["full_finetune"]).mean().item()
    closed = (err["head_only"] - err["deterministic_gain"]).mean().item() / gap if gap > 0 else float("nan")
    head_params = runs["head_only"].trainable_per_task
    return GainAdaptation(
        errors=err,
        gap_closed=closed,
        gain_params=runs["deterministic_gain"].trainable_per_task - head_params,
        full_params=runs["full_finetune"].trainable_per_task - head_params,
        saturated={c: r.saturated for c, r in runs.items()},
    )


# --- notebook 02: what stochastic comodulation achieves ----------------------------------------
def paired(values: torch.Tensor, level: float = 0.95) -> dict[str, float]:
    """Mean and ``level`` t confidence interval of per-seed values ``(S,)`` (e.g. paired differences):
    ``{"mean", "ci_low", "ci_high", "n"}``; one seed has no interval (-inf, inf), so no verdict.
    The interval is over seeds only: the test images are the same in every seed."""
    s = results.stat(values.tolist(), level)
    low, high = s.ci if s.ci is not None else (-math.inf, math.inf)  # one seed: no interval
    return {"mean": s.mean, "ci_low": low, "ci_high": high, "n": s.n}


#: the deterministic gain conditions, one per coupling parametrisation
DETERMINISTIC_GAINS = ("deterministic_gain", "deterministic_gain_nonneg")
#: metric-name suffix -> key of :func:`paired`'s statistics
_CI_KEYS = {"": "mean", "_ci_low": "ci_low", "_ci_high": "ci_high"}
#: a verdict said of a plural subject ("gains beat the head alone")
_PLURAL = {"beats": "beat", "matches": "match", "loses": "lose to"}
#: a verdict said of one method, in bold in notebook 02's answer ("it **loses to** them")
_SAYS = {"beats": "beats", "loses": "loses to", "matches": "neither beats nor loses to"}


def verdict(ci_low: float, ci_high: float) -> str:
    """``beats`` when a 95 % interval of (method − baseline) error lies below 0, ``loses`` above 0,
    else ``matches`` (no difference this run can detect)."""
    return "beats" if ci_high < 0 else "loses" if ci_low > 0 else "matches"


def steps_to_fraction(run: AdaptResult, reference: AdaptResult, fraction: float = 0.9) -> list[int | None]:
    """Per seed, the first step at which ``run``'s mean validation error over tasks reaches the target
    that ``reference`` sets for that seed: its error at step 0 minus ``fraction`` of its improvement
    (to its best evaluation). ``reference`` reaches its own target by construction; None where
    ``run`` never does."""
    curve = reference.val_curve.mean(2)  # (P, S)
    target = curve[0] - fraction * (curve[0] - curve.min(0).values)
    return run.steps_to(target)


def _censored(steps: list[int | None], budget: int) -> torch.Tensor:
    """Steps as a tensor, a seed that never reached the target counted at the budget (a lower bound)."""
    return torch.tensor([budget if s is None else s for s in steps], dtype=torch.float64)


def tagging(method: AdaptResult, reference: AdaptResult) -> torch.Tensor:
    """Per seed ``(S,)``: the correlation over last-layer units between the guided readout's weights
    in ``method`` and each unit's task relevance measured *without* the modulator in ``reference``
    (the accuracy drop when the unit is ablated; :func:`~neuromod_lib.adaptation.unit_relevance`),
    averaged over tasks. Positive: the modulator makes the readout listen to units the task needs.
    """
    weights, relevance = method.extra.get("readout_weights"), reference.extra.get("unit_relevance")
    if weights is None or relevance is None:
        raise ValueError("tagging needs the method's readout_weights and the reference's unit_relevance")
    return readout.unit_correlation(relevance, weights).mean(1)


@dataclass(frozen=True)
class Comodulation:
    """Notebook 02's answer: each stochastic-comodulation variant against the deterministic gains of
    the same coupling parametrisation (:data:`~neuromod_lib.adaptation.STOCHASTIC_VARIANTS`), per
    seed, with a 95 % t interval of the paired difference; the headline is ``stochastic_gain`` (the
    paper's reading) against ``deterministic_gain_nonneg`` (the predecessor's deterministic model).

    ``runs``: condition -> result; ``steps``: per seed the steps the headline method and its
    baseline need to reach 90 % of the baseline's validation improvement (None: never);
    ``tags``: per seed the tagging correlation (:func:`tagging`).
    """

    runs: dict[str, AdaptResult]
    steps_method: list[int | None]
    steps_baseline: list[int | None]
    tags: torch.Tensor
    extra_params: int
    budget: int

    METHOD: ClassVar[str] = "stochastic_gain"

    def difference(self, variant: str) -> torch.Tensor:
        """Per seed, ``variant``'s mean test error minus its deterministic baseline's (S,)."""
        baseline = STOCHASTIC_VARIANTS[variant]
        return self.runs[variant].mean_error() - self.runs[baseline].mean_error()

    def differences(self) -> dict[str, dict[str, float]]:
        """Variant -> :func:`paired` statistics of its difference, for every variant that was run."""
        return {v: paired(self.difference(v)) for v in STOCHASTIC_VARIANTS if v in self.runs}

    def best_deterministic(self) -> str:
        """The deterministic gains, of either coupling parametrisation that was run, with the lowest
        validation error (chosen on validation, never on test)."""
        ran = [c for c in DETERMINISTIC_GAINS if c in self.runs]
        return min(ran, key=lambda c: self.runs[c].best_val_error().mean().item())

    def against_best(self) -> dict[str, float]:
        """:func:`paired` statistics of the headline method minus :meth:`best_deterministic`, per seed:
        does stochastic comodulation beat deterministic gains however they are parametrised?"""
        best = self.runs[self.best_deterministic()]
        return paired(self.runs[self.METHOD].mean_error() - best.mean_error())

    def forest(self) -> tuple[dict[str, torch.Tensor], dict[str, tuple[float, float]]]:
        """What :func:`~neuromod_lib.plots.paired_differences` draws: per variant its per-seed
        differences and the 95 % interval of their mean."""
        stats = self.differences()
        return (
            {v: self.difference(v) for v in stats},
            {v: (d["ci_low"], d["ci_high"]) for v, d in stats.items()},
        )

    @property
    def budget_saturated(self) -> bool:
        """Whether every condition's validation error had saturated (:func:`.adaptation.saturation`)."""
        return all(r.saturated for r in self.runs.values())

    @property
    def headline_saturated(self) -> bool:
        """Whether the headline pair (the paper's reading and its deterministic gains) had saturated."""
        return all(self.runs[c].saturated for c in (self.METHOD, STOCHASTIC_VARIANTS[self.METHOD]))

    def convergence(self) -> dict[str, float]:
        """Paired difference (method − baseline) in steps to the baseline's 90 % target."""
        diff = _censored(self.steps_method, self.budget) - _censored(self.steps_baseline, self.budget)
        return paired(diff)

    def variant_table(self) -> Table:
        """Every variant: its error, its baseline's, the paired difference with its 95 % CI and verdict."""
        rows = []
        for v, d in self.differences().items():
            base = STOCHASTIC_VARIANTS[v]
            rows.append(
                {
                    "variant": v,
                    "error": self.runs[v].mean_error().mean().item(),
                    "baseline": base,
                    "baseline_error": self.runs[base].mean_error().mean().item(),
                    "diff": f"{d['mean']:+.2f} [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}]",
                    "verdict": verdict(d["ci_low"], d["ci_high"]),
                }
            )
        columns = {
            "variant": "stochastic variant",
            "error": "test error (%)",
            "baseline": "paired with",
            "baseline_error": "its error (%)",
            "diff": "difference [95 % CI]",
            "verdict": "verdict",
        }
        caption = (
            f"mean over tasks, paired by seed ({len(self.tags)} seeds); t interval of the mean difference "
            "over seeds (the test images are the same in every seed)"
        )
        return table(rows, columns, formats={"error": ".2f", "baseline_error": ".2f"}, caption=caption)

    def conclusions(self) -> Markdown:
        """The answer, every number computed, in the words the interval allows."""
        head = self.differences()[self.METHOD]
        word = verdict(head["ci_low"], head["ci_high"])
        says = _SAYS[word]
        conv = self.convergence()
        faster = verdict(conv["ci_low"], conv["ci_high"])
        speed = {"beats": "faster", "loses": "slower", "matches": "no faster and no slower"}[faster]
        tag = paired(self.tags)
        tags = "yes" if tag["ci_low"] > 0 else "no" if tag["ci_high"] < 0 else "not detectably"
        unsaturated = [c for c, r in self.runs.items() if not r.saturated]
        pair = "had" if self.headline_saturated else "had **not**"
        saturated = (
            "Every condition's validation error had saturated."
            if not unsaturated
            else f"**Not saturated:** {', '.join(unsaturated)} (see the table of conditions): read their "
            f"verdicts as ones at this budget. The headline pair {pair} saturated."
        )
        return Markdown(
            f"Stochastic comodulation (the paper's reading) **{says}** the deterministic gains of the same "
            f"couplings ({STOCHASTIC_VARIANTS[self.METHOD]}) at this scale: "
            f"{self.runs[self.METHOD].mean_error().mean():.2f}% vs "
            f"{self.runs[STOCHASTIC_VARIANTS[self.METHOD]].mean_error().mean():.2f}%, paired difference "
            f"{head['mean']:+.2f} points, 95 % CI [{head['ci_low']:+.2f}, {head['ci_high']:+.2f}] over "
            f"{head['n']} seeds.\n\n"
            f"{self._against_best_sentence()}\n\n"
            f"Convergence: to 90 % of the deterministic run's validation improvement it is {speed} "
            f"({conv['mean']:+.0f} steps, 95 % CI [{conv['ci_low']:+.0f}, {conv['ci_high']:+.0f}]).\n\n"
            f"Tagging: do the guided readout's weights follow each unit's task relevance measured without "
            f"the modulator? **{tags}** (correlation {tag['mean']:.2f}, 95 % CI [{tag['ci_low']:.2f}, "
            f"{tag['ci_high']:.2f}]).\n\n{saturated}"
        )

    def _against_best_sentence(self) -> str:
        best, d = self.best_deterministic(), self.against_best()
        if best == STOCHASTIC_VARIANTS[self.METHOD]:
            return f"The best deterministic gains on validation are the same parametrisation ({best})."
        word = _SAYS[verdict(d["ci_low"], d["ci_high"])]
        return (
            f"Against the best deterministic gains on validation, `{best}` "
            f"({self.runs[best].mean_error().mean():.2f}%), it **{word}** "
            f"them: {d['mean']:+.2f} points, 95 % CI [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}]."
        )

    def metrics(self) -> dict[str, Any]:
        """The headline numbers recorded."""
        head = self.differences()[self.METHOD]
        metrics: dict[str, Any] = {
            f"{c}_error": round(r.mean_error().mean().item(), 2) for c, r in self.runs.items()
        }
        metrics.update(
            {
                "stochastic_minus_deterministic": round(head["mean"], 2),
                "stochastic_minus_deterministic_ci_low": round(head["ci_low"], 2),
                "stochastic_minus_deterministic_ci_high": round(head["ci_high"], 2),
                "stochastic_verdict": verdict(head["ci_low"], head["ci_high"]),
                "n_seeds": head["n"],
                "budget_saturated": self.budget_saturated,
                "headline_saturated": self.headline_saturated,
                "best_deterministic": self.best_deterministic(),
            }
        )
        best = self.against_best()
        metrics.update(
            {f"stochastic_minus_best_deterministic{s}": round(best[k], 2) for s, k in _CI_KEYS.items()}
        )
        metrics["stochastic_vs_best_deterministic_verdict"] = verdict(best["ci_low"], best["ci_high"])
        for v, d in self.differences().items():
            if v != self.METHOD:
                metrics[f"{v}_minus_deterministic"] = round(d["mean"], 2)
                metrics[f"{v}_verdict"] = verdict(d["ci_low"], d["ci_high"])
        conv, tag = self.convergence(), paired(self.tags)
        metrics.update(
            {
                "steps_to_target_minus_deterministic": round(conv["mean"], 1),
                "converges_faster": conv["ci_high"] < 0,
                "tagging_correlation": round(tag["mean"], 3),
                "modulator_tags_relevant_units": tag["ci_low"] > 0,
                "extra_params_stochastic": self.extra_params,
            }
        )
        return metrics

    def samples(self) -> dict[str, list[float]]:
        """Per seed, what the report's verdicts are judged from."""
        diff = self.difference(self.METHOD)
        return {
            "stochastic_minus_deterministic": diff.tolist(),
            "extra_params_stochastic": [self.extra_params] * len(diff),
        }


def comodulation(runs: Mapping[str, AdaptResult]) -> Comodulation:
    """:class:`Comodulation` from notebook 02's ``runs`` (condition -> result; needs
    ``stochastic_gain`` and ``deterministic_gain_nonneg``; every other variant of
    :data:`~neuromod_lib.adaptation.STOCHASTIC_VARIANTS` present is compared with its baseline)."""
    method, base = Comodulation.METHOD, STOCHASTIC_VARIANTS[Comodulation.METHOD]
    needed = [method, base, *(STOCHASTIC_VARIANTS[v] for v in STOCHASTIC_VARIANTS if v in runs)]
    _require(runs, list(dict.fromkeys(needed)))
    run, baseline = runs[method], runs[base]
    return Comodulation(
        runs=dict(runs),
        steps_method=steps_to_fraction(run, baseline),
        steps_baseline=steps_to_fraction(baseline, baseline),
        tags=tagging(run, baseline),
        extra_params=run.trainable_per_task - baseline.trainable_per_task,
        budget=run.curve_steps[-1],
    )


#: Sener & Koltun (2018), *Multi-task learning as multi-objective optimization*, Table 2: mean test
#: error (%) over CelebA's 40 attributes (ResNet-18-style encoder, 64x64 images, official partition,
#: test at the best validation epoch), as quoted in the project's paper notes. A reference to cite
#: beside our numbers, not a result of this library.
SENER_KOLTUN_CELEBA = {"single task": 8.77, "uniform scaling": 9.62, "GradNorm": 8.44, "MGDA-UB": 8.25}


def literature_reference(cfg: Mapping[str, Any], runs: Mapping[str, AdaptResult]) -> Table | Markdown:
    """Each condition's mean test error over the adapted attributes beside Sener & Koltun's
    published CelebA numbers, when this run used their protocol (``dataset="celeba"``,
    ``protocol="all"``, all 40 attributes: the ``paper`` profile); otherwise one sentence saying
    why no published number applies. ``cfg``: notebook 01's or 02's config."""
    if (cfg["dataset"], cfg["protocol"], cfg["n_tasks"]) != ("celeba", "all", ATTRIBUTE_COUNTS["celeba"]):
        return Markdown(
            f"No published number applies to this run (dataset={cfg['dataset']}, protocol={cfg['protocol']}, "
            f"n_tasks={cfg['n_tasks']}): Sener & Koltun's CelebA table needs dataset=celeba, protocol=all "
            f"and all {ATTRIBUTE_COUNTS['celeba']} attributes (the paper profile)."
        )
    rows = [
        [name, f"{r.mean_error().mean().item():.2f}", "this run (mean over seeds)"]
        for name, r in runs.items()
    ]
    rows += [
        [name, f"{e:.2f}", "Sener & Koltun 2018, Table 2 (reference)"]
        for name, e in SENER_KOLTUN_CELEBA.items()
    ]
    caption = (
        "Mean test error over CelebA's 40 attributes on the official test split, each attribute at its best "
        "validation point. The published rows train the whole network for all attributes at once; ours "
        "adapt a backbone per condition. Cite the paper for its numbers."
    )
    return table(rows, ["method", "mean error over 40 attributes (%)", "source"], caption=caption)


def conditions_table(runs: Mapping[str, AdaptResult]) -> Table:
    """Every condition: what it is, its chosen learning rate (and every tried one's validation error),
    its test error (mean ± sd over seeds), parameters per task, and whether its budget saturated."""
    rows = []
    for name, run in runs.items():
        tried = ", ".join(f"{lr:g}: {v:.1f}" for lr, v in run.lr_scores.items())
        rows.append(
            {
                "condition": name,
                "what": CONDITIONS[name].description,
                "lr": f"{run.lr:g} ({tried})",
                "error": f"{run.mean_error().mean():.2f} ± {run.mean_error().std():.2f}",
                "params": run.trainable_per_task,
                "saturated": f"{'yes' if run.saturated else 'no'} ({run.improvement:+.2f})",
            }
        )
    columns = {
        "condition": "condition",
        "what": "what it is",
        "lr": "lr (val error % per lr)",
        "error": "test error (%)",
        "params": "params / task",
        "saturated": "saturated (last-third gain)",
    }
    return table(rows, columns)


# --- notebook 03: backbone x placement ----------------------------------------------------------
@dataclass
class ArchitectureStudy:
    """Held-out test errors of every backbone with the head alone and with gains at each placement.

    ``error`` (B, 1 + P): mean over tasks and seeds, in %, column 0 the head alone, then one
    column per placement; ``per_seed``: ``(backbone, column name) -> (S,)`` errors;
    ``params_per_task``: ``(backbone, placement) -> gain parameters per task``;
    ``pretrain_error``: backbone -> mean pretraining validation error (%); ``val_per_seed``: the same
    keys as ``per_seed``, each run's best validation error per seed, on which every choice (best
    placement, best backbone) is made. The gains are the
    deterministic ones with c = w² (``deterministic_gain_nonneg``); where ``per_seed`` also holds
    ``(backbone, "stochastic <placement>")``, stochastic comodulation ran at the same placement and
    is compared with them, paired by seed (the paper's architecture question). ``saturated``:
    ``(backbone, column) -> whether that run's budget saturated``.
    """

    backbones: list[str]
    placements: list[str]
    error: torch.Tensor
    per_seed: dict[tuple[str, str], torch.Tensor]
    params_per_task: dict[tuple[str, str], int]
    pretrain_error: dict[str, float]
    seeds: tuple[int, ...]
    saturated: dict[tuple[str, str], bool] = dataclasses.field(default_factory=dict)
    val_per_seed: dict[tuple[str, str], torch.Tensor] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = sorted(set(self.per_seed) - set(self.val_per_seed))
        if missing:
            raise ValueError(f"val_per_seed lacks {missing}: choices are made on validation errors")

    @property
    def n_cells(self) -> int:
        """Backbone × placement cells compared: the family of the multiplicity correction."""
        return len(self.backbones) * len(self.placements)

    @property
    def stochastic(self) -> bool:
        """Whether stochastic comodulation ran beside the deterministic gains."""
        return (self.backbones[0], f"stochastic {self.placements[0]}") in self.per_seed

    def difference(self, backbone: str, placement: str, corrected: bool = False) -> dict[str, float]:
        """:func:`paired` statistics of stochastic minus deterministic error at one backbone and
        placement; ``corrected``: the interval at level 1 - 0.05 / :attr:`n_cells` (Bonferroni), so
        that all cells' intervals hold together with 95 % confidence."""
        diff = (
            self.per_seed[(backbone, f"stochastic {placement}")]
            - self.per_seed[(backbone, f"gains {placement}")]
        )
        return paired(diff, 1 - 0.05 / self.n_cells if corrected else 0.95)

    def difference_grid(self) -> tuple[torch.Tensor, list[list[str]]]:
        """Stochastic minus deterministic error, backbone (rows) × placement (columns): the means
        ``(B, P)`` and, per cell, ``mean [low, high]`` with the 95 % interval (the heatmap's labels)."""
        cells = [[self.difference(b, p) for p in self.placements] for b in self.backbones]
        means = torch.tensor([[d["mean"] for d in row] for row in cells])
        labels = [
            [f"{d['mean']:+.2f}\n[{d['ci_low']:+.2f}, {d['ci_high']:+.2f}]" for d in row] for row in cells
        ]
        return means, labels

    def difference_table(self) -> Table:
        """Per backbone and placement: stochastic and deterministic error, the paired difference with its
        95 % interval, and the verdict."""
        rows = []
        for name in self.backbones:
            for p in self.placements:
                d, strict = self.difference(name, p), self.difference(name, p, corrected=True)
                errors = [self.per_seed[(name, f"{c} {p}")].mean().item() for c in ("stochastic", "gains")]
                shown = f"{d['mean']:+.2f} [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}]"
                both = [verdict(d["ci_low"], d["ci_high"]), verdict(strict["ci_low"], strict["ci_high"])]
                rows.append([name, p, *errors, shown, *both])
        columns = [
            "backbone",
            "gains at",
            "stochastic (%)",
            "deterministic (%)",
            "difference [95 % CI]",
            "verdict",
            f"verdict, Bonferroni over {self.n_cells} cells",
        ]
        caption = (
            f"stochastic_gain minus deterministic_gain_nonneg, paired by seed ({len(self.seeds)} seeds); "
            f"the last column widens each interval to level 1 - 0.05/{self.n_cells}, so that the cells "
            "hold together"
        )
        return table(
            rows, columns, formats={"stochastic (%)": ".2f", "deterministic (%)": ".2f"}, caption=caption
        )

    @property
    def columns(self) -> list[str]:
        """``head only``, then ``gains <placement>`` for each placement (the columns of ``error``)."""
        return ["head only", *(f"gains {p}" for p in self.placements)]

    def error_table(self) -> Table:
        """Backbone (rows) × pretraining error and each condition (columns), in %."""
        rows = [
            [name, self.pretrain_error[name], *self.error[b].tolist()]
            for b, name in enumerate(self.backbones)
        ]
        columns = ["backbone", "pretrain error", *self.columns]
        formats = {"pretrain error": ".1f", **dict.fromkeys(self.columns, ".2f")}
        caption = "held-out test error (%), mean over tasks and seeds; pretraining validation error (%)"
        return table(rows, columns, formats=formats, caption=caption)

    def params_table(self) -> Table:
        """Gain parameters per task, backbone (rows) × placement (columns)."""
        rows = [
            [name, *(self.params_per_task[(name, p)] for p in self.placements)] for name in self.backbones
        ]
        return table(rows, ["backbone", *self.placements], caption="gain parameters per task")

    def _val(self, backbone: str, column: str) -> float:
        return self.val_per_seed[(backbone, column)].mean().item()

    def best_placement(self) -> dict[str, str]:
        """Backbone -> the placement whose gains reach the lowest validation error (the first on a tie)."""
        return {
            name: min(self.placements, key=lambda p, n=name: self._val(n, f"gains {p}"))
            for name in self.backbones
        }

    def gain_minus_head(self) -> dict[str, dict[str, float]]:
        """Backbone -> :func:`paired` statistics of the gains at its best placement minus the head
        alone, test error per seed."""
        best = self.best_placement()
        return {
            name: paired(self.per_seed[(name, f"gains {best[name]}")] - self.per_seed[(name, "head only")])
            for name in self.backbones
        }

    def gains_help(self) -> dict[str, bool]:
        """Backbone -> whether gains at its best placement beat the head alone: the 95 % interval of the
        paired difference lies below 0."""
        return {name: d["ci_high"] < 0 for name, d in self.gain_minus_head().items()}

    def best_backbone(self) -> str:
        """The backbone whose gains, at its best placement, reach the lowest validation error."""
        best = self.best_placement()
        return min(self.backbones, key=lambda n: self._val(n, f"gains {best[n]}"))

    def same_best_placement(self) -> bool:
        """Whether every backbone has the same best placement."""
        return len(set(self.best_placement().values())) == 1

    def conclusions(self) -> Markdown:
        """The answer: per backbone its best placement and whether gains help, then the best backbone."""
        best, diff = self.best_placement(), self.gain_minus_head()
        lines = [
            f"- {name}: best placement {best[name]} (on validation); gains there "
            f"{_PLURAL[verdict(d['ci_low'], d['ci_high'])]} the head alone: {d['mean']:+.2f} points "
            f"[{d['ci_low']:+.2f}, {d['ci_high']:+.2f}]."
            for name, d in diff.items()
        ]
        agree = "the same" if self.same_best_placement() else "not the same"
        lines.append(
            f"\nBest backbone for gain adaptation: {self.best_backbone()}. "
            f"The best placement is {agree} for every backbone."
        )
        if self.stochastic:
            verdicts = {
                (b, p): verdict(d["ci_low"], d["ci_high"])
                for b in self.backbones
                for p in self.placements
                if (d := self.difference(b, p))
            }
            counts = {w: sum(v == w for v in verdicts.values()) for w in ("beats", "matches", "loses")}
            where = ", ".join(f"{b} {p}" for (b, p), v in verdicts.items() if v == "beats") or "nowhere"
            strict = [
                f"{b} {p}"
                for b in self.backbones
                for p in self.placements
                if self.difference(b, p, corrected=True)["ci_high"] < 0
            ]
            lines.append(
                f"\nStochastic comodulation against deterministic gains, over {len(verdicts)} backbone × "
                f"placement cells: beats in {counts['beats']}, matches in {counts['matches']}, loses in "
                f"{counts['loses']} (95 % intervals, paired by seed). It beats them: {where}. With "
                f"{self.n_cells} cells, some 95 % interval misses by chance more often than 1 in 20; "
                f"with Bonferroni's correction it beats them: {', '.join(strict) or 'nowhere'}."
            )
        if self.saturated:
            missing = [f"{b} {c}" for (b, c), ok in self.saturated.items() if not ok]
            lines.append(
                "\nEvery run's validation error had saturated."
                if not missing
                else f"\nNot saturated: {', '.join(missing)}."
            )
        return Markdown("\n".join(lines))

    def metrics(self) -> dict[str, Any]:
        """The headline numbers recorded: every error, each backbone's best placement, the answer."""
        best, helps, diff = self.best_placement(), self.gains_help(), self.gain_minus_head()
        metrics: dict[str, Any] = {
            f"{name}_{col.replace(' ', '_')}_error": round(self.error[b, j].item(), 2)
            for b, name in enumerate(self.backbones)
            for j, col in enumerate(self.columns)
        }
        metrics.update({f"{name}_best_placement": best[name] for name in self.backbones})
        for name, d in diff.items():
            metrics.update({f"{name}_gain_minus_head_only{s}": round(d[k], 2) for s, k in _CI_KEYS.items()})
        metrics.update(
            {
                "best_backbone": self.best_backbone(),
                "same_best_placement": self.same_best_placement(),
                "gains_help_every_backbone": all(helps.values()),
            }
        )
        if self.stochastic:
            for name in self.backbones:
                for p in self.placements:
                    d = self.difference(name, p)
                    metrics[f"{name}_{p}_stochastic_minus_deterministic"] = round(d["mean"], 2)
                    metrics[f"{name}_{p}_stochastic_verdict"] = verdict(d["ci_low"], d["ci_high"])
                    c = self.difference(name, p, corrected=True)
                    metrics[f"{name}_{p}_stochastic_verdict_bonferroni"] = verdict(c["ci_low"], c["ci_high"])
        if self.saturated:
            metrics["budget_saturated"] = all(self.saturated.values())
        return metrics

    def samples(self) -> dict[str, list[float]]:
        """Per seed, the gain (at its best placement) minus head-only error on the backbone where
        gains help least: negative on every backbone when gains help everywhere."""
        best = self.best_placement()
        worst = (
            torch.stack(
                [
                    self.per_seed[(name, f"gains {best[name]}")] - self.per_seed[(name, "head only")]
                    for name in self.backbones
                ]
            )
            .max(0)
            .values
        )
        return {"worst_backbone_gain_minus_head_only_error": worst.tolist()}

    def per_task_rows(self) -> list[dict[str, Any]]:
        """Every error per seed as a row ``{backbone, condition, seed, test_error}`` (the record's CSV)."""
        return [
            {"backbone": b, "condition": col, "seed": s, "test_error": v}
            for (b, col), values in self.per_seed.items()
            for s, v in zip(self.seeds, values.tolist(), strict=True)
        ]

    def training_check(self) -> tuple[bool, str]:
        """``(passed, what was checked)``: the head alone below 50 % error (chance: 80 %) on every
        backbone. A verdict is judged only from runs that pass it."""
        head = {name: self.error[b, 0].item() for b, name in enumerate(self.backbones)}
        return (
            all(e < 50.0 for e in head.values()),
            "head-only test error < 50% (chance 80%) on every backbone: "
            + ", ".join(f"{n} {e:.1f}%" for n, e in head.items()),
        )


def architecture_study(
    plan: Mapping[str, Mapping[str, Sequence[str]]],
    budget: AdaptConfig,
    *,
    setup_args: Mapping[str, Any],
    first: AdaptationSetup | None = None,
    device: torch.device | str = "cpu",
    stochastic: bool = True,
) -> ArchitectureStudy:
    """Adapt every backbone of ``plan`` (backbone -> placement -> its sites) to the held-out
    superclasses with the head alone and, at each placement, deterministic gains (c = w²) and —
    with ``stochastic`` — stochastic comodulation beside them (trained in one group, paired by
    seed), all with the same ``budget`` (its ``sites`` replaced by the placement's).

    Each backbone's :func:`hierarchy_setup` is made from ``setup_args`` (every argument but
    ``backbone``), one at a time, so only one backbone is held in memory; ``first``, if given, is
    the setup of the first backbone, already made.
    """
    if not plan:
        raise ValueError("plan is empty: name at least one backbone")
    backbones = list(plan)
    placements = list(next(iter(plan.values())))
    if any(list(where) != placements for where in plan.values()):
        raise ValueError(f"plan: every backbone needs the same placements; got {dict(plan)}")
    gains, method = "deterministic_gain_nonneg", "stochastic_gain"
    conditions = [gains, method] if stochastic else [gains]
    error = torch.full((len(backbones), len(placements) + 1), float("nan"))
    per_seed: dict[tuple[str, str], torch.Tensor] = {}
    params: dict[tuple[str, str], int] = {}
    pretrain_error: dict[str, float] = {}
    saturated: dict[tuple[str, str], bool] = {}
    val: dict[tuple[str, str], torch.Tensor] = {}
    for b, name in enumerate(backbones):
        setup = first if b == 0 and first is not None else hierarchy_setup(backbone=name, **setup_args)
        pretrain_error[name] = setup.mean_pretrain_error
        head = adapt(setup.backbone, setup.tasks, "head_only", budget, device=device)
        error[b, 0] = head.mean_error().mean()
        per_seed[(name, "head only")] = head.mean_error()
        val[(name, "head only")] = head.best_val_error()
        saturated[(name, "head only")] = head.saturated
        for p, placement in enumerate(placements):
            where = dataclasses.replace(budget, sites=tuple(plan[name][placement]))
            runs = adapt_many(setup.backbone, setup.tasks, conditions, where, device=device)
            error[b, p + 1] = runs[gains].mean_error().mean()
            per_seed[(name, f"gains {placement}")] = runs[gains].mean_error()
            val[(name, f"gains {placement}")] = runs[gains].best_val_error()
            saturated[(name, f"gains {placement}")] = runs[gains].saturated
            if stochastic:
                per_seed[(name, f"stochastic {placement}")] = runs[method].mean_error()
                val[(name, f"stochastic {placement}")] = runs[method].best_val_error()
                saturated[(name, f"stochastic {placement}")] = runs[method].saturated
            params[(name, placement)] = runs[gains].trainable_per_task - head.trainable_per_task
    return ArchitectureStudy(
        backbones, placements, error, per_seed, params, pretrain_error, tuple(budget.seeds), saturated, val
    )


# --- what a notebook runs, checked before it trains ---------------------------------------------


@dataclass(frozen=True)
class AdaptationPlan:
    """What notebooks 01–03 adapt: the gain sites of each backbone and placement, and one budget.

    ``sites``: backbone -> placement -> its sites (``early``/``late``/``all`` or a list of sites);
    ``budget``: the :class:`~neuromod_lib.adaptation.AdaptConfig` of every condition; its ``sites``
    are the one placement of notebooks 01–02, and empty when there are several (notebook 03's
    :func:`architecture_study` sets them per placement).
    """

    sites: dict[str, dict[str, tuple[str, ...]]]
    budget: AdaptConfig

    def table(self) -> Table:
        """Where the gains act, per backbone and placement; the budget in the caption."""
        b = self.budget
        caption = (
            f"{b.steps} steps x {b.batch_per_task} samples per task, evaluated every {b.eval_every}; "
            f"learning rates searched: {', '.join(f'{lr:g}' for lr in b.lrs)}; {len(b.seeds)} seeds"
        )
        rows = [
            [backbone, placement, ", ".join(sites)]
            for backbone, where in self.sites.items()
            for placement, sites in where.items()
        ]
        return table(rows, ["backbone", "gains at", "sites"], caption=caption)


def plan_adaptation(cfg: Mapping[str, Any]) -> AdaptationPlan:
    """Check a notebook's backbones, image size and gain placements, and build its budget.

    ``cfg``: a notebook config (:mod:`neuromod_lib.configs`, lists as lists) with ``steps``,
    ``eval_every``, ``batch_per_task``, ``lrs``, ``sigma_m``, ``draws``, ``route_images``,
    ``route_every``, ``saturation_tol``, ``seed``, ``n_seeds``, ``image_size``,
    and either ``backbone`` and ``gain_sites`` (notebooks 01–02) or ``backbones`` and ``placements``
    (notebook 03). Raises ``ValueError`` naming the parameter before anything is loaded or trained.
    """
    backbones = list(cfg["backbones"]) if "backbones" in cfg else [cfg["backbone"]]
    placements = list(cfg["placements"]) if "placements" in cfg else [cfg["gain_sites"]]
    sites: dict[str, dict[str, tuple[str, ...]]] = {}
    for name in backbones:
        net = build_backbone(name)
        net.check_input(cfg["image_size"])
        sites[name] = {p: placement_sites(net, p) for p in placements}
    one = len(backbones) == 1 and len(placements) == 1
    budget = AdaptConfig(
        sites=sites[backbones[0]][placements[0]] if one else (),
        steps=cfg["steps"],
        eval_every=cfg["eval_every"],
        batch_per_task=cfg["batch_per_task"],
        lrs=tuple(cfg["lrs"]),
        sigma_m=cfg["sigma_m"],
        draws=cfg["draws"],
        route_images=cfg["route_images"],
        route_every=cfg["route_every"],
        saturation_tol=cfg["saturation_tol"],
        seeds=tuple(range(cfg["seed"], cfg["seed"] + cfg["n_seeds"])),
    )
    return AdaptationPlan(sites, budget)
