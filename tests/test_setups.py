"""The ready-made experiments of :mod:`neuromod_lib.setups` on generated data and on real-data fixtures.

Checked: which tasks pretrain the backbone and which are held out; that the backbone comes
back frozen; that the pretraining cache is keyed by the arguments and really skips the
training; the official CelebA partition and CIFAR-100's train/test split through the setups
(on the tiny fixtures of ``test_data_vision.py``, written in the real on-disk formats); and
that bad arguments and missing data are refused, by name, before anything is trained.

Runs on one CPU thread (tiny tensors run fastest on one thread).

"""

from __future__ import annotations

import math

import pytest
import torch
from test_data_vision import ATTR, CELEBA_NAMES, PARTITION, TEST_FINE, TRAIN_FINE, write_celeba, write_cifar

from neuromod_lib import setups, training
from neuromod_lib.adaptation import CONDITIONS, PretrainConfig, TaskSplit
from neuromod_lib.data import ATTRIBUTES, load_celeba, load_cifar100_hierarchy, make_hierarchy
from neuromod_lib.setups import AdaptationSetup, attribute_setup, hierarchy_setup

ONE_EPOCH = PretrainConfig(epochs=1)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def no_training(monkeypatch):
    """Any attempt to pretrain fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("pretraining started before the arguments were checked")

    monkeypatch.setattr(setups, "pretrain", refuse)


@pytest.fixture
def no_work(no_training, monkeypatch):
    """Any attempt to load or generate data, or to pretrain, fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("data were loaded before the arguments were checked")

    for name in ("make_attributes", "make_hierarchy", "load_celeba", "load_cifar100_hierarchy"):
        monkeypatch.setattr(setups, name, refuse)


def assert_frozen(setup: AdaptationSetup) -> None:
    net = setup.backbone
    assert net.frozen and not any(p.requires_grad for p in net.parameters())
    assert not any(m.training for m in net.modules())
    net.train()  # a frozen backbone keeps BatchNorm on its stored statistics even in train mode
    assert not any(m.training for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    net.eval()


def assert_same_split(a: TaskSplit, b: TaskSplit) -> None:
    """Two task sets on the same images and the same train / val / test indices."""
    assert a.images is b.images
    for part in ("train", "val", "test"):
        assert torch.equal(getattr(a, part), getattr(b, part))


# --------------------------------------------------------------------------- generated attributes


@pytest.fixture(scope="module")
def attributes() -> AdaptationSetup:
    return attribute_setup(n_images=600, n_tasks=3, pretrain_config=ONE_EPOCH)


def test_attribute_setup_holds_out_the_odd_attributes(attributes):
    s = attributes
    assert s.pretrain_tasks.names == ATTRIBUTES[0::2]
    assert s.tasks.names == ATTRIBUTES[1::2][:3]
    assert not set(s.tasks.names) & set(s.pretrain_tasks.names)
    assert_same_split(s.tasks, s.pretrain_tasks)
    assert (len(s.tasks.train), len(s.tasks.val), len(s.tasks.test)) == (480, 60, 60)
    assert s.tasks.labels.shape == (600, 3) and s.tasks.labels.dtype == torch.long
    assert set(s.tasks.labels.unique().tolist()) == {0, 1} and s.tasks.n_classes == 2
    assert s.tasks.images.shape == (600, 3, 32, 32) and s.source == "generated"
    assert list(s.pretrain_error) == list(ATTRIBUTES[0::2])
    assert all(0 <= e <= 100 for e in s.pretrain_error.values())


def test_attribute_setup_returns_a_frozen_backbone_and_a_summary(attributes):
    assert_frozen(attributes)
    assert attributes.backbone.sites == {"block1": 16, "block2": 32, "block3": 64}  # "convnet"
    text = attributes.summary()
    for part in ("generated", "600 images", "(32, 32)", "480 train / 60 val / 60 test",
                 "12 pretraining tasks", "3 held-out tasks"):  # fmt: skip
        assert part in text, (part, text)


def test_the_pretraining_is_cached_by_its_arguments(tmp_path, monkeypatch):
    kw = dict(n_images=300, image_size=16, n_tasks=2, pretrain_config=ONE_EPOCH, cache_dir=tmp_path)
    first = attribute_setup(**kw)
    assert len(list(tmp_path.glob("pretrain-*.pt"))) == 1

    def refuse(*args, **kwargs):
        raise AssertionError("the cached pretraining was repeated")

    monkeypatch.setattr(training, "_train_epoch", refuse)
    second = attribute_setup(**{**kw, "n_tasks": 5})  # the held-out tasks do not change the pretraining
    assert second.pretrain_error == first.pretrain_error
    a, b = first.backbone.state_dict(), second.backbone.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert_frozen(second)
    assert len(list(tmp_path.glob("pretrain-*.pt"))) == 1

    monkeypatch.undo()
    attribute_setup(**{**kw, "seed": 1})
    assert len(list(tmp_path.glob("pretrain-*.pt"))) == 2
    attribute_setup(**{**kw, "pretrain_config": PretrainConfig(epochs=1, lr=1e-3)})
    assert len(list(tmp_path.glob("pretrain-*.pt"))) == 3


@pytest.mark.parametrize("setup", [attribute_setup, hierarchy_setup], ids=["attributes", "hierarchy"])
def test_a_setup_does_not_depend_on_the_global_random_state(setup):
    """The backbone is initialised from ``seed`` alone: two set-ups made after different global
    draws pretrain the same network, and the global random state is left as it was."""
    kw = dict(n_images=200, image_size=16, n_tasks=2, pretrain_config=ONE_EPOCH)
    made = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        before = torch.random.get_rng_state()
        made.append(setup(**kw))
        assert torch.equal(torch.random.get_rng_state(), before)
    a, b = (s.backbone.state_dict() for s in made)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert made[0].pretrain_error == made[1].pretrain_error


# --------------------------------------------------------------------------- generated hierarchy


def test_hierarchy_setup_gives_five_way_superclass_tasks():
    s = hierarchy_setup(n_images=600, n_pretrain=3, n_tasks=2, pretrain_config=ONE_EPOCH)
    data = make_hierarchy(600, size=32, seed=0)
    assert s.pretrain_tasks.names == data.coarse_names[:3]
    assert s.tasks.names == data.coarse_names[3:5]
    assert s.tasks.n_classes == s.pretrain_tasks.n_classes == 5
    assert_same_split(s.tasks, s.pretrain_tasks)
    within = data.within_labels()
    for part, first in ((s.pretrain_tasks, 0), (s.tasks, 3)):
        for t in range(len(part.names)):
            own = data.coarse == first + t
            expected = torch.where(own, within, torch.full_like(within, -1))
            assert torch.equal(part.labels[:, t], expected), part.names[t]
    assert ((s.tasks.labels >= 0).sum(1) <= 1).all()  # an image belongs to its own superclass only
    assert list(s.pretrain_error) == list(data.coarse_names[:3])
    assert_frozen(s)


def test_hierarchy_pretraining_survives_a_last_batch_of_held_out_images():
    """513 training images: the last batch holds one image, of a held-out superclass for seed 0."""
    s = hierarchy_setup(n_images=641, image_size=16, pretrain_config=ONE_EPOCH, seed=0)
    assert len(s.tasks.train) == 513


# --------------------------------------------------------------------------- real data on fixtures


def test_attribute_setup_on_celeba_uses_the_official_partition(tmp_path, no_download):
    root = write_celeba(tmp_path / "data")
    s = attribute_setup(dataset="celeba", data_root=str(root), verify=False, image_size=32, n_images=0,
                        n_tasks=2, pretrain_config=ONE_EPOCH)  # fmt: skip
    order = [i for code in (0, 1, 2) for i, p in enumerate(PARTITION) if p == code]  # train, valid, test
    sizes = [PARTITION.count(code) for code in (0, 1, 2)]
    assert [len(s.tasks.train), len(s.tasks.val), len(s.tasks.test)] == sizes
    assert torch.equal(torch.cat([s.tasks.train, s.tasks.val, s.tasks.test]), torch.arange(len(PARTITION)))
    assert s.pretrain_tasks.names == CELEBA_NAMES[0::2] and s.tasks.names == CELEBA_NAMES[1::2][:2]
    assert torch.equal(s.tasks.labels, ATTR[order][:, [1, 3]])
    assert torch.equal(s.pretrain_tasks.labels, ATTR[order][:, 0::2])
    assert torch.equal(s.tasks.images, load_celeba(root, "all", size=32, verify=False).images[order])
    assert s.source == "celeba" and "20 pretraining tasks" in s.summary()
    assert_frozen(s)

    small = attribute_setup(dataset="celeba", data_root=str(root), verify=False, image_size=32, n_images=2,
                            n_tasks=1, pretrain_config=ONE_EPOCH)  # fmt: skip
    assert [len(small.tasks.train), len(small.tasks.val), len(small.tasks.test)] == [2, 1, 1]


def test_the_literature_protocol_adapts_to_every_celeba_attribute(tmp_path, no_download):
    """``protocol="all"`` (Sener & Koltun's): the gains adapt to all 40 attributes, which also trained
    the backbone on the training split; the official partition is kept."""
    root = write_celeba(tmp_path / "data")
    kw = dict(dataset="celeba", data_root=str(root), verify=False, image_size=32, n_images=0, protocol="all")
    s = attribute_setup(n_tasks=40, pretrain_config=ONE_EPOCH, **kw)
    assert s.tasks.names == s.pretrain_tasks.names == CELEBA_NAMES
    sizes = [PARTITION.count(c) for c in (0, 1, 2)]
    assert [len(s.tasks.train), len(s.tasks.val), len(s.tasks.test)] == sizes
    assert "40 adapted tasks (also pretrained)" in s.summary()
    assert "adapted tasks (also pretrained): 5_o_Clock_Shadow" in s.description()
    with pytest.raises(ValueError, match=r"n_tasks=41 is not allowed; allowed: 1 to 40 attributes"):
        attribute_setup(n_tasks=41, **kw)


def test_imagenet_weights_stay_as_they_are_under_the_literature_protocol(tmp_path, no_download):
    """With ``weights`` the backbone is ImageNet's, fixed: only the pretraining heads learn."""
    import torchvision

    root = write_celeba(tmp_path / "data")
    source = torchvision.models.resnet18(weights=None)  # stands in for the ImageNet state_dict
    torch.save(source.state_dict(), tmp_path / "imagenet.pt")
    s = attribute_setup(dataset="celeba", data_root=str(root), verify=False, image_size=32, n_images=0,
                        protocol="all", backbone="resnet18", weights=str(tmp_path / "imagenet.pt"), n_tasks=2,
                        pretrain_config=ONE_EPOCH)  # fmt: skip
    loaded = s.backbone.net.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in source.state_dict().items() if not k.startswith("fc."))
    assert_frozen(s)


def expected_superclass_labels(data) -> torch.Tensor:
    labels = torch.full((len(data), 20), -1, dtype=torch.long)
    labels[torch.arange(len(data)), data.coarse] = data.within_labels()
    return labels


def test_hierarchy_setup_on_cifar100_uses_its_train_and_test_split(tmp_path, no_download):
    root = write_cifar(tmp_path / "data")
    s = hierarchy_setup(dataset="cifar100", data_root=str(root), verify=False, n_images=0,
                        pretrain_config=ONE_EPOCH)  # fmt: skip
    n_train, n_test = len(TRAIN_FINE), len(TEST_FINE)
    n_val = max(1, n_train // 10)  # the last tenth of the train split
    assert [len(s.tasks.train), len(s.tasks.val), len(s.tasks.test)] == [n_train - n_val, n_val, n_test]
    assert torch.equal(torch.cat([s.tasks.train, s.tasks.val, s.tasks.test]), torch.arange(n_train + n_test))
    train, test = (load_cifar100_hierarchy(root, part, verify=False) for part in ("train", "test"))
    assert torch.equal(s.tasks.images, torch.cat([train.images, test.images]))
    labels = torch.cat([expected_superclass_labels(train), expected_superclass_labels(test)])
    assert torch.equal(s.pretrain_tasks.labels, labels[:, :10])
    assert torch.equal(s.tasks.labels, labels[:, 10:])
    assert s.tasks.names == tuple(f"coarse_{i}" for i in range(10, 20)) and s.tasks.n_classes == 5
    assert s.source == "cifar100"
    assert_frozen(s)


def test_hierarchy_setup_on_cifar100_with_very_few_images(tmp_path, no_download):
    root = write_cifar(tmp_path / "data")
    s = hierarchy_setup(dataset="cifar100", data_root=str(root), verify=False, n_images=4,
                        pretrain_config=ONE_EPOCH)  # fmt: skip
    assert len(s.tasks.train) + len(s.tasks.val) == 4 and len(s.tasks.test) == 1


@pytest.mark.parametrize("which", ["celeba", "cifar100"])
def test_missing_data_root_names_root_and_the_download_command(tmp_path, no_download, no_training, which):
    missing = tmp_path / "nowhere"
    setup, cls = (attribute_setup, "CelebA") if which == "celeba" else (hierarchy_setup, "CIFAR100")
    with pytest.raises(FileNotFoundError) as err:
        setup(dataset=which, data_root=str(missing), pretrain_config=ONE_EPOCH)
    text = str(err.value)
    assert f"root={str(missing)!r}" in text
    assert f"datasets.{cls}({str(missing)!r}" in text and "download=True" in text


@pytest.mark.parametrize("which", ["celeba", "cifar100"])
def test_verified_fixtures_are_reported_as_corrupted(tmp_path, no_download, no_training, which):
    """verify=True checks torchvision's MD5 sums, which fixtures cannot match: torchvision's
    RuntimeError ("Dataset not found or corrupted") comes out as a FileNotFoundError (its cause)."""
    if which == "celeba":
        root, setup, cls = write_celeba(tmp_path / "data"), attribute_setup, "CelebA"
    else:
        root, setup, cls = write_cifar(tmp_path / "data"), hierarchy_setup, "CIFAR100"
    with pytest.raises(FileNotFoundError, match=rf"(?s)does not hold the data set.*datasets\.{cls}\(") as err:
        setup(dataset=which, data_root=str(root), n_images=0, verify=True, pretrain_config=ONE_EPOCH)
    assert isinstance(err.value.__cause__, RuntimeError) and "corrupted" in str(err.value.__cause__)


# --------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    "setup, kw, message",
    [
        (attribute_setup, dict(dataset="cifar100"), r"dataset='cifar100' is unknown; allowed: generated, c"),
        (hierarchy_setup, dict(dataset="celeba"), r"dataset='celeba' is unknown; allowed: generated, c"),
        (attribute_setup, dict(dataset="celebA"), r"allowed: generated, celeba$"),
        (hierarchy_setup, dict(dataset="CIFAR100"), r"allowed: generated, cifar100$"),
        (attribute_setup, dict(backbone="vgg16"), r"backbone='vgg16' is unknown; allowed: convnet, "),
        (hierarchy_setup, dict(backbone="vgg16"), r"backbone='vgg16' is unknown; allowed: .*resnet18"),
        (attribute_setup, dict(backbone="resnet18", image_size=16), r"image_size=16 .*allowed: .* >= 32$"),
        (attribute_setup, dict(image_size=4), r"image_size=4 .*allowed: integers >= 8"),
        (hierarchy_setup, dict(dataset="cifar100", image_size=64), r"image_size=64 .*cifar100; allowed: 32"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(no_work, setup, kw, message):
    with pytest.raises(ValueError, match=message):
        setup(**kw)


def too_many_tasks(tmp_path, which):
    """(setup, arguments with one held-out task too many, message) for each data set."""
    if which == "generated attributes":
        return attribute_setup, dict(n_images=60, n_tasks=13), r"n_tasks=13 .*allowed: 1 to 12"
    if which == "celeba":
        root = write_celeba(tmp_path / "data")
        kw = dict(dataset="celeba", data_root=str(root), verify=False, n_images=0, n_tasks=21)
        return attribute_setup, kw, r"n_tasks=21 .*allowed: 1 to 20"
    if which == "generated hierarchy":
        return hierarchy_setup, dict(n_images=60, n_pretrain=15, n_tasks=6), r"n_pretrain=15, n_tasks=6 .*20"
    root = write_cifar(tmp_path / "data")
    kw = dict(dataset="cifar100", data_root=str(root), verify=False, n_images=0, n_tasks=11)
    return hierarchy_setup, kw, r"n_pretrain=10, n_tasks=11 .*20"


DATASETS = ["generated attributes", "celeba", "generated hierarchy", "cifar100"]


@pytest.mark.parametrize("which", DATASETS)
def test_too_many_tasks_are_refused_by_name_before_training(tmp_path, no_download, no_training, which):
    setup, kw, message = too_many_tasks(tmp_path, which)
    with pytest.raises(ValueError, match=message):
        setup(**kw)
    if "n_tasks=13" in message:
        with pytest.raises(ValueError, match=r"n_tasks=0 "):
            setup(**{**kw, "n_tasks": 0})


@pytest.mark.parametrize("which", DATASETS)
def test_too_many_tasks_are_refused_before_loading(tmp_path, no_download, no_work, which):
    setup, kw, message = too_many_tasks(tmp_path, which)
    with pytest.raises(ValueError, match=message):
        setup(**kw)


# --------------------------------------------------------------------------- what notebooks 01–03 show


def test_most_active_channels_are_the_top_channels_of_the_full_forward_pass(attributes):
    image = attributes.tasks.images[attributes.tasks.test[0]]
    net = attributes.backbone
    captured = []
    handle = net.site_module("block2").register_forward_hook(lambda _m, _i, out: captured.append(out[0]))
    try:
        with torch.no_grad():
            net.features(setups.to_input(image[None], "cpu"))
    finally:
        handle.remove()
    activity = captured[0].mean(dim=(1, 2))  # (C,)
    channels = attributes.most_active_channels(image, "block2", k=4)
    assert channels == sorted(channels) and len(set(channels)) == 4
    assert set(channels) == set(activity.topk(4).indices.tolist())
    assert min(activity[channels]) >= max(activity[[c for c in range(32) if c not in channels]])
    with pytest.raises(ValueError, match="site='block9'"):
        attributes.most_active_channels(image, "block9")
    with pytest.raises(ValueError, match="k=33"):
        attributes.most_active_channels(image, "block2", k=33)


def test_description_names_every_task_and_the_mean_pretraining_error(attributes):
    lines = attributes.description().splitlines()
    assert lines[0] == attributes.summary()
    assert lines[1] == "pretraining tasks: " + ", ".join(attributes.pretrain_tasks.names)
    assert lines[2] == "held-out tasks:    " + ", ".join(attributes.tasks.names)
    errors = list(attributes.pretrain_error.values())
    assert attributes.mean_pretrain_error == pytest.approx(sum(errors) / len(errors))


def test_attribute_examples_are_titled_with_the_attributes_each_image_has(attributes):
    split = attributes.pretrain_tasks
    images, titles = setups.attribute_examples(split, 5, max_chars=1000)
    first = split.test[:5]
    assert torch.equal(images, split.images[first]) and len(titles) == 5
    for i, title in zip(first.tolist(), titles, strict=True):
        on = [n for n, v in zip(split.names, split.labels[i].tolist(), strict=True) if v == 1]
        short = [n.replace("object_", "").replace("background_", "bg_") for n in on]
        assert title == ", ".join(short)
    assert all(len(t) <= 12 for t in setups.attribute_examples(split, 5, max_chars=12)[1])


def _hierarchy_split() -> TaskSplit:
    """Two 3-way tasks on 8 images: task a's classes at images 4, 0, 2; task b's at 1, 7, 5."""
    labels = torch.full((8, 2), -1)
    labels[[4, 0, 2, 6], 0] = torch.tensor([0, 1, 2, 2])
    labels[[1, 7, 5], 1] = torch.tensor([0, 1, 2])
    images = torch.arange(8, dtype=torch.uint8).view(8, 1, 1, 1).expand(8, 3, 2, 2)
    idx = torch.arange(8)
    return TaskSplit(images, labels, ("a", "b"), idx[:6], idx[6:7], idx[7:], n_classes=3)


def test_superclass_examples_show_one_image_per_class_row_by_row():
    images, titles = setups.superclass_examples(_hierarchy_split(), ["b", "a"])
    assert images[:, 0, 0, 0].tolist() == [1, 7, 5, 4, 0, 2]  # first image of each class, task by task
    assert titles == ["b\nclass 0", "class 1", "class 2", "a\nclass 0", "class 1", "class 2"]
    with pytest.raises(ValueError, match="'c' is not a task"):
        setups.superclass_examples(_hierarchy_split(), ["c"])
    split = _hierarchy_split()
    split.labels[7, 1] = -1  # task b's class 1 loses its only image
    with pytest.raises(ValueError, match="class 1 of 'b' has no image"):
        setups.superclass_examples(split, ["b"])


def fake_run(condition, test_error, val_curve=None, params=100, tasks=None, steps=None, extra=None):
    """An :class:`AdaptResult` with the given errors (S, T) and validation curve (P, S, T)."""
    from neuromod_lib.adaptation import AdaptResult

    test_error = torch.as_tensor(test_error, dtype=torch.float32)
    s, t = test_error.shape
    val_curve = test_error[None] if val_curve is None else torch.as_tensor(val_curve, dtype=torch.float32)
    steps = steps or [10 * (p + 1) for p in range(val_curve.shape[0])]
    tasks = tasks or tuple(f"task{i}" for i in range(t))
    return AdaptResult(
        condition, tasks, tuple(range(s)), test_error, steps, val_curve, params, 1.0, extra or {}
    )


def test_conditions_table_names_each_condition_its_learning_rate_and_saturation():
    run = fake_run("film", [[30.0, 10.0], [26.0, 10.0]], params=1706)
    run.lr, run.lr_scores, run.saturated, run.improvement = 0.003, {0.001: 21.04, 0.003: 20.0}, False, 0.77
    shown = setups.conditions_table({"film": run})
    assert shown.header[:4] == ("condition", "what it is", "lr (val error % per lr)", "test error (%)")
    assert shown.rows == (
        ("film", CONDITIONS["film"].description, "0.003 (0.001: 21.0, 0.003: 20.0)", "19.00 ± 1.41", "1,706",
         "no (+0.77)"),
    )  # fmt: skip


def test_per_task_table_and_rows_hold_every_error():
    runs = {
        "a": fake_run("a", [[1.0, 2.0], [3.0, 4.0]], tasks=("x", "y")),
        "b": fake_run("b", [[5.0, 6.0], [7.0, 9.0]], tasks=("x", "y")),
    }
    shown = setups.per_task_table(runs)
    assert shown.header == ("task", "a", "b") and "mean over seeds" in shown.caption
    assert shown.rows == (("x", "2.0", "6.0"), ("y", "3.0", "7.5"))
    rows = setups.per_task_rows(runs)
    assert len(rows) == 8 and rows[0] == {"condition": "a", "seed": 0, "task": "x", "test_error": 1.0}
    assert rows[-1] == {"condition": "b", "seed": 1, "task": "y", "test_error": 9.0}
    with pytest.raises(ValueError, match="runs is empty"):
        setups.per_task_table({})


def test_training_check_needs_a_pretrained_backbone_and_a_learned_task():
    setup = AdaptationSetup(torch.nn.Linear(1, 1), None, None, {"p": 20.0, "q": 28.0}, "generated")
    ok, text = setups.training_check(setup, fake_run("h", [[30.0], [40.0]]), "head-only")
    assert ok and text == (
        "pretraining validation error 24.0% < 25% and head-only test error 35.0% < 40% (chance 50%)"
    )
    assert not setups.training_check(setup, fake_run("h", [[40.0], [40.0]]), "head-only")[0]
    worse = AdaptationSetup(torch.nn.Linear(1, 1), None, None, {"p": 26.0}, "generated")
    assert not setups.training_check(worse, fake_run("h", [[10.0]]), "head-only")[0]


def _gain_runs(gain_errors):
    return {
        "head_only": fake_run("head_only", [[30.0], [32.0], [31.0]], params=500),
        "deterministic_gain": fake_run("deterministic_gain", gain_errors, params=596),
        "full_finetune": fake_run("full_finetune", [[20.0], [22.0], [21.0]], params=3500),
    }


def test_paired_statistics_are_the_t_interval_of_the_mean():
    d = setups.paired(torch.tensor([-1.0, -2.0, -3.0]))
    half = 4.302652729911275 * 1.0 / math.sqrt(3)  # t(0.975, 2) * sd / sqrt(n)
    assert d["n"] == 3 and d["mean"] == pytest.approx(-2.0)
    assert (d["ci_low"], d["ci_high"]) == (pytest.approx(-2.0 - half), pytest.approx(-2.0 + half))
    assert setups.verdict(-3.0, -0.1) == "beats" and setups.verdict(0.1, 2.0) == "loses"
    assert setups.verdict(-1.0, 1.0) == "matches"
    one = setups.paired(torch.tensor([4.0]))  # one seed: no interval, so no verdict
    assert (one["ci_low"], one["ci_high"]) == (-math.inf, math.inf)
    assert setups.verdict(one["ci_low"], one["ci_high"]) == "matches"


def test_gain_adaptation_computes_the_gap_closed_the_interval_and_the_costs():
    answer = setups.gain_adaptation(_gain_runs([[25.0], [27.0], [26.0]]))
    assert answer.gains_beat_head_only and answer.gap_closed == pytest.approx(0.5)
    assert (answer.gain_params, answer.full_params) == (96, 3000) and answer.best == "full_finetune"
    metrics = answer.metrics()
    assert metrics["gain_minus_head_only"] == -5.0 and metrics["gain_minus_head_only_ci_high"] == -5.0
    assert metrics["gains_beat_head_only"] is True and metrics["n_seeds"] == 3
    assert metrics["gap_closed_by_gains"] == 0.5 and metrics["budget_saturated"] is True
    assert answer.samples() == {"gain_minus_head_only_error": [-5.0, -5.0, -5.0]}
    text = answer.conclusions().data
    assert "Deterministic gains **beat** the head-only baseline" in text and "close 50% of the gap" in text
    assert "96 gain parameters per task instead of 3,000" in text and "(31x fewer)" in text

    mixed = setups.gain_adaptation(_gain_runs([[29.0], [33.0], [30.0]]))  # better on two seeds of three
    assert not mixed.gains_beat_head_only
    assert "neither beat nor lose to" in mixed.conclusions().data


def test_gain_adaptation_without_a_gap_says_so_and_records_nan():
    runs = _gain_runs([[25.0], [27.0], [26.0]])
    runs["full_finetune"] = fake_run("full_finetune", [[35.0], [35.0], [35.0]], params=3500)
    answer = setups.gain_adaptation(runs)
    assert answer.gap_closed != answer.gap_closed  # NaN
    assert "no gap to close" in answer.conclusions().data
    with pytest.raises(ValueError, match="full_finetune"):
        setups.gain_adaptation({k: v for k, v in runs.items() if k != "full_finetune"})


def _comodulation_runs(stochastic, deterministic, relevance, weights):
    """Three seeds, one task, a validation curve per seed falling from 50 % to its test error."""

    def run(name, errors, extra=None):
        errors = torch.tensor(errors)[:, None]
        curve = torch.stack([torch.full_like(errors, 50.0), (50.0 + errors) / 2, errors])  # (P=3, S, 1)
        return fake_run(name, errors, curve, steps=[0, 100, 200], params=610, extra=extra)

    return {
        "deterministic_gain_nonneg": run(
            "deterministic_gain_nonneg", deterministic, {"unit_relevance": relevance}
        ),
        "stochastic_gain": run("stochastic_gain", stochastic, {"readout_weights": weights}),
    }


def test_comodulation_pairs_by_seed_and_judges_with_the_interval():
    relevance = torch.tensor([0.0, 1.0, 2.0, 3.0]).expand(3, 1, 4)
    runs = _comodulation_runs([28.0, 31.0, 29.0], [30.0, 34.0, 31.5], relevance, 2 * relevance)
    answer = setups.comodulation(runs)
    torch.testing.assert_close(answer.difference("stochastic_gain"), torch.tensor([-2.0, -3.0, -2.5]))
    metrics = answer.metrics()
    assert metrics["stochastic_minus_deterministic"] == -2.5 and metrics["stochastic_verdict"] == "beats"
    assert metrics["stochastic_minus_deterministic_ci_high"] < 0 and metrics["n_seeds"] == 3
    assert metrics["tagging_correlation"] == 1.0 and metrics["modulator_tags_relevant_units"] is True
    assert metrics["extra_params_stochastic"] == 0 and metrics["budget_saturated"] is True
    assert answer.samples()["stochastic_minus_deterministic"] == [-2.0, -3.0, -2.5]
    # both reach 90 % of the deterministic improvement at step 200: no faster, no slower
    assert answer.steps_method == answer.steps_baseline == [200, 200, 200]
    assert metrics["converges_faster"] is False
    text = answer.conclusions().data
    assert "(the paper's reading) **beats** the deterministic gains of the same couplings" in text
    assert "The best deterministic gains on validation are the same parametrisation" in text
    # signed deterministic gains, better on validation and test: the method loses to them
    errors = torch.tensor([20.0, 22.0, 21.0])[:, None]
    curve = torch.stack([torch.full_like(errors, 50.0), errors, errors])
    runs["deterministic_gain"] = fake_run(
        "deterministic_gain", errors, curve, steps=[0, 100, 200], params=610
    )
    against = setups.comodulation(runs)
    assert against.best_deterministic() == "deterministic_gain"
    m = against.metrics()
    assert (m["stochastic_minus_best_deterministic"], m["stochastic_vs_best_deterministic_verdict"]) == (
        8.33,  # (28 + 31 + 29) / 3 - (20 + 22 + 21) / 3
        "loses",
    )
    assert (
        "Against the best deterministic gains on validation, `deterministic_gain` (21.00%), it **loses to**"
        in (against.conclusions().data)
    )
    assert "paired difference -2.50 points" in text
    assert "Every condition's validation error had saturated." in text
    runs["stochastic_gain"].saturated = False
    unsaturated = setups.comodulation(runs)
    assert unsaturated.metrics()["budget_saturated"] is unsaturated.metrics()["headline_saturated"] is False
    assert "**Not saturated:** stochastic_gain" in unsaturated.conclusions().data
    assert "The headline pair had **not** saturated." in unsaturated.conclusions().data
    with pytest.raises(ValueError, match="deterministic_gain_nonneg"):
        setups.comodulation({"stochastic_gain": runs["stochastic_gain"]})


def test_comodulation_says_matches_when_the_interval_crosses_zero():
    relevance = torch.rand(3, 1, 4, generator=torch.Generator().manual_seed(0))
    runs = _comodulation_runs([28.0, 33.0, 29.0], [30.0, 31.0, 30.0], relevance, relevance.flip(-1))
    answer = setups.comodulation(runs)
    assert answer.metrics()["stochastic_verdict"] == "matches"
    assert "**neither beats nor loses to**" in answer.conclusions().data
    table = answer.variant_table()
    assert table.rows[0][0] == "stochastic_gain" and table.rows[0][-1] == "matches"


def test_steps_to_fraction_uses_each_seeds_own_target():
    curve = torch.tensor([[[50.0], [40.0]], [[30.0], [39.0]], [[10.0], [30.0]]])  # (P=3, S=2, T=1)
    reference = fake_run("d", curve[-1], curve, steps=[0, 10, 20])
    # seed 0: 50 - 0.9 * 40 = 14 -> step 20; seed 1: 40 - 0.9 * 10 = 31 -> step 20
    assert setups.steps_to_fraction(reference, reference) == [20, 20]
    slow = fake_run("s", curve[-1] + 10, torch.cat([curve[:1], curve[1:] + 10]), steps=[0, 10, 20])
    assert setups.steps_to_fraction(slow, reference) == [None, None]


def _study() -> setups.ArchitectureStudy:
    error = torch.tensor([[30.0, 28.0, 31.0], [40.0, 41.0, 42.0]])  # gains help convnet (early), not resnet
    per_seed = {
        ("convnet", "head only"): torch.tensor([29.0, 31.0]),
        ("convnet", "gains early"): torch.tensor([27.0, 29.0]),
        ("convnet", "gains late"): torch.tensor([31.0, 31.0]),
        ("resnet", "head only"): torch.tensor([40.0, 40.0]),
        ("resnet", "gains early"): torch.tensor([41.0, 41.0]),
        ("resnet", "gains late"): torch.tensor([42.0, 42.0]),
    }
    # choices are made on validation: there resnet's late gains are best, unlike on test
    val = {key: errors + 1.0 for key, errors in per_seed.items()}
    val[("resnet", "gains early")], val[("resnet", "gains late")] = (
        torch.tensor([43.0, 43.0]),
        torch.tensor([41.0, 41.0]),
    )
    params = {
        ("convnet", "early"): 16,
        ("convnet", "late"): 96,
        ("resnet", "early"): 32,
        ("resnet", "late"): 1024,
    }
    return setups.ArchitectureStudy(
        ["convnet", "resnet"],
        ["early", "late"],
        error,
        per_seed,
        params,
        {"convnet": 20.0, "resnet": 25.5},
        (3, 4),
        val_per_seed=val,
    )


def test_architecture_study_tables_and_answer():
    study = _study()
    assert study.columns == ["head only", "gains early", "gains late"]
    errors = study.error_table()
    assert errors.header == ("backbone", "pretrain error", "head only", "gains early", "gains late")
    assert errors.rows == (
        ("convnet", "20.0", "30.00", "28.00", "31.00"),
        ("resnet", "25.5", "40.00", "41.00", "42.00"),
    )
    assert study.params_table().rows == (("convnet", "16", "96"), ("resnet", "32", "1,024"))
    assert study.best_placement() == {"convnet": "early", "resnet": "late"}  # on validation, not test
    # paired by seed: convnet's early gains are 2 points below its head in both seeds
    assert study.gain_minus_head()["convnet"] == {"mean": -2.0, "ci_low": -2.0, "ci_high": -2.0, "n": 2}
    assert study.gains_help() == {"convnet": True, "resnet": False}
    assert study.best_backbone() == "convnet" and not study.same_best_placement()
    text = study.conclusions().data
    assert "- convnet: best placement early (on validation); gains there beat the head alone: -2.00" in text
    assert "- resnet: best placement late (on validation); gains there lose to the head alone: +2.00" in text
    assert "Best backbone for gain adaptation: convnet. The best placement is not the same" in text
    metrics = study.metrics()
    assert list(metrics)[:3] == [
        "convnet_head_only_error",
        "convnet_gains_early_error",
        "convnet_gains_late_error",
    ]
    assert metrics["resnet_gains_late_error"] == 42.0 and metrics["resnet_best_placement"] == "late"
    assert metrics["gains_help_every_backbone"] is False and metrics["same_best_placement"] is False
    assert (metrics["convnet_gain_minus_head_only"], metrics["resnet_gain_minus_head_only_ci_high"]) == (
        -2.0,
        2.0,
    )
    # the backbone where gains help least, per seed: resnet (+2, +2) against convnet's (-2, -2)
    assert study.samples() == {"worst_backbone_gain_minus_head_only_error": [2.0, 2.0]}
    rows = study.per_task_rows()
    assert len(rows) == 12 and rows[1] == {
        "backbone": "convnet",
        "condition": "head only",
        "seed": 4,
        "test_error": 31.0,
    }
    ok, text = study.training_check()
    assert ok and text.endswith("every backbone: convnet 30.0%, resnet 40.0%")
    study.error[1, 0] = 55.0
    assert not study.training_check()[0]


def test_stochastic_cells_are_also_judged_with_a_bonferroni_interval():
    per_seed = {}
    for b in ("a", "b"):
        per_seed[(b, "head only")] = torch.tensor([30.0, 30.0, 30.0])
        for p in ("early", "late"):
            per_seed[(b, f"gains {p}")] = torch.tensor([20.0, 20.0, 20.0])
            per_seed[(b, f"stochastic {p}")] = torch.tensor([19.0, 19.5, 18.8])  # -1, -0.5, -1.2
    args = (["a", "b"], ["early", "late"], torch.zeros(2, 3), per_seed, {}, {"a": 1.0, "b": 1.0}, (0, 1, 2))
    study = setups.ArchitectureStudy(*args, val_per_seed=per_seed)
    plain, strict = study.difference("a", "early"), study.difference("a", "early", corrected=True)
    # mean -0.9, standard error sqrt(0.13 / 3); t quantiles with 2 degrees of freedom at 97.5 %
    # (95 % two-sided) and at 1 - 0.05 / 8 (Bonferroni over 4 cells, two-sided)
    se = math.sqrt(0.13 / 3)
    assert plain["ci_high"] == pytest.approx(-0.9 + 4.302653 * se, abs=1e-4) and plain["ci_high"] < 0
    assert strict["ci_high"] == pytest.approx(-0.9 + 8.860200 * se, abs=1e-4) and strict["ci_high"] > 0
    assert study.difference_table().rows[0][-2:] == ("beats", "matches")
    assert study.metrics()["a_early_stochastic_verdict_bonferroni"] == "matches"
    assert "with Bonferroni's correction it beats them: nowhere." in study.conclusions().data
    with pytest.raises(ValueError, match="val_per_seed lacks"):
        setups.ArchitectureStudy(*args)


def test_architecture_study_adapts_every_backbone_and_placement_with_one_budget(monkeypatch):
    from neuromod_lib.adaptation import AdaptConfig

    made, adapted = [], []

    def fake_setup(*, backbone, **kw):
        made.append((backbone, kw))
        return AdaptationSetup(backbone, f"tasks of {backbone}", None, {"p": 10.0, "q": 20.0}, "generated")

    def fake_adapt(net, tasks, condition, config, *, device):
        adapted.append((net, condition, config.sites, config.steps, device))
        error = {
            "head_only": 30.0,
            "deterministic_gain_nonneg": 20.0 + len(config.sites),
            "stochastic_gain": 19.0 + len(config.sites),
        }[condition]
        return fake_run(condition, [[error], [error + 2]], params=100 + 10 * len(config.sites))

    def fake_adapt_many(net, tasks, conditions, config, *, device):
        adapted.append((net, tuple(conditions), config.sites, config.steps, device))
        return {c: fake_adapt(net, tasks, c, config, device=device) for c in conditions}

    monkeypatch.setattr(setups, "hierarchy_setup", fake_setup)
    monkeypatch.setattr(setups, "adapt", fake_adapt)
    monkeypatch.setattr(setups, "adapt_many", fake_adapt_many)
    plan = {"a": {"early": ("s1",), "all": ("s1", "s2")}, "b": {"early": ("t1",), "all": ("t1", "t2", "t3")}}
    budget = AdaptConfig(sites=(), steps=20, eval_every=10, seeds=(0, 1))
    first = AdaptationSetup("a", "tasks of a", None, {"p": 5.0}, "generated")
    study = setups.architecture_study(plan, budget, setup_args={"n_images": 9}, first=first, device="cpu")
    assert made == [("b", {"n_images": 9})]  # the first backbone's setup is reused
    pair = ("deterministic_gain_nonneg", "stochastic_gain")
    assert [a for a in adapted if isinstance(a[1], tuple) or a[1] == "head_only"] == [
        ("a", "head_only", (), 20, "cpu"),
        ("a", pair, ("s1",), 20, "cpu"),
        ("a", pair, ("s1", "s2"), 20, "cpu"),
        ("b", "head_only", (), 20, "cpu"),
        ("b", pair, ("t1",), 20, "cpu"),
        ("b", pair, ("t1", "t2", "t3"), 20, "cpu"),
    ]
    assert study.stochastic and study.difference("b", "all")["mean"] == -1.0  # paired by seed
    means, labels = study.difference_grid()
    assert means.tolist() == [[-1.0, -1.0], [-1.0, -1.0]] and labels[0][0] == "-1.00\n[-1.00, -1.00]"
    assert study.metrics()["a_early_stochastic_verdict"] == "beats"
    assert study.difference_table().rows[0][-1] == "beats"
    assert study.error.tolist() == [[31.0, 22.0, 23.0], [31.0, 22.0, 24.0]]
    assert study.pretrain_error == {"a": 5.0, "b": 15.0}
    assert study.params_per_task == {
        ("a", "early"): 10,
        ("a", "all"): 20,
        ("b", "early"): 10,
        ("b", "all"): 30,
    }
    assert study.per_seed[("b", "gains all")].tolist() == [23.0, 25.0] and study.seeds == (0, 1)
    with pytest.raises(ValueError, match="same placements"):
        setups.architecture_study({"a": {"early": ()}, "b": {"late": ()}}, budget, setup_args={})


def test_plan_adaptation_checks_every_backbone_and_placement_and_builds_one_budget():
    from neuromod_lib import profiles
    from neuromod_lib.setups import plan_adaptation

    one = plan_adaptation(profiles.resolve("01_gain_modulation", "smoke", seed=4))
    assert one.sites == {"convnet": {"late": ("block2", "block3")}}
    assert one.budget.sites == ("block2", "block3") and one.budget.seeds == (4, 5)
    assert (one.budget.steps, one.budget.eval_every, one.budget.batch_per_task) == (20, 10, 4)
    grid = plan_adaptation(profiles.resolve("03_architecture_study", "smoke"))
    assert list(grid.sites) == ["convnet", "resnet_small"]
    assert list(grid.sites["convnet"]) == ["early", "late"] and grid.budget.sites == ()
    assert grid.table().column("gains at") == ["early", "late"] * 2
    assert "20 steps x 4 samples per task" in grid.table().caption
    assert "learning rates searched: 0.001, 0.003, 0.01" in grid.table().caption
    assert grid.budget.lrs == (0.001, 0.003, 0.01) and grid.budget.draws == 2


def test_the_literature_reference_stands_beside_the_celeba_protocol_only():
    runs = {"deterministic_gain": fake_run("deterministic_gain", [[10.0, 12.0], [11.0, 13.0]])}
    theirs = {"dataset": "celeba", "protocol": "all", "n_tasks": 40}
    shown = setups.literature_reference(theirs, runs)
    assert shown.header == ("method", "mean error over 40 attributes (%)", "source")
    assert shown.rows[0] == ("deterministic_gain", "11.50", "this run (mean over seeds)")
    assert ("MGDA-UB", "8.25", "Sener & Koltun 2018, Table 2 (reference)") in shown.rows
    for other in (
        {**theirs, "protocol": "held_out"},
        {**theirs, "n_tasks": 20},
        {**theirs, "dataset": "generated"},
    ):
        said = setups.literature_reference(other, runs).data
        assert said.startswith("No published number applies to this run") and "the paper profile" in said
