"""Tests of the backbones: shapes, sites that match what the hooks see, size checks, weights, counts.

Images are tiny (8 to 64 pixels, batches of 2) so the file runs in a few seconds on 2 CPU cores;
torchvision's ResNets are built with random weights (nothing is downloaded).
"""

from __future__ import annotations

import pytest
import torch

from neuromod_lib.models import (
    BACKBONES,
    ConvNet,
    SmallResNet,
    TorchvisionResNet,
    build_backbone,
    count_parameters,
)

# Smallest convenient input for each backbone (resnets at 32/64 to stay fast).
SIZES = {
    "convnet": 16,
    "convnet_wide": 16,
    "convnet_deep": 32,
    "resnet_small": 16,
    "resnet_tiny": 16,
    "resnet18": 64,
    "resnet50": 32,
}


def site_outputs(backbone, x):
    """Run ``backbone`` on ``x`` with temporary hooks; return ``{site: output shape}``."""
    shapes, handles = {}, []
    for name in backbone.sites:
        hook = lambda module, inputs, out, name=name: shapes.__setitem__(name, tuple(out.shape))  # noqa: E731
        handles.append(backbone.site_module(name).register_forward_hook(hook))
    try:
        features = backbone(x)
    finally:
        for handle in handles:
            handle.remove()
    return features, shapes


@pytest.mark.parametrize("name", BACKBONES)
def test_feature_shapes_and_sites_match_the_hooked_outputs(name):
    torch.manual_seed(0)
    backbone = build_backbone(name).eval()
    size = SIZES[name]
    with torch.no_grad():
        features, shapes = site_outputs(backbone, torch.randn(2, 3, size, size))
    assert features.shape == (2, backbone.feature_dim)
    assert list(shapes) == list(backbone.sites)  # every site reached, in forward order
    assert {k: s[1] for k, s in shapes.items()} == backbone.sites
    assert all(len(s) == 4 and s[0] == 2 for s in shapes.values())
    assert all(not module._forward_hooks for module in backbone.modules())  # temporary hooks gone


def test_convnet_layout():
    net = ConvNet(widths=(8, 12), in_channels=1)
    assert net.sites == {"block1": 8, "block2": 12}
    assert net.feature_dim == 4 * 12 and net.min_size == 4  # 2x2 pooling grid
    assert net(torch.randn(3, 1, 4, 4)).shape == (3, 48)
    with pytest.raises(ValueError, match=r"expected \(B, 1, H, W\)"):
        net(torch.randn(3, 3, 4, 4))


def test_resnet_small_layout():
    net = SmallResNet(widths=(8, 16), blocks_per_stage=2)
    assert net.sites == {"stem": 8, "stage1": 8, "stage2": 16}
    assert len(net.layers[0]) == 2 and len(net.layers[1]) == 2
    assert net.min_size == 2
    _, shapes = site_outputs(net.eval(), torch.randn(2, 3, 8, 8))
    assert shapes["stage1"][2:] == (8, 8) and shapes["stage2"][2:] == (4, 4)


def test_check_input_accepts_and_rejects_sizes():
    net = ConvNet()  # 3 blocks: 8 pixels at least
    for ok in (8, 32):
        net.check_input(ok)
    for bad in (4, 7, 0, 8.0, True):
        with pytest.raises(ValueError, match=r"image_size=.*allowed: integers >= 8"):
            net.check_input(bad)
    with pytest.raises(ValueError, match="image_size=4"):
        net(torch.randn(1, 3, 4, 4))
    assert build_backbone("convnet_deep").min_size == 32
    with pytest.raises(ValueError, match="image_size=16"):
        build_backbone("resnet18").check_input(16)


def test_torchvision_resnet18_runs_without_weights():
    net = TorchvisionResNet("resnet18", weights=None).eval()
    assert not hasattr(net.net.fc, "weight")  # classifier removed
    with torch.no_grad():
        assert net.features(torch.randn(2, 3, 64, 64)).shape == (2, 512)


def test_torchvision_weights_are_loaded_from_a_local_file(tmp_path):
    import torchvision

    torch.manual_seed(1)
    source = torchvision.models.resnet18(weights=None)  # stands in for the ImageNet state_dict
    path = tmp_path / "resnet18.pt"
    torch.save(source.state_dict(), path)
    net = TorchvisionResNet("resnet18", weights=path)
    assert torch.equal(net.net.conv1.weight, source.conv1.weight)
    assert torch.equal(net.net.layer4[1].bn2.running_var, source.layer4[1].bn2.running_var)

    torch.save({"conv1.weight": source.conv1.weight}, tmp_path / "partial.pt")
    with pytest.raises(ValueError, match="weights=.*is not a resnet18 state_dict"):
        TorchvisionResNet("resnet18", weights=tmp_path / "partial.pt")


def test_missing_weights_file_is_explained_and_nothing_is_downloaded(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(FileNotFoundError, match=r"weights=.*nope\.pt.*never downloads.*ResNet50_Weights"):
        build_backbone("resnet50", weights=missing)


def test_unknown_names_are_errors():
    with pytest.raises(ValueError, match=r"backbone='vgg'.*allowed: convnet, convnet_wide.*resnet50"):
        build_backbone("vgg")
    with pytest.raises(ValueError, match=r"name='resnet34'.*allowed: resnet18, resnet50"):
        TorchvisionResNet("resnet34")
    with pytest.raises(ValueError, match="widths"):
        ConvNet(widths=())
    with pytest.raises(ValueError, match="blocks_per_stage"):
        SmallResNet(blocks_per_stage=0)
    with pytest.raises(ValueError, match=r"^in_channels=True must be an integer >= 1$"):
        ConvNet(in_channels=True)
    with pytest.raises(ValueError, match=r"site='block9'.*available: \['block1'"):
        ConvNet().site_module("block9")


def test_parameter_counts():
    # conv3x3 without bias + BN (2 per channel): 3*16*9+32 + 16*32*9+64 + 32*64*9+128
    assert count_parameters(ConvNet()) == 23_696
    # torchvision's published counts minus the classifier (512*1000+1000, 2048*1000+1000)
    assert count_parameters(build_backbone("resnet18")) == 11_689_512 - 513_000
    assert count_parameters(build_backbone("resnet50")) == 25_557_032 - 2_049_000


def test_freeze_fixes_weights_and_batchnorm_statistics():
    net = ConvNet().freeze()
    assert count_parameters(net) == 0 and count_parameters(net, trainable_only=False) == 23_696
    net.train()
    assert all(not m.training for m in net.modules() if m is not net)
    before = net.blocks[0][1].running_mean.clone()
    net(torch.randn(4, 3, 8, 8) + 3.0)
    assert torch.equal(net.blocks[0][1].running_mean, before)
    unfrozen = ConvNet().train()
    unfrozen(torch.randn(4, 3, 8, 8) + 3.0)
    assert not torch.equal(unfrozen.blocks[0][1].running_mean, torch.zeros(16))


@pytest.mark.parametrize("name", ["convnet", "resnet_small", "resnet18"])
def test_prefix_then_from_site_equals_features(name):
    torch.manual_seed(0)
    net = build_backbone(name).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        full = net.features(x)
        for site in net.sites:
            assert torch.allclose(net.from_site(net.prefix(x, site), site), full, atol=1e-6), site
    with pytest.raises(ValueError, match="site='nope'"):
        net.prefix(x, "nope")


def test_pool_grid_pools_quadrants():
    """A 2x2 grid keeps where in the image a feature is; its mean over the grid is global pooling."""
    torch.manual_seed(0)
    net = ConvNet(widths=(4, 4, 4), pool_grid=2).eval()
    flat = ConvNet(widths=(4, 4, 4), pool_grid=1).eval()
    flat.load_state_dict(net.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        grid = net(x).view(2, 4, 2, 2)
        assert torch.allclose(grid.mean(dim=(2, 3)), flat(x), atol=1e-6)
        last = net.prefix(x, "block3")
        last = net.blocks[2](last)  # (2, 4, 4, 4): the top-left quadrant is rows 0-1, cols 0-1
        assert torch.allclose(grid[..., 0, 0], last[..., :2, :2].mean(dim=(2, 3)), atol=1e-6)
    with pytest.raises(ValueError, match="pool_grid=0"):
        ConvNet(pool_grid=0)


@pytest.mark.parametrize("name", ["convnet", "resnet_tiny"])
def test_through_then_after_is_the_whole_network(name):
    """A site's output (``through``) continued by ``after`` gives the features, at every site."""
    torch.manual_seed(0)
    net = build_backbone(name).eval()
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        for site in net.sites:
            torch.testing.assert_close(net.after(net.through(x, site), site), net.features(x))
