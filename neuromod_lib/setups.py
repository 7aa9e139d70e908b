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
(:func:`adaptation_table`, :func:`per_task_table`), each notebook's answer with its recorded
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
from typing import Any

import torch
from IPython.display import Markdown
from torch import nn

from .adaptation import (
    AdaptConfig,
    AdaptResult,
    PretrainConfig,
    TaskSplit,
    adapt,
    placement_sites,
    pretrain,
    to_input,
)
from .data import load_celeba, load_cifar100_hierarchy, make_attributes, make_hierarchy
from .models.cnn import build_backbone
from .modulation import GainModulation
from .readout import TaskHeads
from .tables import Table, format_value, table

ATTRIBUTE_DATASETS = ("generated", "celeba")
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
            f"held-out tasks:    {', '.join(self.tasks.names)}"
        )

    def summary(self) -> str:
        """One line: data, sizes, tasks and the pretraining error."""
        mean = sum(self.pretrain_error.values()) / len(self.pretrain_error)
        t = self.tasks
        return (
            f"{self.source}: {len(t.images)} images {tuple(t.images.shape[2:])} "
            f"({len(t.train)} train / {len(t.val)} val / {len(t.test)} test); "
            f"{len(self.pretrain_tasks.names)} pretraining tasks (val error {mean:.1f}%), "
            f"{len(t.names)} held-out tasks"
        )


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is unknown; allowed: {', '.join(allowed)}")


def _backbone(name: str, weights: str, image_size: int) -> nn.Module:
    kwargs = {"weights": weights} if weights else {}
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
    pretrain_config: PretrainConfig | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    cache_dir: str | os.PathLike | None = None,
    download: bool = False,
    verify: bool = True,
) -> AdaptationSetup:
    """Binary attribute tasks: even-numbered attributes pretrain the backbone, the first
    ``n_tasks`` odd-numbered ones are held out.

    ``generated``: ``n_images`` images split 80/10/10 at random. ``celeba``: the official
    partition, at most ``n_images`` training images (0: all) and an eighth of that for
    validation and test each; images resized to ``image_size``.
    """
    _check_choice("dataset", dataset, ATTRIBUTE_DATASETS)
    net = _backbone(backbone, weights, image_size)
    held_out = {"generated": 12, "celeba": 20}[dataset]  # half of 24 / 40 attributes
    if not 1 <= n_tasks <= held_out:
        raise ValueError(f"n_tasks={n_tasks} is not allowed; allowed: 1 to {held_out} held-out attributes")
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
    return _finish(
        net,
        split.tasks(list(held[:n_tasks])),
        split.tasks(list(pre_names)),
        pretrain_config,
        seed,
        device,
        cache_dir,
        dict(
            kind="attributes",
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
    see :func:`~neuromod_lib.data.vision.load_cifar100_hierarchy`).
    """
    _check_choice("dataset", dataset, HIERARCHY_DATASETS)
    net = _backbone(backbone, weights, image_size)
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
        split.tasks(list(names[n_pretrain : n_pretrain + n_tasks])),
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


def reached_steps(run: AdaptResult, target: float) -> list[int]:
    """The steps at which the seeds of ``run`` that reached the mean validation error ``target``
    (%) first reached it (:meth:`AdaptResult.steps_to`, seeds that never did left out)."""
    return [s for s in run.steps_to(target) if s is not None]


def steps_to_text(run: AdaptResult, target: float) -> str:
    """How fast ``run`` reached ``target`` (%): ``"240 (3/3)"`` (mean step over the seeds that
    reached it, and how many of the seeds did), or ``"not reached"``."""
    reached = reached_steps(run, target)
    if not reached:
        return "not reached"
    return f"{sum(reached) / len(reached):.0f} ({len(reached)}/{len(run.seeds)})"


def adaptation_table(runs: Mapping[str, AdaptResult], target: float) -> Table:
    """One row per condition of ``runs`` (named by its key): mean test error over the held-out
    tasks (mean ± sd over seeds, :meth:`AdaptResult.row`), the learnable parameters one task costs,
    and how many steps the condition needs to reach ``target`` (%; :func:`steps_to_text`)."""
    rows = []
    for name, run in runs.items():
        row = run.row()
        rows.append(
            {
                "condition": name,
                "error": f"{row['error_mean']:.2f} ± {row['error_sd']:.2f}",
                "params": row["params_per_task"],
                "steps": steps_to_text(run, target),
            }
        )
    columns = {
        "condition": "condition",
        "error": "test error (%)",
        "params": "params / task",
        "steps": f"steps to {target:.1f}%",
    }
    return table(rows, columns)


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

    ``errors``: condition -> mean test error over tasks per seed (S,), in %.
    """

    errors: dict[str, torch.Tensor]
    gains_beat_head_only: bool
    gap_closed: float
    gain_params: int
    full_params: int

    @property
    def best(self) -> str:
        """The condition with the lowest mean error."""
        return min(self.errors, key=lambda c: self.errors[c].mean().item())

    def conclusions(self) -> Markdown:
        """The answer in three sentences, every number computed."""
        err = self.errors
        beat = "beat" if self.gains_beat_head_only else "do not beat"
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
        return Markdown(
            f"Deterministic gains {beat} the head-only baseline on every seed "
            f"({err['deterministic_gain'].mean():.2f}% vs {err['head_only'].mean():.2f}%).\n\n"
            f"{gap}\n\nLowest error: {self.best}."
        )

    def metrics(self) -> dict[str, Any]:
        """The headline numbers recorded: each condition's error, then the answer."""
        metrics: dict[str, Any] = {f"{c}_error": round(e.mean().item(), 2) for c, e in self.errors.items()}
        metrics.update(
            {
                "gains_beat_head_only": self.gains_beat_head_only,
                "gap_closed_by_gains": round(self.gap_closed, 3),
                "gain_params_per_task": self.gain_params,
                "full_params_per_task": self.full_params,
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

    Gains *beat* the head alone when their error is lower on every seed; the *gap closed* is
    (head-only − gains) / (head-only − full fine-tuning), the mean errors over seeds (NaN when
    fine-tuning is no better than the head). Parameters per task are counted beyond the head's.
    """
    _require(runs, ("head_only", "deterministic_gain", "full_finetune"))
    err = {c: r.mean_error() for c, r in runs.items()}
    gap = (err["head_only"] - err["full_finetune"]).mean().item()
    closed = (err["head_only"] - err["deterministic_gain"]).mean().item() / gap if gap > 0 else float("nan")
    head_params = runs["head_only"].trainable_per_task
    return GainAdaptation(
        errors=err,
        gains_beat_head_only=bool((err["deterministic_gain"] < err["head_only"]).all()),
        gap_closed=closed,
        gain_params=runs["deterministic_gain"].trainable_per_task - head_params,
        full_params=runs["full_finetune"].trainable_per_task - head_params,
    )


# --- notebook 02: what stochastic comodulation achieves ----------------------------------------
def converges_faster(run: AdaptResult, reference: AdaptResult, target: float) -> bool:
    """Does ``run`` reach ``target`` (%) faster than ``reference``? Yes when at least one seed of
    ``run`` reaches it, at least as many of its seeds as of ``reference``'s do, and its mean step
    to get there (over the seeds that did) is smaller. A ``reference`` that never gets there
    counts as 0 steps: no claim of speed without something to compare with."""
    steps, ref = reached_steps(run, target), reached_steps(reference, target)
    return bool(steps) and len(steps) >= len(ref) and sum(steps) / len(steps) < sum(ref) / max(len(ref), 1)


@dataclass(frozen=True)
class Comodulation:
    """Notebook 02's answer: stochastic comodulation with its guided readout against deterministic
    gains, the plain-readout ablation, and whether the modulator tags the units it drives.

    Errors: mean test error over tasks per seed (S,), in %. ``correlation``: the mean
    coupling-readout weight correlation (:func:`neuromod_lib.readout.tagging_correlation`).
    """

    deterministic: torch.Tensor
    stochastic: torch.Tensor
    plain_readout: torch.Tensor
    target: float
    faster: bool
    correlation: float
    extra_params: int

    @property
    def difference(self) -> torch.Tensor:
        """Stochastic minus deterministic error per seed (S,): negative where the method wins."""
        return self.stochastic - self.deterministic

    @property
    def stochastic_beats_deterministic(self) -> bool:
        """Lower error on every seed."""
        return bool((self.stochastic < self.deterministic).all())

    @property
    def modulator_tags_units(self) -> bool:
        """Units with a larger coupling get a larger readout weight (positive correlation)."""
        return self.correlation > 0

    def conclusions(self) -> Markdown:
        """The answer in four sentences, every number computed."""
        det, sto, plain, diff = self.deterministic, self.stochastic, self.plain_readout, self.difference
        costs = "readout" if plain.mean() < sto.mean() else "noise"
        return Markdown(
            f"Stochastic comodulation + guided readout: {sto.mean():.2f}% ± {sto.std():.2f} vs deterministic "
            f"gains {det.mean():.2f}% ± {det.std():.2f} (difference {diff.mean():+.2f} ± {diff.std():.2f} "
            f"points over {len(diff)} seeds).\n\n"
            "Stochastic beats deterministic on every seed: "
            f"**{format_value(self.stochastic_beats_deterministic)}**. "
            f"Converges faster to {self.target:.1f}%: **{format_value(self.faster)}**.\n\n"
            f"With a plain readout the stochastic gains reach {plain.mean():.2f}%: the {costs} is what "
            f"costs most here.\n\n"
            f"The modulator tags the units it drives (coupling-weight correlation "
            f"{self.correlation:.2f} > 0): **{format_value(self.modulator_tags_units)}**."
        )

    def metrics(self) -> dict[str, Any]:
        """The headline numbers recorded."""
        diff = self.difference
        return {
            "deterministic_error": round(self.deterministic.mean().item(), 2),
            "stochastic_error": round(self.stochastic.mean().item(), 2),
            "stochastic_plain_readout_error": round(self.plain_readout.mean().item(), 2),
            "stochastic_minus_deterministic": round(diff.mean().item(), 2),
            "stochastic_minus_deterministic_sd": round(diff.std().item(), 2) if len(diff) > 1 else 0.0,
            "stochastic_beats_deterministic": self.stochastic_beats_deterministic,
            "stochastic_converges_faster": self.faster,
            "tagging_correlation": round(self.correlation, 3),
            "modulator_tags_units": self.modulator_tags_units,
            "extra_params_stochastic": self.extra_params,
        }

    def samples(self) -> dict[str, list[float]]:
        """Per seed, what the report's verdicts are judged from."""
        diff = self.difference
        return {
            "stochastic_minus_deterministic": diff.tolist(),
            "extra_params_stochastic": [self.extra_params] * len(diff),
        }


def comodulation(runs: Mapping[str, AdaptResult], target: float, correlation: float) -> Comodulation:
    """:class:`Comodulation` from notebook 02's ``runs`` (needs ``deterministic_gain``,
    ``stochastic_gain`` and ``stochastic_gain_plain_readout``), the error ``target`` (%) of the
    convergence question and the tagging ``correlation`` of the method's run."""
    _require(runs, ("deterministic_gain", "stochastic_gain", "stochastic_gain_plain_readout"))
    method, det = runs["stochastic_gain"], runs["deterministic_gain"]
    return Comodulation(
        deterministic=det.mean_error(),
        stochastic=method.mean_error(),
        plain_readout=runs["stochastic_gain_plain_readout"].mean_error(),
        target=target,
        faster=converges_faster(method, det, target),
        correlation=correlation,
        extra_params=method.trainable_per_task - det.trainable_per_task,
    )


# --- notebook 03: backbone x placement ----------------------------------------------------------
@dataclass
class ArchitectureStudy:
    """Held-out test errors of every backbone with the head alone and with gains at each placement.

    ``error`` (B, 1 + P): mean over tasks and seeds, in %, column 0 the head alone, then one
    column per placement; ``per_seed``: ``(backbone, column name) -> (S,)`` errors;
    ``params_per_task``: ``(backbone, placement) -> gain parameters per task``;
    ``pretrain_error``: backbone -> mean pretraining validation error (%).
    """

    backbones: list[str]
    placements: list[str]
    error: torch.Tensor
    per_seed: dict[tuple[str, str], torch.Tensor]
    params_per_task: dict[tuple[str, str], int]
    pretrain_error: dict[str, float]
    seeds: tuple[int, ...]

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

    def best_placement(self) -> dict[str, str]:
        """Backbone -> the placement whose gains give the lowest error (the first on a tie)."""
        gains = self.error[:, 1:]
        return {name: self.placements[gains[b].argmin().item()] for b, name in enumerate(self.backbones)}

    def gains_help(self) -> dict[str, bool]:
        """Backbone -> whether gains at some placement beat the head alone."""
        gains = self.error[:, 1:]
        return {name: bool(gains[b].min() < self.error[b, 0]) for b, name in enumerate(self.backbones)}

    def best_backbone(self) -> str:
        """The backbone whose best gain placement gives the lowest error."""
        return self.backbones[self.error[:, 1:].min(1).values.argmin().item()]

    def same_best_placement(self) -> bool:
        """Whether every backbone has the same best placement."""
        return len(set(self.best_placement().values())) == 1

    def conclusions(self) -> Markdown:
        """The answer: per backbone its best placement and whether gains help, then the best backbone."""
        best, helps = self.best_placement(), self.gains_help()
        lines = [
            f"- {name}: best placement {best[name]}; gains "
            f"{'improve on' if helps[name] else 'do not improve on'} the head alone."
            for name in self.backbones
        ]
        agree = "the same" if self.same_best_placement() else "not the same"
        lines.append(
            f"\nBest backbone for gain adaptation: {self.best_backbone()}. "
            f"The best placement is {agree} for every backbone."
        )
        return Markdown("\n".join(lines))

    def metrics(self) -> dict[str, Any]:
        """The headline numbers recorded: every error, each backbone's best placement, the answer."""
        best, helps = self.best_placement(), self.gains_help()
        metrics: dict[str, Any] = {
            f"{name}_{col.replace(' ', '_')}_error": round(self.error[b, j].item(), 2)
            for b, name in enumerate(self.backbones)
            for j, col in enumerate(self.columns)
        }
        metrics.update({f"{name}_best_placement": best[name] for name in self.backbones})
        metrics.update(
            {
                "best_backbone": self.best_backbone(),
                "same_best_placement": self.same_best_placement(),
                "gains_help_every_backbone": all(helps.values()),
            }
        )
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
) -> ArchitectureStudy:
    """Adapt every backbone of ``plan`` (backbone -> placement -> its sites) to the held-out
    superclasses, with the head alone and with deterministic gains at each placement, all with the
    same ``budget`` (its ``sites`` replaced by the placement's).

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
    error = torch.full((len(backbones), len(placements) + 1), float("nan"))
    per_seed: dict[tuple[str, str], torch.Tensor] = {}
    params: dict[tuple[str, str], int] = {}
    pretrain_error: dict[str, float] = {}
    for b, name in enumerate(backbones):
        setup = first if b == 0 and first is not None else hierarchy_setup(backbone=name, **setup_args)
        pretrain_error[name] = setup.mean_pretrain_error
        head = adapt(setup.backbone, setup.tasks, "head_only", budget, device=device)
        error[b, 0] = head.mean_error().mean()
        per_seed[(name, "head only")] = head.mean_error()
        for p, placement in enumerate(placements):
            sites = tuple(plan[name][placement])
            run = adapt(
                setup.backbone,
                setup.tasks,
                "deterministic_gain",
                dataclasses.replace(budget, sites=sites),
                device=device,
            )
            error[b, p + 1] = run.mean_error().mean()
            per_seed[(name, f"gains {placement}")] = run.mean_error()
            params[(name, placement)] = run.trainable_per_task - head.trainable_per_task
    return ArchitectureStudy(
        backbones, placements, error, per_seed, params, pretrain_error, tuple(budget.seeds)
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
            f"{len(b.seeds)} seeds"
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
    ``eval_every``, ``batch_per_task``, ``lr``, ``sigma_m``, ``seed``, ``n_seeds``, ``image_size``,
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
        lr=cfg["lr"],
        sigma_m=cfg["sigma_m"],
        seeds=tuple(range(cfg["seed"], cfg["seed"] + cfg["n_seeds"])),
    )
    return AdaptationPlan(sites, budget)
