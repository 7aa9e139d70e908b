"""Tests of multitask training of stacked RNNs and the packing, ambiguity and dynamics experiments.

Training runs are tiny (16 neurons, rings of 8 units, 60 steps): they check the bookkeeping
(shapes, NaN padding, early stopping, solved_at, reproducibility), not that tasks are learned.
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
    PackingSweep,
    TrainConfig,
    evaluate_networks,
    fixed_points,
    mixture_performance,
    mixtures,
    noise_performance,
    packing_sweep,
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
    base = dict(steps=60, batch=16, lr=1e-2, eval_every=20, eval_trials=16)
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
    assert result.history.shape == (3, 2, 2) and result.perf.shape == (2, 2)
    assert_same(result.perf, result.history[-1])
    assert bool(result.history[:, 0, 1].isnan().all())  # network 0 has K = 1
    finite = result.history[~torch.tensor([[False, True], [False, False]]).expand(3, 2, 2)]
    assert bool(((finite >= 0) & (finite <= 1)).all())
    assert bool(((finite * 16).round() == finite * 16).all())  # a fraction of the 16 evaluation trials
    assert len(result.losses) == 3 and all(math.isfinite(v) for v in result.losses)
    assert result.losses[-1] < result.losses[0]
    assert result.solved_at.shape == (2,) and result.solved.shape == (2,)
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
    monkeypatch.setattr(mt, "performance", lambda outputs, batch: torch.ones(batch.shape))
    _, result = train(seeded, steps=100)
    assert result.history_steps == [20]  # stopped at the first evaluation (fit's target)
    assert len(result.losses) == 1
    assert_same(result.perf, torch.tensor([[1.0, math.nan], [1.0, 1.0]]))
    assert result.solved.tolist() == [True, True]
    assert result.solved_at.tolist() == [20.0, 20.0]


def test_a_network_that_never_solves_runs_every_step(seeded, monkeypatch):
    monkeypatch.setattr(mt, "performance", lambda outputs, batch: torch.zeros(batch.shape))
    _, result = train(seeded)
    assert result.history_steps == [20, 40, 60]
    assert result.solved.tolist() == [False, False]
    assert bool(result.solved_at.isnan().all())


def test_solved_at_is_the_first_evaluation_at_criterion(seeded, monkeypatch):
    nan = math.nan
    script = [
        [[0.95, nan], [0.95, 0.50]],  # network 0 solved, network 1 not
        [[0.50, nan], [0.95, 0.92]],  # network 0 lost it, network 1 solved
        [[0.91, nan], [0.90, 0.99]],  # both solved (0.9 is at criterion): stop
        [[0.00, nan], [0.00, 0.00]],  # never reached
    ]
    calls = iter(torch.tensor(row) for row in script)
    monkeypatch.setattr(mt, "evaluate_networks", lambda *args: next(calls))
    _, result = train(seeded, steps=100, criterion=0.9)
    assert result.history_steps == [20, 40, 60]
    assert_same(result.history, torch.tensor(script[:3]))
    assert result.solved_at.tolist() == [20.0, 40.0]
    assert result.solved.tolist() == [True, True]
    result.perf = torch.tensor(script[1])
    assert result.solved.tolist() == [False, True]  # solved is about the final performance


def test_evaluate_networks_pads_beyond_each_networks_k():
    model = tiny_model(["rule", "rule", "both"], k=3)
    table, k = mt._task_table([("go",), ("go", "anti", "dm1"), ("anti", "go")])
    batch, positions = mt.evaluation_batch(table, k, 4, TASK_CONFIG, seed=0)
    assert batch.shape == (3, 3, 4)
    assert positions.tolist() == [[0, 0, 0], [0, 1, 2], [0, 1, 0]]
    assert batch.task[2, :, 0].tolist() == [3, 0, 3]  # anti, go, anti (padding repeats the list)
    perf = evaluate_networks(model, batch, positions, k)
    assert perf.shape == (3, 3)
    assert perf.isnan().tolist() == [[False, True, True], [False, False, False], [False, False, True]]


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


@pytest.mark.parametrize(
    "kw, words",
    [
        ({"ks": [2, 14]}, "K=14 is larger than the 13 tasks available"),
        ({"ks": [3], "order": ("go", "anti")}, "larger than the 2 tasks available"),
        ({"sizes": [8, 0]}, "sizes"),
        ({"sizes": []}, "sizes"),
        ({"ks": [0, 1]}, "ks"),
        ({"replicates": 0}, "replicates"),
        ({"replicates": True}, "replicates"),
        ({"pathways": ["rule", "dopamine"]}, "pathways"),
    ],
)
def test_packing_sweep_checks_its_grid_before_training(no_training, kw, words):
    args = {"sizes": [8], "ks": [1, 2], "pathways": ["rule"], "replicates": 1, **kw}
    with pytest.raises(ValueError, match=words):
        packing_sweep(task_config=TASK_CONFIG, config=train_config(), progress=False, **args)


# --- packing ---------------------------------------------------------------------------------
def test_packing_capacity_is_the_largest_solved_k_per_replicate():
    def row(n, pathway, rep, k, solved):
        return {"n_neurons": n, "pathway": pathway, "replicate": rep, "k": k, "solved": solved}

    rows = [
        row(8, "rule", 1, 1, False),
        row(8, "rule", 0, 3, False),
        row(8, "rule", 0, 1, True),
        row(8, "rule", 1, 2, False),
        row(8, "rule", 0, 2, True),
        row(8, "both", 0, 3, True),  # the largest solved K even though K = 1 failed
        row(8, "both", 0, 1, False),
        row(16, "rule", 0, 2, True),
    ]
    capacity = PackingSweep(rows, 0.9).capacity()
    assert capacity == {(8, "rule"): [2, 0], (8, "both"): [3], (16, "rule"): [2]}


def test_packing_sweep_rows(seeded, monkeypatch):
    monkeypatch.setattr(mt, "performance", lambda outputs, batch: torch.ones(batch.shape))
    seeded(0)
    config = TrainConfig(steps=20, batch=8, eval_every=20, eval_trials=4)
    sweep, stacks = packing_sweep([8], [1, 2], ["rule", "both"], 2, TASK_CONFIG, config, progress=False)
    assert len(sweep.rows) == 8 and set(stacks) == {8}
    model, result = stacks[8]
    assert model.n_networks == 8 and model.config.n_contexts == 2
    assert result.tasks == [("go",)] * 4 + [("go", "anti")] * 4
    for row in sweep.rows:
        per_task = {"rule": 8, "both": 4 * 8}[row["pathway"]]  # N K and 2 N K + 2 N K rank
        assert row["context_params"] == per_task * row["k"]
        assert row["shared_params"] == model.shared_parameters()
        assert row["solved"] and row["solved_at"] == 20.0
    assert sweep.capacity() == {(8, "rule"): [2, 2], (8, "both"): [2, 2]}


def sweep_of(
    solved: dict, sizes=(8, 16), ks=(1, 2), pathways=("rule", "excitability", "synaptic", "both"), reps=2
):
    """A :class:`PackingSweep` in :func:`packing_sweep`'s row order; ``solved[(n, p, r)]``: the Ks solved."""
    rows = [
        {"n_neurons": n, "pathway": p, "replicate": r, "k": k, "solved": k in solved.get((n, p, r), ())}
        for n in sizes
        for k in ks
        for r in range(reps)
        for p in pathways
    ]
    return PackingSweep(rows, 0.9)


def expected_answer(solved: dict, sizes, ks, pathways, reps):
    """Notebook 04's recorded metrics and samples, computed another way: with tensors from ``solved``."""
    cap = torch.tensor(
        [[[max((k for k in ks if k in solved.get((n, p, r), ())), default=0) for r in range(reps)]
          for p in pathways] for n in sizes],
        dtype=torch.float64,
    )  # (N, P, R)  # fmt: skip
    total = cap.sum(-1)  # (N, P)
    mean = (total / reps).mean(0)
    metrics = {f"capacity_N{n}_{p}": round((total[i, j] / reps).item(), 2)
               for i, n in enumerate(sizes) for j, p in enumerate(pathways)}  # fmt: skip
    metrics.update({f"mean_capacity_{p}": round(mean[j].item(), 2) for j, p in enumerate(pathways)})
    singles = [j for j, p in enumerate(pathways) if p in ("excitability", "synaptic")]
    both = pathways.index("both") if "both" in pathways else None
    synergy = (
        None if both is None or not singles else bool((total[:, both] >= total[:, singles].amax(1)).all())
    )
    grows = bool((total.diff(dim=0) >= 0).all())
    metrics.update({"best_pathway": pathways[int(mean.argmax())], "both_at_least_best_single": synergy,
                    "capacity_grows_with_n": grows})  # fmt: skip
    samples = {}
    if synergy is not None:
        gap = (cap[:, both] - cap[:, singles].amax(1)).mean(0)  # (R,)
        samples["both_minus_best_single_capacity"] = gap.tolist()
    return metrics, samples


SOLVED = {
    (8, "rule", 0): (1,),
    (8, "excitability", 0): (1, 2),
    (8, "excitability", 1): (1,),
    (8, "synaptic", 1): (2,),
    (8, "both", 0): (1, 2),
    (16, "rule", 0): (1, 2),
    (16, "rule", 1): (1, 2),
    (16, "excitability", 0): (1,),
    (16, "synaptic", 0): (1, 2),
    (16, "synaptic", 1): (1, 2),
    (16, "both", 1): (1,),
}


def test_packing_answer_computes_what_the_notebook_records():
    sweep = sweep_of(SOLVED)
    assert (sweep.sizes, sweep.ks, sweep.replicates) == ([8, 16], [1, 2], 2)
    assert sweep.pathways == ["rule", "excitability", "synaptic", "both"]
    answer = mt.packing_answer(sweep)
    assert answer.mean_capacity == {"rule": 1.25, "excitability": 1.0, "synaptic": 1.5, "both": 0.75}
    assert (
        answer.best == "synaptic" and answer.synergy is False and answer.grows is False
    )  # excitability drops
    metrics, samples = expected_answer(SOLVED, [8, 16], [1, 2], sweep.pathways, 2)
    assert answer.metrics() == metrics and list(answer.metrics()) == list(metrics)
    assert answer.samples() == samples == {"both_minus_best_single_capacity": [-1.0, -1.5]}
    text = answer.conclusions().data
    assert "Packs the most tasks: synaptic." in text
    assert "better single pathway at every N: **no**" in text and "with N for every pathway: **no**" in text
    table = answer.mean_capacity_table()
    assert table.rows == (("rule", "1.25"), ("excitability", "1.00"), ("synaptic", "1.50"), ("both", "0.75"))


@pytest.mark.parametrize("seed", range(5))
def test_packing_answer_agrees_with_the_notebooks_computation_on_random_sweeps(seed):
    g = torch.Generator().manual_seed(seed)
    pathways = [("rule", "both"), ("excitability", "synaptic", "both"), ("rule", "synaptic")][seed % 3]
    sizes, ks, reps = (8, 32, 16), (1, 2, 3), 3
    solved = {
        (n, p, r): tuple(k for k in ks if torch.rand(1, generator=g).item() < 0.5)
        for n in sizes
        for p in pathways
        for r in range(reps)
    }
    sweep = sweep_of(solved, sizes, ks, pathways, reps)
    answer = mt.packing_answer(sweep)
    metrics, samples = expected_answer(solved, sizes, ks, list(pathways), reps)
    assert answer.metrics() == metrics
    assert answer.samples().keys() == samples.keys()
    for key, values in samples.items():
        assert answer.samples()[key] == pytest.approx(values, abs=1e-12)
    assert ("Both pathways together" in answer.conclusions().data) == (answer.synergy is not None)


def test_sweep_tables_show_capacity_and_solved_fractions():
    sweep = sweep_of(SOLVED, pathways=("rule", "both"))
    capacity = sweep.capacity_table()
    assert capacity.header == ("N", "rule", "both")
    assert capacity.rows == (("8", "0.50 [1, 0]", "1.00 [2, 0]"), ("16", "2.00 [2, 2]", "0.50 [0, 1]"))
    solved = sweep.solved_table()
    assert solved.header == ("N", "pathway", "K=1", "K=2")
    assert solved.rows[0] == ("8", "rule", "0.50", "0.00") and solved.rows[3] == (
        "16",
        "both",
        "0.50",
        "0.00",
    )
    assert sweep.solved_count(16, "rule", 2) == 2 and sweep.solved_count(8, "both", 2) == 1


def test_training_check_asks_half_the_largest_networks_to_solve_the_smallest_k():
    ok, text = sweep_of(SOLVED).training_check()
    assert ok  # exactly half of the excitability and both networks of N = 16 solve K = 1
    assert text == (
        "at N = 16, at least half the networks of every pathway solve K = 1: "
        "rule 2/2, excitability 1/2, synaptic 2/2, both 1/2"
    )
    failed, text = sweep_of(
        {k: v for k, v in SOLVED.items() if k != (16, "excitability", 0)}
    ).training_check()
    assert not failed and "excitability 0/2" in text
    small_only = {k: v for k, v in SOLVED.items() if k[0] == 8}  # the smaller networks do not count
    assert not sweep_of(small_only).training_check()[0]


def test_context_parameter_table_lists_each_pathway_with_the_shared_count():
    model = tiny_model(["rule", "excitability", "both"], n=16, k=3)
    table = mt.context_parameter_table(model)
    assert table.header == ("pathway", "context parameters")
    assert [row[0] for row in table.rows] == ["rule", "excitability", "both"]
    assert [row[1] for row in table.rows] == [f"{c:,}" for c in model.context_parameters()]
    assert table.caption == f"N = 16, K = 3: shared parameters {model.shared_parameters():,}"


def test_training_time_table_and_the_network_worth_looking_inside():
    from neuromod_lib.multitask import TrainResult

    tasks = [("go",), ("go",), ("go", "anti"), ("go", "anti")]
    result = TrainResult(("rule", "both") * 2, tasks, torch.ones(4, 2), torch.ones(1, 4, 2), [20, 40],
                         torch.zeros(4), 0.9, 12.4)  # fmt: skip
    model = tiny_model(["rule", "both", "rule", "both"])
    table = mt.training_time_table({8: (model, result)})
    assert table.rows == (("8", "4", "40", "12"),)
    assert mt.largest_task_network(result, "both") == (3, ("go", "anti"))
    assert mt.largest_task_network(result, "rule") == (2, ("go", "anti"))
    with pytest.raises(ValueError, match="pathway='synaptic'"):
        mt.largest_task_network(result, "synaptic")


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
