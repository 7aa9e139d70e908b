"""Generated data sets: shapes, determinism, balance, and that every label is visible in every image.

Visibility is tested causally: render the same latents (same positions, textures and pixel
noise) with one attribute flipped, and require that every image changes. Many attributes are
deliberately not linearly decodable from pixels (their sign depends on other attributes), so a
linear probe is only asked to read the global ones.
"""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch
import torch.nn.functional as F

from neuromod_lib.data import (
    ATTRIBUTES,
    HIERARCHY_FEATURES,
    AttributeSet,
    HierarchySet,
    check_attributes,
    hierarchy_feature,
    make_attributes,
    make_hierarchy,
    render_attributes,
    render_hierarchy,
    sample_attribute_latents,
    sample_hierarchy_latents,
)

CHANGED = 12  # a pixel "changed" when some channel moved by more than this (of 255)


@pytest.fixture(scope="module")
def attrs() -> AttributeSet:
    return make_attributes(2000, seed=3)


@pytest.fixture(scope="module")
def hier() -> HierarchySet:
    return make_hierarchy(2000, seed=4)


def changed_pixels(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per image, how many pixels differ by more than ``CHANGED`` in some channel."""
    return ((a.int() - b.int()).abs().amax(1) > CHANGED).flatten(1).sum(1)


# --------------------------------------------------------------------------- attributes


def test_shapes_dtypes_and_names(attrs):
    assert len(ATTRIBUTES) >= 24 and len(set(ATTRIBUTES)) == len(ATTRIBUTES)
    assert attrs.images.shape == (2000, 3, 32, 32) and attrs.images.dtype == torch.uint8
    assert attrs.labels.shape == (2000, len(ATTRIBUTES)) and attrs.labels.dtype == torch.float32
    assert set(attrs.labels.unique().tolist()) == {0.0, 1.0}
    assert attrs.names == ATTRIBUTES and attrs.source == "generated" and len(attrs) == 2000
    x = attrs.float_images(torch.arange(5))
    assert x.shape == (5, 3, 32, 32) and x.dtype == torch.float32 and x.min() >= 0 and x.max() <= 1
    assert torch.equal(attrs.subset(slice(10, 20)).labels, attrs.labels[10:20])


def test_paper_like_size_draws_the_same_scenes():
    small, large = make_attributes(64, seed=1), make_attributes(64, size=64, seed=1)
    assert large.images.shape == (64, 3, 64, 64) and torch.equal(small.labels, large.labels)
    assert (F.avg_pool2d(large.float_images(), 2) - small.float_images()).abs().mean() < 0.04
    assert repr(large) == "AttributeSet(64 images 3x64x64, 24 attributes, source='generated')"


def test_same_seed_same_images_other_seed_other_images():
    a, b, c = make_attributes(300, seed=1), make_attributes(300, seed=1), make_attributes(300, seed=2)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images) and not torch.equal(a.labels, c.labels)
    small = make_attributes(100, seed=1, chunk=7)  # chunk only bounds memory; a smaller n is a prefix
    assert torch.equal(small.images, a.images[:100]) and torch.equal(small.labels, a.labels[:100])


def test_labels_balanced_and_independent(attrs):
    means = attrs.labels.mean(0)
    assert ((means > 0.3) & (means < 0.7)).all(), dict(zip(ATTRIBUTES, means.tolist(), strict=True))
    corr = torch.corrcoef(attrs.labels.T) - torch.eye(len(ATTRIBUTES))
    assert corr.abs().max() < 0.15


@pytest.mark.parametrize("size, n", [(32, 1000), (64, 200)])
def test_every_attribute_is_visible_in_every_image(size, n):
    latents = sample_attribute_latents(n, size=size, generator=torch.Generator().manual_seed(11))
    base = render_attributes(latents)
    assert torch.equal(base, render_attributes(latents))  # rendering is deterministic
    min_pixels = 4 * (size // 32) ** 2
    for name in ATTRIBUTES:
        flipped = latents.flip(name)
        assert (flipped.bits ^ latents.bits).sum(0).tolist() == [n * (a == name) for a in ATTRIBUTES]
        changed = changed_pixels(base, render_attributes(flipped))
        assert changed.min() >= min_pixels, f"{name}: image {changed.argmin().item()} barely changes"


def test_global_attributes_are_linearly_decodable(attrs):
    x = F.avg_pool2d(attrs.float_images(), 4).flatten(1)
    x = torch.cat([x, torch.ones(len(x), 1)], 1)
    y = attrs.labels * 2 - 1
    w = torch.linalg.solve(x[:1500].T @ x[:1500] + 1e-2 * torch.eye(x.shape[1]), x[:1500].T @ y[:1500])
    correct = ((x[1500:] @ w).sign() == y[1500:]).float().mean(0)
    accuracy = dict(zip(ATTRIBUTES, correct.tolist(), strict=True))
    for name in ("background_dark", "background_warm", "background_gradient", "bottom_band"):
        assert accuracy[name] > 0.95, (name, accuracy[name])
    for name in ("object_red", "object_green", "object_blue"):
        assert accuracy[name] > 0.8, (name, accuracy[name])


def test_select_and_check_attributes(attrs):
    picked = attrs.select(["frame", "object_red"])
    assert picked.names == ("frame", "object_red")
    columns = [ATTRIBUTES.index("frame"), ATTRIBUTES.index("object_red")]
    assert torch.equal(picked.labels, attrs.labels[:, columns])
    assert attrs.select("blurred").labels.shape == (2000, 1)
    assert check_attributes(["object_top"], ATTRIBUTES) == [ATTRIBUTES.index("object_top")]
    with pytest.raises(ValueError, match=r"attributes=\['Smiling'\] unknown; allowed: object_round, "):
        attrs.select(["frame", "Smiling"])
    with pytest.raises(ValueError, match="attributes="):
        check_attributes([], ATTRIBUTES)
    with pytest.raises(ValueError, match=r"attributes=\['frame'\] requested more than once"):
        check_attributes(["frame", "frame"], ATTRIBUTES)
    with pytest.raises(ValueError, match="attributes="):
        sample_attribute_latents(2, generator=torch.Generator()).flip("nope")


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"n": 0}, "n="),
        ({"n": 4, "size": 8}, "size="),
        ({"n": 4, "seed": -1}, "seed="),
        ({"n": 4, "chunk": 0}, "chunk="),
    ],
)
def test_argument_errors_name_the_parameter(kwargs, name):
    n = kwargs.pop("n")
    with pytest.raises(ValueError, match=name):
        make_attributes(n, **kwargs)
    with pytest.raises(ValueError, match=name):
        make_hierarchy(n, **kwargs)


def test_attribute_set_checks_shapes():
    with pytest.raises(ValueError, match="labels must have shape"):
        AttributeSet(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.zeros(2, 3), ("a", "b"))
    with pytest.raises(ValueError, match="images must be uint8"):
        AttributeSet(torch.zeros(2, 3, 8, 8), torch.zeros(2, 2), ("a", "b"))


# --------------------------------------------------------------------------- hierarchy


def test_hierarchy_shapes_labels_and_balance(hier):
    assert hier.images.shape == (2000, 3, 32, 32) and hier.images.dtype == torch.uint8
    assert hier.fine.dtype == torch.long and hier.coarse.dtype == torch.long
    assert len(hier.fine_names) == 100 and len(hier.coarse_names) == 20 and hier.source == "generated"
    assert torch.equal(hier.fine // 5, hier.coarse)
    assert torch.bincount(hier.fine, minlength=100).tolist() == [20] * 100
    assert torch.equal(hier.within_labels(), hier.fine % 5)
    assert hier.members(3) == [15, 16, 17, 18, 19]
    images, within = hier.task(3)
    mine = hier.coarse == 3
    assert torch.equal(images, hier.images[mine]) and torch.equal(within, hier.fine[mine] - 15)
    assert hier.coarse_features == tuple(hierarchy_feature(c) for c in range(20))
    assert sorted(hier.coarse_features) == sorted(HIERARCHY_FEATURES * 4)
    assert hier.fine_names[:2] == ("disk_plain:red", "disk_plain:yellow")
    assert (
        repr(hier)
        == "HierarchySet(2000 images 3x32x32, 20 superclasses, 100 fine classes, source='generated')"
    )
    with pytest.raises(ValueError, match="coarse_id="):
        hier.task(20)


def test_hierarchy_determinism_and_options():
    a, b = make_hierarchy(300, seed=1), make_hierarchy(300, seed=1, chunk=100)
    assert torch.equal(a.images, b.images) and torch.equal(a.fine, b.fine)
    assert not torch.equal(a.images, make_hierarchy(300, seed=2).images)
    small = make_hierarchy(120, seed=0, n_coarse=4, n_fine_per_coarse=3, size=64)
    assert small.images.shape == (120, 3, 64, 64) and len(small.fine_names) == 12
    assert torch.bincount(small.fine, minlength=12).tolist() == [10] * 12
    assert torch.equal(small.within_labels(), small.fine % 3)
    with pytest.raises(ValueError, match="n_coarse="):
        make_hierarchy(10, n_coarse=21)
    with pytest.raises(ValueError, match="n_fine_per_coarse="):
        make_hierarchy(10, n_fine_per_coarse=6)
    for bad in ({"n_coarse": True}, {"n_fine_per_coarse": True}):  # booleans are not counts
        with pytest.raises(ValueError, match=rf"^{next(iter(bad))}=True must be an integer"):
            make_hierarchy(10, **bad)


def test_changing_the_fine_class_changes_every_image():
    coarse = torch.arange(20).repeat_interleave(10)
    images = []
    for k in range(5):
        latents = sample_hierarchy_latents(
            coarse, torch.full_like(coarse, k), generator=torch.Generator().manual_seed(5)
        )
        assert torch.equal(latents.within(), torch.full_like(coarse, k))
        images.append(render_hierarchy(latents))
    for k in range(4):
        changed = changed_pixels(images[k], images[k + 1])
        assert changed.min() >= 2, f"superclass {coarse[changed.argmin()].item()}: fine {k} vs {k + 1}"


def _object_stats(feature: str, level: int) -> dict[str, torch.Tensor]:
    """Render disks on a plain background (superclass 0) with ``feature`` at ``level``, no noise."""
    n = 16
    latents = sample_hierarchy_latents(
        torch.zeros(n, dtype=torch.long),
        torch.zeros(n, dtype=torch.long),
        generator=torch.Generator().manual_seed(2),
    )
    latents = latents.with_level("stripes", 0).with_level("size", 4).noiseless()
    img = render_hierarchy(latents.with_level(feature, level)).float() / 255
    background = img[:, :, :1, :1]  # the top-left corner is always background
    differs = (img - background).abs().amax(1) > 0.08
    body = differs[:, :25]  # rows above the markers
    xs = torch.arange(32).float()
    colour = (img[:, :, :25] * body[:, None]).sum((2, 3)) / body.sum((1, 2))[:, None]
    centre = body.float().sum(1).argmax(1)  # the object's tallest column
    column = img[torch.arange(n), :, :25, centre].mean(1)  # brightness down that column
    inside = body[torch.arange(n), :, centre]
    interior = inside[:, :-3] & inside[:, 3:]  # pairs of pixels (i+1, i+2) well inside the object
    runs = (differs[:, 28, 1:] & ~differs[:, 28, :-1]).sum(1) + differs[:, 28, 0]
    return {
        "area": body.sum((1, 2)).float(),
        "x": (body.float() * xs).sum((1, 2)) / body.sum((1, 2)),
        "colour": colour,
        "transitions": (((column[:, 2:-1] - column[:, 1:-2]).abs() > 0.15) & interior).sum(1).float(),
        "markers": runs,
    }


def test_fine_classes_differ_in_the_intended_feature():
    size = [_object_stats("size", k)["area"].mean() for k in range(5)]
    assert all(a < b for a, b in pairwise(size)), size
    x = [_object_stats("position", k)["x"].mean() for k in range(5)]
    assert all(a + 2 < b for a, b in pairwise(x)), x
    colours = torch.stack([_object_stats("colour", k)["colour"].mean(0) for k in range(5)])
    assert torch.cdist(colours, colours).add(torch.eye(5)).min() > 0.2, colours
    stripes = [_object_stats("stripes", k)["transitions"].mean() for k in range(5)]
    assert stripes[0] == 0 and all(a < b for a, b in pairwise(stripes)), stripes
    for k in range(5):
        assert _object_stats("count", k)["markers"].tolist() == [k + 1] * 16
