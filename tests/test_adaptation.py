"""The adaptation protocol (:mod:`neuromod_lib.adaptation`) on a tiny frozen ConvNet.

What could go wrong and is checked here: a condition that crashes, returns errors of the
wrong shape or range, or changes / leaves hooks on the shared backbone; no learning at all;
runs that are not reproducible; contexts that leak into each other; a cache that is not
exact; parameter counts that do not match the condition; and arguments that are accepted
although they cannot work, or refused only after the training has started.

Everything runs on 400 generated 32x32 images and a ConvNet of widths (4, 8, 8), a few tens
of steps per run, on one CPU thread (tiny tensors run fastest on one thread, and a second
busy process on a 2-core machine would otherwise slow every operation down a hundredfold).

"""

from __future__ import annotations

import copy
import math

import pytest
import torch

from neuromod_lib import adaptation
from neuromod_lib.adaptation import (
    CONDITIONS,
    PLACEMENTS,
    AdaptConfig,
    AdaptResult,
    PretrainConfig,
    TaskSplit,
    _Adapter,
    _Group,
    _Inputs,
    _loss,
    adapt,
    placement_sites,
    pretrain,
    to_input,
)
from neuromod_lib.data import make_attributes, make_hierarchy
from neuromod_lib.models.cnn import ConvNet, SmallResNet, count_parameters

TASKS = ("background_dark", "object_large")  # two held-out (odd-numbered) attributes
SITES = ("block2", "block3")
N_VAL = N_TEST = 50


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def split() -> TaskSplit:
    data = make_attributes(400, size=32, seed=0)
    return TaskSplit.random(data.images, data.labels.long(), data.names, n_val=N_VAL, n_test=N_TEST, seed=0)


@pytest.fixture(scope="module")
def backbone(split) -> ConvNet:
    """Pretrained for one epoch on the even-numbered attributes, then frozen (shared: never changed)."""
    torch.manual_seed(0)
    net = ConvNet((4, 8, 8))
    pretrain(net, split.tasks(list(split.names[0::2])), PretrainConfig(epochs=1))
    return net


def config(**kw) -> AdaptConfig:
    return AdaptConfig(
        **{"sites": SITES, "steps": 10, "eval_every": 5, "seeds": (0, 1), "lrs": (0.01,), **kw}
    )


def hooks(net: torch.nn.Module) -> list[str]:
    """Names of the modules of ``net`` that carry any hook."""
    return [
        name
        for name, m in net.named_modules()
        if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks
    ]


def state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def expected_per_task(condition: str, net: ConvNet, sites: tuple[str, ...], n_tasks: int, k: int = 2) -> int:
    head = k * net.feature_dim + k
    channels = [net.sites[s] for s in sites]
    hidden = [min(c, max(4, c // 16)) for c in channels]
    if CONDITIONS[condition].family == "gain":  # the guided readout learns nothing: statistics only
        return head + sum(channels)
    return {
        "head_only": head,
        "film": head + 2 * sum(channels),
        "se_gain": head + sum(2 * c * r + r + c for c, r in zip(channels, hidden, strict=True)),
        "full_finetune": head + count_parameters(net, trainable_only=False) // n_tasks,
    }[condition]


# --------------------------------------------------------------------------- every condition


@pytest.mark.parametrize("condition", list(CONDITIONS))
def test_every_condition_runs_and_leaves_the_backbone_as_it_was(backbone, split, condition):
    data = split.tasks(TASKS)
    before = state(backbone)
    result = adapt(backbone, data, condition, config())

    assert isinstance(result, AdaptResult)
    assert (result.condition, result.tasks, result.seeds) == (condition, TASKS, (0, 1))
    assert result.test_error.shape == (2, 2) and result.val_curve.shape == (3, 2, 2)
    assert result.curve_steps == [0, 5, 10] and result.seconds > 0
    assert result.lr == 0.01 and list(result.lr_scores) == [0.01] and isinstance(result.saturated, bool)
    for errors in (result.test_error, result.val_curve):
        assert torch.isfinite(errors).all() and (errors >= 0).all() and (errors <= 100).all()
    # every image of the splits counts once: errors are multiples of 100 / 50 images
    for errors in (result.test_error * N_TEST / 100, result.val_curve * N_VAL / 100):
        torch.testing.assert_close(errors, errors.round(), rtol=0, atol=1e-4)
    assert result.trainable_per_task == expected_per_task(condition, backbone, SITES, len(TASKS))

    after = state(backbone)
    assert after.keys() == before.keys()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed == [], f"{condition} changed the shared backbone: {changed}"
    assert hooks(backbone) == [], f"{condition} left hooks on the backbone"
    assert backbone.frozen and not any(p.requires_grad for p in backbone.parameters())


def test_stochastic_comodulation_has_no_learnable_parameters_beyond_deterministic_gains(backbone, split):
    data = split.tasks(TASKS)
    counts = {c: adapt(backbone, data, c, config(steps=5)).trainable_per_task for c in CONDITIONS}
    gains = counts["deterministic_gain"]
    assert all(counts[c] == gains for c in adaptation.STOCHASTIC_VARIANTS)
    assert counts["head_only"] < counts["deterministic_gain"] < counts["film"] < counts["full_finetune"]


@pytest.mark.parametrize("condition", ["head_only", "deterministic_gain"])
def test_learning_happens_on_an_easy_task(split, condition):
    """A linearly separable attribute (an orange or a blue tint) is learned to < 10 % error in 20 steps.

    The backbone is a randomly initialised frozen ConvNet: its pooled features carry the
    colour, so the head (and the gains) must be what learns.
    """
    torch.manual_seed(0)
    net = ConvNet((4, 8, 8)).freeze()
    data = split.tasks(["background_warm"])
    cfg = config(sites=("block3",), steps=20, eval_every=10, lrs=(0.1,), batch_per_task=32, seeds=(0, 1, 2))
    result = adapt(net, data, condition, cfg)
    assert (result.test_error < 10).all(), result.test_error
    assert result.val_curve[-1].mean() < 20  # well below chance (50 %)


def test_hierarchy_tasks_count_only_their_own_images(backbone):
    """5-way superclass tasks with -1 outside the superclass: errors are over the members only."""
    data = make_hierarchy(400, size=32, seed=0)
    labels = torch.full((len(data), 2), -1, dtype=torch.long)
    for t in range(2):
        own = data.coarse == t
        labels[own, t] = data.within_labels()[own]
    split = TaskSplit.random(data.images, labels, data.coarse_names[:2], n_val=100, n_test=100, n_classes=5)
    for condition in ("head_only", "deterministic_gain"):
        result = adapt(backbone, split, condition, config())
        assert result.test_error.shape == (2, 2)
        members = (split.labels[split.test] >= 0).sum(0).float()  # test images per task
        assert (members > 0).all()
        counts = result.test_error * members / 100  # whole numbers of wrong images, at most the members
        torch.testing.assert_close(counts, counts.round(), rtol=0, atol=1e-4)
        assert (counts <= members).all()
        assert result.trainable_per_task == 5 * backbone.feature_dim + 5 + (
            0 if condition == "head_only" else sum(backbone.sites[s] for s in SITES)
        )


# --------------------------------------------------------------------------- reproducibility


@pytest.mark.parametrize("condition", ["stochastic_gain", "se_gain", "full_finetune"])
def test_the_same_config_gives_identical_results(backbone, split, condition):
    data = split.tasks(TASKS)
    first = adapt(backbone, data, condition, config(seeds=(0, 1, 2)))
    second = adapt(backbone, data, condition, config(seeds=(0, 1, 2)))
    assert torch.equal(first.test_error, second.test_error)
    assert torch.equal(first.val_curve, second.val_curve)
    assert first.trainable_per_task == second.trainable_per_task
    # ... while the seeds differ from one another (each context has its own initialisation and data)
    assert (first.val_curve.std(dim=1) > 0).any()


def test_other_seeds_give_other_results(backbone, split):
    data = split.tasks(TASKS)
    a = adapt(backbone, data, "stochastic_gain", config(seeds=(0, 1)))
    b = adapt(backbone, data, "stochastic_gain", config(seeds=(5, 6)))
    assert not torch.equal(a.val_curve, b.val_curve)


def test_stochastic_comodulation_without_noise_is_deterministic_gains(backbone, split):
    """sigma_m = 0: no fluctuation and no covariance (guided weights stay 1), so every variant with
    m = 1 reduces exactly to the deterministic gains of its couplings, trained in the same group."""
    data = split.tasks(TASKS)
    conditions = ["deterministic_gain_nonneg", "stochastic_gain", "stochastic_gain_plain_readout"]
    runs = adaptation.adapt_many(backbone, data, conditions, config(sigma_m=0.0))
    base = runs["deterministic_gain_nonneg"]
    for condition in conditions[1:]:
        torch.testing.assert_close(runs[condition].val_curve, base.val_curve, rtol=0, atol=1e-9)
        torch.testing.assert_close(runs[condition].test_error, base.test_error, rtol=0, atol=1e-9)
    noisy = adaptation.adapt_many(backbone, data, conditions, config(sigma_m=0.5))
    assert not torch.equal(noisy["stochastic_gain"].val_curve, noisy["deterministic_gain_nonneg"].val_curve)


def test_side_by_side_equals_alone(backbone, split):
    """A condition trained beside others (a group five times larger) gives what it gives alone: each
    context's loss is its own mean, so its gradient does not shrink with the group."""
    data = split.tasks(TASKS)
    cfg = config(steps=40, eval_every=10, lrs=(0.01, 0.003))
    others = ["deterministic_gain_nonneg", "stochastic_gain", "stochastic_gain_routing", "film"]
    together = adaptation.adapt_many(backbone, data, ["deterministic_gain", *others], cfg)
    alone = adapt(backbone, data, "deterministic_gain", cfg)
    torch.testing.assert_close(together["deterministic_gain"].val_curve, alone.val_curve, rtol=0, atol=1e-4)
    torch.testing.assert_close(together["deterministic_gain"].test_error, alone.test_error, rtol=0, atol=1e-4)


def test_the_learning_rate_is_chosen_on_validation(backbone, split):
    data = split.tasks(TASKS)
    result = adapt(backbone, data, "deterministic_gain", config(lrs=(1e-6, 0.05)))
    assert set(result.lr_scores) == {1e-6, 0.05}
    assert result.lr == min(result.lr_scores, key=result.lr_scores.get)
    assert result.lr == 0.05  # a rate of 1e-6 learns nothing in 10 steps


def test_full_finetuning_copies_train_like_separate_runs(backbone, split):
    """All (seed, learning rate) backbone copies train together; one seed alone gives the same."""
    data = split.tasks(TASKS)
    both = adapt(backbone, data, "full_finetune", config(seeds=(0, 1)))
    first = adapt(backbone, data, "full_finetune", config(seeds=(0,)))
    torch.testing.assert_close(both.val_curve[:, :1], first.val_curve, rtol=0, atol=1e-4)


def test_stochastic_comodulation_learns_gains_and_tags_units(backbone, split):
    """After training: per-context couplings moved away from 0 (gain 1), and the guided readout
    holds modulator covariances and non-negative unit weights normalised to mean 1."""
    data = split.tasks(TASKS)
    result = adapt(backbone, data, "stochastic_gain", config(sigma_m=0.5))
    coupling, weights = result.extra["coupling"], result.extra["readout_weights"]
    assert set(coupling) == set(SITES)
    for site, c in coupling.items():  # c = w² moved away from its start, 1
        assert c.shape == (2, 2, backbone.sites[site]) and (c >= 0).all() and (c - 1).abs().sum() > 0
    d = backbone.feature_dim
    assert weights.shape == result.extra["readout_covariance"].shape == (2, 2, d)
    assert result.extra["readout_covariance"].abs().sum() > 0
    assert (weights >= 0).all()
    torch.testing.assert_close(weights.mean(2), torch.ones(2, 2))
    plain = adapt(backbone, data, "deterministic_gain", config())
    assert set(plain.extra["coupling"]) == set(SITES) and "readout_weights" not in plain.extra


@pytest.mark.parametrize("draws", [2, 3])
def test_the_routing_pass_pairs_the_training_draw_with_further_draws(backbone, split, monkeypatch, draws):
    """The readout's covariance sees, per routed image, the training pass's draw (units and m) and
    ``draws - 1`` more of the same image; only the first ``route_images`` images of each guided
    context's batch are routed."""
    data = split.tasks(TASKS)
    cfg = config(batch_per_task=5, route_images=2, route_every=4, draws=draws)
    variants = [CONDITIONS["stochastic_gain"].variant, CONDITIONS["deterministic_gain_nonneg"].variant]
    adapter = _Adapter(backbone, "gain", False, 2, 2, cfg, torch.Generator().manual_seed(0), variants)
    try:
        group = _Group.build(adapter, data, cfg, 1, 2, "cpu")
        # context 0 (stochastic, guided): its first 2 of 5 samples; context 1 (deterministic): none
        assert group.routed.tolist() == [True, True, False, False, False] + [False] * 5
        seen = {}
        monkeypatch.setattr(adapter.readout, "update_draws", lambda h, ids, m: seen.update(h=h, ids=ids, m=m))
        features = adapter.features
        trained = {}

        def spy(z, contexts, draw=None):
            h = features(z, contexts, draw)
            if draw is None:  # the training pass
                trained.update(h=h.detach(), m=adapter.modulation.last_m.clone())
            return h

        monkeypatch.setattr(adapter, "features", spy)
        adapter.train()
        idx = torch.stack([data.train[:5], data.train[5:10]])
        _loss(group, adapter, idx).backward()
        assert seen["h"].shape == (draws, 2, backbone.feature_dim) and seen["m"].shape == (draws, 2)
        assert seen["ids"].tolist() == [0, 0]
        torch.testing.assert_close(seen["h"][0], trained["h"][:2])  # the training draw, reused
        torch.testing.assert_close(seen["m"][0], trained["m"][:2])
        assert not torch.equal(seen["m"][1], seen["m"][0])  # a new draw of the same images
        seen.clear()
        for _ in range(cfg.route_every - 1):  # no routing until route_every steps have passed
            _loss(group, adapter, idx)
        assert not seen
        _loss(group, adapter, idx)
        assert seen["h"].shape[0] == draws
        # the readout's time constant stays ~100 training steps, counted in routing updates
        assert adapter.readout.window == round(100 / cfg.route_every)
    finally:
        adapter.modulation.detach()  # the backbone is shared by the other tests
    with pytest.raises(ValueError, match="route_images=0"):
        config(route_images=0)


@pytest.mark.parametrize("condition", [c for c, cond in CONDITIONS.items() if not cond.finetune])
def test_contexts_do_not_leak_into_each_other(backbone, split, condition):
    """Vectorised contexts train like separate runs: a loss on context 0's samples moves only
    context 0's parameters, and a sample's output does not depend on the other samples."""
    n_ctx, per = 4, 3
    cond = CONDITIONS[condition]
    variants = [cond.variant] * n_ctx if cond.variant else None
    adapter = _Adapter(
        backbone,
        cond.family,
        False,
        n_ctx,
        2,
        config(sigma_m=0.3),
        torch.Generator().manual_seed(0),
        variants,
    )
    try:
        idx = torch.arange(n_ctx * per)
        suspend = adapter.modulation.suspend if adapter.modulated else None
        kw = {"suspend": suspend} if suspend else {}
        z = _Inputs(backbone, split.images[:20], adapter.start, "cpu", **kw)(idx)
        ctx = torch.arange(n_ctx).repeat_interleave(per)
        adapter.train()
        out = adapter(z, ctx)
        out[ctx == 0].square().sum().backward()
        trainable = [(n, p) for n, p in adapter.named_parameters() if p.requires_grad]
        assert trainable and all(p.shape[0] == n_ctx for _, p in trainable)
        for name, p in trainable:
            assert p.grad is None or not p.grad[1:].any(), f"{name}: context 0's loss moved other contexts"
        assert any(p.grad is not None and p.grad[0].any() for _, p in trainable)

        adapter.eval()
        with torch.no_grad():
            together = adapter(z, ctx)[ctx == 0]
            alone = adapter(z[ctx == 0], ctx[ctx == 0])
        torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)
    finally:
        adapter.modulation.detach()
    assert hooks(backbone) == []


# --------------------------------------------------------------------------- the input cache


@pytest.mark.parametrize(
    "start, max_bytes",
    [
        (None, 2e9),
        ("block1", 2e9),
        ("block2", 2e9),
        ("block3", 2e9),
        ("block1", 0),  # the first site's input is the image itself
        pytest.param(None, 0),
        pytest.param("block2", 0),
        pytest.param("block3", 0),
    ],
)
@pytest.mark.parametrize("through", [True, False])
def test_inputs_through_the_rest_of_the_network_are_the_features(backbone, split, start, max_bytes, through):
    """Cached: a site's output before modulation (``through``) or its stage's input; either way the
    rest of the network turns it into the features."""
    inputs = _Inputs(backbone, split.images, start, "cpu", max_bytes=max_bytes, through=through)
    assert (inputs.cache is None) == (max_bytes == 0)
    idx = torch.tensor([5, 0, 399, 17, 5])
    with torch.no_grad():
        z = inputs(idx)
        rest = backbone.after if through else backbone.from_site
        h = z if start is None else rest(z, start)
        expected = backbone.features(to_input(split.images[idx], "cpu"))
    torch.testing.assert_close(h, expected, rtol=1e-5, atol=1e-6)


def test_adapt_gives_the_same_results_without_the_cache(backbone, split, monkeypatch):
    backbone = copy.deepcopy(backbone)
    data = split.tasks(TASKS)
    cfg = config(sites=placement_sites(backbone, "late"))
    cached = adapt(backbone, data, "deterministic_gain", cfg)

    class Uncached(_Inputs):
        def __init__(self, *args, **kwargs):
            kwargs["max_bytes"] = 0
            super().__init__(*args, **kwargs)
            assert self.cache is None

    monkeypatch.setattr(adaptation, "_Inputs", Uncached)
    uncached = adapt(backbone, data, "deterministic_gain", cfg)
    assert torch.equal(cached.val_curve, uncached.val_curve)
    assert torch.equal(cached.test_error, uncached.test_error)


# --------------------------------------------------------------------------- failures


def without_training_images(split: TaskSplit) -> TaskSplit:
    """Two tasks on the split's images; task "b" has no training image."""
    labels = split.labels[:, :2].clone()
    labels[split.train, 1] = -1
    return TaskSplit(split.images, labels, ("a", "b"), split.train, split.val, split.test)


def test_a_task_without_training_images_is_refused_by_name(backbone, split, no_training):
    with pytest.raises(ValueError, match=r"\['b'\] have no training images"):
        adapt(copy.deepcopy(backbone), without_training_images(split), "deterministic_gain", config())


@pytest.mark.parametrize(
    "condition, failure",
    [
        ("deterministic_gain", "interrupted"),
        ("film", "interrupted"),
        ("deterministic_gain", "no training images"),
    ],
)
def test_a_failed_adapt_leaves_no_hooks(backbone, split, monkeypatch, condition, failure):
    """A notebook user who interrupts a run (or a run that diverges, or is refused) must get the
    backbone back clean: a modulator left hooked on it breaks every later use of the backbone."""
    net, data = copy.deepcopy(backbone), split.tasks(TASKS)
    if failure == "interrupted":

        def interrupted(*args, **kwargs):
            raise KeyboardInterrupt

        monkeypatch.setattr(adaptation, "fit", interrupted)
        with pytest.raises(KeyboardInterrupt):
            adapt(net, data, condition, config())
    else:
        with pytest.raises(ValueError):
            adapt(net, without_training_images(split), condition, config())
    assert hooks(net) == []


def test_pretraining_skips_images_without_labels():
    """Hierarchy pretraining: images of held-out superclasses have no label in any pretraining task.
    A batch made only of them must not turn the loss into NaN (hierarchy_setup(n_images=641) hits it)."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8, generator=g)
    labels = torch.tensor([[0], [1], [-1], [0], [1], [-1], [0], [1]])
    data = TaskSplit(images, labels, ("a",), torch.arange(6), torch.tensor([6]), torch.tensor([7]))
    torch.manual_seed(0)
    errors = pretrain(ConvNet((4, 8, 8)), data, PretrainConfig(epochs=1, batch_size=1))
    assert math.isfinite(errors["a"])


# --------------------------------------------------------------------------- placement


def test_placement_sites_on_a_convnet():
    net = ConvNet((4, 8, 8))
    assert placement_sites(net, "early") == ("block1",)
    assert placement_sites(net, "late") == ("block2", "block3")
    assert placement_sites(net, "all") == ("block1", "block2", "block3")
    assert placement_sites(net, " block3, block1 ") == ("block3", "block1")
    assert placement_sites(net, "block2") == ("block2",)
    one = ConvNet((4,))
    assert placement_sites(one, "early") == placement_sites(one, "late") == ("block1",)


def test_placement_sites_on_a_small_resnet():
    net = SmallResNet((4, 8, 8))
    assert placement_sites(net, "early") == ("stem", "stage1")
    assert placement_sites(net, "late") == ("stage2", "stage3")
    assert placement_sites(net, "all") == ("stem", "stage1", "stage2", "stage3")
    assert placement_sites(net, "stage3,stem") == ("stage3", "stem")


@pytest.mark.parametrize("bad", ["middle", "", ",", "block1,block9", "layer4", "Early"])
def test_placement_sites_refuses_unknown_values(bad):
    with pytest.raises(ValueError) as err:
        placement_sites(ConvNet((4, 8, 8)), bad)
    text = str(err.value)
    assert f"gain_sites={bad!r}" in text
    assert all(p in text for p in PLACEMENTS) and all(s in text for s in ("block1", "block2", "block3"))


# --------------------------------------------------------------------------- TaskSplit


def test_random_split_is_a_seeded_partition():
    images = torch.zeros(20, 3, 8, 8, dtype=torch.uint8)
    labels = torch.arange(20)[:, None] % 2
    s = TaskSplit.random(images, labels, ("t",), n_val=3, n_test=5, seed=1)
    assert (len(s.train), len(s.val), len(s.test)) == (12, 3, 5)
    assert sorted(torch.cat([s.train, s.val, s.test]).tolist()) == list(range(20))
    again = TaskSplit.random(images, labels, ("t",), n_val=3, n_test=5, seed=1)
    assert torch.equal(s.train, again.train) and torch.equal(s.test, again.test)
    other = TaskSplit.random(images, labels, ("t",), n_val=3, n_test=5, seed=2)
    assert not torch.equal(s.train, other.train)
    assert s.labels.dtype == torch.long and s.n_classes == 2


@pytest.mark.parametrize("n_val, n_test", [(10, 10), (15, 6), (0, 5), (5, 0)])
def test_random_split_refuses_sizes_that_leave_no_training_images(n_val, n_test):
    images = torch.zeros(20, 3, 8, 8, dtype=torch.uint8)
    with pytest.raises(ValueError, match=rf"n_val={n_val}, n_test={n_test} .*\(N=20\)"):
        TaskSplit.random(images, torch.zeros(20, 1), ("t",), n_val=n_val, n_test=n_test)


def test_tasks_selects_columns_and_names_unknown_ones(split):
    sub = split.tasks(["object_large", "background_dark"])
    assert sub.names == ("object_large", "background_dark")
    assert torch.equal(sub.labels[:, 0], split.labels[:, split.names.index("object_large")])
    assert torch.equal(sub.labels[:, 1], split.labels[:, split.names.index("background_dark")])
    assert sub.train is split.train and sub.images is split.images
    with pytest.raises(ValueError, match=r"\['smiling'\].*allowed: .*background_dark"):
        split.tasks(["object_large", "smiling"])


def test_pools_hold_each_tasks_own_images():
    labels = torch.tensor([[0, -1], [1, -1], [-1, 2], [-1, 0], [3, -1], [-1, -1], [2, -1]])
    images = torch.zeros(len(labels), 3, 8, 8, dtype=torch.uint8)
    s = TaskSplit(images, labels, ("a", "b"), torch.tensor([0, 2, 3, 4, 5]), torch.tensor([6]),
                  torch.tensor([1]), n_classes=4)  # fmt: skip
    pool, lengths = s.pools(s.train)
    assert lengths.tolist() == [2, 2] and pool.shape == (2, 2)
    assert pool[0].tolist() == [0, 4] and pool[1].tolist() == [2, 3]
    pool, lengths = s.pools(torch.tensor([6, 5, 1, 2]))
    assert lengths.tolist() == [2, 1]
    assert pool[0].tolist() == [6, 1] and pool[1, :1].tolist() == [2]


# --------------------------------------------------------------------------- configuration errors


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(sigma_m=-0.1), r"sigma_m=-0\.1 .*allowed: sigma_m >= 0"),
        (dict(steps=25, eval_every=10), r"steps=25 must be a multiple of eval_every=10"),
        (dict(steps=0), r"steps=0 must be >= 1"),
        (dict(eval_every=0), r"eval_every=0 must be >= 1"),
        (dict(batch_per_task=0), r"batch_per_task=0 must be >= 1"),
        (dict(seeds=()), r"seeds must name at least one seed"),
    ],
)
def test_adapt_config_refuses_bad_values(kw, message):
    with pytest.raises(ValueError, match=message):
        config(**kw)


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(sigma_m=math.nan), r"^AdaptConfig\.sigma_m=nan is not allowed; allowed: sigma_m >= 0"),
        (dict(lrs=(0.1, -1)), r"^AdaptConfig\.lrs=\(0\.1, -1\) is not allowed; allowed: a non-empty tuple"),
        (dict(lrs=()), r"^AdaptConfig\.lrs=\(\) is not allowed; allowed: a non-empty tuple"),
        (dict(draws=1), r"^AdaptConfig\.draws=1 is not allowed; allowed: an integer >= 2$"),
        (dict(steps=True), r"^AdaptConfig\.steps=True is not an integer; allowed: an integer >= 1$"),
        (dict(patience=0), r"^AdaptConfig\.patience=0 is not allowed; allowed: None or an integer >= 1$"),
        (dict(seeds=(0, -1)), r"^AdaptConfig\.seeds=\(0, -1\) is not allowed; allowed: a tuple of integers"),
        (dict(sites="block1"), r"^AdaptConfig\.sites='block1' is not allowed; allowed: a tuple of site"),
    ],
)
def test_adapt_config_refuses_nan_negative_and_wrong_types(kw, message):
    with pytest.raises(ValueError, match=message):
        config(**kw)


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(lr=-1), r"^PretrainConfig\.lr=-1 is not allowed; allowed: a finite number > 0$"),
        (dict(lr=math.nan), r"^PretrainConfig\.lr=nan is not allowed"),
        (dict(epochs=0), r"^PretrainConfig\.epochs=0 is not allowed; allowed: an integer >= 1$"),
        (dict(batch_size=True), r"^PretrainConfig\.batch_size=True is not allowed"),
        (dict(patience=1.5), r"^PretrainConfig\.patience=1\.5 is not allowed; allowed: None or an integer"),
    ],
)
def test_pretrain_config_refuses_bad_values(kw, message):
    with pytest.raises(ValueError, match=message):
        PretrainConfig(**kw)
    assert PretrainConfig(patience=None).patience is None


@pytest.fixture
def no_training(monkeypatch):
    """Any attempt to train fails the test: errors must come before any work."""

    def refuse(*args, **kwargs):
        raise AssertionError("training started before the arguments were checked")

    monkeypatch.setattr(adaptation, "fit", refuse)


def test_unknown_condition_is_named_with_the_allowed_ones(backbone, split, no_training):
    with pytest.raises(ValueError) as err:
        adapt(backbone, split.tasks(TASKS), "gains", config())
    assert "condition='gains' is unknown" in str(err.value)
    assert all(c in str(err.value) for c in CONDITIONS)


@pytest.mark.parametrize("sites", [("layer4",), ("block2", "block9")])
def test_sites_not_on_the_backbone_are_refused_before_training(backbone, split, no_training, sites):
    with pytest.raises(ValueError, match=sites[-1]) as err:
        adapt(backbone, split.tasks(TASKS), "deterministic_gain", config(sites=sites))
    assert "block1" in str(err.value)  # the allowed sites are listed
    assert hooks(backbone) == []


# --------------------------------------------------------------------------- AdaptResult


def hand_made(test_error, val_curve, steps=(50, 100, 150)) -> AdaptResult:
    s, t = torch.tensor(test_error).shape
    return AdaptResult("film", tuple(f"t{i}" for i in range(t)), tuple(range(s)), torch.tensor(test_error),
                       list(steps), torch.tensor(val_curve), 98, 12.345)  # fmt: skip


def test_result_steps_to_and_best_validation():
    # val_curve (P=3, S=2, T=2); per seed, the mean over tasks is 30, 20, 10 and 40, 35, 30
    curve = [[[20.0, 40.0], [40.0, 40.0]], [[10.0, 30.0], [30.0, 40.0]], [[0.0, 20.0], [30.0, 30.0]]]
    result = hand_made([[10.0, 20.0], [30.0, 40.0]], curve)
    torch.testing.assert_close(result.mean_error(), torch.tensor([15.0, 35.0]))
    assert result.steps_to(20) == [100, None]
    assert result.steps_to(30) == [50, 150]
    assert result.steps_to(100) == [50, 50] and result.steps_to(5) == [None, None]
    assert result.steps_to(torch.tensor([20.0, 35.0])) == [100, 100]  # one target per seed
    # each context's best validation error, then the mean over tasks: (0 + 20) / 2 and (30 + 30) / 2
    torch.testing.assert_close(result.best_val_error(), torch.tensor([10.0, 30.0]))


@pytest.mark.parametrize(
    ("curve", "saturated", "improvement"),
    [
        ([50.0, 30.0, 25.0, 24.0, 24.2, 24.1], True, -0.1),  # flat after step 300 (of 500)
        ([50.0, 40.0, 35.0, 30.0, 28.0, 27.0], False, 3.0),  # still falling: best 30 before, 27 after
        ([50.0, 20.0, 21.0, 22.0, 23.0, 24.0], True, -3.0),  # overfitting: validation rises again
    ],
)
def test_saturation_compares_the_last_third_with_what_came_before(curve, saturated, improvement):
    steps = [0, 100, 200, 300, 400, 500]  # two thirds: 333; after it: 400 and 500
    ok, gain = adaptation.saturation(steps, torch.tensor(curve), tol=0.5)
    assert ok is saturated and gain == pytest.approx(improvement, abs=1e-5)
    with pytest.raises(ValueError, match="need the same length"):
        adaptation.saturation(steps, torch.tensor(curve[:3]), tol=0.5)


def test_a_single_seed_result():
    result = hand_made([[12.5, 7.5]], [[[10.0, 10.0]]], steps=(10,))
    assert result.mean_error().tolist() == [10.0] and result.best_val_error().tolist() == [10.0]
    assert result.steps_to(10) == [10]


def test_unit_relevance_is_the_accuracy_drop_of_each_ablated_unit(backbone, split):
    """The vectorised ablation equals removing each unit by hand and scoring again."""
    data = split.tasks(TASKS)
    cfg = config(seeds=(0,))
    adapter = _Adapter(
        backbone, "gain", False, 2, 2, cfg, torch.Generator(), [CONDITIONS["stochastic_gain"].variant] * 2
    )
    try:
        group = adaptation._Group.build(adapter, data, cfg, 1, 2, "cpu")
        with torch.no_grad():
            adapter.readout.covariance.uniform_(0, 1)  # some guided weights
        adapter.eval()
        relevance = adaptation.unit_relevance(group, adapter)
        idx, ctx, labels = group.evaluation["val"]
        with torch.no_grad():
            h = adapter.features(group.inputs(idx), ctx) * adapter.readout.weights[ctx]
            heads = adapter.readout.heads
            for c in range(2):
                rows = ctx == c
                full = (heads._decode(h[rows], ctx[rows]).argmax(1) == labels[rows]).float().mean()
                for d in (0, 5, 17):
                    cut = h[rows].clone()
                    cut[:, d] = 0
                    ablated = (heads._decode(cut, ctx[rows]).argmax(1) == labels[rows]).float().mean()
                    assert relevance[c, d].item() == pytest.approx(100 * (full - ablated).item(), abs=1e-4)
    finally:
        adapter.modulation.detach()
        backbone.freeze()


def test_limit_train_keeps_the_first_training_images(split):
    assert split.limit_train(0) is split
    small = split.limit_train(30)
    assert torch.equal(small.train, split.train[:30]) and torch.equal(small.val, split.val)
    with pytest.raises(ValueError, match=r"^n_adapt=-1 is not allowed; allowed: an integer >= 0 \(0: all\)$"):
        split.limit_train(-1)


def test_backbone_copies_give_the_same_features_vectorised_or_copy_by_copy(backbone, split):
    """A batch sorted by copy with equal counts runs all copies in one vmap; any other batch runs copy
    by copy: both give each image the features of its own copy (and copies differ once trained)."""
    copies = adaptation._Copies(backbone, 3)
    with torch.no_grad():
        for p in copies.stacked:
            p.add_(0.05 * torch.randn_like(p))  # three different backbones
    x = to_input(split.images[:12], "cpu")
    copy = torch.arange(3).repeat_interleave(4)
    with torch.no_grad():
        together = copies(x, copy)  # sorted, 4 each: the vectorised path
        order = torch.randperm(12, generator=torch.Generator().manual_seed(0))
        mixed = copies(x[order], copy[order])  # unsorted: copy by copy
        one = copies._one(tuple(p[1] for p in copies.stacked), x[4:8])
    torch.testing.assert_close(mixed, together[order], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(together[4:8], one, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(together[:4], copies._one(tuple(p[1] for p in copies.stacked), x[:4]))
