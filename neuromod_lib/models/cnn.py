"""Convolutional backbones with named *sites*: the places where a modulator may change activity.

Task adaptation by gains (Boeshertz, Haimerl & Savin 2023) keeps a pretrained network fixed and
lets a small per-task modulator scale the activity at a few chosen layers. The modulator must
not need to know how a particular network is written, so every backbone here offers the same
small interface, :class:`Backbone`:

- ``sites``: an ordered ``{name: number of channels}`` of the places gains may act, in the
  order the forward pass reaches them;
- ``site_module(name)``: the module whose *output* is that site (modulators hook it);
- ``features(x)``: images ``(B, 3, H, W)`` to globally pooled features ``(B, feature_dim)``;
- ``check_input(size)`` / ``min_size``: which square image sizes the network can take;
- ``freeze()``: make it a fixed feature extractor (no trainable parameters, BatchNorm on its
  stored statistics even when the surrounding model is in training mode).

Backbones: :class:`ConvNet` (conv-BN-ReLU-maxpool blocks), :class:`SmallResNet` (a CIFAR-size
residual network) and :class:`TorchvisionResNet` (torchvision's ResNet-18/50; ImageNet weights
are loaded from a local file when the user has one; nothing is ever downloaded).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision
from torch import nn

from ..checks import is_int

# Input normalisation that torchvision's ImageNet weights expect (per RGB channel).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Backbone(nn.Module):
    """Common interface of the backbones; subclasses fill ``sites``, ``feature_dim``, ``min_size``.

    A subclass registers its layers, then sets ``self._site_modules = {name: module}`` (in forward
    order) and implements :meth:`stages`. ``forward`` is ``features``.

    The network is a chain of stages, one per site: running the stages in order and averaging
    over space gives the features. So everything below the first modulated site can be computed
    once and cached (:meth:`prefix`), and only the rest run per task (:meth:`from_site`).
    """

    sites: dict[str, int]
    feature_dim: int
    #: features average over a ``pool_grid x pool_grid`` grid of regions (1: global pooling).
    #: A grid keeps coarse position, which global pooling would erase ("is the object on the left?").
    pool_grid: int = 1
    min_size: int
    in_channels: int = 3

    def __init__(self) -> None:
        super().__init__()
        self.frozen = False
        self._site_modules: dict[str, nn.Module] = {}

    def stages(self) -> list[tuple[str, Callable[[torch.Tensor], torch.Tensor]]]:
        """``[(site, stage)]`` in forward order; each stage's output is that site's output."""
        raise NotImplementedError

    def _stage_index(self, site: str) -> int:
        names = [name for name, _ in self.stages()]
        if site not in names:
            raise ValueError(f"site={site!r} is not a site of {type(self).__name__}; available: {names}")
        return names.index(site)

    def prefix(self, x: torch.Tensor, site: str) -> torch.Tensor:
        """Run the stages *below* ``site`` on images ``x``: the input map of ``site``'s stage."""
        for _, stage in self.stages()[: self._stage_index(site)]:
            x = stage(x)
        return x

    def from_site(self, z: torch.Tensor, site: str) -> torch.Tensor:
        """Run the stages from ``site`` on (its stage included) on a :meth:`prefix` map; pool: (B, D)."""
        for _, stage in self.stages()[self._stage_index(site) :]:
            z = stage(z)
        return self.pool(z)

    def through(self, x: torch.Tensor, site: str) -> torch.Tensor:
        """Run the stages up to ``site`` (its stage included) on images ``x``: ``site``'s output map."""
        for _, stage in self.stages()[: self._stage_index(site) + 1]:
            x = stage(x)
        return x

    def after(self, z: torch.Tensor, site: str) -> torch.Tensor:
        """Run the stages after ``site`` on its output map ``z`` (:meth:`through`); pool: (B, D)."""
        for _, stage in self.stages()[self._stage_index(site) + 1 :]:
            z = stage(z)
        return self.pool(z)

    def pool(self, z: torch.Tensor) -> torch.Tensor:
        """The last map ``(B, C, H, W)`` averaged over a ``pool_grid`` grid: features ``(B, feature_dim)``."""
        if self.pool_grid == 1:
            return z.mean(dim=(2, 3))
        if z.shape[2:] == (self.pool_grid, self.pool_grid):  # already the grid: nothing to average
            return z.flatten(1)
        return nn.functional.adaptive_avg_pool2d(z, self.pool_grid).flatten(1)

    def _forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.from_site(x, self.stages()[0][0])

    def _size_rule(self) -> str:
        """Why sizes below ``min_size`` are refused (for the error message)."""
        return "smaller inputs shrink below 1 pixel"

    def check_input(self, size: int) -> None:
        """Raise ``ValueError`` naming ``image_size`` and the allowed range if ``size`` cannot be used."""
        if not isinstance(size, int) or isinstance(size, bool) or size < self.min_size:
            raise ValueError(
                f"image_size={size!r} is not allowed for {type(self).__name__} ({self._size_rule()}); "
                f"allowed: integers >= {self.min_size}"
            )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, in_channels, H, W)`` → globally average-pooled features ``(B, feature_dim)``."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x has shape {list(x.shape)}; expected (B, {self.in_channels}, H, W)")
        self.check_input(min(int(x.shape[2]), int(x.shape[3])))
        return self._forward_features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def site_module(self, name: str) -> nn.Module:
        """The module whose output is site ``name``."""
        if name not in self._site_modules:
            raise ValueError(
                f"site={name!r} is not a site of {type(self).__name__}; available: {list(self.sites)}"
            )
        return self._site_modules[name]

    def freeze(self) -> Backbone:
        """Fix all weights (``requires_grad=False``) and keep BatchNorm in eval mode from now on.

        A frozen backbone is a fixed feature extractor: ``train()`` no longer switches its
        BatchNorm layers to batch statistics, which would both change the stored statistics and
        re-normalise away the per-channel gains a modulator applies.
        """
        self.requires_grad_(False)
        self.frozen = True
        return self.train(self.training)

    def train(self, mode: bool = True) -> Backbone:
        super().train(mode)
        if self.frozen:
            for module in self.children():
                module.train(False)
        return self


def _check_grid(pool_grid: int) -> int:
    if not isinstance(pool_grid, int) or isinstance(pool_grid, bool) or pool_grid < 1:
        raise ValueError(f"pool_grid={pool_grid!r} must be an integer >= 1")
    return pool_grid


def _check_widths(widths: tuple[int, ...]) -> tuple[int, ...]:
    widths = tuple(widths)
    if not widths or not all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths):
        raise ValueError(f"widths={widths!r} must be a non-empty sequence of integers >= 1")
    return widths


def _conv_bn(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out)]


class ConvNet(Backbone):
    """Blocks of conv3x3-BN-ReLU-maxpool(2); site ``block{i}`` is the output of block ``i``.

    Each block halves the image, so ``min_size = 2 ** len(widths)``. Features pool over a
    ``pool_grid x pool_grid`` grid: ``feature_dim = pool_grid**2 * widths[-1]``.
    """

    def __init__(
        self, widths: tuple[int, ...] = (16, 32, 64), in_channels: int = 3, pool_grid: int = 2
    ) -> None:
        super().__init__()
        self.pool_grid = _check_grid(pool_grid)
        widths = _check_widths(widths)
        if not is_int(in_channels) or in_channels < 1:
            raise ValueError(f"in_channels={in_channels!r} must be an integer >= 1")
        self.in_channels, self.widths = in_channels, widths
        channels = (in_channels, *widths)
        self.blocks = nn.Sequential(
            *(
                nn.Sequential(*_conv_bn(c_in, c_out), nn.ReLU(inplace=True), nn.MaxPool2d(2))
                for c_in, c_out in zip(channels[:-1], channels[1:], strict=True)
            )
        )
        self.sites = {f"block{i + 1}": w for i, w in enumerate(widths)}
        self._site_modules = {f"block{i + 1}": block for i, block in enumerate(self.blocks)}
        self.feature_dim = widths[-1] * self.pool_grid**2
        self.min_size = 2 ** len(widths)

    def _size_rule(self) -> str:
        return f"{len(self.widths)} blocks each halve the size"

    def stages(self) -> list[tuple[str, Callable[[torch.Tensor], torch.Tensor]]]:
        return list(self._site_modules.items())


class BasicBlock(nn.Module):
    """Residual block: conv3x3-BN-ReLU-conv3x3-BN plus a (1x1 conv-BN when the shape changes) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_conv_bn(c_in, c_out, stride), nn.ReLU(inplace=True), *_conv_bn(c_out, c_out)
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class SmallResNet(Backbone):
    """A CIFAR-size ResNet: stem conv3x3-BN-ReLU, then one stage per width (stride 2 between stages).

    Sites: ``stem`` and ``stage{i}`` (output of each stage). ``min_size = 2 ** (stages - 1)``:
    below it the last stride-2 stages would see a single pixel and only padding around it.
    """

    def __init__(
        self, widths: tuple[int, ...] = (16, 32, 64), blocks_per_stage: int = 1, pool_grid: int = 2
    ) -> None:
        super().__init__()
        self.pool_grid = _check_grid(pool_grid)
        widths = _check_widths(widths)
        if (
            not isinstance(blocks_per_stage, int)
            or isinstance(blocks_per_stage, bool)
            or blocks_per_stage < 1
        ):
            raise ValueError(f"blocks_per_stage={blocks_per_stage!r} must be an integer >= 1")
        self.widths, self.blocks_per_stage = widths, blocks_per_stage
        self.stem = nn.Sequential(*_conv_bn(self.in_channels, widths[0]), nn.ReLU(inplace=True))
        channels = (widths[0], *widths)
        self.layers = nn.Sequential(
            *(
                nn.Sequential(
                    *(
                        BasicBlock(c_in if j == 0 else c_out, c_out, stride=2 if (i > 0 and j == 0) else 1)
                        for j in range(blocks_per_stage)
                    )
                )
                for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:], strict=True))
            )
        )
        self.sites = {"stem": widths[0], **{f"stage{i + 1}": w for i, w in enumerate(widths)}}
        self._site_modules = {"stem": self.stem, **{f"stage{i + 1}": s for i, s in enumerate(self.layers)}}
        self.feature_dim = widths[-1] * self.pool_grid**2
        self.min_size = 2 ** (len(widths) - 1)

    def _size_rule(self) -> str:
        return f"{len(self.widths) - 1} stride-2 stages each halve the size"

    def stages(self) -> list[tuple[str, Callable[[torch.Tensor], torch.Tensor]]]:
        return list(self._site_modules.items())


_RESNETS = {
    "resnet18": (torchvision.models.resnet18, 1, "ResNet18"),
    "resnet50": (torchvision.models.resnet50, 4, "ResNet50"),
}


class TorchvisionResNet(Backbone):
    """torchvision's ResNet-18 or ResNet-50 without its classifier; sites ``stem``, ``layer1..layer4``.

    ``stem`` is the output of conv1-BN-ReLU-maxpool (64 channels). The network downsamples
    32-fold, so ``min_size = 32`` (one pixel left at ``layer4``).

    ``weights``: None (random initialisation) or the path of a local ``state_dict`` file, loaded
    with ``torch.load(..., weights_only=True)``; the classifier's ``fc.*`` entries are ignored.
    Nothing is downloaded. ImageNet weights expect inputs normalised with :data:`IMAGENET_MEAN`
    and :data:`IMAGENET_STD`.
    """

    def __init__(self, name: str = "resnet18", weights: str | os.PathLike | None = None) -> None:
        super().__init__()
        if name not in _RESNETS:
            raise ValueError(
                f"name={name!r} is not a torchvision ResNet here; allowed: {', '.join(_RESNETS)}"
            )
        make, expansion, _ = _RESNETS[name]
        self.name = name
        self.net = make(weights=None)
        self.net.fc = nn.Identity()
        if weights is not None:
            self._load(weights)
        layers = [self.net.layer1, self.net.layer2, self.net.layer3, self.net.layer4]
        self.sites = {"stem": 64, **{f"layer{i + 1}": 64 * 2**i * expansion for i in range(4)}}
        self._site_modules = {"stem": self.net.maxpool, **{f"layer{i + 1}": m for i, m in enumerate(layers)}}
        self.feature_dim = 512 * expansion
        self.min_size = 32

    def _size_rule(self) -> str:
        return "the network downsamples 32-fold"

    def _load(self, weights: str | os.PathLike) -> None:
        path = Path(weights)
        if not path.is_file():
            enum = f"torchvision.models.{_RESNETS[self.name][2]}_Weights.IMAGENET1K_V1"
            raise FileNotFoundError(
                f"weights={str(weights)!r} is not a file. This library never downloads weights; to use "
                f"ImageNet weights, run on a machine with internet access: `import torch, torchvision; "
                f"torch.save({enum}.get_state_dict(progress=True), '{self.name}_imagenet.pt')`, copy the "
                f"file here and pass its path (or weights=None for a randomly initialised network)"
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict):
            raise ValueError(
                f"weights={str(weights)!r} does not hold a state_dict (got {type(state).__name__})"
            )
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        try:
            self.net.load_state_dict(state)
        except RuntimeError as error:
            raise ValueError(f"weights={str(weights)!r} is not a {self.name} state_dict: {error}") from error

    def stages(self) -> list[tuple[str, Callable[[torch.Tensor], torch.Tensor]]]:
        net = self.net
        stem = lambda x: net.maxpool(net.relu(net.bn1(net.conv1(x))))  # noqa: E731 - output = site "stem"
        return [("stem", stem), *((f"layer{i}", getattr(net, f"layer{i}")) for i in range(1, 5))]


_BUILDERS = {
    "convnet": lambda **kw: ConvNet(**{"widths": (16, 32, 64), **kw}),
    "convnet_wide": lambda **kw: ConvNet(**{"widths": (64, 128, 256), **kw}),
    "convnet_deep": lambda **kw: ConvNet(**{"widths": (16, 32, 64, 128, 128), **kw}),
    "resnet_small": lambda **kw: SmallResNet(**kw),
    "resnet_tiny": lambda **kw: SmallResNet(**{"widths": (8, 16, 32), **kw}),
    "resnet18": lambda **kw: TorchvisionResNet("resnet18", **kw),
    "resnet50": lambda **kw: TorchvisionResNet("resnet50", **kw),
}
BACKBONES = tuple(_BUILDERS)


def build_backbone(name: str, **kwargs) -> Backbone:
    """Build a backbone by name (see :data:`BACKBONES`); ``kwargs`` go to its constructor.

    ``convnet``: widths (16, 32, 64); ``convnet_wide``: (64, 128, 256); ``convnet_deep``:
    (16, 32, 64, 128, 128); ``resnet_small``: :class:`SmallResNet`; ``resnet_tiny``: a
    :class:`SmallResNet` of widths (8, 16, 32) (a quarter of the compute, for CPU studies);
    ``resnet18``/``resnet50``: :class:`TorchvisionResNet` (pass ``weights=path`` for a local ImageNet
    state_dict).
    """
    if name not in _BUILDERS:
        raise ValueError(f"backbone={name!r} is unknown; allowed: {', '.join(BACKBONES)}")
    return _BUILDERS[name](**kwargs)


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of parameters of ``module`` (only those with ``requires_grad`` if ``trainable_only``)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
