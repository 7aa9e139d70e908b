"""Tests of neuromod_lib.continual: the continual-learning runner, its methods and its metrics."""

from __future__ import annotations

import math

import pytest
import torch

from neuromod_lib import continual
from neuromod_lib.continual import METHODS, ContinualConfig, ContinualResult, learn_sequence
from neuromod_lib.data.sequences import Task, TaskSequence, make_sequence

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ContinualConfig(epochs=1, expansion=2.0)  # H = 2 * 64 = 128 on the digits


@pytest.fixture(scope="module")
def split3() -> TaskSequence:
    return make_sequence("split_digits", 3)


@pytest.fixture(scope="module")
def permuted3() -> TaskSequence:
    return make_sequence("permuted_digits", 3, max_train=300)


def two_axes(seed: int = 0, n: int = 400, d: int = 8) -> TaskSequence:
    """Two tasks on the same inputs that need different features: the sign of ``x_0``, then of ``x_1``.

    With a trunk of 2 hidden units there is no room for both, so training the second task
    overwrites what the first needed. (Two tasks with swapped labels would not interfere here:
    with one head per task, the new head simply learns the flipped readout.)
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2 * n, d, generator=g)
    x_train, x_test = x[:n], x[n:]
    tasks = [
        Task(f"sign of x{i}", x_train, (x_train[:, i] > 0).long(), x_test, (x_test[:, i] > 0).long(), (0, 1))
        for i in range(2)
    ]
    return TaskSequence("two_axes", tasks, d, 2, None)


INTERFERE = ContinualConfig(epochs=10, batch=32, dense_lr=0.01, hidden=2, expansion=1.0, inputs_per_unit=2)


def constant_after_learning(acc: torch.Tensor) -> bool:
    """Whether every column ``j`` of ``acc`` is the same number in rows ``j..T-1`` (bit for bit)."""
    return all(torch.equal(acc[j:, j], acc[j, j].expand(acc.shape[0] - j)) for j in range(acc.shape[0]))


# --- random weights: zero forgetting by construction --------------------------------------------


@pytest.mark.parametrize("name", ["split3", "permuted3"])
def test_random_weights_forget_nothing(name, request):
    sequence = request.getfixturevalue(name)
    result = learn_sequence("random_weights", sequence, TINY, progress=False)
    assert result.forgetting == 0.0
    assert result.backward_transfer == 0.0
    assert constant_after_learning(result.accuracy)


def test_random_weights_learn(split3, permuted3):
    config = ContinualConfig(epochs=3, expansion=2.0)
    split = learn_sequence("random_weights", split3, config, progress=False)
    permuted = learn_sequence("random_weights", permuted3, config, progress=False)
    assert split.average_accuracy > 0.85  # chance 0.5
    assert permuted.average_accuracy > 0.4  # chance 0.1


# --- the dense baselines on a sequence made to interfere ----------------------------------------


@pytest.fixture(scope="module")
def interfering() -> dict[str, ContinualResult]:
    sequence = two_axes()
    configs = {
        "finetune": INTERFERE,
        "ewc": ContinualConfig(**{**INTERFERE.__dict__, "ewc_lambda": 1e4}),
        "si": ContinualConfig(**{**INTERFERE.__dict__, "si_c": 10.0}),
        "joint": INTERFERE,
    }
    return {m: learn_sequence(m, sequence, c, progress=False) for m, c in configs.items()}


def test_finetune_forgets_when_tasks_interfere(interfering):
    finetune = interfering["finetune"]
    assert finetune.accuracy[0, 0] > 0.9  # the first task was learned ...
    assert finetune.forgetting > 0.3  # ... and then overwritten
    assert finetune.backward_transfer < -0.3


@pytest.mark.parametrize("method", ["ewc", "si"])
def test_consolidation_forgets_less_than_finetune(interfering, method):
    assert interfering[method].forgetting < interfering["finetune"].forgetting - 0.2


def test_joint_is_an_upper_bound(interfering):
    assert interfering["joint"].average_accuracy >= interfering["finetune"].average_accuracy
    assert interfering["joint"].average_accuracy > 0.9


# --- supermasks --------------------------------------------------------------------------------


def test_supermask_keeps_its_sparsity_and_old_masks(split3, monkeypatch):
    snapshots, learners = [], []
    make, end = continual.make_learner, continual._Supermask.end_task

    def keep_learner(*args):
        learners.append(make(*args))
        return learners[-1]

    def end_and_copy(self, task, x, y):
        end(self, task, x, y)
        snapshots.append([m.clone() for m in self.masks[task]])

    monkeypatch.setattr(continual, "make_learner", keep_learner)
    monkeypatch.setattr(continual._Supermask, "end_task", end_and_copy)
    config = ContinualConfig(epochs=1, expansion=2.0, mask_sparsity=0.3)
    result = learn_sequence("supermask", split3, config, progress=False)

    (learner,) = learners
    assert len(learner.masks) == len(snapshots) == 3
    for final, at_end in zip(learner.masks, snapshots, strict=True):
        for mask, copy in zip(final, at_end, strict=True):
            assert mask.dtype == torch.bool
            assert torch.equal(mask, copy)  # later tasks did not touch it
            assert int(mask.sum()) == round(0.3 * mask.numel())
    assert not torch.equal(learner.masks[0][0], learner.masks[1][0])  # each task has its own
    assert result.forgetting == 0.0
    assert constant_after_learning(result.accuracy)
    assert result.average_accuracy > 0.6


# --- the accuracy matrix and the metrics --------------------------------------------------------


def test_accuracy_matrix_shape_and_nans(split3):
    result = learn_sequence("finetune", split3, TINY, progress=False)
    t = len(split3.tasks)
    assert result.accuracy.shape == (t, t)
    upper = torch.ones(t, t, dtype=torch.bool).triu(1)
    assert torch.equal(result.accuracy.isnan(), upper)
    assert ((result.accuracy[~upper] >= 0) & (result.accuracy[~upper] <= 1)).all()
    assert len(result.seconds_per_task) == t
    assert result.task_names == [task.name for task in split3.tasks]
    assert result.benchmark == "split_digits"


def test_joint_fills_only_the_last_row(split3):
    result = learn_sequence("joint", split3, TINY, progress=False)
    assert result.accuracy[:-1].isnan().all()
    assert not result.accuracy[-1].isnan().any()
    assert math.isnan(result.forgetting) and math.isnan(result.backward_transfer)
    assert len(set(result.seconds_per_task)) == 1 and len(result.seconds_per_task) == 3


def hand_made(acc: list[list[float]]) -> ContinualResult:
    matrix = torch.tensor(acc, dtype=torch.float64)
    return ContinualResult("x", "y", ["a"] * len(acc), matrix, [1.0] * len(acc), 1, 4, None, None)


def test_metrics_on_a_hand_made_matrix():
    nan = math.nan
    result = hand_made([[0.9, nan, nan], [0.7, 0.8, nan], [0.6, 0.85, 0.5]])
    assert result.average_accuracy == pytest.approx((0.6 + 0.85 + 0.5) / 3)
    # task 0: best of 0.9, 0.7 is 0.9 -> 0.3; task 1: best 0.8 -> -0.05
    assert result.forgetting == pytest.approx((0.3 - 0.05) / 2)
    assert result.backward_transfer == pytest.approx(((0.6 - 0.9) + (0.85 - 0.8)) / 2)
    # the best accuracy may come after the task was learned
    assert hand_made([[0.5, nan], [0.4, 0.9]]).forgetting == pytest.approx(0.1)
    assert hand_made([[0.5, nan, nan], [0.8, 0.9, nan], [0.4, 0.9, 1]]).forgetting == pytest.approx(0.2)
    one = hand_made([[0.7]])
    assert (one.forgetting, one.backward_transfer, one.average_accuracy) == (0.0, 0.0, 0.7)
    row = result.row()
    assert row["forgetting"] == 0.125 and row["tasks"] == 3 and row["inferred_accuracy"] is None


def test_sizes_per_task(split3):
    d, c, h = 64, 2, 128
    sizes = {}
    for method in ("random_weights", "finetune", "ewc", "si", "supermask"):
        r = learn_sequence(method, split3, TINY, progress=False)
        sizes[method] = (r.learned_params_per_task, r.bytes_per_task, r.fixed_bytes)
    # learned per task; added to storage per task; stored once
    assert sizes["random_weights"] == (h + 1, 4 * (h + 1), 8)  # fixed weights: their seed
    dense, trunk, head = d * h + h + h * c + c, d * h + h, h * c + c
    assert sizes["finetune"] == (dense, 4 * head, 4 * trunk)  # each task retrains the one trunk
    assert sizes["ewc"] == sizes["si"] == (dense, 4 * head, 3 * 4 * trunk)  # + Fisher/importance, anchor
    assert sizes["supermask"] == (d * h + h * c, math.ceil((d * h + h * c) / 8), 8)
    wide = learn_sequence("finetune", split3, ContinualConfig(epochs=1, hidden=10), progress=False)
    assert wide.learned_params_per_task == d * 10 + 10 + 10 * c + c


# --- task-id inference -------------------------------------------------------------------------


class FixedLogits:
    """A stand-in learner whose logits for every task are given: ``(T, B, C)``."""

    def __init__(self, logits: torch.Tensor) -> None:
        self.table = logits

    def all_task_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.table[:, x[:, 0].long()]


def test_inference_scores_classes_not_labels():
    # task 0 is digits (0, 1), task 1 digits (2, 3); one test sample per task, both of label 0
    confident, unsure = [5.0, 0.0], [0.1, 0.0]
    logits = torch.tensor([[confident, confident], [unsure, unsure]])  # task 0 wins for both
    tests = [(torch.tensor([[0.0]]), torch.tensor([0])), (torch.tensor([[1.0]]), torch.tensor([0]))]
    table = torch.tensor([[0, 1], [2, 3]])
    class_acc, task_acc = continual._inferred(FixedLogits(logits), tests, table)
    assert (class_acc, task_acc) == (0.5, 0.5)  # sample 2 gets label 0 right but under the wrong task
    shared = torch.tensor([[0, 1], [0, 1]])  # permuted tasks share their classes
    assert continual._inferred(FixedLogits(logits), tests, shared) == (1.0, 0.5)


def test_per_batch_inference_gives_a_whole_batch_one_task():
    # task 0 is confident on samples 0 and 1, task 1 (more) on sample 2; all three come from task 0
    confident, unsure = [5.0, 0.0], [0.1, 0.0]
    logits = torch.tensor([[confident, confident, unsure], [unsure, unsure, [9.0, 0.0]]])
    tests = [(torch.tensor([[0.0], [1.0], [2.0]]), torch.tensor([0, 0, 0]))]
    one = torch.tensor([[0, 1], [0, 1]])  # the two tasks share their classes
    # per sample, sample 2 goes to task 1; per batch of 3, the mean entropy picks task 0 for all
    assert continual._inferred(FixedLogits(logits), tests, one) == pytest.approx((1.0, 2 / 3))
    assert continual._inferred(FixedLogits(logits), tests, one, batch=3) == (1.0, 1.0)
    # batches of 2: (0, 1) -> task 0, (2) alone -> task 1
    assert continual._inferred(FixedLogits(logits), tests, one, batch=2) == pytest.approx((1.0, 2 / 3))


def test_one_task_is_always_inferred(split3):
    one = TaskSequence("one", split3.tasks[:1], 64, 2, None)
    for method in ("random_weights", "ewc"):
        result = learn_sequence(method, one, TINY, progress=False)
        assert result.task_inference_accuracy == result.batch_task_inference_accuracy == 1.0
        assert result.inferred_accuracy == result.batch_inferred_accuracy == result.accuracy[0, 0].item()


# --- checks before any work, and determinism ----------------------------------------------------


@pytest.fixture
def no_training(monkeypatch):
    def refuse(*args, **kw):
        raise AssertionError("training started")

    monkeypatch.setattr(continual, "_train", refuse)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", 0),
        ("epochs", 1.5),
        ("batch", 0),
        ("seed", -1),
        ("rw_lr", 0.0),
        ("expansion", 0.5),
        ("inputs_per_unit", 0),
        ("hidden", 0),
        ("dense_lr", math.inf),
        ("ewc_lambda", -1.0),
        ("si_c", math.nan),
        ("si_xi", 0.0),
        ("mask_sparsity", 0.0),
        ("mask_sparsity", 1.5),
        ("mask_lr", True),
    ],
)
def test_bad_config_values(field, value):
    with pytest.raises(ValueError, match=f"ContinualConfig.{field}="):
        ContinualConfig(**{field: value})


def test_unknown_method_and_bad_sizes_fail_before_training(split3, no_training):
    with pytest.raises(ValueError, match="method='x' is unknown; choose from random_weights, finetune, "):
        learn_sequence("x", split3, TINY)
    for method in METHODS:  # k ones per hidden unit cannot exceed the 64 inputs
        with pytest.raises(ValueError, match="inputs_per_unit=65"):
            learn_sequence(method, split3, ContinualConfig(inputs_per_unit=65))
    with pytest.raises(TypeError, match="ContinualConfig"):
        learn_sequence("finetune", split3, {"epochs": 1})


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_result(method):
    sequence = two_axes(n=100)
    config = ContinualConfig(epochs=2, batch=16, hidden=8, expansion=2.0, inputs_per_unit=2, seed=3)
    a, b = (learn_sequence(method, sequence, config, progress=False) for _ in range(2))
    torch.testing.assert_close(a.accuracy, b.accuracy, rtol=0, atol=0, equal_nan=True)
    assert (a.inferred_accuracy, a.task_inference_accuracy) == (
        b.inferred_accuracy,
        b.task_inference_accuracy,
    )
    c = learn_sequence(method, sequence, ContinualConfig(**{**config.__dict__, "seed": 4}), progress=False)
    assert not torch.equal(a.accuracy.nan_to_num(), c.accuracy.nan_to_num())


@pytest.mark.parametrize("method", METHODS)
def test_every_learner_refuses_a_task_it_never_trained(method):
    sequence = two_axes(n=40)
    config = ContinualConfig(epochs=1, batch=20, hidden=4, expansion=1.0, inputs_per_unit=2)
    learner = continual.make_learner(method, sequence, config, torch.Generator().manual_seed(0))
    x = sequence.tasks[0].x_test[:3]
    with pytest.raises(ValueError, match=r"^\w+ has no task yet; trained tasks: none$"):
        learner.all_task_logits(x)
    with pytest.raises(ValueError, match=r"^task 0 was never trained; trained tasks: none$"):
        learner.logits(x, torch.tensor([0, 0, 0]))
    continual.run_learner(method, learner, sequence, config, progress=False, joint=method == "joint")
    for bad in (2, -1):
        with pytest.raises(ValueError, match=rf"^task {bad} was never trained; trained tasks: 0\.\.1$"):
            learner.logits(x, torch.tensor([0, bad, 1]))
    assert learner.logits(x, torch.tensor([1, 0, 1])).shape == (3, 2)
    assert learner.all_task_logits(x).shape == (2, 3, 2)


# --- the pieces of the baselines ---------------------------------------------------------------


def test_ewc_fisher_is_the_per_sample_empirical_fisher():
    gen = torch.Generator().manual_seed(0)
    model = continual._EWC(5, 4, 3, gen, strength=1.0)
    model.begin_task(0)
    x, y = torch.randn(7, 5, generator=gen), torch.tensor([0, 1, 2, 0, 1, 2, 0])
    fisher = continual._trunk_fisher(model, 0, x, y, chunk=3)
    expected = [torch.zeros_like(p) for p in model.trunk.parameters()]
    for xi, yi in zip(x, y, strict=True):  # one sample at a time, the definition
        loss = torch.nn.functional.cross_entropy(model.logits(xi[None], torch.tensor([0])), yi[None])
        grads = torch.autograd.grad(loss, list(model.trunk.parameters()))
        for e, g in zip(expected, grads, strict=True):
            e += g**2 / len(y)
    for f, e in zip(fisher, expected, strict=True):
        torch.testing.assert_close(f, e)


def test_supermask_gradient_passes_straight_through():
    gen = torch.Generator().manual_seed(0)
    model = continual._Supermask(6, 5, 3, 0.5, gen)
    model.begin_task(0)
    x, y = torch.randn(4, 6, generator=gen), torch.tensor([0, 1, 2, 0])
    torch.nn.functional.cross_entropy(model.logits(x, torch.zeros(4, dtype=torch.long)), y).backward()
    masks = [m.detach().clone().requires_grad_() for m in model.task_masks(0)]
    assert [int(m.sum()) for m in masks] == [15, 8]  # round(0.5 * 30), round(0.5 * 15)
    out = torch.relu(x @ (model.w1 * masks[0]).T) @ (model.w2 * masks[1]).T
    torch.nn.functional.cross_entropy(out, y).backward()
    for scores, mask in zip(model.scores, masks, strict=True):
        torch.testing.assert_close(scores.grad, mask.grad)
