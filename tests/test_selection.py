"""Tests of neuromod_lib.selection: the validation split never touches test data, every learner
gets a search of the same size, and the search picks what validation prefers."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from neuromod_lib import selection
from neuromod_lib.continual import LEARNERS, ContinualConfig, learn_sequence
from neuromod_lib.data.sequences import Task, TaskSequence

pytestmark = pytest.mark.usefixtures("one_thread")


def two_axes(n: int = 400, d: int = 8) -> TaskSequence:
    """Two tasks that need different features of the same inputs (see tests/test_continual.py); the
    test sets are NaN, so any use of them shows."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g)
    nan = torch.full((10, d), math.nan)
    tasks = [
        Task(f"sign of x{i}", x, (x[:, i] > 0).long(), nan, torch.zeros(10, dtype=torch.long), (0, 1))
        for i in range(2)
    ]
    return TaskSequence("two_axes", tasks, d, 2, None)


INTERFERE = ContinualConfig(epochs=10, batch=32, dense_lr=0.01, hidden=2, expansion=1.0, inputs_per_unit=2)


def test_every_learner_has_a_search_of_the_same_size():
    assert set(selection.SEARCH) == set(LEARNERS)
    assert {len(grid) for _, grid in selection.SEARCH.values()} == {4}
    for field, grid in selection.SEARCH.values():
        for value in grid:  # every value is one the config accepts
            dataclasses.replace(ContinualConfig(), **{field: value})


def test_the_validation_sequence_splits_training_data_only():
    sequence = two_axes()
    val = selection.validation_sequence(sequence, n_tasks=3, fraction=0.25, seed=1)
    assert len(val.tasks) == 2 and val.benchmark == "two_axes (validation)"
    for original, task in zip(sequence.tasks, val.tasks, strict=True):
        assert (len(task.y_train), len(task.y_test)) == (300, 100)
        assert bool(torch.isfinite(task.x_test).all())  # no NaN test sample came in
        rows = {tuple(r.tolist()) for r in original.x_train}
        train, held = {tuple(r.tolist()) for r in task.x_train}, {tuple(r.tolist()) for r in task.x_test}
        assert train | held == rows and not train & held
    again = selection.validation_sequence(sequence, n_tasks=3, fraction=0.25, seed=1)
    assert torch.equal(again.tasks[0].x_test, val.tasks[0].x_test)
    assert len(selection.validation_sequence(sequence, n_tasks=1).tasks) == 1


def test_the_search_scores_each_value_on_validation_and_keeps_the_best():
    chosen = selection.select("ewc", two_axes(), INTERFERE)
    assert chosen.field == "ewc_lambda" and chosen.grid == (1e1, 1e2, 1e3, 1e4)
    assert all(math.isfinite(s) for s in chosen.scores)  # the NaN test sets were never used
    best = max(chosen.scores)
    assert chosen.chosen == chosen.grid[chosen.scores.index(best)]
    assert chosen.config.ewc_lambda == chosen.chosen and chosen.config.dense_lr == INTERFERE.dense_lr
    assert len(set(chosen.scores)) > 1  # the strength matters on tasks that interfere
    validation = selection.validation_sequence(two_axes(), seed=INTERFERE.seed)
    direct = learn_sequence("ewc", validation, dataclasses.replace(INTERFERE, ewc_lambda=1e3), progress=False)
    assert chosen.scores[2] == direct.average_accuracy
    table = selection.search_table({"ewc": chosen})
    assert table.rows[0][:2] == ("ewc", "ewc_lambda") and "the test sets are not used" in table.caption
    metrics = selection.selection_metrics({"ewc": chosen})
    assert metrics == {"hyperparameters_selected_on": "validation", "ewc_ewc_lambda": chosen.chosen}
    assert selection.selection_metrics({}) == {"hyperparameters_selected_on": "none: the values given"}


def test_scores_within_the_tie_of_the_best_go_to_the_first_value():
    assert selection.best_index([0.5, 0.9, 0.898, 0.7]) == 1
    assert selection.best_index([0.5, 0.896, 0.9, 0.7]) == 1  # 0.004 below the best: a tie
    assert selection.best_index([0.5, 0.894, 0.9, 0.7]) == 2  # 0.006 below: not a tie
    assert selection.best_index([0.3, 0.3]) == 0


def test_ties_go_to_the_first_value(monkeypatch):
    class Same:
        average_accuracy = 0.5

    monkeypatch.setattr(selection, "learn_sequence", lambda *a, **k: Same())
    chosen = selection.select("si", two_axes(), INTERFERE)
    assert chosen.scores == (0.5,) * 4 and chosen.chosen == 0.5


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: selection.select("adam", two_axes(), INTERFERE), "adam"),
        (lambda: selection.validation_sequence(two_axes(), fraction=1.0), "fraction=1.0"),
        (lambda: selection.validation_sequence(two_axes(), n_tasks=0), "n_tasks=0"),
    ],
)
def test_bad_input_is_refused_naming_it(call, words):
    with pytest.raises(ValueError, match=words):
        call()


def test_penalties_are_searched_on_top_of_the_tuned_fine_tuning(monkeypatch):
    seen = []

    class Scored:
        def __init__(self, learner, config):
            # fine-tuning prefers 3e-4; the penalties prefer their largest value
            self.average_accuracy = (config.dense_lr == 3e-4) if learner == "finetune" else config.si_c
            seen.append((learner, config.dense_lr))

    monkeypatch.setattr(
        selection, "learn_sequence", lambda learner, seq, config, **k: Scored(learner, config)
    )
    chosen = selection.select_all(["si", "finetune", "random_weights"], two_axes(), INTERFERE)
    assert list(chosen) == ["si", "finetune", "random_weights"]  # in the order asked
    assert chosen["finetune"].chosen == 3e-4 and chosen["si"].chosen == 500.0
    assert chosen["si"].config.dense_lr == 3e-4  # SI trained at fine-tuning's choice
    assert {lr for learner, lr in seen if learner == "si"} == {3e-4}
    alone = selection.select_all(["si"], two_axes(), INTERFERE)  # no fine-tuning: its own default
    assert alone["si"].config.dense_lr == INTERFERE.dense_lr


def test_a_setting_that_diverges_loses_the_search_and_the_table_says_so(monkeypatch):
    from neuromod_lib.training import TrainingDiverged

    class Scored:
        average_accuracy = 0.8

    def learn(learner, seq, config, **k):
        if config.si_c == 500.0:
            raise TrainingDiverged("loss=nan")
        return Scored()

    monkeypatch.setattr(selection, "learn_sequence", learn)
    chosen = selection.select("si", two_axes(), INTERFERE)
    assert math.isnan(chosen.scores[-1]) and chosen.chosen == 0.5
    assert "500: diverged" in selection.search_table({"si": chosen}).rows[0][2]
    assert selection.best_index([math.nan, 0.5]) == 1

    def always(*a, **k):
        raise TrainingDiverged("loss=nan")

    monkeypatch.setattr(selection, "learn_sequence", always)
    with pytest.raises(TrainingDiverged, match="si: training diverged at every si_c"):
        selection.select("si", two_axes(), INTERFERE)
