"""Tests of the task heads and of the modulator-guided readout.

The guided readout is checked on synthetic features whose "tagged" units follow the modulator
(``h_k = 1 + a_k m + noise``), against a per-task loop reference of its running average, and
end to end on a frozen ConvNet with stochastic gains on chosen channels of its last block.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from neuromod_lib.models import ConvNet
from neuromod_lib.modulation import GainModulation, GainVariant
from neuromod_lib.readout import (
    ModulatorGuidedReadout,
    TaskHeads,
    unit_correlation,
)

D = 12
TAGGED = torch.tensor([2, 5, 7])
STRENGTH = torch.tensor([1.0, 2.0, 3.0])  # a_k of the tagged units


def synthetic_batch(g: torch.Generator, batch: int = 64, sigma_m: float = 0.5, task_ids=None):
    """Features (B, D) where units TAGGED follow m with slopes STRENGTH; the rest are pure noise."""
    m = sigma_m * torch.randn(batch, generator=g)
    h = 1 + 0.5 * torch.randn(batch, D, generator=g)
    h[:, TAGGED] += STRENGTH * m[:, None]
    task_ids = torch.zeros(batch, dtype=torch.long) if task_ids is None else task_ids
    return h, task_ids, m


def unbiased_cov(h: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return ((h - h.mean(0)) * (m - m.mean())[:, None]).sum(0) / (len(m) - 1)


# --- task heads ------------------------------------------------------------------------------


def test_task_heads_match_a_loop_over_linear_layers():
    torch.manual_seed(0)
    heads = TaskHeads(n_tasks=3, in_features=D, n_outputs=4)
    assert heads.weight.shape == (3, 4, D) and heads.bias.shape == (3, 4)
    linears = [nn.Linear(D, 4) for _ in range(3)]
    with torch.no_grad():
        for t, linear in enumerate(linears):
            linear.weight.copy_(heads.weight[t])
            linear.bias.copy_(heads.bias[t])
    h, task_ids = torch.randn(7, D), torch.tensor([0, 2, 1, 1, 0, 2, 2])
    expected = torch.stack([linears[t](h[b]) for b, t in enumerate(task_ids.tolist())])
    assert torch.allclose(heads(h, task_ids), expected, atol=1e-6)


def test_task_heads_are_initialised_like_linear_layers():
    torch.manual_seed(0)
    heads = TaskHeads(n_tasks=50, in_features=16)
    bound = 1 / 16**0.5
    for p in (heads.weight.detach(), heads.bias.detach()):
        assert p.abs().max() <= bound and p.abs().max() > 0.9 * bound  # U(-bound, bound)
        assert abs(float(p.mean())) < 0.1 * bound


def test_task_heads_check_their_inputs():
    heads = TaskHeads(2, D)
    with pytest.raises(ValueError, match=r"h has shape \[3, 5\]; expected \(B, 12\)"):
        heads(torch.randn(3, 5), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"task_ids must lie in \[0, 1\]"):
        heads(torch.randn(3, D), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="task_ids has 2 entries but the batch has 3"):
        heads(torch.randn(3, D), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="n_outputs=0"):
        TaskHeads(2, D, n_outputs=0)


# --- modulator-guided readout ----------------------------------------------------------------


def test_no_statistics_means_unit_weights():
    torch.manual_seed(0)
    readout = ModulatorGuidedReadout(2, D)
    h, task_ids = torch.randn(5, D), torch.tensor([0, 1, 1, 0, 1])
    assert torch.equal(readout.weights, torch.ones(2, D))
    assert torch.allclose(readout(h, task_ids, None), readout.heads(h, task_ids))
    readout.train()(h, task_ids, None)  # training without a modulator: nothing to learn from
    assert torch.equal(readout.n_batches, torch.zeros(2, dtype=torch.long))


def test_modulator_tags_the_units_that_follow_it():
    g = torch.Generator().manual_seed(0)
    readout = ModulatorGuidedReadout(1, D).train()
    for _ in range(150):
        readout(*synthetic_batch(g))
    w = readout.weights[0]
    assert torch.allclose(w.mean(), torch.tensor(1.0))
    untagged = torch.ones(D, dtype=torch.bool)
    untagged[TAGGED] = False
    assert w[untagged].max() < 0.1 and w[TAGGED].min() > 2
    # a_k = relu(cov) / mean: proportional to the slopes 1 : 2 : 3 (cov = a_k sigma_m²)
    assert torch.allclose(w[TAGGED] / w[TAGGED][0], STRENGTH, rtol=0.1)
    assert torch.allclose(readout.covariance[0, TAGGED], STRENGTH * 0.25, rtol=0.1)
    assert int(readout.n_batches[0]) == 150


def test_running_average_is_exact_then_exponential():
    g = torch.Generator().manual_seed(1)
    readout = ModulatorGuidedReadout(1, D, window=3).train()
    batches = [synthetic_batch(g, batch=16) for _ in range(6)]
    covs = [unbiased_cov(h, m) for h, _, m in batches]
    expected = torch.zeros(D)
    for n, ((h, t, m), cov) in enumerate(zip(batches, covs, strict=True)):
        readout(h, t, m)
        rate = max(1 / (n + 1), 1 / 3)
        expected = expected + rate * (cov - expected)
        if n == 0:
            assert torch.allclose(readout.covariance[0], cov, atol=1e-6)
        if n == 2:
            assert torch.allclose(readout.covariance[0], torch.stack(covs[:3]).mean(0), atol=1e-6)
        assert torch.allclose(readout.covariance[0], expected, atol=1e-6)


def test_tasks_are_kept_apart():
    g = torch.Generator().manual_seed(2)
    readout = ModulatorGuidedReadout(3, D).train()
    task_ids = torch.tensor([0, 1, 0, 2, 1, 0, 1, 2, 2, 0, 1, 2])
    h, _, m = synthetic_batch(g, batch=12)
    readout(h, task_ids, m)
    for t in range(3):  # vectorised update equals one covariance per task
        rows = task_ids == t
        assert torch.allclose(readout.covariance[t], unbiased_cov(h[rows], m[rows]), atol=1e-6)
    before = readout.covariance.clone()
    h1, t1, m1 = synthetic_batch(g, batch=8, task_ids=torch.ones(8, dtype=torch.long))
    readout(h1, t1, m1)
    assert torch.equal(readout.covariance[[0, 2]], before[[0, 2]])
    assert not torch.equal(readout.covariance[1], before[1])
    assert readout.n_batches.tolist() == [1, 2, 1]
    single = torch.tensor([0, 1, 1])  # task 0 has a single sample: no covariance to estimate
    readout(torch.randn(3, D), single, torch.randn(3))
    assert readout.n_batches.tolist() == [1, 3, 1]


def test_eval_mode_uses_stored_weights_without_updating():
    g = torch.Generator().manual_seed(3)
    readout = ModulatorGuidedReadout(1, D).train()
    readout(*synthetic_batch(g))
    state = {k: v.clone() for k, v in readout.state_dict().items()}
    readout.eval()
    h, t, m = synthetic_batch(g)
    out = readout(h, t, m)
    assert all(torch.equal(v, readout.state_dict()[k]) for k, v in state.items())
    assert torch.allclose(out, readout.heads(h * readout.weights[t], t))


def test_no_gradient_flows_through_the_weights():
    g = torch.Generator().manual_seed(4)
    readout = ModulatorGuidedReadout(2, D).train()
    h, _, m = synthetic_batch(g, batch=10)
    task_ids = torch.tensor([0, 1] * 5)
    h.requires_grad_(True)
    out = readout(h, task_ids, m)
    assert not readout.weights.requires_grad and not readout.covariance.requires_grad
    out.sum().backward()
    # with a constant: d out / d h = sum_k W[t, k, :] * a[t]; a gradient through the covariance
    # (which this very batch updated) would add terms
    a = readout.weights[task_ids]
    expected = readout.heads.weight.detach()[task_ids].sum(1) * a
    assert torch.allclose(h.grad, expected, atol=1e-6)
    assert readout.heads.weight.grad is not None


def test_readout_adds_no_parameters():
    readout = ModulatorGuidedReadout(4, D, n_outputs=3)
    assert readout.extra_parameters == 0
    assert sum(p.numel() for p in readout.parameters()) == 4 * (3 * D + 3)
    assert set(readout.state_dict()) == {"covariance", "n_batches", "heads.weight", "heads.bias"}
    shared = TaskHeads(4, D, 3)
    wrapped = ModulatorGuidedReadout(shared)
    assert wrapped.heads is shared and wrapped.n_tasks == 4 and wrapped.covariance.shape == (4, D)


def test_all_negative_covariances_give_unit_weights():
    readout = ModulatorGuidedReadout(2, 3)
    readout.covariance.copy_(torch.tensor([[-1.0, -2.0, 0.0], [3.0, 0.0, -1.0]]))
    assert torch.allclose(readout.weights, torch.tensor([[1.0, 1.0, 1.0], [3.0, 0.0, 0.0]]))


def test_readout_checks_its_inputs():
    readout = ModulatorGuidedReadout(2, D).train()
    with pytest.raises(ValueError, match=r"m has shape \[4\]; expected \(3,\)"):
        readout(torch.randn(3, D), torch.zeros(3, dtype=torch.long), torch.randn(4))
    with pytest.raises(ValueError, match="h has shape"):
        readout(torch.randn(3, D + 1), torch.zeros(3, dtype=torch.long), torch.randn(3))
    with pytest.raises(ValueError, match="window=0"):
        ModulatorGuidedReadout(2, D, window=0)
    with pytest.raises(ValueError, match="in_features is required"):
        ModulatorGuidedReadout(2)
    with pytest.raises(ValueError, match="in_features=5 differs"):
        ModulatorGuidedReadout(TaskHeads(2, D), 5)


def test_stochastic_gains_tag_their_channels_end_to_end():
    """Gains on 8 channels of the last block: the readout finds exactly those channels."""
    torch.manual_seed(0)
    net = ConvNet(pool_grid=1).freeze()  # one feature per channel
    images = torch.randn(64, 3, 16, 16)
    with torch.no_grad():
        tagged = net(images).mean(0).topk(8).indices  # active channels, so their covariance is > 0
    variant = GainVariant("signed", 1.0, noisy=True, guided=True)  # couplings start at 0
    mod = GainModulation({"block3": 64}, n_tasks=2, sigma_m=0.3, variants=variant).attach(net).train()
    with torch.no_grad():
        mod.coupling["block3"][0, tagged] = 3.0  # task 0 modulates these; task 1 modulates nothing
    readout = ModulatorGuidedReadout(2, net.feature_dim).train()
    g = torch.Generator().manual_seed(0)
    for _ in range(40):  # routing passes: two modulator draws of every image
        x = images[torch.randint(0, 64, (32,), generator=g)] + 0.1 * torch.randn(32, 3, 16, 16, generator=g)
        task_ids = torch.randint(0, 2, (32,), generator=g)
        with torch.no_grad(), mod.context(task_ids.repeat(2), draw="route"):
            h = net(x.repeat(2, 1, 1, 1))
        readout.update_draws(h.view(2, 32, -1), task_ids, mod.last_m.view(2, 32))
    w = readout.weights
    others = torch.ones(64, dtype=torch.bool)
    others[tagged] = False
    assert w[0, tagged].min() > 10 * w[0, others].max()
    # task 1 modulates nothing: its covariances are estimation noise, far below task 0's tagged ones
    assert readout.covariance[1].abs().max() < 0.2 * readout.covariance[0, tagged].min()


def test_all_tasks_equals_each_tasks_head():
    torch.manual_seed(0)
    heads = TaskHeads(3, D, 2)
    h = torch.randn(5, D)
    every = heads.all_tasks(h)
    assert every.shape == (5, 3, 2)
    for t in range(3):
        assert torch.allclose(every[:, t], heads(h, torch.full((5,), t)), atol=1e-6)


def test_unit_correlation_is_the_pearson_correlation_over_units():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 16, generator=g)  # (S, T, D)
    y = 2.0 * x + 0.1 * torch.randn(2, 3, 16, generator=g)
    per_task = unit_correlation(x, y)
    assert per_task.shape == (2, 3)
    for s in range(2):
        for t in range(3):
            expected = torch.corrcoef(torch.stack([x[s, t], y[s, t]]))[0, 1]
            assert per_task[s, t].item() == pytest.approx(expected.item(), abs=1e-5)
    assert (per_task > 0.95).all()
    torch.testing.assert_close(unit_correlation(x, -y), -per_task)
    assert (unit_correlation(x, torch.ones_like(y)) == 0).all()  # a flat readout tags nothing
    with pytest.raises(ValueError, match="same"):
        unit_correlation(x, y[..., :8])


def test_draws_covariance_matches_a_hand_computation():
    """Per image, the unbiased covariance over its R draws; per task, the mean over its images."""
    g = torch.Generator().manual_seed(0)
    r, b = 3, 4
    h, m = torch.randn(r, b, 2, generator=g), torch.randn(r, b, generator=g)
    tasks = torch.tensor([0, 1, 1, 0])
    readout = ModulatorGuidedReadout(2, 2)
    readout.update_draws(h, tasks, m)
    for t in (0, 1):
        per_image = []
        for i in (tasks == t).nonzero().flatten().tolist():
            for k in range(2):
                hs, ms = h[:, i, k].tolist(), m[:, i].tolist()
                mh, mm = sum(hs) / r, sum(ms) / r
                per_image.append(sum((x - mh) * (y - mm) for x, y in zip(hs, ms, strict=True)) / (r - 1))
        expected = torch.tensor(per_image).view(-1, 2).mean(0)
        assert torch.allclose(readout.covariance[t], expected, atol=1e-6)
    assert readout.n_batches.tolist() == [1, 1]


def test_draws_covariance_ignores_image_variance():
    """Units whose value differs hugely between images but not with m get no weight; a unit that
    follows m within every image gets it all (the across-image estimator mixes the two)."""
    g = torch.Generator().manual_seed(1)
    r, b = 2, 64
    m = 1 + 0.1 * torch.randn(r, b, generator=g)
    image = 10 * torch.randn(b, generator=g)  # image-to-image variance, the same in every draw
    h = torch.stack([image.expand(r, b), 0.5 * m, torch.zeros(r, b)], -1)  # (R, B, 3)
    readout = ModulatorGuidedReadout(1, 3)
    readout.update_draws(h, torch.zeros(b, dtype=torch.long), m)
    assert torch.allclose(readout.weights[0], torch.tensor([0.0, 3.0, 0.0]), atol=1e-4)
    with pytest.raises(ValueError, match=r"must be \(R, B, D\) and \(R, B\) with R >= 2 draws"):
        readout.update_draws(h[:1], torch.zeros(b, dtype=torch.long), m[:1])


def test_plain_tasks_of_a_guided_readout_decode_with_unit_weights():
    readout = ModulatorGuidedReadout(2, 3)
    readout.covariance.copy_(torch.tensor([[1.0, 0.0, 2.0], [1.0, 0.0, 2.0]]))
    readout.guided.copy_(torch.tensor([True, False]))
    assert torch.allclose(readout.weights, torch.tensor([[1.0, 0.0, 2.0], [1.0, 1.0, 1.0]]))
