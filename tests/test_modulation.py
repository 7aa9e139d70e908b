"""Tests of the modulators: exact gains per sample and site, stochastic comodulation, hooks, errors.

Each site's output is recorded twice in the same forward pass, by a hook registered before the
modulator's (the raw output) and one registered after it (the modulated output), so the gain a
modulator applied can be read off exactly, even though it also changes the following layers.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from neuromod_lib import modulation
from neuromod_lib.models import ConvNet, count_parameters
from neuromod_lib.modulation import (
    FiLM,
    GainModulation,
    GainVariant,
    SEGain,
    context_vectors,
    make_modulation,
    trainable_parameters_per_task,
)

TASKS = torch.tensor([0, 2, 1, 2, 0])  # mixed tasks in one batch


class DenseNet(nn.Module):
    """A minimal backbone with dense sites (B, D), not derived from Backbone (duck typing)."""

    sites = {"fc1": 5, "fc2": 4}

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(3, 5), nn.Linear(5, 4)

    def site_module(self, name: str) -> nn.Module:
        return getattr(self, name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.tanh(self.fc1(x)))


def convnet() -> ConvNet:
    torch.manual_seed(0)
    return ConvNet().freeze()


def randomise(module: nn.Module, scale: float = 0.5, seed: int = 1) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return module


def has_hooks(backbone: nn.Module) -> bool:
    return any(m._forward_hooks for m in backbone.modules())


def run_recorded(backbone, modulation, x, task_ids):
    """One forward pass; return (raw site outputs, modulated site outputs, backbone output)."""
    raw, out = {}, {}

    def recorder(store, site):
        return lambda module, inputs, output: store.__setitem__(site, output.detach().clone())

    handles = [backbone.site_module(s).register_forward_hook(recorder(raw, s)) for s in modulation.sites]
    modulation.attach(backbone)
    handles += [backbone.site_module(s).register_forward_hook(recorder(out, s)) for s in modulation.sites]
    try:
        with modulation.context(task_ids):
            result = backbone(x)
    finally:
        modulation.detach()
        for handle in handles:
            handle.remove()
    return raw, out, result


def expand(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.reshape(*values.shape, *([1] * (like.dim() - 2)))


# --- gain modulation -------------------------------------------------------------------------


def test_deterministic_gains_leave_features_unchanged_at_init():
    net, x = convnet(), torch.randn(5, 3, 16, 16)
    reference = net(x)
    mod = GainModulation(net.sites, n_tasks=3).attach(net)
    with mod.context(TASKS):
        assert torch.allclose(net(x), reference)
    assert all(torch.equal(c, torch.zeros_like(c)) for c in mod.coupling.values())


@pytest.mark.parametrize("make_net", [convnet, DenseNet])
def test_deterministic_gains_multiply_each_site_by_exp_c_of_the_sample_task(make_net):
    net = make_net()
    mod = randomise(GainModulation(net.sites, n_tasks=3))
    x = torch.randn(5, 3, 16, 16) if isinstance(net, ConvNet) else torch.randn(5, 3)
    raw, out, _ = run_recorded(net, mod, x, TASKS)
    for site in net.sites:
        gain = mod.coupling[site].detach()[TASKS].exp()  # (B, C), one row per sample's task
        assert torch.allclose(out[site], raw[site] * expand(gain, raw[site]), rtol=1e-5, atol=1e-6)
    last = list(net.sites)[-1]
    assert not torch.allclose(out[last], raw[last])  # the gains did something


@pytest.mark.parametrize("make_net", [convnet, DenseNet])
def test_stochastic_gains_share_one_modulator_per_sample_across_sites(make_net):
    """The paper's variant: c = w² and m = 1 + xi, one xi per sample shared by every site."""
    net, s = make_net(), 0.5
    mod = randomise(GainModulation(net.sites, n_tasks=3, mode="stochastic", sigma_m=s), scale=1.0).train()
    x = torch.randn(5, 3, 16, 16) if isinstance(net, ConvNet) else torch.randn(5, 3)
    raw, out, _ = run_recorded(net, mod, x, TASKS)
    m = mod.last_m
    assert m.shape == (5,) and m.std() > 0.05 and abs(float(m.mean()) - 1) < 1  # one draw per sample
    for site in net.sites:
        c = mod.coupling[site].detach()[TASKS] ** 2  # non-negative couplings
        log_gain = c * m[:, None] - s**2 * c**2 / 2
        assert torch.allclose(out[site], raw[site] * expand(log_gain.exp(), raw[site]), rtol=1e-5, atol=1e-6)
    if isinstance(net, DenseNet):  # read m back from each site's gains: the same value everywhere
        for site in net.sites:
            c = mod.coupling[site].detach()[TASKS] ** 2
            m_hat = (torch.log(out[site] / raw[site]) + s**2 * c**2 / 2) / c
            assert torch.allclose(m_hat, m[:, None].expand_as(m_hat), atol=1e-3)


def test_couplings_signed_start_at_zero_nonneg_start_at_one():
    sites = {"a": 3}
    signed = GainModulation(sites, 2, variants=GainVariant("signed"))
    nonneg = GainModulation(sites, 2, variants=GainVariant("nonneg"))
    assert torch.equal(signed.couplings("a"), torch.zeros(2, 3))
    assert torch.equal(nonneg.couplings("a"), torch.ones(2, 3))
    with torch.no_grad():
        nonneg.coupling["a"].fill_(-2.0)
    assert torch.equal(nonneg.couplings("a"), torch.full((2, 3), 4.0))  # c = w² >= 0 whatever w


@pytest.mark.parametrize(
    ("variant", "expected"),
    [(GainVariant("nonneg", 1.0, noisy=True), "exp(c)"), (GainVariant("signed", 0.0, noisy=True), "1")],
)
def test_stochastic_mean_gain_is_exp_c_mean(variant, expected):
    """E exp(c m - s² c² / 2) = exp(c E[m]): exp(c) for m = 1 + xi, 1 for the zero-mean ablation."""
    net, s, n = DenseNet(), 0.5, 20_000
    mod = GainModulation(net.sites, 1, sigma_m=s, generator=torch.Generator(), variants=variant).train()
    w = torch.tensor([[-1.2, -0.6, 0.5, 0.8, 1.1]])
    with torch.no_grad():
        mod.coupling["fc1"].copy_(w)
    mod.generator.manual_seed(0)
    raw, out, _ = run_recorded(net, mod, torch.randn(n, 3), torch.zeros(n, dtype=torch.long))
    gains = out["fc1"] / raw["fc1"]  # (n, 5)
    c = mod.couplings("fc1")[0].detach()
    mean_gain = (c * variant.mean).exp()
    standard_error = gains.std(dim=0) / math.sqrt(n)
    assert ((gains.mean(dim=0) - mean_gain).abs() < 5 * standard_error).all()
    assert expected == "1" or not torch.allclose(mean_gain, torch.ones(5))
    assert abs(float(mod.last_m.std()) - s) < 0.02 and abs(float(mod.last_m.mean()) - variant.mean) < 0.02


def test_same_seed_same_draws_and_fresh_draws_each_batch():
    def draws(seed):
        mod = GainModulation({"a": 2}, 2, mode="stochastic", generator=torch.Generator().manual_seed(seed))
        out = []
        for _ in range(2):
            mod.set_context(torch.tensor([0, 1, 1]))
            out.append(mod.last_m.clone())
        return out

    first, again, other = draws(7), draws(7), draws(8)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], first[1])  # a new m for every batch
    assert not torch.equal(first[0], other[0])


def test_generator_state_travels_with_the_state_dict():
    mod = GainModulation({"a": 2}, 1, mode="stochastic", generator=torch.Generator().manual_seed(3))
    state = {k: v.clone() for k, v in mod.state_dict().items()}
    mod.set_context(torch.zeros(4, dtype=torch.long))
    first = mod.last_m.clone()
    mod.load_state_dict(state)
    mod.set_context(torch.zeros(4, dtype=torch.long))
    assert torch.equal(mod.last_m, first)


def test_without_a_generator_draws_follow_the_global_seed():
    mod = GainModulation({"a": 2}, 1, mode="stochastic")
    torch.manual_seed(5)
    mod.set_context(torch.zeros(3, dtype=torch.long))
    first = mod.last_m.clone()
    torch.manual_seed(5)
    mod.set_context(torch.zeros(3, dtype=torch.long))
    assert torch.equal(mod.last_m, first)


def test_eval_uses_the_mean_gain_and_routing_draws_only_for_guided_contexts():
    net, s = DenseNet(), 0.3
    g = torch.Generator().manual_seed(0)
    mod = randomise(GainModulation(net.sites, 3, mode="stochastic", sigma_m=s, generator=g)).eval()
    state = g.get_state()
    raw, out, _ = run_recorded(net, mod, torch.randn(5, 3), TASKS)
    assert torch.equal(g.get_state(), state)  # nothing drawn
    assert torch.equal(mod.last_m, torch.ones(5))
    for site in net.sites:
        c = mod.coupling[site].detach()[TASKS] ** 2
        assert torch.allclose(out[site], raw[site] * expand(c.exp(), raw[site]), rtol=1e-5, atol=1e-6)
    # the predecessor's protocol: deterministic training passes, noise only in the routing pass
    routing = GainVariant("nonneg", 1.0, noisy=False, guided=True)
    mixed = GainModulation({"a": 2}, 2, sigma_m=s, variants=[routing, GainVariant("nonneg")]).train()
    ids = torch.tensor([0, 0, 1, 1])
    mixed.set_context(ids)  # training pass: nobody draws
    assert torch.equal(mixed.last_m, torch.ones(4)) and torch.equal(mixed.last_sigma, torch.zeros(4))
    mixed.set_context(ids, draw="route")  # routing pass: only the guided context draws
    assert (mixed.last_m[:2] != 1).all() and torch.equal(mixed.last_m[2:], torch.ones(2))
    assert torch.equal(mixed.last_sigma, torch.tensor([s, s, 0.0, 0.0]))
    with pytest.raises(ValueError, match=r"^draw='noise' is unknown; allowed: train, mean, route$"):
        mixed.set_context(ids, draw="noise")


def test_off_mode_is_identity_without_trainable_parameters():
    net, x = DenseNet(), torch.randn(5, 3)
    mod = randomise(GainModulation(net.sites, 3, mode="off"))
    raw, out, result = run_recorded(net, mod, x, TASKS)
    assert all(torch.equal(raw[s], out[s]) for s in net.sites)
    assert torch.equal(result, net(x))
    assert trainable_parameters_per_task(mod) == 0 and mod.last_m is None
    empty = make_modulation("none", {}, 3).attach(net)  # no sites at all: a valid "no modulation"
    assert not has_hooks(net) and trainable_parameters_per_task(empty) == 0
    with empty.context(TASKS):
        assert torch.equal(net(x), result)


def test_only_coupling_is_trainable_and_receives_gradients():
    net = convnet()
    mod = GainModulation(net.sites, 3, mode="stochastic", sigma_m=0.5).attach(net).train()
    trainable = [n for n, p in [*net.named_parameters(), *mod.named_parameters()] if p.requires_grad]
    assert trainable == [f"coupling.block{i}" for i in (1, 2, 3)]
    with mod.context(TASKS):
        loss = (net(torch.randn(5, 3, 16, 16)) ** 2).sum()
    loss.backward()
    for site in net.sites:
        grad = mod.coupling[site].grad
        assert grad is not None and grad[:3].abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())


def test_detach_removes_the_hooks():
    net, x = convnet(), torch.randn(2, 3, 8, 8)
    reference = net(x)
    mod = randomise(GainModulation(net.sites, 2)).attach(net)
    mod.attach(net)  # re-attaching replaces the hooks instead of doubling them
    assert sum(len(m._forward_hooks) for m in net.modules()) == 3
    with mod.context(torch.tensor([0, 1])):
        assert not torch.allclose(net(x), reference)
    mod.detach()
    assert not has_hooks(net) and not mod.attached
    assert torch.allclose(net(x), reference)


def test_attach_refuses_missing_or_mismatched_sites_before_hooking():
    net = convnet()
    with pytest.raises(ValueError, match=r"sites \['layer9'\].*available sites: \{'block1': 16"):
        GainModulation({"block1": 16, "layer9": 3}, 2).attach(net)
    assert not has_hooks(net)
    with pytest.raises(ValueError, match=r"sites have the wrong number of channels.*'block2': \(5, 32\)"):
        GainModulation({"block1": 16, "block2": 5}, 2).attach(net)
    assert not has_hooks(net)


def test_invalid_arguments_are_errors():
    with pytest.raises(ValueError, match=r"mode='noisy'.*allowed: deterministic, stochastic, off"):
        GainModulation({"a": 2}, 2, mode="noisy")
    with pytest.raises(ValueError, match="sigma_m=-0.1"):
        GainModulation({"a": 2}, 2, sigma_m=-0.1)
    with pytest.raises(ValueError, match="n_tasks=0"):
        GainModulation({"a": 2}, 0)
    for bad in ({"a.b": 2}, {"a": 0}, ["a"]):
        with pytest.raises(ValueError, match="sites="):
            FiLM(bad, 2)
    mod = GainModulation({"a": 2}, 3)
    for bad in (torch.tensor([0, 3]), torch.tensor([-1, 0])):
        with pytest.raises(ValueError, match=r"task_ids must lie in \[0, 2\]"):
            mod.set_context(bad)
    with pytest.raises(ValueError, match="task_ids must be a"):
        mod.set_context(torch.tensor([0.0, 1.0]))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: GainModulation({"a": 2}, 2, sigma_m=True), r"^sigma_m=True is not allowed; allowed"),
        (lambda: GainModulation({"a": 2}, 2, sigma_m=math.nan), r"^sigma_m=nan is not allowed"),
        (lambda: GainModulation({"a": 2}, 2, sigma_m=math.inf), r"^sigma_m=inf is not allowed"),
        (
            lambda: GainModulation({"a": 2}, 2, variants=[GainVariant()]),
            r"^variants must be a GainVariant or 2",
        ),
        (
            lambda: GainVariant(coupling="squared"),
            r"^coupling='squared' is unknown; allowed: signed, nonneg$",
        ),
        (lambda: GainModulation({"a": 2}, True), r"^n_tasks=True must be an integer >= 1$"),
        (lambda: SEGain({"a": 2}, 2, reduction=True), r"^reduction=True must be an integer >= 1$"),
        (lambda: trainable_parameters_per_task(FiLM({"a": 2}, 2), True), r"^n_tasks=True: pass an integer"),
    ],
)
def test_booleans_nan_and_inf_are_not_numbers(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_context_vectors_refuse_non_finite_values(bad):
    context = torch.tensor([[1.0, 0.0], [0.5, bad]])
    message = rf"^context contains NaN or infinite values \({bad} at index \[1, 1\]\); allowed: finite"
    with pytest.raises(ValueError, match=message):
        context_vectors(context, 2)
    assert torch.equal(context_vectors(torch.tensor([1, 0]), 2), torch.tensor([[0.0, 1.0], [1.0, 0.0]]))


def test_context_is_required_and_must_match_the_batch():
    net = DenseNet()
    mod = GainModulation(net.sites, 2).attach(net)
    with pytest.raises(RuntimeError, match="no context"):
        net(torch.randn(2, 3))
    with mod.context(torch.tensor([0, 1, 1])), pytest.raises(ValueError, match="task_ids has 3 entries"):
        net(torch.randn(2, 3))
    assert mod.task_ids is None  # the context manager cleared it


# --- FiLM and SE gains -----------------------------------------------------------------------


def test_film_is_identity_at_init_and_affine_per_task():
    net, x = DenseNet(), torch.randn(5, 3)
    film = FiLM(net.sites, 3)
    raw, out, _ = run_recorded(net, film, x, TASKS)
    assert all(torch.allclose(raw[s], out[s]) for s in net.sites)
    randomise(film)
    raw, out, _ = run_recorded(net, film, x, TASKS)
    for s in net.sites:
        expected = film.gamma[s].detach()[TASKS] * raw[s] + film.beta[s].detach()[TASKS]
        assert torch.allclose(out[s], expected, atol=1e-6)


def test_se_gain_is_identity_at_init():
    net, x = convnet(), torch.randn(5, 3, 16, 16)
    se = SEGain(net.sites, 3)
    raw, out, _ = run_recorded(net, se, x, TASKS)
    assert all(torch.allclose(raw[s], out[s]) for s in net.sites)


def test_se_gain_matches_a_per_sample_reference():
    net, x = convnet(), torch.randn(5, 3, 16, 16)
    se = randomise(SEGain(net.sites, 3))
    raw, out, _ = run_recorded(net, se, x, TASKS)
    for s in net.sites:
        w1, b1, w2, b2 = (p[s].detach() for p in (se.w1, se.b1, se.w2, se.b2))
        for b, t in enumerate(TASKS.tolist()):
            z = raw[s][b].mean(dim=(1, 2))
            gain = 2 * torch.sigmoid(torch.relu(z @ w1[t] + b1[t]) @ w2[t] + b2[t])
            assert torch.allclose(out[s][b], raw[s][b] * gain[:, None, None], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(out["block3"], raw["block3"])


# --- sizes and factory -----------------------------------------------------------------------


def test_trainable_parameters_per_task():
    sites = ConvNet().sites  # 16, 32, 64 channels
    assert trainable_parameters_per_task(GainModulation(sites, 5)) == 112
    assert trainable_parameters_per_task(GainModulation(sites, 5, mode="stochastic")) == 112
    assert trainable_parameters_per_task(FiLM(sites, 5)) == 224
    se = SEGain(sites, 5)  # bottleneck of 4 units at every site: C*4 + 4 + 4*C + C
    assert se.hidden == {"block1": 4, "block2": 4, "block3": 4}
    assert trainable_parameters_per_task(se) == sum(9 * c + 4 for c in (16, 32, 64)) == 1020
    assert count_parameters(se) == 5 * 1020
    with pytest.raises(ValueError, match="6 trainable parameters are not a multiple of n_tasks=4"):
        trainable_parameters_per_task(nn.Linear(2, 2), n_tasks=4)


def test_make_modulation_kinds():
    sites = {"a": 2}
    expected = {
        "deterministic_gain": (GainModulation, "deterministic"),
        "stochastic_gain": (GainModulation, "stochastic"),
        "none": (GainModulation, "off"),
        "film": (FiLM, None),
        "se_gain": (SEGain, None),
    }
    for kind, (cls, mode) in expected.items():
        mod = make_modulation(kind, sites, 2)
        assert type(mod) is cls and getattr(mod, "mode", None) == mode
    assert make_modulation("stochastic_gain", sites, 2, sigma_m=0.2).sigma_m == 0.2
    with pytest.raises(ValueError, match=r"kind='gain'.*allowed: deterministic_gain, stochastic_gain"):
        make_modulation("gain", sites, 2)


# --- the formulas, once each ------------------------------------------------------------------


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_mix_picks_rows_for_one_hot_contexts_and_mixes_them_linearly():
    table = torch.randn(3, 4, 2, generator=gen())
    ids = torch.tensor([2, 0, 1, 2])
    one_hot = nn.functional.one_hot(ids, 3).float()
    assert torch.equal(modulation.mix(ids, table), table[ids])
    assert torch.equal(modulation.mix(one_hot, table), table[ids])  # exactly: products with 0 and 1
    half = torch.tensor([[0.5, 0.5, 0.0]])
    torch.testing.assert_close(modulation.mix(half, table)[0], (table[0] + table[1]) / 2)
    stack = torch.randn(2, 3, 5, generator=gen(1))  # two networks, each its own table
    c = torch.rand(2, 4, 3, generator=gen(2))
    torch.testing.assert_close(modulation.mix(c, stack), torch.einsum("sbk,skn->sbn", c, stack))
    with pytest.raises(ValueError, match=r"context \[4, 2\] and table \[3, 4, 2\] do not match"):
        modulation.mix(torch.ones(4, 2), table)


def test_gain_formulas_by_hand():
    x, c = torch.rand(4, 3, 5, 5, generator=gen()), torch.randn(4, 3, generator=gen(1))
    assert torch.equal(modulation.exp_gain(x, c), x * c.exp()[:, :, None, None])  # per channel
    h = torch.rand(4, 3, generator=gen(2))
    assert torch.equal(modulation.exp_gain(h, c), h * c.exp())  # per unit
    m, s = 0.3 * torch.randn(4, generator=gen(3)), 0.3
    expected = c * m[:, None] - s**2 * c**2 / 2
    torch.testing.assert_close(modulation.stochastic_log_gain(c, m, s), expected)
    beta = torch.randn(4, 3, generator=gen(4))
    assert torch.equal(modulation.add_bias(x, beta), x + beta[:, :, None, None])
    assert torch.equal(modulation.film(x, c, beta), c[:, :, None, None] * x + beta[:, :, None, None])
    assert torch.equal(modulation.apply_gain(h, c), h * c)


def test_draw_modulator():
    assert torch.equal(modulation.draw_modulator(5, 0.3, draw=False), torch.zeros(5))
    a = modulation.draw_modulator(5, 0.3, draw=True, generator=gen(7))
    assert torch.equal(a, 0.3 * torch.randn(5, generator=gen(7)))
    torch.manual_seed(7)
    assert torch.equal(modulation.draw_modulator(5, 0.3, draw=True), a)  # the global RNG otherwise


def test_excitability_is_one_definition_with_gain_one_plus_cg():
    drive, c = torch.randn(4, 6, generator=gen()), torch.softmax(torch.randn(4, 3, generator=gen(1)), 1)
    g, b = torch.randn(3, 6, generator=gen(2)), torch.randn(3, 6, generator=gen(3))
    expected = (1 + c @ g) * drive + c @ b
    torch.testing.assert_close(modulation.excitability(drive, c, g, b), expected)
    gain, bias = modulation.excitability_terms(c, g, b)
    torch.testing.assert_close(gain, 1 + c @ g)
    torch.testing.assert_close(bias, c @ b)
    zero = torch.zeros(3, 6)
    assert torch.equal(modulation.excitability(drive, c, zero, zero), drive)  # no modulation at 0


def test_synaptic_changes_by_hand():
    k, n, m, r, b = 3, 5, 4, 2, 6
    u, v = torch.randn(k, n, r, generator=gen()), torch.randn(k, m, r, generator=gen(1))
    c, x = torch.randn(b, k, generator=gen(2)), torch.randn(b, m, generator=gen(3))
    by_hand = torch.stack([sum(c[i, j] * u[j] @ v[j].T for j in range(k)) for i in range(b)])
    matrices = modulation.lowrank_change(c, u, v)
    torch.testing.assert_close(matrices, by_hand)
    torch.testing.assert_close(modulation.lowrank_change(c, u, v, x), (matrices @ x[:, :, None])[..., 0])
    w, scale = torch.randn(n, m, generator=gen(4)), torch.randn(k, n, m, generator=gen(5))
    by_hand = torch.stack([w * (1 + sum(c[i, j] * scale[j] for j in range(k))) for i in range(b)])
    torch.testing.assert_close(modulation.elementwise_scaling(w, c, scale), by_hand)


def test_random_weight_logits_agree_in_every_order():
    h, contexts = torch.rand(5, 12, generator=gen()), torch.randn(3, 12, generator=gen(1))
    strengths, readout = 1 + 0.1 * torch.randn(3, generator=gen(2)), torch.randn(4, 12, generator=gen(3))
    ids = torch.tensor([0, 2, 1, 1, 0])
    one_hot = nn.functional.one_hot(ids, 3).float()
    paper = strengths[ids, None] * ((h * contexts[ids]) @ readout.T)
    assert torch.equal(modulation.random_weight_logits(h, ids, contexts, strengths, readout), paper)
    torch.testing.assert_close(
        modulation.random_weight_logits(h, one_hot, contexts, strengths, readout), paper
    )
    every = modulation.random_weight_logits(h, None, contexts, strengths, readout)
    torch.testing.assert_close(every[ids, torch.arange(5)], paper)
    modulated = modulation.random_weight_modulation(h, one_hot, contexts, strengths)
    torch.testing.assert_close(modulated, h * strengths[ids, None] * contexts[ids])


def test_check_task_ids_one_place_for_every_model():
    assert torch.equal(modulation.check_task_ids(2, 3, batch=4), torch.full((4,), 2))
    with pytest.raises(ValueError, match=r"^task 3 was never trained; trained tasks: 0\.\.2$"):
        modulation.check_task_ids(torch.tensor([0, 3]), 3, learned=True)
    with pytest.raises(ValueError, match=r"^task_ids must be a \(B,\) integer tensor \(one id per sample\)"):
        modulation.check_task_ids(torch.tensor([True, False]), 3)
    with pytest.raises(ValueError, match=r"^context must be \(2, 3\) vectors, a weight per task, or \(2,\)"):
        modulation.context_vectors(torch.ones(3, 3), 3, batch=2)
