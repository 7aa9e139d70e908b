"""Tables and verdicts that compare methods: notebook 06's continual learners, notebook 07's families.

The runs themselves happen elsewhere (:func:`neuromod_lib.continual.learn_sequence`,
:mod:`neuromod_lib.families`); this module reads their results and says what they show, so that
the notebooks keep only the question, the figure, the computed answer and the prose:

* **tables** (:class:`~neuromod_lib.tables.Table`, rendered as Markdown in Jupyter, aligned text
  elsewhere): :func:`continual_table`, :func:`inference_table`, :func:`continual_timing_table`
  (notebook 06); :func:`task_set_table`, :func:`family_table`, :func:`family_timing_table`,
  :func:`needs_table` (notebook 07);
* **verdicts** (claim -> bool, what the notebooks record) and the sentences that state them
  (:class:`IPython.display.Markdown`): :func:`continual_verdicts` / :func:`continual_answer`,
  :func:`forgetting_verdicts` / :func:`forgetting_answer`, :func:`family_verdicts` /
  :func:`family_answer`; every sentence is computed from the same numbers as its verdict;
* **records**: the metrics, per-task rows and samples each notebook passes to
  :func:`neuromod_lib.results.record` (:func:`continual_metrics`, :func:`family_metrics`, ...);
* **seeds for the figures**: :func:`seed_rows` repeats notebook 07's runs with other seeds, so
  :func:`neuromod_lib.plots.family_comparison` can draw error bars over seeds.

Forgetting, accuracies and storage are compared exactly as recorded: accuracy in %, forgetting in
accuracy points, bytes per task as stored.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from IPython.display import Markdown

from .tables import Table, table

__all__ = [
    "DENSE_METHODS",
    "FIGURE_SEEDS",
    "best_dense",
    "columns_constant",
    "continual_answer",
    "continual_metrics",
    "continual_per_task",
    "continual_samples",
    "continual_table",
    "continual_timing_table",
    "continual_timings",
    "continual_trainer",
    "continual_verdicts",
    "embedded_benchmarks",
    "family_answer",
    "family_metrics",
    "family_per_task",
    "family_table",
    "family_timing_table",
    "family_timings",
    "readout_table",
    "family_verdicts",
    "forgetting_answer",
    "forgetting_note",
    "forgetting_verdicts",
    "forgets_nothing",
    "inference_table",
    "most_accurate",
    "needs_table",
    "reference_check",
    "reference_method",
    "run_families",
    "seconds_per_task",
    "seed_rows",
    "task_set_table",
    "wins",
]

#: the continual baselines that train a dense network (notebook 06's "best dense" competes among them)
DENSE_METHODS: tuple[str, ...] = ("finetune", "ewc", "si")
#: seeds notebook 07's comparison figure averages over (the notebook's seed and the next ones)
FIGURE_SEEDS = 3


def _yes(value: bool | None) -> str:
    return "—" if value is None else ("yes" if value else "no")


def _verdict_lines(verdicts: Mapping[str, Any]) -> str:
    """The verdicts as a Markdown table (claim as recorded | holds)."""
    rows = [[f"`{name}`", _yes(value) if isinstance(value, bool) or value is None else str(value)]
            for name, value in verdicts.items()]  # fmt: skip
    return table(rows, ["verdict (as recorded)", "holds"]).markdown()


# --------------------------------------------------------------------------- notebook 06


def columns_constant(accuracy: torch.Tensor) -> bool:
    """Whether every column ``j`` of an accuracy matrix ``(T, T)`` is *exactly* constant from row ``j``
    on: nothing learned later changed task ``j``'s accuracy (a check, not an assumption)."""
    n = len(accuracy)
    return all(torch.equal(accuracy[j:, j], accuracy[j, j].expand(n - j)) for j in range(n))


def forgets_nothing(result: Any | None) -> bool | None:
    """A continual result forgets nothing: forgetting exactly 0 and every column constant
    (:func:`columns_constant`); None without a result."""
    if result is None:
        return None
    return result.forgetting == 0.0 and columns_constant(result.accuracy)


def forgetting_note(result: Any | None, name: str = "random weights") -> Markdown | None:
    """The forgetting check of one result in a sentence (None without a result)."""
    if result is None:
        return None
    return Markdown(
        f"{name}: forgetting {result.forgetting:.6f}, every column constant: "
        f"{columns_constant(result.accuracy)}"
    )


def best_dense(results: Mapping[str, Any]) -> str | None:
    """The most accurate dense continual baseline (:data:`DENSE_METHODS`) that ran; None if none did."""
    dense = [m for m in DENSE_METHODS if m in results]
    if not dense:
        return None
    best = max(results[m].average_accuracy for m in dense)
    return next(m for m in dense if results[m].average_accuracy == best)


def reference_method(results: Mapping[str, Any]) -> str:
    """The run that shows the task can be learned: ``joint`` training if it ran, else the most accurate."""
    if "joint" in results:
        return "joint"
    best = max(r.average_accuracy for r in results.values())
    return next(m for m, r in results.items() if r.average_accuracy == best)


def reference_check(results: Mapping[str, Any], n_classes: int) -> tuple[bool, str]:
    """Notebook 06's training check: the reference run (:func:`reference_method`) reaches at least
    halfway from chance to 100 %; ``(passed, what was checked)`` for :func:`neuromod_lib.results.record`."""
    chance = 100 / n_classes
    reference = reference_method(results)
    reached = 100 * results[reference].average_accuracy
    return (
        reached >= (chance + 100) / 2,
        f"{reference} reaches {reached:.1f}% >= halfway from chance ({chance:.0f}%) to 100%",
    )


def _random_vs_dense(results: Mapping[str, Any]) -> tuple[str, float, float] | None:
    """``(best dense method, its accuracy lead over random weights in points, storage ratio)``: the
    ratio of the bytes one more task adds, the best dense baseline's (a head) over random weights'."""
    rw, best = results.get("random_weights"), best_dense(results)
    if rw is None or best is None:
        return None
    gap = 100 * (results[best].average_accuracy - rw.average_accuracy)
    return best, gap, results[best].bytes_per_task / rw.bytes_per_task


def continual_verdicts(results: Mapping[str, Any], zero_forgetting: bool | None) -> dict[str, bool | None]:
    """Notebook 06's verdicts on random weights against the dense continual baselines.

    ``zero_forgetting_random_weights`` (given: :func:`forgets_nothing`); with random weights and a
    dense baseline: ``random_weights_within_5_points_of_best_dense`` (average accuracy),
    ``random_weights_forget_less_than_finetune`` (if finetune ran) and
    ``storage_ratio_at_least_100`` (the bytes one more task adds: the best dense baseline's over
    random weights'; the dense baselines keep one trunk, not one per task).
    """
    verdicts: dict[str, bool | None] = {"zero_forgetting_random_weights": zero_forgetting}
    compared = _random_vs_dense(results)
    if compared is None:
        return verdicts
    _, gap, storage = compared
    verdicts["random_weights_within_5_points_of_best_dense"] = gap <= 5.0
    if "finetune" in results:
        verdicts["random_weights_forget_less_than_finetune"] = (
            results["random_weights"].forgetting < results["finetune"].forgetting
        )
    verdicts["storage_ratio_at_least_100"] = storage >= 100
    return verdicts


def continual_answer(results: Mapping[str, Any], dense_bytes: int, zero_forgetting: bool | None) -> Markdown:
    """Notebook 06's answer: random weights against the best dense baseline in sentences, then every
    verdict of :func:`continual_verdicts`."""
    lines = []
    compared = _random_vs_dense(results)
    if compared is not None:
        best, gap, storage = compared
        rw = results["random_weights"]
        side = "behind" if gap > 0 else "ahead of"
        lines.append(
            f"Random weights reach {100 * rw.average_accuracy:.1f}% on average, {abs(gap):.1f} points {side} "
            f"the best continual dense baseline ({best}); they forget {100 * rw.forgetting:.1f} points, "
            f"{best} {100 * results[best].forgetting:.1f}."
        )
        lines.append(
            f"What one more task adds to storage: {rw.bytes_per_task:,} bytes for random weights, "
            f"{storage:.1f}x less than {best}'s {results[best].bytes_per_task:,} (a head); stored once: "
            f"{rw.fixed_bytes or 0:,} bytes (the seed) against {results[best].fixed_bytes or 0:,}. A copy "
            f"of the whole dense network per task ({dense_bytes:,} bytes) would be "
            f"{dense_bytes / rw.bytes_per_task:.0f}x, but no continual baseline here stores one."
        )
    verdicts = continual_verdicts(results, zero_forgetting)
    return Markdown("\n\n".join([*lines, _verdict_lines(verdicts)]))


def continual_samples(results: Mapping[str, Any]) -> dict[str, list[float]]:
    """The compared quantities of notebook 06, one value (this seed) each, for the record's ``samples``."""
    rw = results.get("random_weights")
    if rw is None:
        return {}
    samples = {"random_weights_forgetting": [100 * rw.forgetting]}
    compared = _random_vs_dense(results)
    if compared is not None:
        samples["best_dense_minus_random_weights_accuracy"] = [compared[1]]
        samples["storage_ratio"] = [compared[2]]
    return samples


def continual_table(results: Mapping[str, Any]) -> Table:
    """Every method's average accuracy after the last task, forgetting, backward transfer (in
    accuracy points) and what it learns and stores per task."""
    rows = []
    for m, r in results.items():
        forgetting = None if math.isnan(r.forgetting) else 100 * r.forgetting
        bwt = None if math.isnan(r.backward_transfer) else 100 * r.backward_transfer
        rows.append(
            [m, 100 * r.average_accuracy, forgetting, bwt, r.learned_params_per_task, r.bytes_per_task,
             r.fixed_bytes]
        )  # fmt: skip
    return table(
        rows,
        ["method", "avg acc %", "forgetting", "BWT", "params/task", "bytes added/task", "fixed bytes"],
        formats=dict.fromkeys(["avg acc %", "forgetting", "BWT"], ".1f"),
        caption="Accuracy after the last task, averaged over tasks; forgetting and backward transfer (BWT) "
        "in accuracy points (—: joint training learns every task at once, nothing to forget). Storage "
        "as the field counts it: what one more task adds, and what is stored once (the dense trunk, "
        "EWC's Fisher and anchor, SI's importance and anchor; the seed of fixed random weights).",
    )


#: the task-id protocols of notebook 06 and the continual-learning scenario each one amounts to
INFERENCE_PROTOCOLS = (
    ("per test batch", "batch_task_inference_accuracy", "batch_inferred_accuracy",
     "task-incremental, task id inferred per batch (SupSup)"),
    ("per sample", "task_inference_accuracy", "inferred_accuracy",
     "close to domain-incremental: each sample on its own"),
)  # fmt: skip


def inference_table(results: Mapping[str, Any]) -> Table:
    """When the task is not given: how often each method infers it, and its accuracy then (%), under
    both protocols (:data:`INFERENCE_PROTOCOLS`), each labelled with its scenario."""
    rows = [
        [m, protocol, 100 * getattr(r, task_key), 100 * getattr(r, acc_key), scenario]
        for m, r in results.items()
        for protocol, task_key, acc_key, scenario in INFERENCE_PROTOCOLS
        if getattr(r, acc_key, None) is not None
    ]
    headers = ["method", "task inferred", "task inferred correctly %", "accuracy with inferred task %",
               "scenario"]  # fmt: skip
    return table(
        rows,
        headers,
        formats=dict.fromkeys(headers[2:4], ".1f"),
        caption="Not comparable with domain- or class-incremental results of methods trained for those "
        "scenarios: every method here was trained with the task id given.",
    )


def seconds_per_task(results: Mapping[str, Any]) -> dict[str, float]:
    """Training seconds per task of each method, the median over the tasks after the first (warmed
    up; this machine; see :attr:`~neuromod_lib.continual.ContinualResult.typical_seconds_per_task`)."""
    return {m: r.typical_seconds_per_task for m, r in results.items()}


def continual_timings(results: Mapping[str, Any]) -> dict[str, float]:
    """The record's ``timings`` of notebook 06: seconds per task of each method (3 decimals) and, with
    random weights and finetune, the ratio of their times (2 decimals)."""
    per_task = seconds_per_task(results)
    timing = {f"{m}_seconds_per_task": round(v, 3) for m, v in per_task.items()}
    if "random_weights" in per_task and "finetune" in per_task:
        timing["random_weights_over_finetune_time"] = round(
            per_task["random_weights"] / per_task["finetune"], 2
        )
    return timing


def continual_timing_table(results: Mapping[str, Any]) -> Table:
    """Seconds per task of each method; the caption compares random weights with fine-tuning."""
    timing = continual_timings(results)
    caption = (
        "Training time per task (this machine): the median over the tasks after the first, which warms up."
    )
    ratio = timing.get("random_weights_over_finetune_time")
    if ratio is not None:
        caption += (
            f" Random weights train {'faster' if ratio < 1 else 'slower'} than fine-tuning the dense "
            f"network here: ratio {ratio}."
        )
    rows = [[m, s] for m, s in seconds_per_task(results).items()]
    return table(rows, ["method", "seconds per task"], formats={"seconds per task": ".2f"}, caption=caption)


def continual_metrics(results: Mapping[str, Any]) -> dict[str, Any]:
    """The record's metrics of every method of notebook 06: accuracy, forgetting (not for joint
    training: NaN), learned values and bytes per task, accuracy with an inferred task; % to 2 decimals."""
    metrics: dict[str, Any] = {}
    for m, r in results.items():
        metrics[f"{m}_accuracy"] = round(100 * r.average_accuracy, 2)
        if not math.isnan(r.forgetting):
            metrics[f"{m}_forgetting"] = round(100 * r.forgetting, 2)
        metrics[f"{m}_params_per_task"] = r.learned_params_per_task
        metrics[f"{m}_bytes_per_task"] = r.bytes_per_task
        if r.fixed_bytes is not None:
            metrics[f"{m}_fixed_bytes"] = r.fixed_bytes
        if r.inferred_accuracy is not None:
            metrics[f"{m}_inferred_accuracy"] = round(100 * r.inferred_accuracy, 2)
        if getattr(r, "batch_inferred_accuracy", None) is not None:
            metrics[f"{m}_batch_inferred_accuracy"] = round(100 * r.batch_inferred_accuracy, 2)
    return metrics


def continual_per_task(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per method and task: its accuracy (%) after the last task."""
    return [
        {"method": m, "task": task, "final_accuracy": 100 * r.accuracy[-1, j].item()}
        for m, r in results.items()
        for j, task in enumerate(r.task_names)
    ]


def embedded_benchmarks() -> list[str]:
    """The task sequences whose data ship with the library (digits, MNIST-1D): they train in seconds."""
    from .data import sequences

    return [b for b in sequences.BENCHMARKS if "mnist1d" in b or "digits" in b]


def continual_trainer(
    config: Any, *, seed: int, max_train: int | None = None, device: Any = "cpu"
) -> Callable[[str, int, str], Any]:
    """``train(benchmark, n_tasks, method)``: :func:`neuromod_lib.continual.learn_sequence` of ``method`` on
    that sequence (made with ``seed`` and ``max_train``) under ``config``: what notebook 06's panel calls
    (wrapped in ``functools.cache`` there, so that each choice trains once)."""
    from . import continual
    from .data import sequences

    def train(benchmark: str, n_tasks: int, method: str) -> Any:
        sequence = sequences.make_sequence(benchmark, n_tasks, seed=seed, max_train=max_train)
        return continual.learn_sequence(method, sequence, config, device=device)

    return train


# --------------------------------------------------------------------------- notebook 07


def run_families(plan: Any, sequences: Mapping[str, Any], device: Any = "cpu") -> tuple[list, dict]:
    """Every family of a notebook-07 :class:`~neuromod_lib.families.Plan` on each feedforward task
    sequence of ``sequences`` (``{task set: TaskSequence}``), then on the cognitive tasks if planned.

    Returns the table rows (:class:`~neuromod_lib.families.Row`) and, per feedforward task set,
    ``{family: ContinualResult}``.
    """
    from . import families as fam

    rows, results = [], {}
    for name, sequence in sequences.items():
        new_rows, results[name] = fam.run_sequence(
            name, sequence, plan.families, plan.configs[name], plan, device=device
        )
        rows += new_rows
    if "cognitive" in plan.task_sets:
        rows += fam.run_cognitive(plan, plan.families, device=device)
    return rows, results


def _reseeded(plan: Any, seed: int) -> Any:
    """``plan`` with every network initialised and trained from ``seed`` (the data stay the same)."""
    configs = {name: dataclasses.replace(c, seed=seed) for name, c in plan.configs.items()}
    setup = plan.rnn_setup
    setup = dataclasses.replace(setup, train_config=dataclasses.replace(setup.train_config, seed=seed))
    return dataclasses.replace(plan, configs=configs, rnn_setup=setup)


def seed_rows(
    plan: Any,
    sequences: Mapping[str, Any],
    first_seed: int,
    *,
    n_seeds: int = FIGURE_SEEDS,
    device: Any = "cpu",
) -> list:
    """The rows of :func:`run_families` for the seeds after ``first_seed`` (``n_seeds - 1`` of them).

    The same task sequences; every network initialised, trained and tested with the other seed.
    With the rows of ``first_seed`` (the notebook's) they give ``n_seeds`` rows per family and task
    set: the error bars of :func:`neuromod_lib.plots.family_comparison`. The recorded numbers stay
    those of ``first_seed``.
    """
    if not isinstance(n_seeds, int) or isinstance(n_seeds, bool) or n_seeds < 1:
        raise ValueError(f"n_seeds={n_seeds!r} is not allowed; allowed: an int >= 1")
    rows: list = []
    for seed in range(first_seed + 1, first_seed + n_seeds):
        rows += run_families(_reseeded(plan, seed), sequences, device=device)[0]
    return rows


def task_set_table(sequences: Mapping[str, Any], plan: Any) -> Table:
    """What each task set holds: tasks, inputs, classes and training samples per task (the cognitive
    tasks draw fresh trials at every step; the caption gives their RNNs)."""
    rows = []
    for name, seq in sequences.items():
        sizes = [len(t.y_train) for t in seq.tasks]
        rows.append([name, len(seq.tasks), seq.n_inputs, seq.n_classes, f"{min(sizes)}-{max(sizes)}"])
    caption = ""
    if "cognitive" in plan.task_sets:
        tasks = plan.rnn_tasks
        rows.append(["cognitive", f"{len(tasks)} ({', '.join(tasks)})", None, None, "new trials every step"])
        caption = f"cognitive: RNNs of {plan.rnn_neurons} units, {plan.rnn_replicates} per family."
    return table(
        rows, ["task set", "tasks", "inputs", "classes", "training samples per task"], caption=caption
    )


def family_table(rows: Sequence[Any], plan: Any) -> Table:
    """The comparison: every family (and reference) on every task set, one line each."""
    columns = {
        "task_set": "task set",
        "family": "family",
        "accuracy": "accuracy %",
        "params_per_task": "values/task",
        "bytes_per_task": "bytes added/task",
        "fixed_bytes": "fixed bytes",
        "forgetting": "forgetting",
        "ambiguity": "ambiguous",
        "noise": "noisy",
    }
    return table(
        [dataclasses.asdict(r) for r in rows],
        columns,
        formats={"accuracy": ".1f", "forgetting": ".1f", "ambiguity": ".2f", "noise": ".2f"},
        caption=f"Forgetting in accuracy points; ambiguous / noisy: fraction of the accuracy kept at "
        f"λ = {plan.ambiguity_at:g} / σ = {plan.sigmas[-1]:g}; —: does not apply. "
        "Training time in the next cell.",
    )


def readout_table(by_readout: Mapping[str, Sequence[Any]]) -> Table:
    """Accuracy (%) of every feedforward family under each readout protocol, ``{readout: rows}``: one
    line per task set and family, one column per protocol."""
    readouts = list(by_readout)
    accuracy = {(r.task_set, r.family, k): r.accuracy for k, rows in by_readout.items() for r in rows}
    keys = dict.fromkeys((r.task_set, r.family) for rows in by_readout.values() for r in rows)
    lines = [[s, f, *(accuracy.get((s, f, k)) for k in readouts)] for s, f in keys if s != "cognitive"]
    headers = ["task set", "family", *(f"{k} readout %" for k in readouts)]
    return table(
        lines,
        headers,
        formats=dict.fromkeys(headers[2:], ".1f"),
        caption="shared: one readout learned on the first task, then frozen (the context alone tells the "
        "tasks apart); per_task: a head per task, which carries part of the task. Each with its own "
        "learning rates, chosen on validation. Random weights and fine-tuning have readouts of their "
        "own, the same under both.",
    )


def family_timings(rows: Sequence[Any]) -> dict[str, float]:
    """The record's ``timings`` of notebook 07: ``<task set>__<family>__seconds_per_task`` (4 decimals)."""
    return {f"{r.task_set}__{r.family}__seconds_per_task": round(r.seconds_per_task, 4) for r in rows}


def family_timing_table(rows: Sequence[Any]) -> Table:
    """Seconds per task of every row; the caption names the fastest family per task set (this machine)."""
    from . import families as fam

    fastest = fam.needs(list(rows), include_time=True)["fastest training"]
    caption = "Training time per task (this machine). Fastest: " + "; ".join(
        f"{s}: {', '.join(f)}" for s, f in fastest.items()
    )
    return table(
        [[r.task_set, r.family, r.seconds_per_task] for r in rows],
        ["task set", "family", "seconds per task"],
        formats={"seconds per task": ".3f"},
        caption=caption + ".",
    )


def forgetting_verdicts(rows: Sequence[Any], results: Mapping[str, Mapping[str, Any]]) -> dict[str, bool]:
    """Notebook 07's forgetting verdicts.

    ``families_forget_nothing``: every modulation family measured on a sequence forgot exactly 0
    points and every column of its accuracy matrices is constant (``results``:
    ``{task set: {family: ContinualResult}}``); ``finetune_forgets``: the finetune reference forgot
    on every sequence.
    """
    from .families import FAMILIES

    measured = [r for r in rows if r.forgetting is not None]
    family_forgetting = [r.forgetting for r in measured if r.family in FAMILIES]
    constant = all(
        columns_constant(res.accuracy)
        for by_family in results.values()
        for f, res in by_family.items()
        if f in FAMILIES
    )
    finetune = [r.forgetting for r in measured if r.family == "finetune"]
    return {
        "families_forget_nothing": bool(family_forgetting)
        and all(v == 0 for v in family_forgetting)
        and constant,
        "finetune_forgets": bool(finetune) and min(finetune) > 0,
    }


def forgetting_answer(rows: Sequence[Any], results: Mapping[str, Mapping[str, Any]]) -> Markdown:
    """The forgetting of the families and of finetune in a sentence (the numbers behind
    :func:`forgetting_verdicts`)."""
    from .families import FAMILIES

    measured = [r for r in rows if r.forgetting is not None]
    largest = max((r.forgetting for r in measured if r.family in FAMILIES), default=0)
    constant = all(
        columns_constant(res.accuracy) for by in results.values() for f, res in by.items() if f in FAMILIES
    )
    text = f"Modulation families: largest forgetting {largest:.2f} points; every column constant: {constant}."
    finetune = [r.forgetting for r in measured if r.family == "finetune"]
    if finetune:
        text += f" Finetune forgets {', '.join(format(v, '.1f') for v in finetune)} points."
    return Markdown(text)


def most_accurate(rows: Sequence[Any]) -> dict[str, Any]:
    """``{task set: the row of its most accurate modulation family}`` (the first on a tie; the
    finetune reference does not compete)."""
    from .families import FAMILIES

    best = {}
    for task_set in dict.fromkeys(r.task_set for r in rows):
        here = [r for r in rows if r.task_set == task_set and r.family in FAMILIES]
        if here:
            top = max(r.accuracy for r in here)
            best[task_set] = next(r for r in here if r.accuracy == top)
    return best


def wins(
    need: str, best: Mapping[str, Mapping[str, list[str]]], rows: Sequence[Any], families: Sequence[str]
) -> list[str]:
    """The families best on ``need`` (:func:`neuromod_lib.families.needs` gives ``best``) on *every*
    task set where they ran, in the order of ``families``."""
    per_set = best[need]
    won = []
    for f in families:
        ran = [s for s in per_set if any(r.family == f and r.task_set == s for r in rows)]
        if per_set and ran and all(f in per_set[s] for s in ran):
            won.append(f)
    return won


def family_verdicts(
    rows: Sequence[Any], best: Mapping[str, Mapping[str, list[str]]], families: Sequence[str]
) -> dict[str, bool | None]:
    """Notebook 07's verdicts on what the comparison teaches.

    ``one_family_most_accurate``: one family is the most accurate on every task set;
    ``random_weights_smallest_storage``: random weights store the fewest bytes per task on every
    feedforward task set (None when random weights did not run).
    """
    storage = best["smallest storage per task"]
    smallest = None
    if "random_weights" in families:
        smallest = bool(storage) and all(
            v == ["random_weights"] for s, v in storage.items() if s != "cognitive"
        )
    return {
        "one_family_most_accurate": len({r.family for r in most_accurate(rows).values()}) == 1,
        "random_weights_smallest_storage": smallest,
    }


def family_answer(
    rows: Sequence[Any], best: Mapping[str, Mapping[str, list[str]]], families: Sequence[str]
) -> Markdown:
    """What the comparison teaches, in sentences: whether one family is the most accurate everywhere,
    and for each need which family (if any) wins on every task set it ran on (:func:`wins`)."""
    verdicts = family_verdicts(rows, best, families)
    one = _yes(verdicts["one_family_most_accurate"])
    lines = [f"- One family is the most accurate on every task set: **{one}**."]
    for need in best:
        won = wins(need, best, rows, families)
        if won:
            said = f"**{', '.join(won)}** wins on every task set it ran on"
        elif best[need] and not any(best[need].values()):
            said = "**no family qualifies** on any task set (see the ranking rule above the table)"
        else:
            said = "no family wins everywhere"
        lines.append(f"- {need}: {said}")
    return Markdown("\n".join(lines))


def needs_table(best: Mapping[str, Mapping[str, list[str]]]) -> Table:
    """For each need (row), the best families on each task set (column); ties share the cell; "no
    family qualifies" where a robustness ranking could not separate the families that work."""
    sets = list(dict.fromkeys(s for per_set in best.values() for s in per_set))
    rows = [
        [need, *((", ".join(per_set[s]) or "no family qualifies") if s in per_set else None for s in sets)]
        for need, per_set in best.items()
    ]
    return table(
        rows,
        ["need", *sets],
        caption="Robustness: only families within 10 accuracy points of the best (mean over seeds) compete, "
        "and one wins only if the 95% interval of its paired difference to every other, over at least "
        "3 seeds, lies above 0.",
    )


def family_metrics(
    rows: Sequence[Any],
    best: Mapping[str, Mapping[str, list[str]]],
    verdicts: Mapping[str, bool | None],
) -> dict[str, Any]:
    """The record's metrics of notebook 07: every row's numbers as ``<task set>__<family>__<measure>``,
    the ``verdicts`` (:func:`forgetting_verdicts` and :func:`family_verdicts`; a None is left out), the
    most accurate family and the most robust ones per task set."""
    metrics: dict[str, Any] = {
        f"{r.task_set}__{r.family}__{k}": v for r in rows for k, v in r.metrics().items()
    }
    metrics.update({k: v for k, v in verdicts.items() if v is not None})
    metrics.update({f"most_accurate_{s}": r.family for s, r in most_accurate(rows).items()})
    for need, key in (
        ("robust to an ambiguous context", "ambiguity"),
        ("robust to a noisy context", "noise"),
    ):
        metrics.update({f"most_robust_{key}_{s}": ",".join(f) or "none" for s, f in best[need].items()})
    return metrics


def family_per_task(rows: Sequence[Any]) -> list[dict[str, Any]]:
    """One CSV row per family and task set: its recorded numbers."""
    return [{"task_set": r.task_set, "family": r.family, **r.metrics()} for r in rows]
