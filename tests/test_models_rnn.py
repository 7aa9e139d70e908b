"""Tests of the stacked context-modulated RNNs: an explicit reference loop, stacks, pathways, errors.

The reference (:func:`reference`) recomputes one network's trials step by step in float64 from
the equations of the module docstring, reading the parameters but none of the model's code,
with every context parameter moved away from its "no modulation" start so that each pathway
actually acts.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from neuromod_lib.models.rnn import PATHWAYS, ModulatedRNN, RNNConfig, masked_mse

pytestmark = pytest.mark.usefixtures("one_thread")

N, NI, NO, K = 8, 5, 3, 3  # neurons, inputs, outputs, contexts
CONTEXT_NAMES = ("ctx_gain", "ctx_bias", "ctx_scale", "ctx_u", "ctx_v")
SHARED_NAMES = ("w_in", "w_rec", "bias", "w_out", "b_out")
FORMS = [("elementwise", 1), ("lowrank", 2)]


def forms() -> list:
    """``(form, rank)`` for a stack that uses synapses."""
    return list(FORMS)


STACKS = [  # (synaptic form, rank, matched) of a stack of all four pathways
    ("elementwise", 1, False),
    ("lowrank", 2, False),
    ("lowrank", 1, True),
]


def cases(pathways) -> list:
    """``(pathway, form, rank)`` for every pathway and form."""
    return [
        pytest.param(pathway, form, rank, id=f"{pathway}-{form}")
        for pathway in pathways
        for form, rank in FORMS
    ]


def config(**kw) -> RNNConfig:
    base = dict(n_neurons=N, n_inputs=NI, n_outputs=NO, n_contexts=K, dt=20.0, tau=100.0)
    return RNNConfig(**{**base, **kw})


def model(pathways="both", seed: int = 0, sizes=None, seeds=None, **kw) -> ModulatedRNN:
    gen = torch.Generator().manual_seed(seed)
    return ModulatedRNN(config(**kw), pathways, gen, sizes=sizes, seeds=seeds)


def randomise_context(net: ModulatedRNN, seed: int = 1, scale: float = 0.3) -> ModulatedRNN:
    """Give every context parameter random non-zero values (all pathways then act)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name in CONTEXT_NAMES:
                p.copy_(scale * torch.randn(p.shape, generator=g))
    return net


def randn(*shape: int, seed: int = 2) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def contexts(*shape: int, seed: int = 3) -> torch.Tensor:
    """Dense random context vectors (every entry non-zero), so every task's parameters act."""
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) + 0.2


def reference(net: ModulatedRNN, s: int, inputs: torch.Tensor, context: torch.Tensor):
    """Network ``s`` on trials ``inputs`` (B, T, I) under one context (K,), step by step, in float64."""
    cfg, path = net.config, net.pathways[s]
    p = {name: t[s].detach().double() for name, t in net.named_parameters()}
    c = context.double()
    gain, extra, w = torch.ones(cfg.n_neurons, dtype=torch.float64), 0.0, p["w_rec"]
    if path in ("excitability", "both"):
        gain = 1 + c @ p["ctx_gain"]
    if path in ("rule", "excitability") or (path == "both" and not cfg.matched):
        extra = c @ p["ctx_bias"]
    if path in ("synaptic", "both"):
        if cfg.synaptic == "elementwise":
            w = w * (1 + sum(c[k] * p["ctx_scale"][k] for k in range(cfg.n_contexts)))
        else:  # matched "both": the fixed random initial U0 and a learned V
            fixed = path == "both" and cfg.matched
            u = net.ctx_u0[s].double() if fixed else p["ctx_u"]
            w = w + sum(c[k] * u[k] @ p["ctx_v"][k].T for k in range(cfg.n_contexts))
    f = {"softplus": nn.functional.softplus, "relu": torch.relu}[cfg.activation]
    a = cfg.dt / cfg.tau
    outs, states = (
        torch.zeros(*inputs.shape[:2], cfg.n_outputs),
        torch.zeros(*inputs.shape[:2], cfg.n_neurons),
    )
    for b in range(inputs.shape[0]):
        r = torch.zeros(cfg.n_neurons, dtype=torch.float64)
        for t in range(inputs.shape[1]):
            u = inputs[b, t].double()
            x = gain * (p["w_in"] @ u + w @ r) + p["bias"] + extra
            r = (1 - a) * r + a * f(x)
            states[b, t] = r.float()
            outs[b, t] = torch.sigmoid(p["w_out"] @ r + p["b_out"]).float()
    return outs, states


def grads(net: ModulatedRNN) -> dict[str, torch.Tensor]:
    return {
        name: (p.grad if p.grad is not None else torch.zeros_like(p)) for name, p in net.named_parameters()
    }


# --- shapes ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "inputs_shape, context",
    [
        ((3, 2, 2, 4, NI), contexts(2, K)),  # (S, G, B, T, I), (G, K)
        ((2, 2, 4, NI), contexts(3, 2, K)),  # (G, B, T, I), (S, G, K)
        ((2, 2, 4, NI), torch.tensor([2, 0])),  # task ids (G,)
        ((3, 2, 2, 4, NI), torch.tensor([[0, 1], [1, 2], [2, 2]])),  # task ids (S, G)
    ],
)
def test_forward_shapes(inputs_shape, context):
    net = model(["rule", "excitability", "synaptic"])
    outputs, states = net(randn(*inputs_shape), context)
    assert outputs.shape == (3, 2, 2, 4, NO)
    assert states.shape == (3, 2, 2, 4, N)
    assert bool(((outputs > 0) & (outputs < 1)).all())
    gain, bias, w = net.effective(context)
    assert gain.shape == bias.shape == (3, 2, N)
    assert w.shape[0] == 3 and w.shape[-2:] == (N, N)


def test_integer_task_ids_are_one_hot_contexts():
    net = randomise_context(model(["excitability", "both"]))
    x = randn(2, 1, 3, NI)
    ids = torch.tensor([2, 0])
    by_id, _ = net(x, ids, noise=False)
    by_vector, _ = net(x, torch.eye(K)[ids], noise=False)
    assert torch.equal(by_id, by_vector)


# --- the equations ---------------------------------------------------------------------------
@pytest.mark.parametrize("pathway, form, rank", cases(PATHWAYS))
def test_forward_matches_the_reference_loop(pathway, form, rank):
    net = randomise_context(model(pathway, synaptic=form, rank=rank))
    x, ctx = randn(2, 2, 6, NI), contexts(2, K)
    outputs, states = net(x, ctx, noise=False)
    for g in range(2):
        ref_out, ref_states = reference(net, 0, x[g], ctx[g])
        torch.testing.assert_close(states[0, g], ref_states, atol=1e-5, rtol=0)
        torch.testing.assert_close(outputs[0, g], ref_out, atol=1e-5, rtol=0)


@pytest.mark.parametrize("pathway", PATHWAYS)
def test_matched_networks_match_the_reference_loop(pathway):
    """matched=True: "both" has the gain, no context bias, and a rank-1 change U0 V^T with U0 fixed."""
    net = randomise_context(model(pathway, matched=True, activation="relu", w_rec_scale=0.9))
    x, ctx = randn(1, 3, 6, NI), contexts(1, K)
    outputs, states = net(x, ctx, noise=False)
    ref_out, ref_states = reference(net, 0, x[0], ctx[0])
    torch.testing.assert_close(states[0, 0], ref_states, atol=1e-5, rtol=0)
    torch.testing.assert_close(outputs[0, 0], ref_out, atol=1e-5, rtol=0)


def test_transition_is_one_step_of_forward():
    net = randomise_context(model(list(PATHWAYS)))
    u, ctx = randn(4, NI), contexts(4, K)
    x = u[:, None, None].expand(4, 1, 2, NI)  # constant input over two steps
    _, states = net(x, ctx, noise=False)
    step = net.transition(u, ctx)
    first = step(torch.zeros(len(PATHWAYS), 4, N))
    torch.testing.assert_close(first, states[:, :, 0, 0], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(step(first), states[:, :, 0, 1], atol=1e-6, rtol=1e-5)


# --- stacks ----------------------------------------------------------------------------------
@pytest.mark.parametrize("form, rank", forms())
def test_a_stack_computes_and_differentiates_like_separate_networks(form, rank):
    stack = randomise_context(model(list(PATHWAYS), synaptic=form, rank=rank))
    s = stack.n_networks
    x, ctx = randn(s, 2, 2, 5, NI), contexts(s, 2, K)
    targets, mask = torch.rand(s, 2, 2, 5, NO), torch.rand(s, 2, 2, 5)
    outputs, states = stack(x, ctx, noise=False)
    masked_mse(outputs, targets, mask).sum().backward()
    stacked = grads(stack)
    for i, pathway in enumerate(PATHWAYS):
        alone = ModulatedRNN(stack.config, pathway)
        with torch.no_grad():
            for name, p in alone.named_parameters():
                p.copy_(getattr(stack, name)[i : i + 1])
        out, st = alone(x[i : i + 1], ctx[i : i + 1], noise=False)
        torch.testing.assert_close(out, outputs[i : i + 1], atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(st, states[i : i + 1], atol=1e-6, rtol=1e-5)
        masked_mse(out, targets[i : i + 1], mask[i : i + 1]).sum().backward()
        for name, g in grads(alone).items():
            torch.testing.assert_close(g, stacked[name][i : i + 1], atol=1e-6, rtol=1e-5, msg=name)


def test_gradient_clipping_is_per_network():
    net = model(["both", "both", "rule"])
    gen = torch.Generator().manual_seed(4)
    for p in net.parameters():
        p.grad = torch.randn(p.shape, generator=gen)
    raw = {name: g.clone() for name, g in grads(net).items()}
    norms = torch.stack([g.reshape(3, -1).square().sum(1) for g in raw.values()]).sum(0).sqrt()
    # network 0: a huge gradient; network 1: norm 0.5; network 2: norm 3
    wanted = torch.tensor([1e4, 0.5, 3.0])
    with torch.no_grad():
        for p in net.parameters():
            p.grad *= (wanted / norms).reshape(-1, *([1] * (p.dim() - 1)))
    before = {name: g.clone() for name, g in grads(net).items()}
    returned = net.clip_grad_norm_(1.0)
    torch.testing.assert_close(returned, wanted, rtol=1e-5, atol=0)
    after = grads(net)
    new_norms = torch.stack([g.reshape(3, -1).square().sum(1) for g in after.values()]).sum(0).sqrt()
    torch.testing.assert_close(new_norms, torch.tensor([1.0, 0.5, 1.0]), rtol=1e-5, atol=0)
    for name in after:  # network 1 is untouched by network 0's huge gradient
        assert torch.equal(after[name][1], before[name][1]), name
    # the same as torch's global clipping applied to each network alone
    for i in range(3):
        alone = [before[name][i].clone() for name in before]
        params = [nn.Parameter(torch.zeros_like(a)) for a in alone]
        for p, a in zip(params, alone, strict=True):
            p.grad = a
        nn.utils.clip_grad_norm_(params, 1.0)
        for p, name in zip(params, before, strict=True):
            torch.testing.assert_close(p.grad, after[name][i], rtol=1e-5, atol=1e-7)


# --- what each pathway changes ---------------------------------------------------------------
CHANGES = {
    "rule": {"bias"},
    "excitability": {"gain", "bias"},
    "synaptic": {"w"},
    "both": {"gain", "bias", "w"},
}


@pytest.mark.parametrize("pathway, form, rank", cases(PATHWAYS))
def test_each_pathway_changes_only_what_it_claims(pathway, form, rank):
    changes = CHANGES[pathway]
    net = randomise_context(model(pathway, synaptic=form, rank=rank))
    eff = {}
    for name, ctx in (("a", torch.eye(K)[:1]), ("b", torch.tensor([[0.2, 0.5, -0.7]]))):
        gain, bias, w = net.effective(ctx)
        eff[name] = {"gain": gain[0, 0], "bias": bias[0, 0], "w": w[0, 0]}
    for part in ("gain", "bias", "w"):
        differs = not torch.allclose(eff["a"][part], eff["b"][part])
        assert differs == (part in changes), part
    if "gain" not in changes:
        assert torch.equal(eff["a"]["gain"], torch.ones(N))
    if "w" not in changes:
        assert torch.equal(eff["a"]["w"], net.w_rec[0])
    if "bias" not in changes:
        assert torch.equal(eff["a"]["bias"], net.bias[0])


UNUSED = {
    ("rule", False): {"ctx_gain", "ctx_scale", "ctx_u", "ctx_v"},
    ("excitability", False): {"ctx_scale", "ctx_u", "ctx_v"},
    ("synaptic", False): {"ctx_gain", "ctx_bias"},
    ("both", False): set(),
    ("rule", True): {"ctx_gain", "ctx_u", "ctx_v"},
    ("excitability", True): {"ctx_u", "ctx_v"},
    ("synaptic", True): {"ctx_gain", "ctx_bias"},
    ("both", True): {"ctx_bias", "ctx_u"},
}


@pytest.mark.parametrize("form, rank, matched", STACKS)
def test_unused_pathway_parameters_get_zero_gradients_and_stay_put(form, rank, matched):
    net = randomise_context(model(list(PATHWAYS), synaptic=form, rank=rank, matched=matched))
    start = {name: p.detach().clone() for name, p in net.named_parameters()}
    optimizer = torch.optim.Adam(net.parameters(), lr=0.1)
    s = net.n_networks
    for _ in range(2):
        optimizer.zero_grad()
        outputs, _ = net(randn(s, K, 2, 4, NI), torch.eye(K), noise=False)
        masked_mse(outputs, torch.rand(outputs.shape), torch.ones(outputs.shape[:-1])).sum().backward()
        g = grads(net)
        for i, pathway in enumerate(PATHWAYS):
            for name in CONTEXT_NAMES:
                if not hasattr(net, name):
                    continue
                unused = name in UNUSED[(pathway, matched)]
                assert bool((g[name][i] == 0).all()) == unused, (pathway, name)
        optimizer.step()
    for i, pathway in enumerate(PATHWAYS):
        for name, p in net.named_parameters():
            moved = not torch.equal(p[i], start[name][i])
            assert moved == (name not in UNUSED[(pathway, matched)]), (pathway, name)


# --- initialisation: no modulation -----------------------------------------------------------
@pytest.mark.parametrize("form, rank", forms())
def test_every_pathway_starts_without_modulation(form, rank):
    net = model(list(PATHWAYS), synaptic=form, rank=rank)
    gain, bias, w = net.effective(contexts(4, K))
    assert torch.equal(gain, torch.ones(4, 4, N))
    assert torch.equal(bias, net.bias[:, None].expand(4, 4, N))
    assert torch.equal(w.expand(4, 4, N, N), net.w_rec[:, None].expand(4, 4, N, N))


@pytest.mark.parametrize("pathway, form, rank", cases(PATHWAYS))
def test_pathways_built_from_one_seed_start_as_the_same_function(pathway, form, rank):
    x, ctx = randn(3, 2, 5, NI), contexts(3, K)
    rule, _ = model("rule", seed=7)(x, ctx, noise=False)
    assert not torch.equal(rule, model("rule", seed=8)(x, ctx, noise=False)[0])
    out, _ = model(pathway, seed=7, synaptic=form, rank=rank)(x, ctx, noise=False)
    assert torch.equal(out, rule)


def test_matched_both_starts_without_modulation():
    net = model(list(PATHWAYS), matched=True)
    _, _, w = net.effective(torch.eye(K))
    torch.testing.assert_close(w.expand(4, K, N, N), net.w_rec[:, None].expand(4, K, N, N))


# --- context mixtures ------------------------------------------------------------------------
@pytest.mark.parametrize("form, rank, matched", STACKS)
def test_effective_network_is_linear_in_a_context_mixture(form, rank, matched):
    net = randomise_context(model(list(PATHWAYS), synaptic=form, rank=rank, matched=matched))
    lam = torch.tensor([0.0, 0.25, 0.5, 0.9, 1.0])
    mix = (1 - lam)[:, None] * torch.eye(K)[0] + lam[:, None] * torch.eye(K)[2]
    at_a, at_b, at_mix = (
        net.effective(torch.eye(K)[[0]]),
        net.effective(torch.eye(K)[[2]]),
        net.effective(mix),
    )
    for part in range(3):
        a, b = at_a[part].expand_as(at_mix[part]), at_b[part].expand_as(at_mix[part])
        lerp = a + lam.reshape(1, -1, *([1] * (a.dim() - 2))) * (b - a)
        torch.testing.assert_close(at_mix[part], lerp, atol=1e-6, rtol=1e-5)


# --- parameter counts ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "form, rank, matched, expected",
    [
        ("lowrank", 2, False, [N * K, 2 * N * K, 2 * N * K * 2, 2 * N * K + 2 * N * K * 2]),
        ("elementwise", 1, False, [N * K, 2 * N * K, K * N * N, 2 * N * K + K * N * N]),
        ("lowrank", 1, True, [N * K, 2 * N * K, 2 * N * K, 2 * N * K]),
    ],
)
def test_context_parameter_counts_are_the_entries_that_learn(form, rank, matched, expected):
    net = randomise_context(model(list(PATHWAYS), synaptic=form, rank=rank, matched=matched))
    assert net.context_parameters() == expected
    assert net.shared_parameters() == [sum(getattr(net, name)[0].numel() for name in SHARED_NAMES)] * 4
    assert net.shared_parameters() == [N * NI + N * N + N + NO * N + NO] * 4
    x = randn(4, K, 2, 4, NI)  # every input unit active, every task in a group
    outputs, _ = net(x, contexts(K, K), noise=False)
    masked_mse(outputs, torch.rand(outputs.shape), torch.ones(outputs.shape[:-1])).sum().backward()
    g = grads(net)
    for i in range(4):
        learning = sum(int((g[name][i] != 0).sum()) for name in CONTEXT_NAMES if hasattr(net, name))
        assert learning == expected[i], PATHWAYS[i]
        shared = sum(int((g[name][i] != 0).sum()) for name in SHARED_NAMES)
        assert shared == net.shared_parameters()[i]


# --- noise -----------------------------------------------------------------------------------
def test_training_noise_follows_the_generator_and_eval_is_deterministic():
    net = model(["rule", "both"], rec_noise=0.1, input_noise=0.1)
    x, ctx = randn(2, 2, 4, NI), contexts(2, K)
    net.train()
    a1, _ = net(x, ctx, generator=torch.Generator().manual_seed(5))
    a2, _ = net(x, ctx, generator=torch.Generator().manual_seed(5))
    b, _ = net(x, ctx, generator=torch.Generator().manual_seed(6))
    clean, _ = net(x, ctx, noise=False)
    assert torch.equal(a1, a2)
    assert not torch.allclose(a1, b)
    assert not torch.allclose(a1, clean)
    net.eval()
    e1, _ = net(x, ctx)
    e2, _ = net(x, ctx, generator=torch.Generator().manual_seed(5))
    assert torch.equal(e1, e2) and torch.equal(e1, clean)
    forced, _ = net(x, ctx, noise=True, generator=torch.Generator().manual_seed(5))
    assert torch.equal(forced, a1)  # noise=True overrides eval mode


@pytest.mark.parametrize("dt, tau", [(100.0, 100.0), (50.0, 100.0)])
def test_recurrent_noise_std_is_rec_noise_sqrt_2_over_a(dt, tau):
    """relu, W_in = W_rec = 0, a large bias: x_t = bias + noise exactly, recoverable from r."""
    sigma, bias = 0.1, 5.0
    net = model("rule", rec_noise=sigma, input_noise=0.0, activation="relu", dt=dt, tau=tau)
    with torch.no_grad():
        net.w_in.zero_(), net.w_rec.zero_(), net.bias.fill_(bias)
    with torch.no_grad():
        _, r = net(
            torch.zeros(1, 200, 50, NI),
            torch.eye(K)[:1],
            noise=True,
            generator=torch.Generator().manual_seed(0),
        )
    a = dt / tau
    previous = torch.cat([torch.zeros_like(r[..., :1, :]), r[..., :-1, :]], -2)
    x = (r - (1 - a) * previous) / a
    expected = sigma * math.sqrt(2 / a)
    assert abs(float(x.mean()) - bias) < 0.01
    assert float(x.std()) == pytest.approx(expected, rel=0.02)


def test_input_noise_std_is_input_noise_sqrt_2_over_a():
    sigma, a = 0.2, 0.5
    net = model("rule", n_inputs=N, rec_noise=0.0, input_noise=sigma, activation="relu", dt=50.0, tau=100.0)
    with torch.no_grad():
        net.w_in.copy_(torch.eye(N)), net.w_rec.zero_(), net.bias.fill_(5.0)
    with torch.no_grad():
        _, r = net(
            torch.zeros(1, 200, 50, N),
            torch.eye(K)[:1],
            noise=True,
            generator=torch.Generator().manual_seed(0),
        )
    previous = torch.cat([torch.zeros_like(r[..., :1, :]), r[..., :-1, :]], -2)
    x = (r - (1 - a) * previous) / a
    assert float(x.std()) == pytest.approx(sigma * math.sqrt(2 / a), rel=0.02)


# --- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw, name",
    [
        ({"n_neurons": 0}, "n_neurons"),
        ({"dt": 200.0, "tau": 100.0}, "dt"),
        ({"activation": "tanh"}, "activation"),
        ({"synaptic": "dense"}, "synaptic"),
        ({"synaptic": "elementwise", "matched": True}, "matched"),
        ({"matched": True, "rank": 2}, "matched"),
        ({"rank": 0}, "rank"),
        ({"rec_noise": -0.1}, "rec_noise"),
        ({"dt": math.nan}, r"RNNConfig\.dt=nan is not allowed"),
        ({"tau": math.inf}, r"RNNConfig\.tau=inf is not allowed"),
        ({"input_noise": True}, r"RNNConfig\.input_noise=True is not allowed"),
        ({"n_contexts": True}, r"RNNConfig\.n_contexts=True is not allowed"),
        ({"matched": 1}, r"RNNConfig\.matched=1 is not allowed; allowed: True or False"),
    ],
)
def test_bad_configs_are_rejected_naming_the_parameter(kw, name):
    with pytest.raises(ValueError, match=name):
        config(**kw)


@pytest.mark.parametrize("pathways", ["gain", ["rule", "nope"], []])
def test_unknown_pathways_are_rejected(pathways):
    with pytest.raises(ValueError, match="pathways"):
        ModulatedRNN(config(), pathways)


@pytest.mark.parametrize(
    "inputs_shape, context, words",
    [
        ((2, 1, 3, NI), torch.ones(2, K + 1), "context.*length"),
        ((2, 1, 3, NI), torch.tensor([[0.0, math.nan, 1.0]] * 2), "context.*NaN"),
        ((2, 1, 3, NI), torch.tensor([0, K]), "context task ids"),
        ((2, 1, 3, NI + 1), torch.tensor([0, 1]), "inputs"),
        ((3, 1, 3, NI), torch.tensor([0, 1]), "context has 2 groups"),
        ((2, 1, 3, NI), contexts(3, 2, K), "context must be"),  # 3 stacks of contexts for 2 networks
    ],
)
def test_bad_inputs_and_contexts_are_rejected(inputs_shape, context, words):
    net = model(["rule", "both"])
    with pytest.raises(ValueError, match=words):
        net(randn(*inputs_shape), context)


# --- the cost --------------------------------------------------------------------------------
def test_masked_mse_by_hand():
    """Yang et al.'s cost: (mask * error)^2 with the fixation output (unit 0) weighted twice, averaged
    over the weighted steps and the outputs."""
    outputs = torch.tensor([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]]).reshape(1, 1, 1, 3, 2)
    targets = torch.tensor([[1.0, 0.0], [1.0, 3.0], [0.0, 0.0]]).reshape(1, 1, 1, 3, 2)
    mask = torch.tensor([1.0, 2.0, 0.0]).reshape(1, 1, 1, 3)
    # step 0: ((2 * 1)^2 + 0) / 2 = 2, times 1^2; step 1: (0 + 2^2) / 2 = 2, times 2^2 = 8;
    # step 2 is unweighted: (2 + 8) over the 2 weighted steps
    torch.testing.assert_close(masked_mse(outputs, targets, mask), torch.tensor([5.0]))
    stacked = masked_mse(
        torch.cat([outputs, outputs]),
        torch.cat([targets, outputs]),
        torch.cat([mask, torch.zeros_like(mask)]),
    )
    torch.testing.assert_close(stacked, torch.tensor([5.0, 0.0]))  # per network; an all-zero mask is 0


# --- sizes and seeds -------------------------------------------------------------------------
@pytest.mark.parametrize("form, rank", forms())
def test_a_padded_network_is_the_network_of_its_own_size(form, rank):
    """A network of 5 neurons in a stack of size 8 computes (outputs, gradients) what a network of 5
    alone computes from the same seed, with or without noise; its padded units stay silent."""
    pathways = list(PATHWAYS)
    big = model(pathways, synaptic=form, rank=rank, sizes=[5, 8, 5, 3], seeds=[4, 5, 6, 7])
    x, ctx = randn(4, 2, 2, 6, NI), contexts(4, 2, K)
    out, states = big(x, ctx, noise=False)
    for i, (size, seed) in enumerate(zip([5, 8, 5, 3], [4, 5, 6, 7], strict=True)):
        alone = ModulatedRNN(config(n_neurons=size, synaptic=form, rank=rank), pathways[i], seeds=[seed])
        ref_out, ref_states = alone(x[i : i + 1], ctx[i : i + 1], noise=False)
        torch.testing.assert_close(out[i], ref_out[0], atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(states[i, ..., :size], ref_states[0], atol=1e-6, rtol=1e-5)
        assert bool((states[i, ..., size:] == 0).all())
    alone = ModulatedRNN(config(n_neurons=3, synaptic=form, rank=rank), "both")
    assert big.context_parameters()[3] == alone.context_parameters()[0]
    noisy, _ = big(x, ctx, noise=True, generator=torch.Generator().manual_seed(0))
    assert bool(
        (big(x, ctx, noise=True, generator=torch.Generator().manual_seed(0))[1][0, ..., 5:] == 0).all()
    )
    masked_mse(noisy, torch.rand(noisy.shape), torch.ones(noisy.shape[:-1])).sum().backward()
    for name, p in big.named_parameters():
        for i, size in enumerate([5, 8, 5, 3]):
            grad = p.grad[i]
            if name in ("w_in", "bias"):
                assert bool((grad[size:] == 0).all()), name
            if name in ("w_rec", "ctx_scale"):
                assert bool((grad[..., size:, :] == 0).all() and (grad[..., :, size:] == 0).all()), name
            if name in ("w_out", "ctx_gain", "ctx_bias"):
                assert bool((grad[..., size:] == 0).all()), name
            if name in ("ctx_u", "ctx_v"):
                assert bool((grad[..., size:, :] == 0).all()), name


def test_networks_with_one_seed_start_from_the_same_weights_whatever_their_pathway():
    net = model(list(PATHWAYS), seeds=[3, 3, 3, 9])
    for name in ("w_in", "w_rec", "w_out"):
        p = getattr(net, name)
        assert torch.equal(p[0], p[1]) and torch.equal(p[0], p[2]) and not torch.equal(p[0], p[3])
    x, ctx = randn(2, 2, 5, NI), contexts(2, K)
    out, _ = net(x, ctx, noise=False)
    assert torch.equal(out[0], out[2])  # no modulation at the start: the same function


@pytest.mark.parametrize(
    "kw, words",
    [
        ({"sizes": [8, 9, 8, 8]}, "sizes"),
        ({"sizes": [8, 8]}, "sizes"),
        ({"sizes": [0, 8, 8, 8]}, "sizes"),
        ({"seeds": [1, 2]}, "seeds"),
    ],
)
def test_bad_sizes_and_seeds_are_rejected(kw, words):
    with pytest.raises(ValueError, match=words):
        model(list(PATHWAYS), **kw)
