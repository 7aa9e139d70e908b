"""The Yang et al. (2019) task battery (:mod:`neuromod_lib.data.tasks`) and its performance rule.

What could go wrong and is checked here: wrong shapes, dtypes or devices; batches that are not
reproducible from the generator; stimuli with the wrong tuning, strength, modality or timing;
targets that do not follow each task's rule (anti, stronger stimulus, context, summed evidence,
match / non-match); cost masks and epochs that disagree with ``response_on`` / ``response_off``;
padding that leaks into a trial; a performance rule that looks at other steps than the trial's
last one, accepts wrong directions or responses on no-go trials, or rejects the ideal output;
and arguments that are accepted although they cannot work.

Stimulus strengths are read back from the inputs by least squares on independently computed
tuning bumps, so the decision rules are checked against what the network actually sees. An
independent, slow NumPy reference written from Yang's ``task.py`` (``add_c_mask``, the task
rules, ``get_perf``) recomputes every trial's outcome, cost mask, targets and score.
"""

from __future__ import annotations

import math

import numpy as np
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
FIELDS = (
    "inputs",
    "targets",
    "mask",
    "task",
    "response_on",
    "response_off",
    "go",
    "target",
    "stim1",
    "stim2",
)


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


def last_step(batch: TrialBatch) -> torch.Tensor:
    """The step at which each trial is scored: its own last step."""
    return batch.response_off - 1


def strengths(batch: TrialBatch, step: torch.Tensor) -> torch.Tensor:
    """Strengths (B, modality, stimulus) of the bumps at ``stim1`` and ``stim2`` in the inputs at ``step``."""
    basis = torch.stack([bump(batch.stim1), bump(batch.stim2)], -1).double()  # (B, n, 2)
    observed = torch.stack([at_step(r, step) for r in rings(batch)], -1).double()  # (B, n, 2 modalities)
    solution = torch.linalg.lstsq(basis, observed).solution  # (B, 2 stimuli, 2 modalities)
    return solution.transpose(1, 2).float()


def of(batch: TrialBatch, name: str) -> TrialBatch:
    """The trials of task ``name`` (1-D batches)."""
    keep = batch.task == TASKS.index(name)
    return TrialBatch(**{k: getattr(batch, k)[keep] for k in FIELDS}, config=batch.config)


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
    assert (
        b.task.dtype == b.response_on.dtype == b.response_off.dtype == torch.long and b.go.dtype == torch.bool
    )
    for name in ("task", "response_on", "response_off", "go", "target", "stim1", "stim2"):
        assert getattr(b, name).shape == shape, name
    assert torch.equal(b.task, ids) and b.config is CONFIG
    assert b.inputs.isfinite().all() and b.targets.isfinite().all()
    valid = b.stim1.isfinite()
    assert valid.all() and (b.stim1 >= 0).all() and (b.stim1 < 2 * math.pi).all()
    assert int(b.response_off.max()) == T


def test_same_seed_same_batch_other_seed_other_batch():
    ids = torch.arange(len(TASKS)).repeat(4)
    a, b, c = (generate(ids, CONFIG, seeded(s)) for s in (5, 5, 6))
    for name in ("inputs", "targets", "mask", "task", "response_on", "response_off", "go"):
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
    for name in FIELDS:
        assert torch.equal(getattr(moved, name).nan_to_num(-1), getattr(batch, name).nan_to_num(-1)), name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batch_equals_cpu_batch():
    ids = torch.arange(len(TASKS)).repeat(10)
    cpu = generate(ids, CONFIG, seeded(8))
    gpu = generate(ids.cuda(), CONFIG, seeded(8))
    assert gpu.inputs.is_cuda and gpu.targets.is_cuda and gpu.go.is_cuda and gpu.task.is_cuda
    assert gpu.response_off.is_cuda
    for name in ("mask", "task", "response_on", "response_off", "go"):
        assert torch.equal(getattr(gpu, name).cpu(), getattr(cpu, name)), name
    for name in ("inputs", "targets", "target", "stim1", "stim2"):
        torch.testing.assert_close(getattr(gpu, name).cpu(), getattr(cpu, name), equal_nan=True)
    assert performance(gpu.targets, gpu).is_cuda and performance(gpu.targets, gpu).cpu().eq(1).all()
    out = torch.rand(ids.shape + (cpu.steps, cpu.config.n_outputs), generator=seeded(9))
    assert torch.equal(performance(out.cuda(), gpu.to("cpu").to("cuda")).cpu(), performance(out, cpu))


# --------------------------------------------------------------------------- timing, epochs, mask, targets


def test_every_trial_lasts_until_500_ms_after_its_go_cue(batch):
    assert torch.equal(batch.response_off - batch.response_on, torch.full_like(batch.task, RESPONSE_STEPS))
    assert batch.steps == int(batch.response_off.max())
    assert batch.steps == 34  # the longest possible trial: dly tasks, 700 + 600 + 1600 + 500 ms
    assert (batch.response_off < batch.steps).sum() > len(batch.task) / 2  # most trials are padded


def test_epochs_partition_the_trial(batch):
    epochs = batch.epochs()
    assert set(epochs) == {"fixation", "stimulus", "delay", "response", "after"}
    total = sum(e.int() for e in epochs.values())
    assert (total == 1).all()
    t = torch.arange(batch.steps)
    on, off = batch.response_on[:, None], batch.response_off[:, None]
    assert torch.equal(epochs["response"], (t >= on) & (t < off))
    assert torch.equal(epochs["after"], t >= off)
    assert epochs["fixation"][:, 0].all()  # every trial starts with fixation


@pytest.mark.parametrize(
    ("names", "fixation", "stimulus", "delay", "stim_at_end"),
    [(("go", "anti"), set(range(3, 8)), set(range(5, 16)), {0}, True),
     (("rt_go", "rt_anti"), set(range(5, 26)), {0}, {0}, True),
     (("dly_go", "dly_anti"), {3, 5, 7}, {2, 4, 6}, {2, 4, 8, 16}, False),
     (("dm1", "dm2", "ctx_dm1", "ctx_dm2", "multi_dm"), set(range(1, 5)), {4, 8, 16}, {0}, False),
     (("dms", "dnms"), {2, 4, 6}, {2, 4, 6}, {2, 4, 8, 16}, True)],
)  # fmt: skip
def test_epoch_durations(batch, names, fixation, stimulus, delay, stim_at_end):
    for name in names:
        b = of(batch, name)
        lengths = {k: set(v.sum(-1).tolist()) for k, v in b.epochs().items()}
        assert lengths["fixation"] <= fixation and lengths["stimulus"] <= stimulus, name
        assert lengths["delay"] <= delay, name
        assert len(lengths["fixation"]) > 1 or len(fixation) == 1, name  # drawn per trial
        assert len(lengths["delay"]) == len(delay), name  # every delay occurs in 120 trials
        assert lengths["response"] == {RESPONSE_STEPS}, name
        shown_at_end = at_step(b.inputs[..., 1:], last_step(b)).ne(0).any(-1)
        assert shown_at_end.all() if stim_at_end else not shown_at_end.any(), name


def test_fixation_input(batch):
    t = torch.arange(batch.steps)
    fixation = batch.inputs[..., 0]
    rt = (batch.task == TASKS.index("rt_go")) | (batch.task == TASKS.index("rt_anti"))
    match = (batch.task == TASKS.index("dms")) | (batch.task == TASKS.index("dnms"))
    assert (fixation[rt | match] == 1).all()  # reaction time and match tasks: never goes off
    # ... and their go cue is the onset of the stimulus to respond to
    first_shown = batch.inputs[..., 1:].ne(0).any(-1).int().argmax(-1)
    assert torch.equal(first_shown[rt], batch.response_on[rt])
    expected = (t < batch.response_on[:, None]).float()
    other = ~rt & ~match
    assert torch.equal(fixation[other], expected[other])


def expected_mask(b: TrialBatch, dt: float) -> torch.Tensor:
    t = torch.arange(b.steps)
    on, off = b.response_on[:, None], b.response_off[:, None]
    skip = round(100 / dt)
    mask = torch.zeros(b.mask.shape)
    mask[(t >= on + skip) & (t < off)] = 5.0
    mask[(t >= skip) & (t < on)] = 1.0
    return mask


@pytest.mark.parametrize("dt", [100.0, 20.0, 30.0])
def test_mask(dt):
    b = generate(torch.arange(len(TASKS)).repeat(3), TaskConfig(dt=dt), seeded(1))
    t = torch.arange(b.steps)
    on, off = b.response_on[:, None], b.response_off[:, None]
    skip = round(100 / dt)  # 1, 5, 3 steps
    assert torch.equal(b.mask, expected_mask(b, dt))
    assert (b.mask[:, :skip] == 0).all()  # the first 100 ms
    assert (b.mask[(t >= on) & (t < on + skip)] == 0).all()  # the 100 ms after the go cue
    assert (b.mask[(t >= on + skip) & (t < off)] == 5).all()
    assert (b.mask[t >= off] == 0).all() and (t >= off).any()  # padding
    assert (b.mask[(t >= skip) & (t < on)] == 1).all()
    assert torch.equal((b.mask == 5).sum(-1), b.response_off - b.response_on - skip)


def test_padding_leaves_every_trial_unchanged():
    """Trials generated with the same draws in a batch padded to a longer trial are unchanged."""
    short_tasks = task_index(["go", "dm2", "dm1", "ctx_dm2", "multi_dm", "anti"]).repeat(10)
    short = generate(short_tasks, CONFIG, seeded(12))
    with_long = short_tasks.clone()
    with_long[:12] = TASKS.index("dly_go")  # every trial draws the same numbers whatever the tasks
    padded = generate(with_long, CONFIG, seeded(12))
    assert padded.steps > short.steps
    same = slice(12, None)
    for name in ("response_on", "response_off", "go", "stim1"):
        assert torch.equal(getattr(padded, name)[same], getattr(short, name)[same]), name
    for i in range(12, len(short_tasks)):
        n = int(short.response_off[i])
        for name in ("inputs", "targets", "mask"):
            assert torch.equal(getattr(padded, name)[i, :n], getattr(short, name)[i, :n]), (name, i)
        assert (padded.mask[i, n:] == 0).all() and (short.mask[i, n:] == 0).all()
    assert torch.equal(performance(padded.targets, padded)[same], performance(short.targets, short)[same])


def test_targets(batch):
    t = torch.arange(batch.steps)
    responding = (t >= batch.response_on[:, None]) & batch.go[:, None]
    fixation = batch.targets[..., 0]
    assert (fixation[responding] == 0.05).all() and (fixation[~responding] == 0.8).all()
    ring = batch.targets[..., 1:]
    assert (ring[~responding] == 0.05).all()  # no-go trials: 0.05 throughout
    go = batch.go
    expected = 0.05 + bump(batch.target[go])
    last = at_step(ring[go], last_step(batch)[go])
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
    assert torch.equal(fine.response_off - fine.response_on, torch.full_like(fine.task, 25))


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


def near_coherences(c: torch.Tensor) -> torch.Tensor:
    return (c.abs()[..., None] - torch.tensor(CONFIG.coherences)).abs().amin(-1) < 1e-4


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
    assert (s[:, carried] > 0).all()
    if name != "multi_dm":  # per modality: mean +- coherence, mean ~ U(0.8, 1.2)
        total = s[:, carried].sum(-1)  # 2 * mean of each modality
        assert ((total > 1.6 - 1e-4) & (total < 2.4 + 1e-4)).all()
        assert near_coherences((s[:, carried, 0] - s[:, carried, 1]) / 2).all()
        if name.startswith("ctx"):  # each modality has its own mean
            assert (total[:, 0] - total[:, 1]).abs().max() > 0.3
    else:  # overall strengths s1, s2 = mean +- coherence, each split as s +- d / 2
        overall = s.sum(1) / 2  # (B, stimulus)
        mean = overall.mean(-1)
        assert ((mean > 0.8 - 1e-4) & (mean < 1.2 + 1e-4)).all()
        assert near_coherences((overall[:, 0] - overall[:, 1]) / 2).all()
        fraction = (s[:, 0] - s[:, 1]) / overall  # (B, stimulus): d / s, |.| ~ U(0.2, 0.8)
        assert ((fraction.abs() > 0.2 - 1e-4) & (fraction.abs() < 0.8 + 1e-4)).all()
        assert fraction.abs().min() < 0.25 and fraction.abs().max() > 0.75
        for k in (0, 1):  # random signs, drawn independently for the two stimuli
            assert 0.3 < (fraction[:, k] > 0).float().mean() < 0.7
        assert ((fraction[:, 0] > 0) != (fraction[:, 1] > 0)).float().mean() > 0.3
    # The target is the stronger stimulus; check directly on the input ring at the preferred directions.
    if name in ("dm1", "dm2"):
        ring = at_step(rings(b)[carried[0]], b.response_on - 1)
        unit = lambda angle: torch.round(angle / (2 * math.pi / N)).long() % N  # noqa: E731
        other = torch.where(circular(b.target, b.stim1) < 1e-5, b.stim2, b.stim1)
        rows = torch.arange(len(ring))
        assert (ring[rows, unit(b.target)] > ring[rows, unit(other)]).all()


def coherences_of(b: TrialBatch) -> torch.Tensor:
    """Half the strength difference (B, modality): positive when stimulus 1 is the stronger one."""
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


def modality_of(ring_pair: tuple[torch.Tensor, torch.Tensor], step: torch.Tensor) -> torch.Tensor:
    """(B,) long: which modality (0 or 1) shows something at ``step``; checks that exactly one does."""
    shown = [at_step(r, step).ne(0).any(-1) for r in ring_pair]
    assert torch.equal(shown[0], ~shown[1])
    return shown[1].long()


@pytest.mark.parametrize(("name", "go_on_match"), [("dms", True), ("dnms", False)])
def test_match_tasks(batch, name, go_on_match):
    b = of(batch, name)
    match = circular(b.stim1, b.stim2) < 1e-6
    assert 0.3 < match.float().mean() < 0.7
    assert (circular(b.stim1[~match], b.stim2[~match]) >= math.pi / 9 - 1e-5).all()  # 20 degrees
    assert torch.equal(b.go, match if go_on_match else ~match)
    assert b.target[~b.go].isnan().all() and (circular(b.target[b.go], b.stim2[b.go]) < 1e-6).all()
    # Sample and test stimulus each in one modality, each with strength 1.
    sample_step = b.epochs()["stimulus"].int().argmax(-1)
    sample_mod, test_mod = modality_of(rings(b), sample_step), modality_of(rings(b), b.response_on)
    one, two = rings(b)
    sample = at_step(torch.where(sample_mod[:, None, None] == 0, one, two), sample_step)
    torch.testing.assert_close(sample, bump(b.stim1), atol=1e-6, rtol=0)
    test = at_step(torch.where(test_mod[:, None, None] == 0, one, two), last_step(b))
    torch.testing.assert_close(test, bump(b.stim2), atol=1e-6, rtol=0)
    first_test = at_step(b.inputs[..., 1:].ne(0).any(-1), b.response_on)
    before = at_step(b.inputs[..., 1:].ne(0).any(-1), b.response_on - 1)
    assert first_test.all() and not before.any()  # the test stimulus comes with the go cue
    assert (b.inputs[..., 0] == 1).all()  # the fixation input never goes off


@pytest.mark.parametrize("dt", [100.0, 20.0])
def test_match_tasks_draws(dt):
    """dms / dnms: Yang's dms_ timings, independent modalities, non-match tests 20-340 degrees away."""
    b = generate(task_index(["dms", "dnms"]).repeat(400), TaskConfig(dt=dt), seeded(21))
    assert (b.inputs[..., 0] == 1).all()
    epochs = b.epochs()
    steps = lambda ms: {round(m / dt) for m in ms}  # noqa: E731
    for epoch, choices in (("fixation", (200, 400, 600)), ("stimulus", (200, 400, 600)),
                           ("delay", (200, 400, 800, 1600)), ("response", (500,))):  # fmt: skip
        assert set(epochs[epoch].sum(-1).tolist()) == steps(choices), epoch
    sample_step = epochs["stimulus"].int().argmax(-1)
    sample_mod, test_mod = modality_of(rings(b), sample_step), modality_of(rings(b), b.response_on)
    combos = torch.bincount(2 * sample_mod + test_mod, minlength=4)
    assert (combos > 0.15 * len(b.task)).all()  # all four combinations, about a quarter each
    distance = torch.remainder(b.stim2 - b.stim1, 2 * math.pi)
    non_match = circular(b.stim1, b.stim2) > 1e-6
    d = torch.rad2deg(distance[non_match])
    assert ((d >= 20 - 1e-3) & (d <= 340 + 1e-3)).all()
    assert d.min() < 25 and d.max() > 335
    counts = torch.histc(d, bins=8, min=20, max=340)
    assert (counts > 0.5 * non_match.sum() / 8).all()  # uniform over the range


# --------------------------------------------------------------------------- independent reference


def ref_bump(theta: float, n_ring: int) -> np.ndarray:
    """Yang's ``add_x_loc`` / ``add_y_loc``."""
    pref = np.arange(0, 2 * np.pi, 2 * np.pi / n_ring)[:n_ring]
    dist = np.abs(theta - pref)
    dist = np.minimum(dist, 2 * np.pi - dist) / (np.pi / 8)
    return 0.8 * np.exp(-(dist**2) / 2)


def ref_popvec(y: np.ndarray) -> float:
    """Yang's ``popvec`` (division by the summed activity)."""
    pref = np.arange(0, 2 * np.pi, 2 * np.pi / len(y))[: len(y)]
    with np.errstate(divide="ignore", invalid="ignore"):
        total = y.sum()
        loc = np.arctan2(np.sum(y * np.sin(pref)) / total, np.sum(y * np.cos(pref)) / total)
    return float(np.mod(loc, 2 * np.pi))


def ref_get_perf(y_hat: np.ndarray, y_loc: float) -> tuple[float, float]:
    """Yang's ``get_perf`` for one trial at its last step (``y_loc`` < 0: keep fixating).

    Also returns the decoded distance (NaN when undefined) so callers can skip float ties.
    """
    fixating = y_hat[0] > 0.5
    original = y_loc - ref_popvec(y_hat[1:])
    dist = min(abs(original), 2 * np.pi - abs(original))
    corr_loc = dist < 0.2 * np.pi
    should_fix = y_loc < 0
    return float(should_fix * fixating + (1 - should_fix) * corr_loc * (1 - fixating)), dist


def ref_trial(name: str, stim1: float, stim2: float, on: int, inputs: np.ndarray, dt: float, n_ring: int):
    """Yang's rule for one trial: (go, target) from the task, its stimuli and the strengths it shows."""
    if name in SINGLE:
        return True, (stim1 + (np.pi if "anti" in name else 0.0)) % (2 * np.pi)
    if name in ("dms", "dnms"):
        match = stim1 == stim2
        go = match if name == "dms" else not match
        return go, (stim2 if go else -1.0)
    # dm family: strengths of the two stimuli in each modality, read from the inputs while shown.
    basis = np.stack([ref_bump(stim1, n_ring), ref_bump(stim2, n_ring)], -1)
    seen = inputs[on - 1, 1:].astype(np.float64).reshape(2, n_ring)
    (s1_mod1, s1_mod2), (s2_mod1, s2_mod2) = np.linalg.lstsq(basis, seen.T, rcond=None)[0]
    s1, s2 = {
        "dm1": (s1_mod1, s2_mod1),
        "ctx_dm1": (s1_mod1, s2_mod1),
        "dm2": (s1_mod2, s2_mod2),
        "ctx_dm2": (s1_mod2, s2_mod2),
        "multi_dm": (s1_mod1 + s1_mod2, s2_mod1 + s2_mod2),
    }[name]
    return True, (stim1 if s1 > s2 else stim2)


def ref_c_mask(on: int, off: int, steps: int, dt: float) -> np.ndarray:
    """Yang's ``add_c_mask`` (one weight per step), ending at the trial's own length ``off``."""
    c_mask = np.zeros(steps)
    c_mask[on + round(100 / dt) : off] = 5.0
    c_mask[round(100 / dt) : on] = 1.0
    return c_mask


def fuzzed_outputs(b: TrialBatch, rng: np.random.Generator) -> torch.Tensor:
    """Random outputs everywhere; at each trial's last step one of several kinds of response."""
    n_ring, n = b.config.n_ring, len(b.task)
    out = torch.from_numpy(rng.uniform(0, 1, (n, b.steps, 1 + n_ring)).astype(np.float32))
    for i in range(n):
        aim = float(b.target[i]) if bool(b.go[i]) else rng.uniform(0, 2 * np.pi)
        kind = rng.integers(6)
        last = np.empty(1 + n_ring)
        if kind == 0:  # anything
            last[:] = rng.uniform(0, 1, 1 + n_ring)
        elif kind in (1, 2):  # a direction just inside or just outside 36 degrees, fixation on either side
            edge = 0.2 * np.pi + rng.uniform(-0.02, 0.02)
            last[1:] = 0.05 + rng.uniform(0.3, 1.0) * ref_bump(aim + rng.choice([-1, 1]) * edge, n_ring)
            last[0] = rng.choice([0.05, 0.8, 0.5 + rng.uniform(-0.01, 0.01), 0.5])
        elif kind == 3:  # near the right direction, fixation near the threshold
            last[1:] = 0.05 + ref_bump(aim + rng.uniform(-0.5, 0.5), n_ring)
            last[0] = rng.choice([0.5, 0.5 + rng.uniform(-1e-3, 1e-3), rng.uniform(0, 1)])
        elif kind == 4:  # noisy ring with a bump anywhere
            last[1:] = rng.uniform(0, 0.3, n_ring) + ref_bump(aim + rng.uniform(-np.pi, np.pi), n_ring)
            last[0] = rng.uniform(0, 1)
        else:  # no ring activity at all: no direction
            last[1:] = 0.0
            last[0] = rng.uniform(0, 1)
        out[i, int(b.response_off[i]) - 1] = torch.from_numpy(last.astype(np.float32))
    return out


@pytest.mark.parametrize(("dt", "per_task"), [(100.0, 200), (20.0, 120)])
def test_against_an_independent_reference(dt, per_task):
    """Every trial's outcome, cost mask, targets and score, recomputed per trial from Yang's task.py."""
    config = TaskConfig(dt=dt)
    n_ring = config.n_ring
    ids = torch.arange(len(TASKS)).repeat(per_task)
    b = generate(ids[torch.randperm(ids.numel(), generator=seeded(30))], config, seeded(31))
    rng = np.random.default_rng(32)
    outputs = [fuzzed_outputs(b, rng) for _ in range(2)] + [b.targets.clone()]
    scores = [performance(out, b).numpy() for out in outputs]
    stacked = performance(torch.stack(outputs), b).numpy()  # leading dimension: same scores
    assert all(np.array_equal(stacked[k], scores[k]) for k in range(len(outputs)))
    inputs, targets, mask = b.inputs.numpy(), b.targets.numpy(), b.mask.numpy()
    outputs = [out.numpy() for out in outputs]
    t = np.arange(b.steps)
    tied, compared = 0, 0
    for i in range(len(b.task)):
        name = TASKS[int(b.task[i])]
        on, off = int(b.response_on[i]), int(b.response_off[i])
        stim1, stim2 = float(b.stim1[i]), float(b.stim2[i])
        assert off == on + round(500 / dt), (name, i)
        go, target = ref_trial(name, stim1, stim2, on, inputs[i], dt, n_ring)
        assert bool(b.go[i]) == go, (name, i)
        if go:
            assert abs(np.angle(np.exp(1j * (float(b.target[i]) - target)))) < 1e-5, (name, i)
        else:
            assert math.isnan(float(b.target[i])), (name, i)
        np.testing.assert_array_equal(mask[i], ref_c_mask(on, off, b.steps, dt), err_msg=f"{name} {i}")
        # Yang's fix_in, fix_out and out, within the trial's own length
        fix_in = np.ones(off) if name in ("rt_go", "rt_anti", "dms", "dnms") else (t[:off] < on) * 1.0
        np.testing.assert_array_equal(inputs[i, :off, 0], fix_in, err_msg=f"{name} {i}")
        responding = (t[:off] >= on) & go
        np.testing.assert_array_equal(targets[i, :off, 0], np.where(responding, 0.05, 0.8).astype(np.float32))
        ring = 0.05 + np.outer(responding, ref_bump(target, n_ring) if go else np.zeros(n_ring))
        np.testing.assert_allclose(targets[i, :off, 1:], ring, atol=1e-5, rtol=0, err_msg=f"{name} {i}")
        for out, score in zip(outputs, scores, strict=True):
            expected, dist = ref_get_perf(out[i, off - 1].astype(np.float64), target if go else -1.0)
            if go and abs(dist - 0.2 * np.pi) < 1e-5:  # float32 vs float64 on the very edge
                tied += 1
                continue
            compared += 1
            assert score[i] == expected, (name, i, out[i, off - 1, 0], dist)
    assert compared > 3 * len(b.task) - 10 and tied <= 5
    kinds = np.concatenate(scores[:2])
    assert 0.2 < kinds.mean() < 0.8  # the fuzzed responses are both right and wrong


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


def test_popvec_of_a_silent_ring_is_undefined():
    assert popvec(torch.zeros(3, 16)).isnan().all()


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
    stacked = performance(torch.stack([ideal(b), 1 - ideal(b)]), b)
    assert (
        stacked.shape == (2, 3, 5)
        and stacked[0].eq(1).all()
        and torch.equal(stacked[1], performance(1 - ideal(b), b))
    )
    with pytest.raises(ValueError, match="outputs must have shape"):
        performance(ideal(b)[..., 1:], b)
    with pytest.raises(ValueError, match="outputs must have shape"):
        performance(ideal(b)[0], b)


def set_last(out: torch.Tensor, batch: TrialBatch, rows: torch.Tensor, value) -> None:
    """``out[i, response_off[i] - 1] = value`` for the trials ``rows`` (bool)."""
    index = torch.arange(len(out))[rows]
    out[index, last_step(batch)[rows]] = value


def test_only_the_last_step_is_scored(batch):
    g = seeded(40)
    out = torch.rand(batch.targets.shape, generator=g)
    perf = performance(out, batch)
    assert 0 < perf.mean() < 1
    t = torch.arange(batch.steps)
    other = (t != last_step(batch)[:, None])[..., None].expand_as(out)
    for _ in range(3):  # any change at any other step, padding included, changes nothing
        changed = torch.where(other, torch.rand(out.shape, generator=g), out)
        assert torch.equal(performance(changed, batch), perf)
    changed = torch.where(other, out, torch.rand(out.shape, generator=g))
    assert not torch.equal(performance(changed, batch), perf)  # the last step decides
    # Letting go of fixation early is not checked (as in Yang's get_perf) ...
    early = ideal(batch)
    early[torch.arange(len(early)), batch.response_on - 1, 0] = 0.3
    early[:, 0, 0] = 0.0
    assert performance(early, batch).eq(1).all()
    # ... nor is a padded trial's output after its end.
    padded = ideal(batch)
    after = (t >= batch.response_off[:, None])[..., None].expand_as(padded)
    padded[after] = 0.5
    assert after.any() and performance(padded, batch).eq(1).all()


def test_fixation_threshold_at_the_last_step(batch):
    go = batch.go
    for value, go_ok, nogo_ok in ((0.49, 1, 0), (0.5, 1, 0), (0.51, 0, 1)):  # fixating means > 0.5
        out = ideal(batch)
        index = torch.arange(len(out))
        out[index, last_step(batch), 0] = value
        perf = performance(out, batch)
        assert perf[go].eq(go_ok).all() and perf[~go].eq(nogo_ok).all(), value


def test_wrong_direction_fails(batch):
    out = ideal(batch)
    go = batch.go
    set_last(
        out,
        batch,
        go,
        torch.cat([torch.full((int(go.sum()), 1), 0.05), 0.05 + bump(batch.target[go] + math.pi)], -1),
    )
    perf = performance(out, batch)
    assert perf[go].eq(0).all() and perf[~go].eq(1).all()


def test_go_trial_that_keeps_fixating_fails(batch):
    out = ideal(batch)
    index = torch.arange(len(out))
    out[index, last_step(batch), 0] = 0.8
    perf = performance(out, batch)
    assert perf[batch.go].eq(0).all() and perf[~batch.go].eq(1).all()


def test_responding_on_a_no_go_trial_fails(batch):
    out = ideal(batch)
    nogo = ~batch.go
    response = torch.cat([torch.full((int(nogo.sum()), 1), 0.05), 0.05 + bump(batch.stim2[nogo])], -1)
    set_last(out, batch, nogo, response)  # "responding" to the test stimulus
    perf = performance(out, batch)
    assert nogo.sum() > 50 and perf[nogo].eq(0).all() and perf[~nogo].eq(1).all()


@pytest.mark.parametrize(("degrees", "expected"), [(35.0, 1.0), (-35.0, 1.0), (37.0, 0.0), (-37.0, 0.0)])
def test_direction_tolerance(batch, degrees, expected):
    out = ideal(batch)
    go = batch.go
    response = torch.cat(
        [torch.full((int(go.sum()), 1), 0.05), 0.05 + bump(batch.target[go] + math.radians(degrees))], -1
    )
    set_last(out, batch, go, response)
    perf = performance(out, batch)
    assert perf[go].eq(expected).all() and perf[~go].eq(1).all()
