"""The ready-made experiments of :mod:`neuromod_lib.setups` on generated data and on real-data fixtures.

Checked: which tasks pretrain the backbone and which are held out; that the backbone comes
back frozen; that the pretraining cache is keyed by the arguments and really skips the
training; the official CelebA partition and CIFAR-100's train/test split through the setups
(on the tiny fixtures of ``test_data_vision.py``, written in the real on-disk formats); and
that bad arguments and missing data are refused, by name, before anything is trained.

Runs on one CPU thread (tiny tensors run fastest on one thread).

"""

from __future__ import annotations

import pytest
import torch
from test_data_vision import ATTR, CELEBA_NAMES, PARTITION, TEST_FINE, TRAIN_FINE, write_celeba, write_cifar

from neuromod_lib import setups, training
from neuromod_lib.adaptation import PretrainConfig, TaskSplit
from neuromod_lib.data import ATTRIBUTES, load_celeba, load_cifar100_hierarchy, make_hierarchy
from neuromod_lib.setups import Setup, attribute_setup, hierarchy_setup

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


def assert_frozen(setup: Setup) -> None:
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
def attributes() -> Setup:
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
