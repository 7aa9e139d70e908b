"""Every modulation family behind one context interface (notebook 07's comparison)."""

import dataclasses

import pytest
import torch

from neuromod_lib import families, multitask, profiles, selection
from neuromod_lib.continual import run_learner
from neuromod_lib.data.sequences import TaskSequence, make_sequence
from neuromod_lib.families import ContextMLP, FamilyConfig, Row
from neuromod_lib.models.random_weights import RandomWeightConfig, RandomWeightNet

pytestmark = pytest.mark.usefixtures("one_thread")

MLP = families.FAMILIES[:4]


@pytest.fixture(scope="module")
def rotated3() -> TaskSequence:
    return make_sequence("rotated_digits", 3, max_train=300)


@pytest.fixture(scope="module")
def runs(rotated3):
    config = FamilyConfig(epochs=2, expansion=2.0)
    names = families.FAMILIES + ("finetune",)
    return {f: families.measure_family(f, rotated3, config, progress=False) for f in names}


def _net(family: str, readout: str = "shared", n_tasks: int = 3) -> ContextMLP:
    return ContextMLP(family, 6, 10, 4, n_tasks, torch.Generator().manual_seed(0), readout=readout)


# --- the one interface ---------------------------------------------------------------------


@pytest.mark.parametrize("family", MLP)
def test_one_hot_context_is_the_task(family):
    net = _net(family).eval()
    with torch.no_grad():  # move every per-task table away from its neutral start
        for p in net._task_tensors():
            p.normal_(0, 0.5, generator=torch.Generator().manual_seed(1))
    x, ids = torch.randn(5, 6), torch.tensor([0, 1, 2, 1, 0])
    net.seen = 3
    one_hot = torch.nn.functional.one_hot(ids, 3).float()
    assert torch.allclose(net.logits(x, ids), net.context_logits(x, one_hot, ids))
    other = net.context_logits(x, one_hot.roll(1, dims=1), ids)
    assert not torch.allclose(other, net.logits(x, ids)), "the context must matter once learned"


@pytest.mark.parametrize("family", ["deterministic_gain", "excitability", "synaptic"])
def test_every_family_starts_at_no_modulation(family):
    net = _net(family).eval()
    x = torch.randn(4, 6)
    contexts = [torch.eye(3)[[0, 1, 2, 0]], torch.full((4, 3), 0.3), torch.randn(4, 3)]
    outs = [net.context_logits(x, c, torch.zeros(4, dtype=torch.long)) for c in contexts]
    assert all(torch.allclose(outs[0], o) for o in outs[1:])


def test_mixed_contexts_interpolate_the_random_weight_modulation():
    net = RandomWeightNet(RandomWeightConfig(n_inputs=6, n_classes=4, expansion=2.0, inputs_per_unit=2))
    gen = torch.Generator().manual_seed(0)
    for _ in range(2):
        net.add_task(gen)
    x = torch.randn(5, 6)
    eye = torch.eye(2)
    assert torch.allclose(net.context_logits(x, eye[[1] * 5]), net(x, 1), atol=1e-6)
    half = net.context_logits(x, torch.full((5, 2), 0.5))
    assert torch.allclose(half, (net(x, 0) + net(x, 1)) / 2, atol=1e-5)  # linear in the context
    with pytest.raises(ValueError, match="context must be"):
        net.context_logits(x, torch.ones(5, 3))


@pytest.mark.parametrize("family", MLP)
def test_non_finite_contexts_and_untrained_tasks_are_refused(family):
    net = _net(family).eval()
    net.begin_task(1)  # tasks 0 and 1 seen, task 2 not yet
    x, tasks = torch.randn(2, 6), torch.tensor([0, 1])
    for bad in (float("nan"), float("inf")):
        context = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, bad]])
        with pytest.raises(ValueError, match=rf"^context contains NaN or infinite values \({bad} at index"):
            net.context_logits(x, context, tasks)
    with pytest.raises(ValueError, match=r"^task 2 was never trained; trained tasks: 0\.\.1$"):
        net.logits(x, torch.tensor([0, 2]))
    assert net.all_task_logits(x).shape == (2, 2, 4)


def test_sizes_per_task_follow_each_family():
    h, d, c = 10, 6, 4
    assert families.matched_rank(h, d) == 1 and families.matched_rank(640, 64) == 2
    expected = {"deterministic_gain": h, "stochastic_gain": h, "excitability": 2 * h, "synaptic": h + d}
    for family, n in expected.items():
        assert _net(family).learned_params_per_task == n
        assert _net(family, "per_task").learned_params_per_task == n + c * h + c
    assert _net("stochastic_gain").bytes_per_task == 4 * (h + h)  # + the guided readout's unit weights
    assert _net("excitability").bytes_per_task == 4 * 2 * h


# --- learning task after task --------------------------------------------------------------


@pytest.mark.parametrize("family", families.FAMILIES)
def test_modulation_families_forget_nothing(runs, family):
    row, result = runs[family]
    acc = result.accuracy
    assert all(torch.equal(acc[j:, j], acc[j, j].expand(len(acc) - j)) for j in range(len(acc)))
    assert row.forgetting == 0.0
    assert row.accuracy == pytest.approx(100 * result.average_accuracy)


def test_the_reference_forgets_and_storage_counts_what_a_task_adds_and_what_is_kept_once(runs):
    row, _ = runs["finetune"]
    assert row.forgetting > 0
    assert row.ambiguity is None and row.noise is None  # no context to corrupt
    d, h, c = 64, 128, 10  # digits, expansion 2
    assert row.bytes_per_task == 4 * (h * c + c) and row.fixed_bytes == 4 * (d * h + h)  # a head; the trunk
    assert runs["random_weights"][0].fixed_bytes == 8  # the seed of the fixed weights
    assert runs["random_weights"][0].bytes_per_task == 4 * (h + 1)
    for f in families.MODULATION_FAMILIES:  # the shared layer and the shared readout, once
        assert runs[f][0].fixed_bytes == 4 * (d * h + h + h * c + c)


def test_shared_layer_and_readout_freeze_after_the_first_task(rotated3):
    snapshots = []

    class Recording(ContextMLP):
        def end_task(self, task, x, y):
            super().end_task(task, x, y)
            snapshots.append({n: p.detach().clone() for n, p in self.named_parameters()})

    net = Recording("excitability", 64, 32, 10, 3, torch.Generator().manual_seed(0))
    run_learner("excitability", net, rotated3, FamilyConfig(epochs=1).continual(), progress=False)
    first, last = snapshots[0], snapshots[-1]
    for name in ("trunk.weight", "trunk.bias", "heads.weight", "heads.bias"):
        assert torch.equal(first[name], last[name]), f"{name} changed after the first task"
        assert not dict(net.named_parameters())[name].requires_grad
    for table in ("modulation.gain", "modulation.bias"):  # excitability's per-task gain and bias
        assert torch.equal(first[table][0], last[table][0])  # task 0's row: untouched later
        assert torch.equal(first[table][1:], torch.zeros_like(first[table][1:]))
        assert not torch.equal(last[table][1:], first[table][1:])  # later tasks learned theirs


def test_robustness_curves_start_at_the_clean_accuracy(runs, rotated3):
    for family in families.FAMILIES:
        row, result = runs[family]
        curves = row.curves
        assert curves["lambda"][0] == 0.0 and curves["sigma"][0] == 0.0
        clean = 100 * float(result.accuracy[-1].mean())
        assert 100 * curves["ambiguity"][0] == pytest.approx(clean, abs=1e-6)
        assert 100 * curves["noise"][0] == pytest.approx(clean, abs=1e-6)
        kept = curves["ambiguity"][curves["lambda"].index(0.4)] / curves["ambiguity"][0]
        assert row.ambiguity == pytest.approx(kept)


def test_a_fully_swapped_context_hurts_a_modulated_network(runs, rotated3):
    """At lambda = 1 task a is shown task b's context: with one shared readout the random-weight
    network (whose context is all it learns) must lose accuracy."""
    row, _ = runs["random_weights"]
    assert row.curves["ambiguity"][-1] < row.curves["ambiguity"][0]


# --- the conclusions -----------------------------------------------------------------------


def _row(task_set, family, accuracy, bytes_, ambiguity=None):
    return Row(task_set, family, accuracy, bytes_ // 4, bytes_, 1.0, 0.0, ambiguity, ambiguity)


def test_needs_rank_only_families_that_work():
    rows = [
        _row("a", "synaptic", 90.0, 400, 0.8),
        _row("a", "random_weights", 85.0, 200, 0.9),
        _row("a", "stochastic_gain", 30.0, 100, 1.2),  # near chance: keeps its accuracy trivially
        _row("a", "finetune", 95.0, 10, None),  # the reference never competes
        _row("b", "synaptic", 70.0, 200, 0.5),
        _row("b", "random_weights", 70.0, 200, 0.5),
    ]
    best = families.needs(rows)
    assert best["accuracy"] == {"a": ["synaptic"], "b": ["synaptic", "random_weights"]}
    assert best["robust to an ambiguous context"]["a"] == []  # one seed: no robustness ranking
    assert best["smallest storage per task"]["a"] == ["random_weights"]
    assert "fastest training" not in best and "fastest training" in families.needs(rows, include_time=True)


def _seeds(task_set, family, accuracies, robustness):
    return [_row(task_set, family, a, 400, r) for a, r in zip(accuracies, robustness, strict=True)]


def test_robustness_is_ranked_only_with_an_interval_over_seeds_among_families_that_work():
    clear = [
        *_seeds("a", "synaptic", [90, 91, 89], [0.60, 0.65, 0.62]),
        *_seeds("a", "random_weights", [88, 87, 89], [0.80, 0.84, 0.83]),  # +0.20 on every seed
        *_seeds("a", "stochastic_gain", [30, 31, 29], [0.99, 0.99, 0.99]),  # near chance: no competitor
    ]
    assert families.robustness_winner(clear, "a", "ambiguity", 10.0) == ["random_weights"]
    noisy = clear[:3] + _seeds("a", "random_weights", [88, 87, 89], [0.90, 0.55, 0.70])  # +0.10 +- wide
    assert families.robustness_winner(noisy, "a", "ambiguity", 10.0) == []
    alone = clear[3:]  # random weights and a family at chance: nothing to be more robust than
    assert families.robustness_winner(alone, "a", "ambiguity", 10.0) == []
    assert families.robustness_winner(clear[:2] + clear[3:5], "a", "ambiguity", 10.0) == []  # 2 seeds
    rows, more = clear[::3], [r for i, r in enumerate(clear) if i % 3]
    best = families.needs(rows, seed_rows=more)
    assert best["robust to an ambiguous context"] == {"a": ["random_weights"]}
    assert best["robust to a noisy context"] == {"a": ["random_weights"]}


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"), [("epochs", 0), ("lr", -1.0), ("readout", "both"), ("rank", 0), ("sigma_m", -0.1)]
)
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=f"FamilyConfig.{field}="):
        FamilyConfig(**{field: value})


def test_unknown_family_is_refused_before_any_training(rotated3):
    with pytest.raises(ValueError, match="allowed: deterministic_gain"):
        families.measure_family("dopamine", rotated3, FamilyConfig())
    with pytest.raises(ValueError, match="lambdas"):
        families.measure_family("synaptic", rotated3, FamilyConfig(), lambdas=(0.2, 0.4))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"task_sets": "attributes,sounds"}, "task_sets=.*allowed: a list of attributes, digits, cognitive"),
        ({"families": "gain"}, "allowed: a list of deterministic_gain"),
        ({"rnn_tasks": "go,fly"}, "rnn_tasks='go,fly' is not allowed: entry 'fly'"),
        ({"rnn_tasks": "go"}, "rnn_tasks=\\['go'\\] is not allowed: .*two or more"),
    ],
)
def test_the_config_refuses_bad_lists_before_any_plan(override, message):
    """Values are checked in one place, the notebook's config: a config with a bad list cannot be
    made, neither by ``profiles.resolve`` nor by hand, so :func:`families.plan` never sees one."""
    from neuromod_lib.configs import FamiliesConfig

    with pytest.raises(profiles.ParameterError, match=message):
        profiles.resolve("07_modulation_families_compared", "smoke", **override)
    with pytest.raises(profiles.ParameterError, match=message):
        FamiliesConfig(profile="smoke", **override)


def test_cognitive_rows_cover_only_families_with_an_rnn_form():
    cfg = profiles.resolve("07_modulation_families_compared", "smoke", rnn_steps=10, rnn_neurons=8)
    plan = families.plan(cfg)
    assert isinstance(plan.rnn_setup, multitask.RNNSetup)
    torch.manual_seed(0)
    rows = families.run_cognitive(plan, ["deterministic_gain", "excitability", "synaptic", "random_weights"])
    assert [r.family for r in rows] == ["excitability", "synaptic"]
    n, k = 8, 4
    assert rows[0].params_per_task == 2 * n  # a gain and a bias per neuron
    assert rows[1].params_per_task == 2 * n  # rank-1 U and V per task
    for r in rows:
        assert r.forgetting is None and 0.0 <= r.accuracy <= 100.0
        assert len(r.curves["ambiguity"]) == len(plan.lambdas)
    assert len(plan.rnn_tasks) == k


def test_stochastic_gains_couple_every_unit_from_the_start_so_new_tasks_get_real_statistics(rotated3):
    """As notebook 02 runs it: c = w**2 with w = 1 at start and m = 1 + sigma_m xi, so that
    cov(h_k, m) ~ sigma_m**2 E[h_k] > 0 for every active unit of every task, new ones included."""
    net = ContextMLP("stochastic_gain", 64, 32, 10, 3, torch.Generator().manual_seed(0), sigma_m=0.5)
    assert torch.equal(net.modulation.w.detach(), torch.ones(3, 32))
    run_learner("stochastic_gain", net, rotated3, FamilyConfig(epochs=1).continual(), progress=False)
    cov = net.modulation.guide.covariance
    for task in range(3):
        active = cov[task].abs() > 0
        assert int(active.sum()) > 16
        assert float((cov[task][active] > 0).double().mean()) > 0.9, f"task {task}: statistics are noise"
    net.eval()
    x = rotated3.tasks[0].x_test[:5]
    again = net.logits(x, torch.zeros(5, dtype=torch.long))
    torch.testing.assert_close(net.logits(x, torch.zeros(5, dtype=torch.long)), again)  # m at its mean


def test_rnn_families_get_their_learning_rate_from_validation_and_train_at_it(monkeypatch):
    cfg = profiles.resolve(
        "07_modulation_families_compared", "smoke", rnn_steps=10, rnn_neurons=8, task_sets="cognitive",
        families="excitability,synaptic,random_weights",
    )  # fmt: skip
    plan = families.plan(cfg)
    rates, perf = [], {}
    real = families._train_rnns

    def recorded(names, *a, **k):
        rates.append((tuple(names), a[1].train_config.lr))
        model, trained = real(names, *a, **k)
        perf.setdefault(rates[-1], []).append(trained.perf)
        return model, trained

    monkeypatch.setattr(families, "_train_rnns", recorded)
    torch.manual_seed(0)
    chosen = families.rnn_search(plan)
    assert set(chosen) == {"excitability", "synaptic"}  # the families with an RNN form
    for s in chosen.values():
        assert s.grid == families.RNN_RATES and len(s.scores) == 4 and s.chosen in s.grid
        assert s.chosen == s.grid[selection.best_index(s.scores)]
    lrs = {f: s.chosen for f, s in chosen.items()}
    torch.manual_seed(1)  # another global state: the final run must not depend on it
    families.cognitive_rows(["excitability", "synaptic"], plan.rnn_tasks, plan.rnn_setup, n_neurons=8,
                            replicates=1, lrs=lrs)  # fmt: skip
    for lr in set(lrs.values()):  # the final run trained the very networks the search scored
        search, final = perf[(("excitability", "synaptic"), lr)]
        torch.testing.assert_close(final, search, rtol=0, atol=0, equal_nan=True)
    rates.clear()
    rows = families.cognitive_rows(
        ["synaptic", "excitability"], plan.rnn_tasks, plan.rnn_setup, n_neurons=8, replicates=1,
        lrs={"excitability": 0.1, "synaptic": 0.003},
    )  # fmt: skip
    assert [r.family for r in rows] == ["synaptic", "excitability"]  # in the order asked
    both = ("excitability", "synaptic")  # every rate chosen trains the search's whole stack
    assert sorted(rates) == [(both, 0.003), (both, 0.1)]
    rates.clear()
    state = torch.get_rng_state()
    same = families.cognitive_rows(["excitability", "synaptic"], plan.rnn_tasks, plan.rnn_setup, n_neurons=8,
                                   replicates=1, lrs={"excitability": 0.1, "synaptic": 0.1})  # fmt: skip
    assert rates == [(both, 0.1)]  # one rate: one stack
    assert torch.equal(torch.get_rng_state(), state)  # every draw from the seed, none from the global state
    # a family is measured as it was selected, whatever rate the others chose
    measured = [{**dataclasses.asdict(r), "seconds_per_task": None} for r in (same[0], rows[1])]
    assert measured[0] == measured[1]


def test_an_rnn_search_where_every_rate_diverges_says_so(monkeypatch):
    from neuromod_lib.training import TrainingDiverged

    cfg = profiles.resolve("07_modulation_families_compared", "smoke", task_sets="cognitive", rnn_steps=10)
    plan = families.plan(cfg)

    def diverge(*a, **k):
        raise TrainingDiverged("loss=nan")

    monkeypatch.setattr(families, "_train_rnns", diverge)
    with pytest.raises(TrainingDiverged, match="training diverged at every lr"):
        families.rnn_search(plan)
