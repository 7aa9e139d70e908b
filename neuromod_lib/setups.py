"""Ready-made experiments for notebooks 01–03: data, tasks, backbone and pretraining in one call.

Each setup checks every argument before it loads or trains anything, splits the tasks into
*pretraining* tasks (the backbone learns them) and *held-out* tasks (adapted later by
:func:`neuromod_lib.adaptation.adapt`), and pretrains the backbone once: the finished
pretraining is cached as a checkpoint named after all the arguments, so notebooks that
share a setup share the backbone, and an interrupted pretraining resumes.

- :func:`attribute_setup`: binary attribute tasks — the generated images (default) or CelebA.
- :func:`hierarchy_setup`: superclass tasks (5-way within a superclass) — the generated
  hierarchy (default) or CIFAR-100's 20 superclasses.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from .adaptation import PretrainConfig, TaskSplit, pretrain, to_input
from .data import load_celeba, load_cifar100_hierarchy, make_attributes, make_hierarchy
from .models.cnn import build_backbone
from .modulation import GainModulation
from .readout import TaskHeads

ATTRIBUTE_DATASETS = ("generated", "celeba")
HIERARCHY_DATASETS = ("generated", "cifar100")


@dataclass
class Setup:
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
) -> Setup:
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
) -> Setup:
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
) -> Setup:
    config = config or PretrainConfig()
    path = _cache_path(cache_dir, **key, tasks=pre.names, pretrain=asdict(config))
    heads = TaskHeads(len(pre.names), net.feature_dim, pre.n_classes)
    error = pretrain(net, pre, config, seed=seed, device=device, checkpoint=path, heads=heads)
    return Setup(net.to(device), tasks, pre, error, source, heads.requires_grad_(False).eval())
