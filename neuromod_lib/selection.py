"""Hyperparameters chosen on validation data, with the same search for every continual learner.

A ranking of continual-learning methods means little if one method runs at its best setting and
another at a default: untuned, SI at ``c = 0.5`` behaves exactly like fine-tuning. So every method
(and every modulation family of notebook 07) gets **the same search**: one hyperparameter — its
strength, sparsity or learning rate (:data:`SEARCH`) — over a grid of the same size, scored the
same way, on data no test ever sees. EWC and SI, which add a penalty to fine-tuning, train at
fine-tuning's chosen learning rate (:func:`select_all`).

The protocol is the one of Chaudhry et al. (2019, "Efficient lifelong learning with A-GEM"): the
search runs on the **first few tasks** of the sequence (:data:`VALIDATION_TASKS`), each task's
*training* set split into a part to train on and a held-out validation part
(:data:`VALIDATION_FRACTION`); a setting's score is the average validation accuracy after the
last of those tasks, which rewards learning each task and keeping the earlier ones alike. The
chosen setting then trains the whole sequence on the full training sets, and only then is the
test set used. Scores within :data:`TIE` of the best are ties, and ties go to the first value of
the grid: a difference of a sample or two is no evidence, and a choice that rested on one would
flip with the last digits of another CPU's arithmetic. A setting whose training diverges loses.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .continual import LEARNERS, ContinualConfig, check_learner, learn_sequence
from .data.sequences import Task, TaskSequence
from .tables import Table, table
from .training import TrainingDiverged

__all__ = [
    "SEARCH",
    "Selection",
    "VALIDATION_FRACTION",
    "TIE",
    "VALIDATION_TASKS",
    "best_index",
    "search_table",
    "search_tables",
    "select",
    "select_all",
    "selection_metrics",
    "selection_metrics_by_set",
    "validation_sequence",
]

_RATES = (3e-3, 1e-2, 3e-2, 1e-1)
#: per learner, the :class:`~neuromod_lib.continual.ContinualConfig` field searched and its grid:
#: four values each (the modulation families: their per-task learning rate)
SEARCH: dict[str, tuple[str, tuple[float, ...]]] = {
    "random_weights": ("rw_lr", (1e-3, 3e-3, 1e-2, 3e-2)),
    "finetune": ("dense_lr", (1e-4, 3e-4, 1e-3, 3e-3)),
    "ewc": ("ewc_lambda", (1e1, 1e2, 1e3, 1e4)),
    "si": ("si_c", (0.5, 5.0, 50.0, 500.0)),
    "supermask": ("mask_sparsity", (0.1, 0.3, 0.5, 0.7)),
    "joint": ("dense_lr", (1e-4, 3e-4, 1e-3, 3e-3)),
    "deterministic_gain": ("modulation_lr", _RATES),
    "stochastic_gain": ("modulation_lr", _RATES),
    "excitability": ("modulation_lr", _RATES),
    "synaptic": ("modulation_lr", _RATES),
}
assert set(SEARCH) == set(LEARNERS), "every learner needs a search"

#: scores (accuracies, fractions) this close to the best count as ties
TIE = 0.005
#: tasks the search runs on (the first ones of the sequence)
VALIDATION_TASKS = 3
#: share of each of those tasks' training set held out for validation
VALIDATION_FRACTION = 0.2


def validation_sequence(
    sequence: TaskSequence,
    *,
    n_tasks: int = VALIDATION_TASKS,
    fraction: float = VALIDATION_FRACTION,
    seed: int = 0,
) -> TaskSequence:
    """The first ``n_tasks`` tasks of ``sequence``, each training set split at random (``seed``):
    ``1 - fraction`` to train on, ``fraction`` as the task's "test" set. No test sample is used."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction={fraction!r} must lie strictly between 0 and 1")
    if not isinstance(n_tasks, int) or n_tasks < 1:
        raise ValueError(f"n_tasks={n_tasks!r} must be an integer >= 1")
    gen = torch.Generator().manual_seed(seed)
    tasks = []
    for task in sequence.tasks[:n_tasks]:
        n = len(task.y_train)
        held = max(1, round(fraction * n))
        if held >= n:
            raise ValueError(f"task {task.name!r} has {n} training samples: too few to hold {held} out")
        order = torch.randperm(n, generator=gen)
        train, val = order[held:], order[:held]
        tasks.append(
            Task(
                f"{task.name} (validation)",
                task.x_train[train],
                task.y_train[train],
                task.x_train[val],
                task.y_train[val],
                task.classes,
            )
        )
    return TaskSequence(
        f"{sequence.benchmark} (validation)",
        tasks,
        sequence.n_inputs,
        sequence.n_classes,
        sequence.image_shape,
    )


def best_index(scores: Sequence[float], tie: float = TIE) -> int:
    """The first index whose score is within ``tie`` of the best score (NaN: diverged, never best)."""
    top = max(v for v in scores if not math.isnan(v))
    return next(i for i, v in enumerate(scores) if v >= top - tie)


@dataclass(frozen=True)
class Selection:
    """The search of one learner: the field searched, its grid, each value's validation score (average
    accuracy after the last validation task), the chosen value and the config that carries it."""

    learner: str
    field: str
    grid: tuple[float, ...]
    scores: tuple[float, ...]
    chosen: float
    config: ContinualConfig


def select(
    learner: str,
    sequence: TaskSequence,
    config: ContinualConfig,
    *,
    n_tasks: int = VALIDATION_TASKS,
    fraction: float = VALIDATION_FRACTION,
    device: torch.device | str = "cpu",
) -> Selection:
    """Search :data:`SEARCH`'s grid for ``learner`` on :func:`validation_sequence` of ``sequence``;
    return the :class:`Selection` (``config`` with the best value; the other fields unchanged)."""
    check_learner(learner)
    field, grid = SEARCH[learner]
    validation = validation_sequence(sequence, n_tasks=n_tasks, fraction=fraction, seed=config.seed)
    scores = []
    for value in grid:
        trial = dataclasses.replace(config, **{field: value})
        try:
            result = learn_sequence(learner, validation, trial, device=device, progress=False)
        except TrainingDiverged:  # a setting too aggressive for this learner: it loses the search
            scores.append(math.nan)
            continue
        scores.append(result.average_accuracy)
    if all(math.isnan(v) for v in scores):
        raise TrainingDiverged(f"{learner}: training diverged at every {field} of {list(grid)}")
    best = best_index(scores)
    return Selection(
        learner, field, grid, tuple(scores), grid[best], dataclasses.replace(config, **{field: grid[best]})
    )


#: learners that add a penalty to fine-tuning: they train at fine-tuning's chosen learning rate
PENALISED = ("ewc", "si")


def select_all(
    learners: Sequence[str],
    sequence: TaskSequence,
    config: ContinualConfig,
    *,
    n_tasks: int = VALIDATION_TASKS,
    fraction: float = VALIDATION_FRACTION,
    device: torch.device | str = "cpu",
) -> dict[str, Selection]:
    """:func:`select` for every learner of ``learners``, in their order. EWC and SI are fine-tuning
    plus a penalty: when fine-tuning is searched too, they train at its chosen learning rate and
    search their strength (so the penalty is judged on top of a tuned fine-tuning)."""
    chosen: dict[str, Selection] = {}
    order = sorted(learners, key=lambda name: name in PENALISED)  # fine-tuning before its penalties
    for name in order:
        base = chosen["finetune"].config if name in PENALISED and "finetune" in chosen else config
        chosen[name] = select(name, sequence, base, n_tasks=n_tasks, fraction=fraction, device=device)
    return {name: chosen[name] for name in learners}


def search_table(selections: Mapping[str, Selection], *, n_tasks: int = VALIDATION_TASKS) -> Table:
    """One row per learner: the field searched, validation accuracy (%) at each grid value, the choice."""
    rows = [
        [
            name,
            s.field,
            ", ".join(_score(v, a) for v, a in zip(s.grid, s.scores, strict=True)),
            f"{s.chosen:g}",
        ]
        for name, s in selections.items()
    ]
    return table(
        rows,
        ["method", "searched", "value: validation accuracy %", "chosen"],
        caption=f"The same search for every method: four values of one hyperparameter, each trained on "
        f"the first {n_tasks} tasks with {100 * (1 - VALIDATION_FRACTION):.0f}% of their training sets and "
        f"scored on the other {100 * VALIDATION_FRACTION:.0f}% (average accuracy after the last); "
        "the test sets are not used.",
    )


def _score(value: float, accuracy: float) -> str:
    return f"{value:g}: diverged" if math.isnan(accuracy) else f"{value:g}: {100 * accuracy:.1f}"


def search_tables(by_set: Mapping[str, Mapping[str, Selection]], *, n_tasks: int = VALIDATION_TASKS) -> Table:
    """:func:`search_table` of several task sets in one table, a ``task set`` column first."""
    rows = [
        [name, *row]
        for name, selections in by_set.items()
        for row in search_table(selections, n_tasks=n_tasks).rows
    ]
    first = search_table({}, n_tasks=n_tasks)
    return table(rows, ["task set", *first.header], caption=first.caption)


def selection_metrics(selections: Mapping[str, Selection]) -> dict[str, Any]:
    """The record's metrics of a search: ``hyperparameters_selected_on`` ("validation", or "none: the
    values given" without a search) and each learner's choice."""
    out: dict[str, Any] = {
        "hyperparameters_selected_on": "validation" if selections else "none: the values given"
    }
    out.update({f"{name}_{s.field}": s.chosen for name, s in selections.items()})
    return out


def selection_metrics_by_set(by_set: Mapping[str, Mapping[str, Selection]]) -> dict[str, Any]:
    """:func:`selection_metrics` of several task sets: ``<task set>__<learner>__<field>`` per choice."""
    out: dict[str, Any] = {
        "hyperparameters_selected_on": "validation" if by_set else "none: the values given"
    }
    for name, selections in by_set.items():
        out.update({f"{name}__{f}__{s.field}": s.chosen for f, s in selections.items()})
    return out
