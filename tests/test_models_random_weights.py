"""Tests of the random-weight network modulated by per-task contexts (Hong & Pavlic 2022/2023).

References are recomputed from the dense expansion matrix (or a loop over hidden units), not from
the model's sparse code path; continual learning is checked bit for bit on a tiny synthetic problem.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from neuromod_lib.models.random_weights import (
    RandomWeightConfig,
    RandomWeightNet,
    expand_gather,
    expand_sparse,
    infer_task,
    task_entropy,
)

pytestmark = pytest.mark.usefixtures("one_thread")

D, C = 12, 3  # inputs, classes; H = 10 D = 120 by default


def make(n_tasks: int = 0, seed: int = 0, **kw) -> RandomWeightNet:
    """A net with ``n_tasks`` tasks whose contexts and strengths are random (every task differs)."""
    net = RandomWeightNet(RandomWeightConfig(**{"n_inputs": D, "n_classes": C, "seed": seed, **kw}))
    g = torch.Generator().manual_seed(100 + seed)
    for _ in range(n_tasks):
        t = net.add_task(g)
        with torch.no_grad():
            net.strengths[t].fill_(0.5 + t)
    return net


def randn(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def reference_logits(net: RandomWeightNet, x: torch.Tensor, task: int) -> torch.Tensor:
    """``s_t W_R (c_t * ReLU(M x - mean M x))`` from the dense M, in float64."""
    m, w = net.expansion_matrix().double(), net.readout.double()
    z = x.double() @ m.t()
    h = torch.relu(z - z.mean(1, keepdim=True))
    c, s = net.contexts[task].detach().double(), net.strengths[task].detach().double()
    return s * (h * c) @ w.t()


# --- configuration -----------------------------------------------------------------------------
def test_config_sizes_and_defaults() -> None:
    cfg = RandomWeightConfig(n_inputs=784, n_classes=10)
    assert (cfg.expansion, cfg.inputs_per_unit, cfg.seed, cfg.n_hidden) == (10.0, 7, 0, 7840)
    assert RandomWeightConfig(n_inputs=7, n_classes=2, expansion=1.5, inputs_per_unit=7).n_hidden == 10


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"expansion": 0.5}, "expansion=0.5"),
        ({"expansion": float("nan")}, "expansion"),
        ({"inputs_per_unit": 13}, r"inputs_per_unit=13 .* n_inputs=12"),
        ({"inputs_per_unit": 0}, r"inputs_per_unit=0 .* n_inputs=12"),
        ({"inputs_per_unit": 2.0}, "inputs_per_unit=2.0"),
        ({"n_inputs": 0, "inputs_per_unit": 1}, "n_inputs"),
        ({"n_classes": 0}, "n_classes"),
        ({"seed": -1}, "seed"),
    ],
)
def test_config_errors(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RandomWeightConfig(**{"n_inputs": D, "n_classes": C, **kw})


# --- the fixed random weights ------------------------------------------------------------------
def test_expansion_has_k_ones_per_row_at_random_positions() -> None:
    net = RandomWeightNet(RandomWeightConfig(n_inputs=50, n_classes=C, expansion=10, inputs_per_unit=7))
    m = net.expansion_matrix()
    assert m.shape == (500, 50) and net.expansion_indices.shape == (500, 7)
    assert set(m.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(m.sum(1), torch.full((500,), 7.0))  # exactly k distinct inputs per unit
    assert len({tuple(r) for r in net.expansion_indices.tolist()}) >= 495  # rows (nearly) all distinct
    per_input = m.sum(0)  # each input feeds about H k / D = 70 units
    assert per_input.min() > 35 and per_input.max() < 105
    assert not any(p.requires_grad for p in net.buffers())
    assert list(net.parameters()) == [] and net.state_dict() == {}


def test_readout_is_linear_default_init() -> None:
    net = RandomWeightNet(RandomWeightConfig(n_inputs=100, n_classes=10))
    w, bound = net.readout, 1 / math.sqrt(1000)
    assert w.shape == (10, 1000) and float(w.abs().max()) <= bound
    assert abs(float(w.std()) - bound / math.sqrt(3)) < 0.05 * bound  # uniform in ±bound


def test_same_seed_same_weights_other_seed_differs() -> None:
    a, b, c = make(seed=3), make(seed=3), make(seed=4)
    assert torch.equal(a.expansion_indices, b.expansion_indices) and torch.equal(a.readout, b.readout)
    assert not torch.equal(a.expansion_indices, c.expansion_indices)
    assert not torch.equal(a.readout, c.readout)


def test_add_task_initialisation() -> None:
    net = RandomWeightNet(RandomWeightConfig(n_inputs=200, n_classes=C))
    assert net.n_tasks == 0
    assert net.add_task(torch.Generator().manual_seed(0)) == 0
    assert net.add_task(torch.Generator().manual_seed(1)) == 1
    assert net.n_tasks == 2 and net.strengths[1].item() == 1.0
    c, h = net.contexts[0].detach(), net.config.n_hidden
    assert c.shape == (h,) and abs(float(c.std()) / math.sqrt(2 / (1 + h)) - 1) < 0.05  # Xavier normal
    assert not torch.equal(net.contexts[0], net.contexts[1])
    assert set(net.state_dict()) == {"contexts.0", "contexts.1", "strengths.0", "strengths.1"}


# --- features and logits -----------------------------------------------------------------------
def test_features_subtract_each_samples_mean_before_relu() -> None:
    net = make(expansion=2, inputs_per_unit=3)  # H = 24
    x = randn(5, D)
    idx = net.expansion_indices.tolist()
    for b in range(5):  # by hand: z_j = sum of unit j's k inputs, minus this sample's mean over units
        z = [sum(float(x[b, i]) for i in row) for row in idx]
        mean = sum(z) / len(z)
        expected = torch.tensor([max(v - mean, 0.0) for v in z])
        torch.testing.assert_close(net.features(x)[b], expected, rtol=1e-5, atol=1e-5)
    h = net.features(x)
    assert (h == 0).any() and (h > 0).any()
    assert torch.equal(net.features(torch.ones(3, D)), torch.zeros(3, 24))  # uniform drive: all inhibited
    torch.testing.assert_close(net.features(x[2:3]), h[2:3])  # per sample, not per batch


def test_sparse_and_gather_expansions_agree() -> None:
    net = make(expansion=10, inputs_per_unit=7)
    x = randn(9, D)
    dense = x @ net.expansion_matrix().t()
    torch.testing.assert_close(expand_sparse(net.expansion_indices, x), dense)
    torch.testing.assert_close(expand_gather(net.expansion_indices, x), dense)


def test_images_are_flattened() -> None:
    net = make(1, n_inputs=16)
    x = randn(4, 1, 4, 4)
    assert torch.equal(net(x, 0), net(x.reshape(4, 16), 0))
    with pytest.raises(ValueError, match=r"x must be \(B, 16\)"):
        net(randn(4, 15), 0)


def test_forward_matches_reference_and_mixes_tasks_per_sample() -> None:
    net = make(3)
    x, ids = randn(10, D), torch.tensor([0, 2, 1, 1, 0, 2, 2, 0, 1, 0])
    out = net(x, ids)
    assert out.shape == (10, C)
    for t in range(3):
        sel = ids == t
        torch.testing.assert_close(out[sel], net(x[sel], torch.full((int(sel.sum()),), t)))
        torch.testing.assert_close(out[sel].double(), reference_logits(net, x[sel], t))
    every = net.all_task_logits(x)
    assert every.shape == (3, 10, C)
    torch.testing.assert_close(every[ids, torch.arange(10)], out)
    torch.testing.assert_close(every[1].double(), reference_logits(net, x, 1))


def test_unknown_task_ids_are_errors() -> None:
    net = make(3)
    with pytest.raises(ValueError, match=r"^task 5 was never trained; trained tasks: 0\.\.2$"):
        net(randn(2, D), torch.tensor([1, 5]))
    with pytest.raises(ValueError, match="task -1 was never trained"):
        net(randn(2, D), torch.tensor([-1, 0]))
    wrong_shape = r"^context must be \(2, 3\) vectors, a weight per task, or \(2,\) task ids"
    with pytest.raises(ValueError, match=wrong_shape):
        net(randn(2, D), torch.tensor([0.0, 1.0]))  # floats are context vectors, of the wrong shape here
    with pytest.raises(ValueError, match=r"^task_ids has 3 entries but the batch has 2 samples$"):
        net(randn(2, D), torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match=r"^task_ids must be a \(2,\) integer tensor \(one id per sample\)"):
        net(randn(2, D), torch.tensor([[0, 1]]))
    with pytest.raises(ValueError, match="no task was ever added"):
        make(0).all_task_logits(randn(2, D))
    for call in (net.freeze, net.task_parameters, net.frozen):
        with pytest.raises(ValueError, match=r"task 7 was never added; tasks: 0\.\.2"):
            call(7)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_contexts_are_refused_naming_context(bad) -> None:
    net = make(2)
    context = torch.tensor([[1.0, 0.0], [0.5, 0.5], [bad, 1.0]])
    with pytest.raises(ValueError) as info:
        net.context_logits(randn(3, D), context)
    expected = f"context contains NaN or infinite values ({bad} at index [2, 0]); allowed: finite values"
    assert str(info.value) == expected
    assert net.context_logits(randn(3, D), context.nan_to_num(0.0, 0.0, 0.0)).isfinite().all()


@pytest.mark.parametrize(
    ("kw", "allowed"),
    [
        ({"expansion": True}, "a finite number >= 1 (n_hidden = expansion * n_inputs)"),
        ({"expansion": math.inf}, "a finite number >= 1 (n_hidden = expansion * n_inputs)"),
        ({"n_classes": True}, "an integer >= 1"),
        ({"inputs_per_unit": True}, "an integer in [1, n_inputs=12] (ones per hidden unit)"),
    ],
)
def test_config_refuses_booleans_and_infinity(kw: dict, allowed: str) -> None:
    with pytest.raises(ValueError) as info:
        RandomWeightConfig(**{"n_inputs": D, "n_classes": C, **kw})
    [(name, value)] = kw.items()
    assert str(info.value) == f"RandomWeightConfig.{name}={value!r} is not allowed; allowed: {allowed}"


# --- continual learning ------------------------------------------------------------------------
def teacher_problem(task: int, n: int = 256, d: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and labels ``argmax(x A_task)`` of a random linear teacher, one per task."""
    x = randn(n, d, seed=10 + task)
    return x, (x @ randn(d, C, seed=20 + task)).argmax(1)


def fit(net: RandomWeightNet, task: int, ids, x, y, steps: int = 60) -> list[float]:
    """RMSprop (lr 1e-2, as in the paper) on ``task``'s parameters, full batch; the losses."""
    opt = torch.optim.RMSprop(net.task_parameters(task), lr=1e-2)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(net(x, ids), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def test_frozen_task_is_untouched_while_a_new_task_learns() -> None:
    net = RandomWeightNet(RandomWeightConfig(n_inputs=20, n_classes=C, seed=5))
    g = torch.Generator().manual_seed(0)
    (x0, y0), (x1, y1) = teacher_problem(0), teacher_problem(1)
    net.add_task(g)
    fit(net, 0, torch.zeros(256, dtype=torch.long), x0, y0)
    net.freeze(0)
    assert net.frozen(0) and not any(p.requires_grad for p in (net.contexts[0], net.strengths[0]))
    c0, s0, out0 = net.contexts[0].clone(), net.strengths[0].clone(), net(x0, 0).detach()

    assert net.add_task(g) == 1 and not net.frozen(1)
    x, y = torch.cat([x0, x1]), torch.cat([y0, y1])  # mixed batches: task 0's samples are in every one
    ids = torch.cat([torch.zeros(256), torch.ones(256)]).long()
    before = float(nn.functional.cross_entropy(net(x1, 1), y1).detach())
    fit(net, 1, ids, x, y)
    after = float(nn.functional.cross_entropy(net(x1, 1), y1).detach())
    assert after < 0.5 * before, (before, after)  # the new task is learned ...
    acc1 = float((net(x1, 1).argmax(1) == y1).float().mean())
    assert acc1 > 0.7, acc1  # (chance: 1/3)
    careless = torch.optim.RMSprop(net.parameters(), lr=1e-2, weight_decay=0.5)  # even this cannot
    net.requires_grad_(True)  # undo the freeze flags: the forward pass still detaches task 0
    careless.zero_grad()
    nn.functional.cross_entropy(net(x, ids), y).backward()
    assert net.contexts[0].grad is None and net.strengths[0].grad is None
    careless.step()
    assert torch.equal(net.contexts[0], c0) and torch.equal(net.strengths[0], s0)  # ... bit for bit
    assert torch.equal(net(x0, 0), out0)
    with pytest.raises(ValueError, match="task 0 is frozen"):
        net.task_parameters(0)


def test_only_the_tasks_own_h_plus_1_values_get_gradients() -> None:
    net = make(3)
    net.freeze(0)
    params = net.task_parameters(1)
    assert sum(p.numel() for p in params) == net.learned_parameters_per_task() == 121
    nn.functional.cross_entropy(
        net(randn(6, D), torch.tensor([0, 1, 1, 0, 1, 0])), torch.arange(6) % C
    ).backward()
    nonzero = {n: int((p.grad != 0).sum()) for n, p in net.named_parameters() if p.grad is not None}
    assert nonzero.pop("contexts.1") > 100 and nonzero.pop("strengths.1") == 1
    assert all(v == 0 for v in nonzero.values()), nonzero  # task 2 (absent) only zeros; task 0 none
    assert net.contexts[0].grad is None and net.strengths[0].grad is None


def test_sizes_per_task_and_dense_equivalent() -> None:
    net = make(2)
    assert net.learned_parameters_per_task() == 121 and net.bytes_per_task() == 4 * 121
    dense = nn.Sequential(nn.Linear(D, 120), nn.ReLU(), nn.Linear(120, C))
    assert net.dense_parameters() == sum(p.numel() for p in dense.parameters()) == 1923
    assert sum(p.numel() for p in net.parameters()) == 2 * 121
    big = RandomWeightNet(RandomWeightConfig(n_inputs=784, n_classes=10))
    assert big.bytes_per_task() == 31364 and big.dense_parameters() == 784 * 7840 + 7840 + 78400 + 10


# --- storage -----------------------------------------------------------------------------------
def test_save_load_roundtrip(tmp_path) -> None:
    net = make(3, seed=2, expansion=3.5, inputs_per_unit=4)
    net.freeze(0)
    net.freeze(2)
    path = tmp_path / "net.pt"
    net.save(path)
    state = torch.get_rng_state()
    RandomWeightNet.load(path)
    assert torch.equal(torch.get_rng_state(), state)  # loading draws nothing from the global RNG
    for loaded in (RandomWeightNet.load(path), RandomWeightNet.load(path, net.config)):
        assert loaded.config == net.config and loaded.n_tasks == 3
        assert [loaded.frozen(t) for t in range(3)] == [True, False, True]
        x, ids = randn(8, D), torch.tensor([0, 1, 2, 0, 1, 2, 2, 1])
        assert torch.equal(loaded(x, ids), net(x, ids))
        assert torch.equal(loaded.all_task_logits(x), net.all_task_logits(x))
        assert loaded.task_parameters(1)[0].requires_grad


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"seed": 1}, "seed: file has 0, config has 1"),
        ({"n_inputs": 13}, "n_inputs: file has 12, config has 13"),
        ({"n_classes": 4}, "n_classes"),
        ({"expansion": 5.0}, "expansion"),
        ({"inputs_per_unit": 6}, "inputs_per_unit: file has 7, config has 6"),
    ],
)
def test_load_with_another_config_fails_and_keeps_the_file(tmp_path, kw: dict, match: str) -> None:
    path = tmp_path / "net.pt"
    make(2).save(path)
    before = path.read_bytes()
    other = RandomWeightConfig(**{"n_inputs": D, "n_classes": C, **kw})
    with pytest.raises(ValueError, match=match):
        RandomWeightNet.load(path, other)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["net.pt"]


# --- task inference ----------------------------------------------------------------------------
def test_infer_task_picks_the_most_confident_task() -> None:
    logits = torch.zeros(3, 4, C)  # all tasks uniform (maximal entropy) ...
    logits[2, 0, 1] = logits[0, 1, 0] = logits[1, 2, 2] = 8.0  # ... except the confident one
    logits[0, 3, 0], logits[1, 3, 0] = 2.0, 6.0  # two confident tasks: the more confident wins
    assert infer_task(logits).tolist() == [2, 0, 1, 1]
    torch.testing.assert_close(task_entropy(logits)[0, 0], torch.tensor(math.log(C)))
    with pytest.raises(ValueError, match=r"\(T, B, C\)"):
        infer_task(torch.zeros(4, C))


def test_infer_task_per_group_uses_the_mean_entropy() -> None:
    sure, unsure = [4.0, 0.0], [0.0, 0.0]
    logits = torch.tensor([[sure, unsure, unsure], [unsure, sure, sure]])  # (T=2, B=3, C=2)
    assert infer_task(logits).tolist() == [0, 1, 1]
    assert infer_task(logits, torch.tensor([0, 0, 0])).tolist() == [1, 1, 1]
    assert infer_task(logits, torch.tensor([0, 1, 1])).tolist() == [0, 1, 1]
    with pytest.raises(ValueError, match="groups must be"):
        infer_task(logits, torch.tensor([0, 0]))


def test_infer_task_on_a_net_prefers_the_strong_task() -> None:
    net = make(2)
    with torch.no_grad():
        net.strengths[0].fill_(1e-3)  # task 0 nearly uniform, task 1 sharp
        net.strengths[1].fill_(1e3)
    assert infer_task(net.all_task_logits(randn(5, D))).tolist() == [1] * 5
