"""The Yang et al. (2019) task battery (:mod:`neuromod_lib.data.tasks`) and its performance rule.

What could go wrong and is checked here: wrong shapes, dtypes or devices; batches that are not
reproducible from the generator; stimuli with the wrong tuning, strength, modality or timing;
targets that do not follow each task's rule (anti, stronger stimulus, context, summed evidence,
match / non-match); cost masks and epochs that disagree with ``response_on``; a performance
rule that accepts broken fixation, wrong directions or responses on no-go trials, or rejects
the ideal output; and arguments that are accepted although they cannot work.

Stimulus strengths are read back from the inputs by least squares on independently computed
tuning bumps, so the decision rules are checked against what the network actually sees.
"""

from __future__ import annotations

import math

import pytest
import torch

from neuromod_lib.data.tasks import (
    PACKING_ORDER,
    TASKS,
    TaskConfig,
    TrialBatch,
    first_tasks,
    generate,
    performance,
    popvec,
    preferred_directions,
    task_index,
)

pytestmark = pytest.mark.usefixtures("one_thread")

PER_TASK = 120  # trials of every task in the shared batch
CONFIG = TaskConfig()  # dt = 100 ms, 32 units per ring
N = CONFIG.n_ring
RESPONSE_STEPS = 5  # 500 ms at dt = 100


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def circular(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Absolute angular distance in [0, pi]."""
    return torch.atan2(torch.sin(a - b), torch.cos(a - b)).abs()


def bump(theta: torch.Tensor, n_ring: int = N) -> torch.Tensor:
    """Yang's tuning curve, written independently of the module: ``(...,)`` -> ``(..., n_ring)``."""
    pref = torch.arange(n_ring) * (2 * math.pi / n_ring)
    d = circular(theta[..., None], pref) / (math.pi / 8)
    return 0.8 * torch.exp(-(d**2) / 2)


def rings(batch: TrialBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """The two input rings, each ``(*shape, T, n_ring)``."""
    n = batch.config.n_ring
    return batch.inputs[..., 1 : 1 + n], batch.inputs[..., 1 + n :]


def at_step(x: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """``x[i, step[i]]`` for ``x`` of shape (B, T, ...)."""
    return x[torch.arange(x.shape[0]), step]


def strengths(batch: TrialBatch, step: torch.Tensor) -> torch.Tensor:
    """Strengths (B, modality, stimulus) of the bumps at ``stim1`` and ``stim2`` in the inputs at ``step``."""
    basis = torch.stack([bump(batch.stim1), bump(batch.stim2)], -1).double()  # (B, n, 2)
    observed = torch.stack([at_step(r, step) for r in rings(batch)], -1).double()  # (B, n, 2 modalities)
    solution = torch.linalg.lstsq(basis, observed).solution  # (B, 2 stimuli, 2 modalities)
    return solution.transpose(1, 2).float()


def of(batch: TrialBatch, name: str) -> TrialBatch:
    """The trials of task ``name`` (1-D batches)."""
    keep = batch.task == TASKS.index(name)
    values = {k: getattr(batch, k)[keep] for k in ("inputs", "targets", "mask", "task", "response_on")}
    values |= {k: getattr(batch, k)[keep] for k in ("go", "target", "stim1", "stim2")}
    return TrialBatch(**values, config=batch.config)


@pytest.fixture(scope="module")
def batch() -> TrialBatch:
    """``PER_TASK`` trials of every task, shuffled."""
    g = seeded(0)
    ids = torch.arange(len(TASKS)).repeat(PER_TASK)
    return generate(ids[torch.randperm(ids.numel(), generator=g)], CONFIG, g)


# --------------------------------------------------------------------------- names and configuration


def test_task_lists():
    assert len(TASKS) == 13 and len(set(TASKS)) == 13
    assert sorted(PACKING_ORDER) == sorted(TASKS)
    assert first_tasks(1) == ("go",)
    assert first_tasks(3) == ("go", "anti", "dm1")
    assert first_tasks(len(TASKS)) == PACKING_ORDER


def test_task_index():
    assert task_index(["go", "dnms", "dm1"]).tolist() == [0, 12, 6]
    single = task_index("anti")
    assert single.dtype == torch.long and single.tolist() == [3]
    assert [TASKS[i] for i in task_index(TASKS)] == list(TASKS)


def test_task_index_errors():
    with pytest.raises(ValueError, match="unknown task 'foo'") as info:
        task_index(["go", "foo"])
    assert "choose from " + ", ".join(TASKS) in str(info.value)
    with pytest.raises(ValueError, match=r"names=\[\]"):
        task_index([])


@pytest.mark.parametrize(
    ("k", "fragment"),
    [(0, "k=0 must be at least 1"), (14, "k=14 is larger than the 13 tasks available"), (-2, "k=-2"),
     (2.5, "k=2.5 must be an integer"), (True, "k=True")],
)  # fmt: skip
def test_first_tasks_errors(k, fragment):
    with pytest.raises(ValueError, match=fragment) as info:
        first_tasks(k)
    assert "[1, 13]" in str(info.value)


def test_config_defaults_and_sizes():
    config = TaskConfig(dt=20, n_ring=8, coherences=[0.1, 0.2])
    assert config.n_inputs == 17 and config.n_outputs == 9
    assert config.coherences == (0.1, 0.2) and isinstance(config.dt, float)
    assert hash(config) == hash(TaskConfig(dt=20.0, n_ring=8, coherences=(0.1, 0.2)))
    assert CONFIG.n_inputs == 65 and CONFIG.n_outputs == 33


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [({"dt": 0}, "dt=0"), ({"dt": -5.0}, "dt=-5.0"), ({"dt": 600}, "dt=600"), ({"dt": math.nan}, "dt=nan"),
     ({"dt": "100"}, "dt='100'"), ({"n_ring": 3}, "n_ring=3"), ({"n_ring": 4.5}, "n_ring=4.5"),
     ({"n_ring": True}, "n_ring=True"), ({"coherences": ()}, "coherences=()"),
     ({"coherences": (0.1, 0.0)}, "coherences=(0.1, 0.0)"), ({"coherences": (-0.1,)}, "coherences=(-0.1,)"),
     ({"coherences": (0.8,)}, "coherences=(0.8,)"), ({"dt": True}, "TaskConfig.dt=True"),
     ({"dt": math.inf}, "TaskConfig.dt=inf"), ({"coherences": (math.nan,)}, "TaskConfig.coherences=(nan,)")],
)  # fmt: skip
def test_config_rejects(kwargs, fragment):
    with pytest.raises(ValueError, match="allowed") as info:
        TaskConfig(**kwargs)
    assert fragment in str(info.value)


# --------------------------------------------------------------------------- shapes, determinism, arguments


@pytest.mark.parametrize("shape", [(3, 5), (7,)])
def test_shapes_and_dtypes(shape):
    ids = torch.randint(len(TASKS), shape, generator=seeded(1))
    b = generate(ids, CONFIG, seeded(2))
    T = b.steps
    assert b.shape == shape and b.inputs.shape == (*shape, T, 65) and b.targets.shape == (*shape, T, 33)
    assert b.mask.shape == (*shape, T)
    for name in ("inputs", "targets", "mask", "target", "stim1", "stim2"):
        assert getattr(b, name).dtype == torch.float32, name
    assert b.task.dtype == b.response_on.dtype == torch.long and b.go.dtype == torch.bool
    for name in ("task", "response_on", "go", "target", "stim1", "stim2"):
        assert getattr(b, name).shape == shape, name
    assert torch.equal(b.task, ids) and b.config is CONFIG
    assert b.inputs.isfinite().all() and b.targets.isfinite().all()
    valid = b.stim1.isfinite()
    assert valid.all() and (b.stim1 >= 0).all() and (b.stim1 < 2 * math.pi).all()


def test_same_seed_same_batch_other_seed_other_batch():
    ids = torch.arange(len(TASKS)).repeat(4)
    a, b, c = (generate(ids, CONFIG, seeded(s)) for s in (5, 5, 6))
    for name in ("inputs", "targets", "mask", "task", "response_on", "go"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    for name in ("target", "stim1", "stim2"):
        assert torch.equal(getattr(a, name).nan_to_num(-1), getattr(b, name).nan_to_num(-1)), name
    assert not torch.equal(a.stim1, c.stim1)
    assert not torch.equal(a.response_on, c.response_on)


def test_generator_advances_and_draws_do_not_depend_on_other_trials():
    g = seeded(3)
    first, second = (
        generate(torch.zeros(20, dtype=torch.long), CONFIG, g),
        generate(torch.zeros(20, dtype=torch.long), CONFIG, g),
    )
    assert not torch.equal(first.stim1, second.stim1)
    # Every trial draws the same numbers whatever the tasks of the batch: same first stimulus.
    go = generate(torch.zeros(30, dtype=torch.long), CONFIG, seeded(4))
    mixed = generate(torch.arange(30) % len(TASKS), CONFIG, seeded(4))
    assert torch.equal(go.stim1, mixed.stim1)


def test_integer_dtypes_accepted():
    b = generate(torch.tensor([0, 12], dtype=torch.int32), CONFIG, seeded(0))
    assert b.task.dtype == torch.long and b.task.tolist() == [0, 12]


@pytest.mark.parametrize(
    ("ids", "fragment"),
    [(torch.tensor([0.0, 1.0]), "dtype torch.float32"), (torch.tensor([True]), "dtype torch.bool"),
     (torch.tensor([0, 13]), "[0, 13)"), (torch.tensor([-1, 2]), "from -1 to 2"),
     (torch.zeros(0, dtype=torch.long), "empty")],
)  # fmt: skip
def test_generate_rejects_bad_ids(ids, fragment):
    with pytest.raises(ValueError, match="task_ids") as info:
        generate(ids, CONFIG, seeded(0))
    assert fragment in str(info.value)


def test_generate_rejects_non_tensor():
    with pytest.raises(TypeError, match="task_index"):
        generate([0, 1], CONFIG, seeded(0))  # type: ignore[arg-type]


def test_to_device_keeps_everything(batch):
    moved = batch.to("cpu")
    assert moved is not batch and moved.config is batch.config and moved.device.type == "cpu"
    assert torch.equal(moved.inputs, batch.inputs) and torch.equal(moved.response_on, batch.response_on)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batch_equals_cpu_batch():
    ids = torch.arange(len(TASKS)).repeat(10)
    cpu = generate(ids, CONFIG, seeded(8))
    gpu = generate(ids.cuda(), CONFIG, seeded(8))
    assert gpu.inputs.is_cuda and gpu.targets.is_cuda and gpu.go.is_cuda and gpu.task.is_cuda
    for name in ("mask", "task", "response_on", "go"):
        assert torch.equal(getattr(gpu, name).cpu(), getattr(cpu, name)), name
    for name in ("inputs", "targets", "target", "stim1", "stim2"):
        torch.testing.assert_close(getattr(gpu, name).cpu(), getattr(cpu, name), equal_nan=True)
    assert performance(gpu.targets, gpu).is_cuda and performance(gpu.targets, gpu).cpu().eq(1).all()


# --------------------------------------------------------------------------- timing, epochs, mask, targets


def test_every_response_period_runs_to_the_end(batch):
    T, length = batch.steps, batch.steps - batch.response_on
    assert (length >= RESPONSE_STEPS).all() and (length == RESPONSE_STEPS).any()
    assert T == 34  # the longest possible trial: dly tasks, 700 + 600 + 1600 + 500 ms


def test_epochs_partition_the_trial(batch):
    epochs = batch.epochs()
    assert set(epochs) == {"fixation", "stimulus", "delay", "response"}
    total = sum(e.int() for e in epochs.values())
    assert (total == 1).all()
    t = torch.arange(batch.steps)
    assert torch.equal(epochs["response"], t >= batch.response_on[:, None])
    assert epochs["fixation"][:, 0].all()  # every trial starts with fixation


@pytest.mark.parametrize(
    ("names", "fixation", "stimulus", "delay", "stim_at_end"),
    [(("go", "anti"), set(range(3, 8)), set(range(5, 16)), {0}, True),
     (("rt_go", "rt_anti"), set(range(5, 26)), {0}, {0}, True),
     (("dly_go", "dly_anti"), {3, 5, 7}, {2, 4, 6}, {2, 4, 8, 16}, False),
     (("dm1", "dm2", "ctx_dm1", "ctx_dm2", "multi_dm"), set(range(1, 5)), {4, 8, 16}, {0}, False),
     (("dms", "dnms"), set(range(1, 5)), {3}, {2, 4, 8, 16}, True)],
)  # fmt: skip
def test_epoch_durations(batch, names, fixation, stimulus, delay, stim_at_end):
    for name in names:
        b = of(batch, name)
        lengths = {k: set(v.sum(-1).tolist()) for k, v in b.epochs().items()}
        assert lengths["fixation"] <= fixation and lengths["stimulus"] <= stimulus, name
        assert lengths["delay"] <= delay, name
        assert len(lengths["fixation"]) > 1 or len(fixation) == 1, name  # drawn per trial
        assert len(lengths["delay"]) == len(delay), name  # every delay occurs in 120 trials
        shown_at_end = b.inputs[:, -1, 1:].ne(0).any(-1)
        assert shown_at_end.all() if stim_at_end else not shown_at_end.any(), name


def test_fixation_input(batch):
    t = torch.arange(batch.steps)
    fixation = batch.inputs[..., 0]
    rt = (batch.task == TASKS.index("rt_go")) | (batch.task == TASKS.index("rt_anti"))
    assert (fixation[rt] == 1).all()  # reaction time: never goes off
    # ... and their response begins with the stimulus
    first_shown = batch.inputs[..., 1:].ne(0).any(-1).int().argmax(-1)
    assert torch.equal(first_shown[rt], batch.response_on[rt])
    expected = (t < batch.response_on[:, None]).float()
    assert torch.equal(fixation[~rt], expected[~rt])  # no-go trials included: the go cue still comes


@pytest.mark.parametrize("dt", [100.0, 20.0, 30.0])
def test_mask(dt):
    b = generate(torch.arange(len(TASKS)).repeat(3), TaskConfig(dt=dt), seeded(1))
    t = torch.arange(b.steps)
    ignored = (t * dt < 100).expand_as(b.mask)
    response = t >= b.response_on[:, None]
    assert (b.mask[ignored] == 0).all()
    assert (b.mask[~ignored & ~response] == 1).all()
    assert (b.mask[response] == 5).all()
    assert ignored.sum() == b.mask.numel() // b.steps * math.ceil(100 / dt)


def test_targets(batch):
    t = torch.arange(batch.steps)
    responding = (t >= batch.response_on[:, None]) & batch.go[:, None]
    fixation = batch.targets[..., 0]
    assert (fixation[responding] == 0.05).all() and (fixation[~responding] == 0.85).all()
    ring = batch.targets[..., 1:]
    assert (ring[~responding] == 0.05).all()  # no-go trials: 0.05 throughout
    go = batch.go
    expected = 0.05 + bump(batch.target[go])
    last = ring[go, -1]
    torch.testing.assert_close(last, expected, atol=1e-5, rtol=0)
    first = at_step(ring[go], batch.response_on[go])
    torch.testing.assert_close(first, expected, atol=1e-5, rtol=0)


def test_fewer_steps_with_larger_dt():
    ids = task_index("dly_go").repeat(200)
    fine, coarse = (generate(ids, TaskConfig(dt=dt), seeded(9)) for dt in (20.0, 100.0))
    assert torch.equal(fine.stim1, coarse.stim1)  # the same draws, only rounded differently
    gap = (fine.response_on * 20 - coarse.response_on * 100).abs()
    assert (gap <= 3 * 50 + 3 * 10).all()  # rounding of three epochs at each dt
    assert 4.5 <= fine.steps / coarse.steps <= 5.5


# --------------------------------------------------------------------------- stimuli and rules


SINGLE = ("go", "rt_go", "dly_go", "anti", "rt_anti", "dly_anti")


@pytest.mark.parametrize("name", SINGLE)
def test_single_stimulus_tasks(batch, name):
    b = of(batch, name)
    assert b.go.all() and b.stim2.isnan().all()
    shift = math.pi if "anti" in name else 0.0
    assert circular(b.target, b.stim1 + shift).max() < 1e-5
    assert ((b.target >= 0) & (b.target < 2 * math.pi)).all()
    one, two = rings(b)
    in_one = one.ne(0).any(-1).any(-1)
    assert torch.equal(in_one, ~two.ne(0).any(-1).any(-1))  # exactly one modality carries it
    assert 0.3 < in_one.float().mean() < 0.7  # ... chosen at random
    ring = torch.where(in_one[:, None, None], one, two)
    shown = ring.ne(0).any(-1, keepdim=True)
    torch.testing.assert_close(ring, shown * bump(b.stim1)[:, None, :], atol=1e-6, rtol=0)  # strength 1


DM = ("dm1", "dm2", "ctx_dm1", "ctx_dm2", "multi_dm")


def dm_strengths(b: TrialBatch) -> torch.Tensor:
    """(B, modality, stimulus) strengths during the stimulus (the step before the response)."""
    return strengths(b, b.response_on - 1)


@pytest.mark.parametrize("name", DM)
def test_dm_stimuli(batch, name):
    b = of(batch, name)
    assert b.go.all() and b.stim2.isfinite().all()
    assert (circular(b.stim1, b.stim2) >= math.pi / 2 - 1e-5).all()
    s = dm_strengths(b)
    carried = {"dm1": [0], "dm2": [1]}.get(name, [0, 1])
    silent = [m for m in (0, 1) if m not in carried]
    for m in silent:
        assert (rings(b)[m] == 0).all()
    total = s[:, carried].sum(-1)  # 2 * mean, shared by the modalities
    assert ((total > 1.6 - 1e-4) & (total < 2.4 + 1e-4)).all()
    torch.testing.assert_close(total, total[:, :1].expand_as(total), atol=1e-4, rtol=0)
    coherence = (s[:, carried, 0] - s[:, carried, 1]) / 2
    nearest = (coherence.abs()[..., None] - torch.tensor(CONFIG.coherences)).abs().amin(-1)
    assert (nearest < 1e-4).all()
    # The target is the stronger stimulus; check directly on the input ring at the preferred directions.
    if name in ("dm1", "dm2"):
        ring = at_step(rings(b)[carried[0]], b.response_on - 1)
        unit = lambda angle: torch.round(angle / (2 * math.pi / N)).long() % N  # noqa: E731
        other = torch.where(circular(b.target, b.stim1) < 1e-5, b.stim2, b.stim1)
        rows = torch.arange(len(ring))
        assert (ring[rows, unit(b.target)] > ring[rows, unit(other)]).all()


def coherences_of(b: TrialBatch) -> torch.Tensor:
    """Signed coherence (B, modality): positive when stimulus 1 is the stronger one."""
    s = dm_strengths(b)
    return (s[..., 0] - s[..., 1]) / 2


@pytest.mark.parametrize(("name", "weights"), [("dm1", (1, 0)), ("dm2", (0, 1)), ("ctx_dm1", (1, 0)),
                                               ("ctx_dm2", (0, 1)), ("multi_dm", (1, 1))])  # fmt: skip
def test_dm_targets_follow_the_rule(batch, name, weights):
    b = of(batch, name)
    evidence = (coherences_of(b) * torch.tensor(weights, dtype=torch.float32)).sum(-1)
    assert (evidence.abs() > 0.01).all()  # never tied
    chose_first = circular(b.target, b.stim1) < 1e-5
    assert chose_first.any() and (~chose_first).any()
    assert (circular(b.target[~chose_first], b.stim2[~chose_first]) < 1e-5).all()
    assert torch.equal(chose_first, evidence > 0)


@pytest.mark.parametrize(("name", "attended"), [("ctx_dm1", 0), ("ctx_dm2", 1)])
def test_context_dm_ignores_the_other_modality(batch, name, attended):
    b = of(batch, name)
    c = coherences_of(b)
    conflict = c[:, 0].sign() != c[:, 1].sign()
    assert conflict.sum() > 20  # about half of the trials
    chose_first = circular(b.target, b.stim1) < 1e-5
    assert torch.equal(chose_first[conflict], c[conflict, attended] > 0)
    assert torch.equal(chose_first[conflict], c[conflict, 1 - attended] < 0)  # the other modality disagrees


def test_multi_dm_sums_the_modalities(batch):
    b = of(batch, "multi_dm")
    c = coherences_of(b)
    conflict = c[:, 0].sign() != c[:, 1].sign()
    assert conflict.sum() > 10  # the weaker modality is sometimes outvoted
    chose_first = circular(b.target, b.stim1) < 1e-5
    assert torch.equal(chose_first, c.sum(-1) > 0)


@pytest.mark.parametrize(("name", "go_on_match"), [("dms", True), ("dnms", False)])
def test_match_tasks(batch, name, go_on_match):
    b = of(batch, name)
    match = circular(b.stim1, b.stim2) < 1e-6
    assert 0.3 < match.float().mean() < 0.7
    assert (circular(b.stim1[~match], b.stim2[~match]) >= math.pi / 2 - 1e-5).all()
    assert torch.equal(b.go, match if go_on_match else ~match)
    assert b.target[~b.go].isnan().all() and (circular(b.target[b.go], b.stim2[b.go]) < 1e-6).all()
    # Sample and test stimulus in the same modality, each with strength 1.
    one, two = rings(b)
    in_one = one.ne(0).any(-1).any(-1)
    assert torch.equal(in_one, ~two.ne(0).any(-1).any(-1)) and 0.2 < in_one.float().mean() < 0.8
    ring = torch.where(in_one[:, None, None], one, two)
    sample = at_step(ring, b.epochs()["stimulus"].int().argmax(-1))
    torch.testing.assert_close(sample, bump(b.stim1), atol=1e-6, rtol=0)
    torch.testing.assert_close(ring[:, -1], bump(b.stim2), atol=1e-6, rtol=0)
    first_test = at_step(b.inputs[..., 1:].ne(0).any(-1), b.response_on)
    before = at_step(b.inputs[..., 1:].ne(0).any(-1), b.response_on - 1)
    assert first_test.all() and not before.any()  # the test stimulus comes with the go cue


# --------------------------------------------------------------------------- popvec and performance


def test_preferred_directions():
    pref = preferred_directions(8)
    assert pref.shape == (8,) and pref[0] == 0 and pref[-1] < 2 * math.pi
    torch.testing.assert_close(pref.diff(), torch.full((7,), math.pi / 4))


@pytest.mark.parametrize(("n_ring", "tolerance"), [(32, 1e-4), (8, 0.03)])
def test_popvec_recovers_a_bump(n_ring, tolerance):
    theta = torch.rand(500, generator=seeded(0)) * 2 * math.pi
    decoded = popvec(0.05 + bump(theta, n_ring) * 0.7)
    assert decoded.shape == (500,) and (decoded >= 0).all() and (decoded < 2 * math.pi).all()
    assert circular(decoded, theta).max() < tolerance
    one_hot = torch.eye(n_ring)
    torch.testing.assert_close(popvec(one_hot), preferred_directions(n_ring), atol=1e-5, rtol=0)


def ideal(batch: TrialBatch) -> torch.Tensor:
    return batch.targets.clone()


def test_ideal_outputs_score_one_for_every_task(batch):
    assert performance(ideal(batch), batch).eq(1).all()
    for name in ("dms", "dnms"):
        go = of(batch, name).go
        assert go.any() and (~go).any()  # both go and no-go trials were scored


def test_performance_shape_and_dtype():
    b = generate(torch.randint(len(TASKS), (3, 5), generator=seeded(1)), CONFIG, seeded(2))
    perf = performance(ideal(b), b)
    assert perf.shape == (3, 5) and perf.dtype == torch.float32 and perf.eq(1).all()
    with pytest.raises(ValueError, match="outputs must have shape"):
        performance(ideal(b)[..., 1:], b)


def test_broken_fixation_fails(batch):
    out = ideal(batch)
    rows = torch.arange(len(out))
    out[rows, batch.response_on - 1, 0] = 0.3  # let go one step early
    assert performance(out, batch).eq(0).all()
    out = ideal(batch)
    out[:, 0, 0] = 0.0  # the first 100 ms are not scored
    assert performance(out, batch).eq(1).all()


def test_wrong_direction_fails(batch):
    out = ideal(batch)
    go = batch.go
    out[go, -1, 1:] = 0.05 + bump(batch.target[go] + math.pi)
    perf = performance(out, batch)
    assert perf[go].eq(0).all() and perf[~go].eq(1).all()


def test_go_trial_that_keeps_fixating_fails(batch):
    out = ideal(batch)
    out[:, -1, 0] = 0.85
    perf = performance(out, batch)
    assert perf[batch.go].eq(0).all() and perf[~batch.go].eq(1).all()


def test_responding_on_a_no_go_trial_fails(batch):
    out = ideal(batch)
    nogo = ~batch.go
    out[nogo, -1, 0] = 0.05
    out[nogo, -1, 1:] = 0.05 + bump(batch.stim2[nogo])  # "responding" to the test stimulus
    perf = performance(out, batch)
    assert nogo.sum() > 50 and perf[nogo].eq(0).all() and perf[~nogo].eq(1).all()


@pytest.mark.parametrize(("degrees", "expected"), [(35.0, 1.0), (-35.0, 1.0), (37.0, 0.0), (-37.0, 0.0)])
def test_direction_tolerance(batch, degrees, expected):
    out = ideal(batch)
    go = batch.go
    out[go, -1, 1:] = 0.05 + bump(batch.target[go] + math.radians(degrees))
    perf = performance(out, batch)
    assert perf[go].eq(expected).all() and perf[~go].eq(1).all()
