"""Procedurally generated images with many binary attributes: offline stand-ins for CelebA and CIFAR-100.

Boeshertz, Haimerl & Savin (2023) adapt one frozen CNN to many binary tasks (the 40 CelebA
attributes) by per-task gains, and compare architectures on the 20 CIFAR-100 superclasses.
Neither data set can be downloaded everywhere, so this module draws images whose labels are
known by construction and whose evidence lives in *different* visual features (shape, size,
position, colour channels, texture, background, thin lines, blur, ...): different tasks then
need different channels of a shared network, which is what makes per-task gains interesting.

Two generators, both fully vectorised over the batch and seeded through explicit
``torch.Generator`` objects (the same arguments always give the identical tensor):

- :func:`make_attributes` -> :class:`AttributeSet`, ``len(ATTRIBUTES)`` independent
  Bernoulli(0.5) attributes per image (the CelebA stand-in);
- :func:`make_hierarchy` -> :class:`HierarchySet`, 20 superclasses x 5 fine classes where
  each superclass varies its fine classes along its own feature (the CIFAR-100 stand-in).

Rendering is split into *latents* (attribute bits, class labels and every nuisance variable,
pixel noise included) and a deterministic ``render`` function, so that a notebook can show
counterfactuals: the same image with one attribute flipped (:meth:`AttributeLatents.flip`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..checks import is_int

__all__ = [
    "ATTRIBUTES",
    "ATTRIBUTE_NUISANCE",
    "HIERARCHY_NUISANCE",
    "HIERARCHY_FEATURES",
    "AttributeLatents",
    "AttributeSet",
    "HierarchyLatents",
    "HierarchySet",
    "check_attributes",
    "hierarchy_feature",
    "make_attributes",
    "make_hierarchy",
    "render_attributes",
    "render_hierarchy",
    "sample_attribute_latents",
    "sample_hierarchy_latents",
]

ATTRIBUTES: tuple[str, ...] = (
    "object_round",  # disk (1) or square of equal area (0)
    "object_large",
    "object_left",  # main object in the left (1) or right (0) half
    "object_top",
    "object_red",  # the three colour channels of the object: 8 colours
    "object_green",
    "object_blue",
    "object_striped",  # horizontal grey stripes across the object
    "object_hollow",  # outline only
    "object_translucent",  # drawn with opacity 0.5: background shows through
    "object_copy",  # a smaller copy in the diagonally opposite quadrant
    "background_dark",
    "background_warm",  # orange (1) or blue (0) tint
    "background_gradient",  # vertical brightness ramp
    "background_noise",  # fine per-pixel texture
    "background_checker",  # coarse checkerboard
    "frame",  # 1-pixel border
    "corner_dot",  # a dot in the top-left corner
    "horizontal_line",
    "vertical_line",
    "diagonal_line",
    "scattered_dots",  # four small dots in a free quadrant
    "bottom_band",  # a green band along the bottom edge
    "blurred",  # Gaussian blur of the whole image
)

# Nuisance variables of one attribute image, uniform in [0, 1); columns of AttributeLatents.nuisance.
ATTRIBUTE_NUISANCE: tuple[str, ...] = (
    "object_x", "object_y", "object_radius", "copy_x", "copy_y", "stripe_phase",
    "checker_x", "checker_y", "hline", "vline", "dline",
    "dot0_x", "dot0_y", "dot1_x", "dot1_y", "dot2_x", "dot2_y", "dot3_x", "dot3_y",
)  # fmt: skip

HIERARCHY_FEATURES: tuple[str, ...] = ("colour", "size", "position", "stripes", "count")
_LEVEL_NAMES: dict[str, tuple[str, ...]] = {
    "colour": ("red", "yellow", "green", "blue", "magenta"),
    "size": ("tiny", "small", "medium", "large", "huge"),
    "position": ("far_left", "left", "centre", "right", "far_right"),
    "stripes": ("plain", "wide_stripes", "medium_stripes", "narrow_stripes", "fine_stripes"),
    "count": ("1_marker", "2_markers", "3_markers", "4_markers", "5_markers"),
}
_SHAPES: tuple[str, ...] = ("disk", "square", "triangle", "cross")
_STYLES: tuple[str, ...] = ("plain", "gradient", "checker", "diagonal", "noise")
HIERARCHY_NUISANCE: tuple[str, ...] = (
    "background_level", "object_x", "object_y", "stripe_phase", "checker_x", "checker_y", "diagonal_phase",
)  # fmt: skip

_BLOCK = 256  # latents are drawn in blocks of this many images, each block with its own generator
_PASS_PIXELS = 128 * 32 * 32  # rendering passes of this many pixels per channel run fastest on the CPU
_NOISE_STD = 0.02  # mild Gaussian pixel noise added to every image
_SQUARE = math.sqrt(math.pi) / 2  # half-width of a square with the area of a unit disk
_TEXTURE = 16  # the fine background texture is drawn on a 16x16 grid at every image size


# --------------------------------------------------------------------------- data containers


def check_attributes(requested: str | Sequence[str], available: Sequence[str]) -> list[int]:
    """Column indices of the ``requested`` attribute names within ``available``.

    A single string is one name. Unknown or repeated names raise ``ValueError`` naming the
    parameter ``attributes``, the bad names and the allowed names.
    """
    names = [requested] if isinstance(requested, str) else list(requested)
    if not names:
        raise ValueError("attributes=[] must name at least one attribute")
    index = {name: i for i, name in enumerate(available)}
    unknown = [name for name in names if name not in index]
    if unknown:
        raise ValueError(f"attributes={unknown!r} unknown; allowed: {', '.join(available)}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"attributes={repeated!r} requested more than once")
    return [index[name] for name in names]


@dataclass
class AttributeSet:
    """Images with binary attribute labels: ``images`` uint8 (N, 3, H, W), ``labels`` float (N, A).

    ``names[a]`` is the name of label column ``a``; ``source`` says where the images come
    from (``"generated"`` or ``"celeba"``).
    """

    images: Tensor
    labels: Tensor
    names: tuple[str, ...]
    source: str = "generated"

    def __post_init__(self) -> None:
        self.names = tuple(self.names)
        if self.images.dim() != 4 or self.images.shape[1] != 3 or self.images.dtype != torch.uint8:
            raise ValueError(
                f"images must be uint8 (N, 3, H, W); got {self.images.dtype} {tuple(self.images.shape)}"
            )
        if self.labels.shape != (len(self.images), len(self.names)):
            raise ValueError(
                f"labels must have shape (N, A) = {(len(self.images), len(self.names))}; "
                f"got {tuple(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        shape = "x".join(map(str, self.images.shape[1:]))
        labels = f"{len(self.names)} attribute{'' if len(self.names) == 1 else 's'}"
        return f"AttributeSet({len(self)} images {shape}, {labels}, source={self.source!r})"

    def select(self, names: str | Sequence[str]) -> AttributeSet:
        """The same images with only the label columns ``names`` (in that order)."""
        cols = check_attributes(names, self.names)
        return replace(self, labels=self.labels[:, cols], names=tuple(self.names[c] for c in cols))

    def subset(self, idx: Tensor | slice | Sequence[int]) -> AttributeSet:
        """The images (and labels) at ``idx``: e.g. a train/test split."""
        return replace(self, images=self.images[idx], labels=self.labels[idx])

    def float_images(self, idx: Tensor | slice | Sequence[int] | None = None) -> Tensor:
        """Images (all, or those at ``idx``) as float32 in [0, 1], ready for a network."""
        images = self.images if idx is None else self.images[idx]
        return images.float().div_(255)


@dataclass
class HierarchySet:
    """Images with a two-level label: ``fine`` class (0..F-1) within a ``coarse`` superclass (0..C-1).

    ``fine_to_coarse[f]`` is the superclass of fine class ``f`` (derived from the labels
    when not given); ``coarse_features[c]`` names the feature along which the fine classes
    of superclass ``c`` differ (empty for real data, where it is not known).
    """

    images: Tensor
    fine: Tensor
    coarse: Tensor
    fine_names: tuple[str, ...]
    coarse_names: tuple[str, ...]
    source: str = "generated"
    fine_to_coarse: Tensor | None = None
    coarse_features: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        self.fine_names, self.coarse_names = tuple(self.fine_names), tuple(self.coarse_names)
        self.coarse_features = tuple(self.coarse_features)
        n = len(self.images)
        if self.images.dim() != 4 or self.images.shape[1] != 3 or self.images.dtype != torch.uint8:
            raise ValueError(
                f"images must be uint8 (N, 3, H, W); got {self.images.dtype} {tuple(self.images.shape)}"
            )
        if self.fine.shape != (n,) or self.coarse.shape != (n,):
            raise ValueError(f"fine and coarse must have shape ({n},)")
        if self.fine_to_coarse is None:
            mapping = torch.full((len(self.fine_names),), -1, dtype=torch.long)
            mapping[self.fine] = self.coarse
            self.fine_to_coarse = mapping

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        shape = "x".join(map(str, self.images.shape[1:]))
        return (
            f"HierarchySet({len(self)} images {shape}, {len(self.coarse_names)} superclasses, "
            f"{len(self.fine_names)} fine classes, source={self.source!r})"
        )

    def members(self, coarse_id: int) -> list[int]:
        """The fine classes of superclass ``coarse_id``, in increasing order."""
        self._check_coarse(coarse_id)
        return torch.nonzero(self.fine_to_coarse == coarse_id).flatten().tolist()

    def within_labels(self) -> Tensor:
        """Index (0, 1, ...) of each image's fine class among the fine classes of its superclass."""
        mapping = self.fine_to_coarse
        ids = torch.arange(len(mapping))
        earlier_same = (mapping[:, None] == mapping[None, :]) & (ids[None, :] < ids[:, None])
        return earlier_same.sum(1)[self.fine]

    def task(self, coarse_id: int) -> tuple[Tensor, Tensor]:
        """The images of superclass ``coarse_id`` and their fine index within it (0..4)."""
        self._check_coarse(coarse_id)
        keep = self.coarse == coarse_id
        return self.images[keep], self.within_labels()[keep]

    def subset(self, idx: Tensor | slice | Sequence[int]) -> HierarchySet:
        """The images (and labels) at ``idx``."""
        return replace(self, images=self.images[idx], fine=self.fine[idx], coarse=self.coarse[idx])

    def float_images(self, idx: Tensor | slice | Sequence[int] | None = None) -> Tensor:
        """Images (all, or those at ``idx``) as float32 in [0, 1]."""
        images = self.images if idx is None else self.images[idx]
        return images.float().div_(255)

    def _check_coarse(self, coarse_id: int) -> None:
        if not 0 <= coarse_id < len(self.coarse_names):
            raise ValueError(f"coarse_id={coarse_id!r} must be in 0..{len(self.coarse_names) - 1}")


# --------------------------------------------------------------------------- shared helpers


def _generator(seed: int, *keys: int) -> torch.Generator:
    """An independent generator for each (seed, stream, block): blocks never share random numbers."""
    state = np.random.SeedSequence([seed, *keys]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed((int(state[0]) << 31) ^ int(state[1]))


def _check_common(n: int, size: int, seed: int, chunk: int) -> None:
    for name, value, low in (("n", n, 1), ("size", size, 16), ("seed", seed, 0), ("chunk", chunk, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name}={value!r} must be an integer >= {low}")


def _grid(size: int) -> tuple[Tensor, Tensor]:
    """Pixel-centre coordinates, in pixels: x of shape (1, 1, 1, W) and y of shape (1, 1, H, 1)."""
    c = torch.arange(size, dtype=torch.float32) + 0.5
    return c.view(1, 1, 1, size), c.view(1, 1, size, 1)


def _col(values: Tensor) -> Tensor:
    """Per-image values (N,) as (N, 1, 1, 1), to broadcast against images."""
    return values.reshape(-1, 1, 1, 1)


def _cover(distance: Tensor) -> Tensor:
    """Anti-aliased coverage (0..1) from a signed distance in pixels (negative inside)."""
    return (0.5 - distance).clamp_(0.0, 1.0)


def _paint(img: Tensor, alpha: Tensor, colour: Tensor | float) -> None:
    """Alpha-composite ``colour`` (broadcastable to ``img``) onto ``img`` in place."""
    img.add_(alpha * (colour - img))


def _disk_distance(x: Tensor, y: Tensor, cx: Tensor, cy: Tensor, r: Tensor) -> Tensor:
    return torch.sqrt((x - cx).square() + (y - cy).square()) - r


def _blur(img: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of (N, 3, H, W) square images, edges replicated.

    Written as two small matrix products (``B @ img @ B.T``) rather than a convolution: with
    one input channel per image, matrix multiplication is several times faster on the CPU.
    """
    size = img.shape[-1]
    radius = max(1, math.ceil(2 * sigma))
    taps = torch.arange(-radius, radius + 1)
    kernel = torch.exp(-0.5 * (taps.float() / sigma) ** 2)
    rows = torch.arange(size).repeat_interleave(len(taps))
    cols = (rows + taps.repeat(size)).clamp(0, size - 1)
    blur = torch.zeros(size, size).index_put_((rows, cols), kernel.repeat(size), accumulate=True)
    blur = blur / blur.sum(1, keepdim=True)
    return blur @ img @ blur.T


def _upsample(texture: Tensor, size: int) -> Tensor:
    """A (N, 1, 16, 16) texture blown up (nearest neighbour) to (N, 1, size, size)."""
    return F.interpolate(texture, size=(size, size), mode="nearest")


def _to_uint8(img: Tensor) -> Tensor:
    return img.clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)


def _checker(x: Tensor, y: Tensor, phase_x: Tensor, phase_y: Tensor, cell: float) -> Tensor:
    """+-1 checkerboard with square cells of ``cell`` pixels, shifted by per-image phases (N,)."""
    fx = torch.floor((x + _col(phase_x)) / cell)
    fy = torch.floor((y + _col(phase_y)) / cell)
    return torch.remainder(fx + fy, 2.0) * 2.0 - 1.0


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch on one thread inside the block, then restore the previous setting.

    Rendering is many small element-wise operations: intra-op threads gain nothing there,
    and on a machine whose cores are busy they lose a lot (measured: 100x slower on 2 busy
    cores). ``torch.set_num_threads`` is process-wide, so this is only for the generators.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _rows(latents, rows: slice):
    """The latents (any latents dataclass) of the images in ``rows``."""
    return replace(latents, **{f.name: getattr(latents, f.name)[rows] for f in fields(latents)})


def _pass_size(size: int, chunk: int) -> int:
    """Images rendered at once: at most ``chunk``, and about 128k pixels (fastest in CPU caches)."""
    return max(1, min(chunk, _BLOCK, _PASS_PIXELS // (size * size)))


def _render_in_passes(latents, render) -> Tensor:
    """``render`` the latents in cache-sized passes on one thread; concatenate the images."""
    size = latents.size
    step = _pass_size(size, _BLOCK)
    out = torch.empty(len(latents), 3, size, size, dtype=torch.uint8)
    with _one_thread():
        for i in range(0, len(latents), step):
            out[i : i + step] = render(_rows(latents, slice(i, i + step)))
    return out


# --------------------------------------------------------------------------- attribute images


@dataclass
class AttributeLatents:
    """Everything that determines a batch of attribute images; :func:`render_attributes` draws them.

    ``bits`` (N, A) bool, columns in ``ATTRIBUTES`` order; ``nuisance`` (N, K) uniform in
    [0, 1), columns in ``ATTRIBUTE_NUISANCE`` order (positions, phases, ...);
    ``texture`` (N, 1, 16, 16) uniform in [-1, 1] (the fine background texture, one value per
    2x2 pixels at 32x32, so that it survives the blur); ``noise``
    (N, 3, H, W) standard normal (pixel noise).
    """

    bits: Tensor
    nuisance: Tensor
    texture: Tensor
    noise: Tensor

    def __len__(self) -> int:
        return len(self.bits)

    @property
    def size(self) -> int:
        return self.noise.shape[-1]

    def flip(self, name: str) -> AttributeLatents:
        """A copy with attribute ``name`` flipped in every image, all else unchanged."""
        (col,) = check_attributes(name, ATTRIBUTES)
        bits = self.bits.clone()
        bits[:, col] = ~bits[:, col]
        return replace(self, bits=bits)

    def noiseless(self) -> AttributeLatents:
        """A copy without pixel noise (to look at, or to measure what an attribute changes)."""
        return replace(self, noise=torch.zeros_like(self.noise))


def sample_attribute_latents(n: int, *, size: int = 32, generator: torch.Generator) -> AttributeLatents:
    """Draw ``n`` images' latents: every attribute independently Bernoulli(0.5), nuisances uniform."""
    g = generator
    return AttributeLatents(
        bits=torch.rand(n, len(ATTRIBUTES), generator=g) < 0.5,
        nuisance=torch.rand(n, len(ATTRIBUTE_NUISANCE), generator=g),
        texture=torch.rand(n, 1, _TEXTURE, _TEXTURE, generator=g).mul_(2).sub_(1),
        noise=torch.randn(n, 3, size, size, generator=g),
    )


def render_attributes(latents: AttributeLatents) -> Tensor:
    """Draw the images (N, 3, H, W) uint8 that ``latents`` describe; deterministic.

    Layers, back to front: tinted background (+ gradient, checkerboard, fine texture), bottom
    band, lines and scattered dots, the copy, the object, frame and corner dot; then blur,
    pixel noise and quantisation. Geometry scales with the image size (designed at 32x32);
    the object keeps clear of the frame, corner dot and scattered dots, and its colour always
    contrasts with both background tints, so every attribute is visible in every image.
    """
    return _render_in_passes(latents, _render_attributes)


def _render_attributes(latents: AttributeLatents) -> Tensor:
    """One rendering pass of :func:`render_attributes`."""
    size = latents.size
    x, y = _grid(size)
    s = size / 32.0
    bit = {name: _col(latents.bits[:, i]) for i, name in enumerate(ATTRIBUTES)}
    nu = {name: latents.nuisance[:, i] for i, name in enumerate(ATTRIBUTE_NUISANCE)}

    img = _background(latents, bit, nu, x, y, size)
    ink = torch.where(bit["background_dark"], 0.95, 0.05)  # lines and dots contrast with the background
    band = torch.tensor([0.1, 0.85, 0.1]).view(1, 3, 1, 1)
    _paint(img, (y - 0.9 * size + 0.5).clamp(0.0, 1.0) * bit["bottom_band"], band)

    half = 0.6 * s
    hline = _cover((y - _col(0.2 + 0.6 * nu["hline"]) * size).abs() - half) * bit["horizontal_line"]
    vline = _cover((x - _col(0.2 + 0.6 * nu["vline"]) * size).abs() - half) * bit["vertical_line"]
    offset = _col(nu["dline"] - 0.5) * 0.6 * size
    dline = _cover((x - y - offset).abs() / math.sqrt(2) - half) * bit["diagonal_line"]
    _paint(img, torch.maximum(torch.maximum(hline, vline), dline), ink)
    _paint(img, _scattered_dots(bit, nu, x, y, size) * bit["scattered_dots"], ink)

    left, top = bit["object_left"], bit["object_top"]
    radius = torch.where(bit["object_large"], 0.19, 0.12) + 0.03 * _col(nu["object_radius"])
    cx = torch.where(left, 0.35, 0.65) + 0.05 * (_col(nu["object_x"]) - 0.5)
    cy = torch.where(top, 0.35, 0.65) + 0.05 * (_col(nu["object_y"]) - 0.5)
    copy_x = torch.where(left, 0.65, 0.35) + 0.05 * (_col(nu["copy_x"]) - 0.5)
    copy_y = torch.where(top, 0.65, 0.35) + 0.05 * (_col(nu["copy_y"]) - 0.5)
    _draw_object(img, bit, nu, x, y, copy_x * size, copy_y * size, 0.55 * radius * size, bit["object_copy"])
    _draw_object(img, bit, nu, x, y, cx * size, cy * size, radius * size, None)

    frame = (torch.minimum(torch.minimum(x, size - x), torch.minimum(y, size - y)) < s).float()
    _paint(img, frame * bit["frame"], ink)
    corner = _cover(_disk_distance(x, y, 0.08 * size, 0.08 * size, 0.04 * size)) * bit["corner_dot"]
    _paint(img, corner, ink)

    blurred = torch.nonzero(latents.bits[:, ATTRIBUTES.index("blurred")]).flatten()
    if len(blurred):
        img[blurred] = _blur(img[blurred], sigma=0.8 * s)
    img.add_(latents.noise, alpha=_NOISE_STD)
    return _to_uint8(img)


def _background(latents: AttributeLatents, bit: dict, nu: dict, x: Tensor, y: Tensor, size: int) -> Tensor:
    """Tinted background (N, 3, H, W): warm or cool, dark or light, with optional textures.

    The tints keep one channel at 0.05 (+0.5 when light) and another 0.4 higher, so that every
    object colour (channels 0.05 or 0.95) differs from the background by >= 0.4 somewhere.
    """
    warm = torch.tensor([0.45, 0.25, 0.05]).view(1, 3, 1, 1)
    base = torch.where(bit["background_warm"], warm, warm.flip(1)) + torch.where(
        bit["background_dark"], 0.0, 0.5
    )
    shade = 0.3 * (y / size - 0.5) * bit["background_gradient"]
    checker = _checker(x, y, nu["checker_x"] * 0.5 * size, nu["checker_y"] * 0.5 * size, 0.25 * size)
    texture = 0.15 * _upsample(latents.texture, size) * bit["background_noise"]
    shade = shade + 0.07 * checker * bit["background_checker"] + texture
    return base + shade


def _scattered_dots(bit: dict, nu: dict, x: Tensor, y: Tensor, size: int) -> Tensor:
    """Coverage (N, 1, H, W) of four small dots in the quadrant beside the object (never under it)."""
    x0 = torch.where(bit["object_left"], 0.63, 0.15).flatten()
    y0 = torch.where(bit["object_top"], 0.15, 0.6).flatten()
    dots = None
    for k in range(4):
        dx = _col(x0 + 0.22 * nu[f"dot{k}_x"]) * size
        dy = _col(y0 + 0.25 * nu[f"dot{k}_y"]) * size
        d = _disk_distance(x, y, dx, dy, 0.035 * size)
        dots = d if dots is None else torch.minimum(dots, d)
    return _cover(dots)


def _draw_object(
    img: Tensor,
    bit: dict,
    nu: dict,
    x: Tensor,
    y: Tensor,
    cx: Tensor,
    cy: Tensor,
    r: Tensor,
    present: Tensor | None,
) -> None:
    """Paint the object (disk or square; filled or hollow; plain or striped) centred at (cx, cy), radius r."""
    size = img.shape[-1]
    dx, dy = x - cx, y - cy
    d = torch.where(
        bit["object_round"],
        torch.sqrt(dx.square() + dy.square()) - r,
        torch.maximum(dx.abs(), dy.abs()) - r,  # half-width r: corners stick out, clearly not a disk
    )
    d = torch.where(bit["object_hollow"], torch.maximum(d, -d - 0.06 * size), d)
    alpha = _cover(d) * torch.where(bit["object_translucent"], 0.55, 1.0)
    if present is not None:
        alpha = alpha * present
    colour = torch.cat([bit["object_red"], bit["object_green"], bit["object_blue"]], dim=1) * 0.9 + 0.05
    stripes = torch.sin(2 * math.pi * (y / (0.125 * size) + _col(nu["stripe_phase"]))) > 0
    fill = torch.where(stripes & bit["object_striped"], 0.5, colour)
    _paint(img, alpha, fill)


def make_attributes(n: int, *, size: int = 32, seed: int = 0, chunk: int = 2048) -> AttributeSet:
    """``n`` generated images (``size`` x ``size``) with the binary labels ``ATTRIBUTES``.

    Latents are drawn in blocks of 256 images, block ``b`` from its own generator seeded by
    ``(seed, b)``: the result depends on ``n``, ``seed`` and ``size`` only (``chunk`` just
    caps how many images are rendered at once), a smaller ``n`` gives a prefix of a larger
    one, and the same seed at another ``size`` draws the same scenes at another resolution.
    """
    _check_common(n, size, seed, chunk)
    step = _pass_size(size, chunk)
    images = torch.empty(n, 3, size, size, dtype=torch.uint8)
    labels = torch.empty(n, len(ATTRIBUTES), dtype=torch.float32)
    with _one_thread():
        _fill_attributes(images, labels, seed, step)
    return AttributeSet(images, labels, ATTRIBUTES, "generated")


def _fill_attributes(images: Tensor, labels: Tensor, seed: int, step: int) -> None:
    """Render ``len(images)`` attribute images block by block, writing images and labels in place."""
    n, size = len(images), images.shape[-1]
    for start in range(0, n, _BLOCK):
        latents = sample_attribute_latents(_BLOCK, size=size, generator=_generator(seed, 0, start // _BLOCK))
        m = min(_BLOCK, n - start)
        labels[start : start + m] = latents.bits[:m].float()
        for i in range(0, m, step):
            j = min(i + step, m)
            images[start + i : start + j] = _render_attributes(_rows(latents, slice(i, j)))


# --------------------------------------------------------------------------- two-level hierarchy


def hierarchy_feature(coarse_id: int) -> str:
    """The feature along which the fine classes of generated superclass ``coarse_id`` differ.

    Superclass ``c`` is the shape ``c // 5`` on the background style ``c % 5``; its feature
    is ``(c % 5 + c // 5) % 5``, so each shape and each style meet several features.
    """
    if not 0 <= coarse_id < len(_SHAPES) * len(_STYLES):
        raise ValueError(f"coarse_id={coarse_id!r} must be in 0..{len(_SHAPES) * len(_STYLES) - 1}")
    return HIERARCHY_FEATURES[(coarse_id % 5 + coarse_id // 5) % 5]


def _feature_columns(coarse: Tensor) -> Tensor:
    """(N, 1) column of ``HierarchyLatents.levels`` that holds each image's fine index."""
    columns = torch.tensor([HIERARCHY_FEATURES.index(hierarchy_feature(c)) for c in range(20)])
    return columns[coarse].unsqueeze(1)


@dataclass
class HierarchyLatents:
    """Everything that determines a batch of hierarchy images; :func:`render_hierarchy` draws them.

    ``coarse`` (N,) superclass; ``levels`` (N, 5) long in 0..4, the level of each of
    ``HIERARCHY_FEATURES`` (the superclass's own feature holds the fine index, the others are
    nuisance); ``nuisance`` (N, K) uniform in [0, 1) (``HIERARCHY_NUISANCE``); ``texture``
    (N, 1, 16, 16) in [-1, 1]; ``noise`` (N, 3, H, W) standard normal.
    """

    coarse: Tensor
    levels: Tensor
    nuisance: Tensor
    texture: Tensor
    noise: Tensor

    def __len__(self) -> int:
        return len(self.coarse)

    @property
    def size(self) -> int:
        return self.noise.shape[-1]

    def within(self) -> Tensor:
        """The fine index within the superclass: the level of each image's superclass feature."""
        return self.levels.gather(1, _feature_columns(self.coarse)).squeeze(1)

    def with_level(self, feature: str, level: int) -> HierarchyLatents:
        """A copy with ``feature`` set to ``level`` in every image, all else unchanged."""
        if feature not in HIERARCHY_FEATURES:
            raise ValueError(f"feature={feature!r} unknown; allowed: {', '.join(HIERARCHY_FEATURES)}")
        levels = self.levels.clone()
        levels[:, HIERARCHY_FEATURES.index(feature)] = level
        return replace(self, levels=levels)

    def noiseless(self) -> HierarchyLatents:
        """A copy without pixel noise."""
        return replace(self, noise=torch.zeros_like(self.noise))


def sample_hierarchy_latents(
    coarse: Tensor, within: Tensor, *, size: int = 32, generator: torch.Generator
) -> HierarchyLatents:
    """Latents for images of superclasses ``coarse`` with fine index ``within``; the rest drawn at random."""
    n, g = len(coarse), generator
    levels = torch.randint(0, 5, (n, 5), generator=g)
    latents = HierarchyLatents(
        coarse=coarse.long(),
        levels=levels,
        nuisance=torch.rand(n, len(HIERARCHY_NUISANCE), generator=g),
        texture=torch.rand(n, 1, _TEXTURE, _TEXTURE, generator=g).mul_(2).sub_(1),
        noise=torch.randn(n, 3, size, size, generator=g),
    )
    levels.scatter_(1, _feature_columns(latents.coarse), within.long().unsqueeze(1))
    return latents


def render_hierarchy(latents: HierarchyLatents) -> Tensor:
    """Draw the images (N, 3, H, W) uint8 that ``latents`` describe; deterministic.

    A grey background in the superclass's style, one object of the superclass's shape whose
    colour, size, horizontal position and stripe frequency are set by ``levels``, and a row
    of 1-5 white markers at the bottom (the ``count`` feature).
    """
    return _render_in_passes(latents, _render_hierarchy)


def _render_hierarchy(latents: HierarchyLatents) -> Tensor:
    """One rendering pass of :func:`render_hierarchy`."""
    size = latents.size
    x, y = _grid(size)
    nu = {name: latents.nuisance[:, i] for i, name in enumerate(HIERARCHY_NUISANCE)}
    level = {name: latents.levels[:, i] for i, name in enumerate(HIERARCHY_FEATURES)}
    style, shape = _col(latents.coarse % 5), _col(latents.coarse // 5)

    shade = 0.3 * (y / size - 0.5) * (style == 1)
    checker = _checker(x, y, nu["checker_x"] * 0.5 * size, nu["checker_y"] * 0.5 * size, 0.25 * size)
    shade = shade + 0.08 * checker * (style == 2)
    diagonal = torch.sin(2 * math.pi * ((x + y) / (0.2 * size) + _col(nu["diagonal_phase"]))).sign()
    shade = shade + 0.08 * diagonal * (style == 3) + 0.12 * _upsample(latents.texture, size) * (style == 4)
    img = (_col(0.2 + 0.2 * nu["background_level"]) + shade).expand(-1, 3, -1, -1).contiguous()

    cx = _col(0.3 + 0.1 * level["position"] + 0.03 * (nu["object_x"] - 0.5)) * size
    cy = _col(0.42 + 0.06 * (nu["object_y"] - 0.5)) * size
    r = _col(0.12 + 0.03 * level["size"]) * size
    d = _shape_distance(shape, x - cx, y - cy, r)
    palette = torch.tensor(
        [[0.9, 0.15, 0.1], [0.95, 0.8, 0.1], [0.15, 0.8, 0.2], [0.15, 0.35, 0.95], [0.85, 0.2, 0.85]]
    )
    colour = palette[level["colour"]].view(-1, 3, 1, 1)
    period = _col(size / (2.0 + 2.0 * level["stripes"]))
    stripes = (torch.sin(2 * math.pi * (y / period + _col(nu["stripe_phase"]))) > 0) & _col(
        level["stripes"] > 0
    )
    _paint(img, _cover(d), torch.where(stripes, colour + 0.6 * (1.0 - colour), colour))

    count = _col(level["count"] + 1)
    markers = None
    for k in range(5):
        mx = (0.5 + 0.14 * (k - (count - 1) / 2)) * size
        dk = _disk_distance(x, y, mx, 0.87 * size, 0.035 * size).masked_fill(count <= k, float("inf"))
        markers = dk if markers is None else torch.minimum(markers, dk)
    _paint(img, _cover(markers), 0.95)
    img.add_(latents.noise, alpha=_NOISE_STD)
    return _to_uint8(img)


def _shape_distance(shape: Tensor, dx: Tensor, dy: Tensor, r: Tensor) -> Tensor:
    """Signed distance (approximate outside convex corners) to a disk, square, triangle or cross."""
    ax, ay = dx.abs(), dy.abs()
    disk = torch.sqrt(dx.square() + dy.square()) - r
    square = torch.maximum(ax, ay) - _SQUARE * r
    # Upward equilateral triangle inscribed in a circle of radius 1.3 r: three half-planes.
    h = 0.65 * r
    slant = (ax * math.sqrt(3) - dy) / 2
    triangle = torch.maximum(dy - h, slant - h)
    arm_long, arm_half = 1.0 * r, 0.4 * r
    cross = torch.minimum(
        torch.maximum(ax - arm_long, ay - arm_half), torch.maximum(ax - arm_half, ay - arm_long)
    )
    return torch.where(
        shape == 0, disk, torch.where(shape == 1, square, torch.where(shape == 2, triangle, cross))
    )


def make_hierarchy(
    n: int,
    *,
    size: int = 32,
    seed: int = 0,
    n_coarse: int = 20,
    n_fine_per_coarse: int = 5,
    chunk: int = 2048,
) -> HierarchySet:
    """``n`` generated images in ``n_coarse`` superclasses x ``n_fine_per_coarse`` fine classes.

    Superclass ``c`` (shape x background style, see :func:`hierarchy_feature`) is told apart
    by its identity; its fine classes differ along one feature only (``coarse_features[c]``),
    all other features being random nuisance. Fine class ``f = c * n_fine_per_coarse + k``
    (so ``fine // n_fine_per_coarse == coarse``); classes are balanced to within one image.
    The labels are a seeded shuffle of the whole set; the other latents come in seeded blocks
    of 256 images as in :func:`make_attributes` (``chunk`` does not change the result).
    """
    _check_common(n, size, seed, chunk)
    max_coarse = len(_SHAPES) * len(_STYLES)
    if not is_int(n_coarse) or not 1 <= n_coarse <= max_coarse:
        raise ValueError(f"n_coarse={n_coarse!r} must be an integer in 1..{max_coarse}")
    if not is_int(n_fine_per_coarse) or not 2 <= n_fine_per_coarse <= 5:
        raise ValueError(f"n_fine_per_coarse={n_fine_per_coarse!r} must be an integer in 2..5")
    n_fine = n_coarse * n_fine_per_coarse
    fine = (torch.arange(n) % n_fine)[torch.randperm(n, generator=_generator(seed, 1))]
    coarse, within = fine // n_fine_per_coarse, fine % n_fine_per_coarse

    images = torch.empty(n, 3, size, size, dtype=torch.uint8)
    step = _pass_size(size, chunk)
    with _one_thread():
        for start in range(0, n, _BLOCK):
            block = slice(start, min(start + _BLOCK, n))
            g = _generator(seed, 2, start // _BLOCK)
            latents = sample_hierarchy_latents(coarse[block], within[block], size=size, generator=g)
            for i in range(0, len(latents), step):
                j = min(i + step, len(latents))
                images[start + i : start + j] = _render_hierarchy(_rows(latents, slice(i, j)))

    coarse_names = tuple(f"{_SHAPES[c // 5]}_{_STYLES[c % 5]}" for c in range(n_coarse))
    features = tuple(hierarchy_feature(c) for c in range(n_coarse))
    fine_names = tuple(
        f"{coarse_names[c]}:{_LEVEL_NAMES[features[c]][k]}"
        for c in range(n_coarse)
        for k in range(n_fine_per_coarse)
    )
    return HierarchySet(
        images=images,
        fine=fine,
        coarse=coarse,
        fine_names=fine_names,
        coarse_names=coarse_names,
        source="generated",
        fine_to_coarse=torch.arange(n_fine) // n_fine_per_coarse,
        coarse_features=features,
    )
