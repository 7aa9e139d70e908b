"""Device choice and seeding."""

import pytest
import torch

from neuromod_lib import device as dev


def test_auto_picks_best_available(monkeypatch):
    monkeypatch.delenv("NEUROMOD_DEVICE", raising=False)
    assert str(dev.pick_device("auto")) == dev.available_devices()[0]
    assert dev.available_devices()[-1] == "cpu"


def test_auto_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.delenv("NEUROMOD_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert dev.available_devices()[:2] == ["cuda:0", "cuda:1"]
    assert dev.pick_device("auto") == torch.device("cuda:0")
    assert dev.pick_device("cuda:1") == torch.device("cuda:1")


def test_environment_overrides_auto(monkeypatch):
    monkeypatch.setenv("NEUROMOD_DEVICE", "cpu")
    assert dev.pick_device(None) == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_missing_device_is_a_clear_error():
    with pytest.raises(ValueError, match=r"device='cuda' is not available.*available: .*cpu"):
        dev.pick_device("cuda")


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "", "tpu"])
def test_bad_device_names(bad):
    with pytest.raises(ValueError, match="allowed: auto, cpu, cuda, cuda:N, mps"):
        dev.pick_device(bad)


def test_seed_everything_repeats_draws():
    g1 = dev.seed_everything(3)
    a = (torch.rand(4), torch.rand(4, generator=g1))
    g2 = dev.seed_everything(3)
    b = (torch.rand(4), torch.rand(4, generator=g2))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    dev.seed_everything(4)
    assert not torch.equal(torch.rand(4), a[0])


@pytest.mark.parametrize("bad", [-1, 1.5, True, "0"])
def test_seed_must_be_a_non_negative_int(bad):
    with pytest.raises(ValueError, match="seed="):
        dev.seed_everything(bad)


def test_describe_cpu():
    assert dev.describe_device("cpu").startswith("cpu (")


def test_prepare_picks_the_device_and_seeds_every_draw():
    from neuromod_lib.device import prepare

    assert prepare("cpu", 3) == torch.device("cpu")
    first = torch.rand(3)
    prepare("auto", 3)
    assert torch.equal(torch.rand(3), first)
    with pytest.raises(ValueError, match="seed=-1"):
        prepare("cpu", -1)


def test_seeded_draws_from_the_seed_and_leaves_the_global_state_as_it_was():
    from neuromod_lib.device import seeded

    torch.manual_seed(5)
    state = torch.get_rng_state()
    with seeded(3, "cpu"):
        first = torch.rand(4)
    assert torch.equal(torch.get_rng_state(), state)
    torch.rand(1)  # another global state: the block draws the same
    with seeded(3, "cpu"):
        assert torch.equal(torch.rand(4), first)
    torch.manual_seed(5)
    assert not torch.equal(torch.rand(4), first)  # the seed, not the global state, drew them
