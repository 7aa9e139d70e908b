"""Tests of multitask training of stacked RNNs, the paired ambiguity scores and the dynamics.

Training runs are tiny (16 neurons, rings of 8 units, 60 steps): they check the bookkeeping
(shapes, NaN padding, early stopping, solved_at, the saturation check, reproducibility), not that
tasks are learned (the packing experiment is tested in ``test_packing.py``).
Where an outcome must be forced (every task solved at once, or a scripted sequence of
evaluations), the scoring is replaced with monkeypatch.
"""

from __future__ import annotations

import math

import pytest
import torch

from neuromod_lib import multitask as mt
from neuromod_lib.data.tasks import TaskConfig
from neuromod_lib.device import seed_everything
from neuromod_lib.models.rnn import ModulatedRNN, RNNConfig
from neuromod_lib.multitask import (
    TrainConfig,
    evaluate_networks,
    fixed_points,
    mixture_performance,
    mixtures,
    noise_performance,
    rnn_config,
    train_networks,
    trajectories,
)

pytestmark = pytest.mark.usefixtures("one_thread")

TASK_CONFIG = TaskConfig(n_ring=8)
TASK_LISTS = [("go",), ("go", "anti")]
PATHWAYS = ["rule", "both"]


def assert_same(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Exactly equal, NaN where NaN."""
    torch.testing.assert_close(actual, expected, rtol=0, atol=0, equal_nan=True)


@pytest.fixture
def seeded():
    """seed_everything, with torch's global determinism flags restored afterwards."""
    flags = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    cudnn = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        yield seed_everything
    torch.use_deterministic_algorithms(flags[0], warn_only=flags[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn


def tiny_model(pathways=PATHWAYS, n: int = 16, k: int = 2, seed: int = 0, **kw) -> ModulatedRNN:
    return ModulatedRNN(rnn_config(TASK_CONFIG, n, k, **kw), pathways, torch.Generator().manual_seed(seed))


def train_config(**kw) -> TrainConfig:
    base = dict(steps=60, batch=16, lr=1e-2, eval_every=20, eval_trials=16, final_trials=32)
    return TrainConfig(**{**base, **kw})


def train(seed_everything, seed: int = 0, **kw):
    seed_everything(0)
    model = tiny_model()
    return model, train_networks(
        model, TASK_LISTS, TASK_CONFIG, train_config(seed=seed, **kw), progress=False
    )


@pytest.fixture
def no_training(monkeypatch):
    """Training must not start: every check comes first."""

    def refuse(*args, **kwargs):
        raise AssertionError("training started before the arguments were checked")

    monkeypatch.setattr(mt, "fit", refuse)


# --- training --------------------------------------------------------------------------------
def test_train_networks_result_shapes_and_padding(seeded):
    model, result = train(seeded)
    assert result.pathways == tuple(PATHWAYS)
    assert result.tasks == TASK_LISTS
    assert result.history_steps == [20, 40, 60]
    assert result.history.shape == (3, 2, 2) and result.perf.shape == result.at_check.shape == (2, 2)
    assert result.check_step == 40  # 2/3 of the 60 steps
    assert bool(result.history[:, 0, 1].isnan().all()) and bool(result.perf[0, 1].isnan())  # network 0: K = 1
    finite = result.history[~torch.tensor([[False, True], [False, False]]).expand(3, 2, 2)]
    assert bool(((finite >= 0) & (finite <= 1)).all())
    assert bool(((finite * 16).round() == finite * 16).all())  # a fraction of the 16 learning-curve trials
    final = result.perf[~result.perf.isnan()]
    assert bool(((final * 32).round() == final * 32).all())  # the verdict: a fraction of the 32 final trials
    assert len(result.losses) == 3 and all(math.isfinite(v) for v in result.losses)
    assert result.losses[-1] < result.losses[0]
    assert result.solved_at.shape == (2,) and result.solved.shape == (2,) and result.saturated.shape == (2,)
    assert torch.equal(result.n_tasks, torch.tensor([1, 2]))
    assert not model.training  # left in eval mode


def test_train_networks_is_reproducible(seeded):
    model_a, a = train(seeded)
    model_b, b = train(seeded)
    model_c, c = train(seeded, seed=1)
    assert a.losses == b.losses
    assert_same(a.history, b.history)
    for (name, p), q in zip(model_a.named_parameters(), model_b.parameters(), strict=True):
        assert torch.equal(p, q), name
    assert a.losses != c.losses  # another TrainConfig.seed gives other batches
    assert not torch.equal(model_a.w_rec, model_c.w_rec)


def test_training_stops_once_every_task_is_solved(seeded, monkeypatch):
    monkeypatch.setattr(mt, "performance", lambda outputs, batch: torch.ones(outputs.shape[:-2]))
    _, result = train(seeded, steps=100)
    assert result.history_steps == [20]  # stopped at the first evaluation (fit's target)
    assert len(result.losses) == 1
    assert_same(result.perf, torch.tensor([[1.0, math.nan], [1.0, 1.0]]))
    assert result.solved.tolist() == [True, True]
    assert result.solved_at.tolist() == [20.0, 20.0]
    assert bool(result.at_check.isnan().all())  # stopped before the check step: no saturation check
    assert result.saturated.tolist() == [False, False]


def test_the_whole_budget_runs_unless_asked_to_stop(seeded, monkeypatch):
    monkeypatch.setattr(mt, "performance", lambda outputs, batch: torch.ones(outputs.shape[:-2]))
    _, result = train(seeded, steps=60, stop_when_solved=False)
    assert result.history_steps == [20, 40, 60]
    assert result.saturated.tolist() == [True, True]


def test_a_network_that_never_solves_runs_every_step(seeded, monkeypatch):
    monkeypatch.setattr(mt, "performance", lambda outputs, batch: torch.zeros(outputs.shape[:-2]))
    _, result = train(seeded)
    assert result.history_steps == [20, 40, 60]
    assert result.solved.tolist() == [False, False]
    assert bool(result.solved_at.isnan().all())
    assert result.saturated.tolist() == [True, True]  # unsolved at 2/3 and at the end


def _scripted(monkeypatch, routine: list, large: list) -> None:
    """evaluate_networks returns the rows of ``routine`` (16 trials) and ``large`` (32) in turn."""
    calls = {16: iter(torch.tensor(r) for r in routine), 32: iter(torch.tensor(r) for r in large)}
    monkeypatch.setattr(mt, "evaluate_networks", lambda model, ev: next(calls[ev.batch.shape[-1]]))


def test_solved_at_is_the_first_evaluation_at_criterion(seeded, monkeypatch):
    nan = math.nan
    script = [
        [[0.95, nan], [0.95, 0.50]],  # network 0 solved, network 1 not
        [[0.50, nan], [0.95, 0.92]],  # network 0 lost it, network 1 solved
        [[0.91, nan], [0.90, 0.99]],  # both solved (0.9 is at criterion): stop
        [[0.00, nan], [0.00, 0.00]],  # never reached
    ]
    _scripted(monkeypatch, script, [[[0.1, nan], [0.95, 0.95]]])  # the one large evaluation: at the end
    _, result = train(seeded, steps=120, criterion=0.9)
    assert result.history_steps == [20, 40, 60]
    assert_same(result.history, torch.tensor(script[:3]))
    assert result.solved_at.tolist() == [20.0, 40.0]
    assert result.check_step == 80 and bool(result.at_check.isnan().all())  # stopped at 60, before 80
    assert result.solved.tolist() == [False, True]  # solved is the large final evaluation's verdict


def test_the_saturation_check_compares_the_verdict_at_two_thirds_and_at_the_end(seeded, monkeypatch):
    nan = math.nan
    routine = [[[0.5, nan], [0.5, 0.5]]] * 3
    _scripted(monkeypatch, routine, [[[0.95, nan], [0.5, 0.95]], [[0.92, nan], [0.95, 0.95]]])
    _, result = train(seeded, stop_when_solved=False)
    assert_same(result.at_check, torch.tensor([[0.95, nan], [0.5, 0.95]]))
    assert result.solved_at_check.tolist() == [True, False]
    assert result.solved.tolist() == [True, True]
    assert result.saturated.tolist() == [True, False]  # network 1 solved only after the check step


def test_evaluation_trials_are_shared_and_padded_beyond_each_networks_k():
    model = tiny_model(["rule", "rule", "both"], k=3)
    table, k = mt._task_table([("go",), ("go", "anti", "dm1"), ("anti", "go")])
    ev = mt.evaluation_batch(table, k, 4, TASK_CONFIG, seed=0)
    assert ev.batch.shape == (3, 4)  # the union of the tasks: go, anti, dm1 (by index), 4 trials each
    assert ev.batch.task[:, 0].tolist() == [0, 3, 6]
    assert ev.context.tolist() == [[0, 0, 0], [0, 1, 2], [1, 0, 0]]  # each task's position in each list
    assert ev.where.tolist() == [[0, 0, 0], [0, 1, 2], [1, 0, 1]]
    perf = evaluate_networks(model, ev)
    assert perf.shape == (3, 3)
    assert perf.isnan().tolist() == [[False, True, True], [False, False, False], [False, False, True]]
    # evaluation in chunks of trials (bounded memory) gives what one pass gives (noise-free networks)
    quiet = tiny_model(["rule", "rule", "both"], k=3, rec_noise=0.0, input_noise=0.0)
    whole = evaluate_networks(quiet, ev)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mt, "_EVAL_CHUNK", 1)  # one trial per chunk
        assert_same(evaluate_networks(quiet, ev), whole)


# --- errors before any training --------------------------------------------------------------
@pytest.mark.parametrize(
    "task_lists, task_config, words",
    [
        ([("go",), ("nope",)], TASK_CONFIG, "unknown task 'nope'"),
        ([("go", "anti", "dm1"), ("go",)], TASK_CONFIG, "n_contexts=2"),
        ([("go",), ("go",), ("anti",)], TASK_CONFIG, "task_lists has 3 lists"),
        ([("go",)], TASK_CONFIG, "task_lists has 1 lists"),
        ([], TASK_CONFIG, "task_lists"),
        ([("go",), ("anti",)], TaskConfig(n_ring=10), "n_ring=10"),
    ],
)
def test_train_networks_checks_everything_before_training(no_training, task_lists, task_config, words):
    with pytest.raises(ValueError, match=words):
        train_networks(tiny_model(), task_lists, task_config, train_config(), progress=False)


@pytest.mark.parametrize(
    "kw, name",
    [
        ({"steps": 50, "eval_every": 20}, "steps"),
        ({"lr": 0.0}, "lr"),
        ({"lr": -1e-3}, "lr"),
        ({"criterion": 1.5}, "criterion"),
        ({"criterion": 0.0}, "criterion"),
        ({"batch": 0}, "batch"),
        ({"eval_trials": 2.5}, "eval_trials"),
        ({"grad_clip": 0}, "grad_clip"),
        ({"lr": True}, "lr"),
        ({"lr": math.nan}, "lr"),
        ({"grad_clip": math.inf}, "grad_clip"),
        ({"criterion": math.nan}, "criterion"),
        ({"seed": -1}, "seed"),
        ({"eval_every": 0}, "eval_every"),
    ],
)
def test_bad_train_configs_are_rejected(kw, name):
    with pytest.raises(ValueError, match=name):
        TrainConfig(**kw)


def test_context_parameter_table_lists_each_pathway_with_the_shared_count():
    model = tiny_model(["rule", "excitability", "both"], n=16, k=3)
    table = mt.context_parameter_table(model)
    assert table.header == ("pathway", "context parameters")
    assert [row[0] for row in table.rows] == ["rule", "excitability", "both"]
    assert [row[1] for row in table.rows] == [f"{c:,}" for c in model.context_parameters()]
    assert table.caption == f"N = 16, K = 3: shared parameters {model.shared_parameters()[0]:,}"


def test_the_network_worth_looking_inside():
    from neuromod_lib.multitask import TrainResult

    tasks = [("go",), ("go",), ("go", "anti"), ("go", "anti")]
    ones = torch.ones(4, 2)
    result = TrainResult(("rule", "both") * 2, tasks, ones, torch.ones(1, 4, 2), [20, 40],
                         torch.zeros(4), 0.9, 12.4, ones, 40)  # fmt: skip
    assert mt.largest_task_network(result, "both") == (3, ("go", "anti"))
    assert mt.largest_task_network(result, "rule") == (2, ("go", "anti"))
    assert mt.largest_task_network(result, "rule", sizes=[8, 8, 4, 4], n_neurons=8) == (0, ("go",))
    with pytest.raises(ValueError, match="pathway='synaptic'"):
        mt.largest_task_network(result, "synaptic")
    with pytest.raises(ValueError, match="n_neurons=16"):
        mt.largest_task_network(result, "rule", sizes=[8, 8, 4, 4], n_neurons=16)


# --- ambiguity -------------------------------------------------------------------------------
def test_mixtures_interpolate_between_one_hot_contexts():
    mix = mixtures(4, 1, 3, [0.0, 0.3, 1.0])
    assert mix.shape == (3, 4)
    torch.testing.assert_close(mix.sum(1), torch.ones(3))
    assert torch.equal(mix[0], torch.eye(4)[1]) and torch.equal(mix[-1], torch.eye(4)[3])
    torch.testing.assert_close(mix[1], torch.tensor([0.0, 0.7, 0.0, 0.3]))


def test_mixture_performance_shapes(seeded):
    seeded(0)
    model = tiny_model().eval()
    on_a, on_b = mixture_performance(model, ["go", "anti"], 0, 1, [0.0, 0.5, 1.0], TASK_CONFIG, trials=4)
    assert on_a.shape == on_b.shape == (2, 3)
    for values in (on_a, on_b):
        assert bool(((values >= 0) & (values <= 1)).all())
        assert bool(((values * 4).round() == values * 4).all())  # a fraction of 4 trials


def _blind(pathways, k: int = 2) -> ModulatedRNN:
    """Networks whose context does nothing (rule pathway with a zero context bias), trained a little
    so that their scores are not all 0."""
    model = tiny_model(pathways, k=k)
    with torch.no_grad():
        model.ctx_bias.zero_()
        model.w_out.mul_(3.0)
    return model.eval()


def test_mixtures_and_noise_are_paired_same_trials_and_noise_at_every_level():
    """A network blind to its context scores exactly the same at every λ and σ: only the context
    changes between levels, never the trials or the network's noise."""
    model = _blind(["rule", "rule"])
    lambdas = [0.0, 0.3, 0.7, 1.0]
    on_a, on_b = mixture_performance(model, ["go", "anti"], 0, 1, lambdas, TASK_CONFIG, trials=64)
    assert bool((on_a == on_a[:, :1]).all()) and bool((on_b == on_b[:, :1]).all())
    noisy = noise_performance(model, ["go", "anti"], [0.0, 0.5, 2.0], TASK_CONFIG, draws=3, trials=8)
    assert bool((noisy == noisy[:, :1]).all())
    # go and anti see the very same stimuli: a blind network cannot be right on both at once
    assert bool((on_a + on_b <= 1.0 + 1e-6).all())


def test_noise_performance_shapes(seeded):
    seeded(0)
    model = tiny_model().eval()
    noisy = noise_performance(model, ["go", "anti"], [0.0, 0.5, 2.0], TASK_CONFIG, draws=2, trials=2)
    assert noisy.shape == (2, 3)
    assert bool(((noisy >= 0) & (noisy <= 1)).all())
    assert bool(((noisy * 8).round() == noisy * 8).all())  # a fraction of 2 tasks x 2 draws x 2 trials


# --- dynamics --------------------------------------------------------------------------------
def test_trajectories_run_the_same_trials_under_every_context():
    model = tiny_model(["rule", "rule"], k=3)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        model.ctx_bias.copy_(torch.randn(model.ctx_bias.shape, generator=gen))
        model.ctx_bias[0] = 0  # network 0 ignores its context
    model.train()  # trajectories are noise-free whatever the mode
    contexts = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.0]])
    batch, states, outputs = trajectories(model, "dly_go", contexts, TASK_CONFIG, trials=3)
    t = batch.steps
    assert batch.shape == (3,) and bool((batch.task == 2).all())
    assert states.shape == (2, 3, 3, t, 16) and outputs.shape == (2, 3, 3, t, TASK_CONFIG.n_outputs)
    for c in (1, 2):
        assert torch.equal(states[0, c], states[0, 0])
        assert not torch.allclose(states[1, c], states[1, 0])
    again = trajectories(model, "dly_go", contexts, TASK_CONFIG, trials=3)
    assert torch.equal(again[1], states)
    _, direct = model(batch.inputs[None].expand(3, -1, -1, -1), contexts, noise=False)
    torch.testing.assert_close(states, direct)


def test_fixed_points_of_a_contracting_network():
    cfg = RNNConfig(n_neurons=8, n_inputs=5, n_outputs=3, n_contexts=2, dt=100.0, tau=200.0, w_rec_scale=0.2)
    model = ModulatedRNN(cfg, ["excitability", "rule"], torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        model.ctx_bias.copy_(torch.randn(model.ctx_bias.shape, generator=gen))
        model.ctx_gain.copy_(0.3 * torch.randn(model.ctx_gain.shape, generator=gen))
    s, c, p, n = 2, 2, 3, 8
    u = torch.tensor([1.0, 0.5, 0.0, -0.5, 0.2])
    contexts = torch.eye(2)
    initial = torch.randn(s, c, p, n, generator=gen)
    found = fixed_points(model, u, contexts, initial, steps=3000, lr=0.05, tol=1e-9)
    assert found.points.shape == (s * c * p, n) and found.speed.shape == (s * c * p,)
    assert bool(found.converged.all()) and bool((found.speed < 1e-9).all())
    assert bool(found.stable.all())
    # a contracting map has one fixed point per network and context: where a long run settles
    with torch.no_grad():
        _, states = model(u.expand(c, 1, 100, -1), contexts, noise=False)
    settled = states[:, :, 0, -1]  # (S, C, N)
    torch.testing.assert_close(
        found.points.reshape(s, c, p, n), settled[:, :, None].expand(s, c, p, n), atol=1e-4, rtol=0
    )
    assert not torch.allclose(
        settled[:, 0], settled[:, 1], atol=1e-3
    )  # contexts differ, so the order is checked
    assert not torch.allclose(settled[0], settled[1], atol=1e-3)


def test_paired_scores_run_in_chunks_of_contexts_with_the_same_noise(seeded):
    """Memory stays bounded: contexts run a few at a time, each chunk with identically seeded noise,
    which gives what one pass gives."""
    seeded(0)
    model = tiny_model().eval()
    lambdas = [0.0, 0.25, 0.5, 0.75, 1.0]
    whole = mixture_performance(model, ["go", "anti"], 0, 1, lambdas, TASK_CONFIG, trials=16)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mt, "_EVAL_CHUNK", 1)  # one context per chunk
        chunked = mixture_performance(model, ["go", "anti"], 0, 1, lambdas, TASK_CONFIG, trials=16)
    for a, b in zip(whole, chunked, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1 / 16 + 1e-6)  # at most one trial on a knife edge
        assert float((a - b).abs().mean()) < 0.02
