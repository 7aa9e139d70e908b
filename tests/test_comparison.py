"""Tables, verdicts and records that compare methods: notebook 06's continual learners and notebook
07's modulation families, on made-up results whose answers are known."""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import pytest
import torch

from neuromod_lib import comparison, continual, profiles, selection
from neuromod_lib import families as fam
from neuromod_lib.continual import ContinualResult
from neuromod_lib.families import Row

pytestmark = pytest.mark.usefixtures("one_thread")
NAN = math.nan


def _result(
    method: str, accuracy, *, params=100, stored=400, fixed=8, inferred=(0.5, 0.25), seconds=(1.0, 3.0)
):
    acc = torch.tensor(accuracy, dtype=torch.float64)
    return ContinualResult(
        method, "b", [f"t{j}" for j in range(len(acc))], acc, list(seconds), params, stored, *inferred,
        fixed_bytes=fixed,
    )  # fmt: skip


def _results() -> dict[str, ContinualResult]:
    return {
        "random_weights": _result("random_weights", [[0.9, NAN], [0.9, 0.8]], params=641, stored=2564),
        "finetune": _result(
            "finetune", [[0.95, NAN], [0.75, 0.9]], params=48010, stored=25640, fixed=166400, seconds=(4, 4)
        ),
        "ewc": _result("ewc", [[0.95, NAN], [0.85, 0.93]], params=48010, stored=25640, fixed=3 * 166400),
        "joint": _result("joint", [[NAN, NAN], [0.97, 0.96]], inferred=(None, None)),
    }


# --- notebook 06 -------------------------------------------------------------------------------


def test_columns_constant_is_exact():
    acc = torch.tensor([[0.9, NAN, NAN], [0.9, 0.8, NAN], [0.9, 0.8, 0.7]], dtype=torch.float64)
    assert comparison.columns_constant(acc)
    acc[2, 0] = 0.9 + 1e-9
    assert not comparison.columns_constant(acc)


def test_forgets_nothing_and_its_note():
    results = _results()
    assert comparison.forgets_nothing(results["random_weights"]) is True
    assert comparison.forgets_nothing(results["finetune"]) is False
    assert comparison.forgets_nothing(None) is None and comparison.forgetting_note(None) is None
    note = comparison.forgetting_note(results["random_weights"]).data
    assert note == "random weights: forgetting 0.000000, every column constant: True"


def test_best_dense_and_the_reference_run():
    results = _results()
    assert comparison.best_dense(results) == "ewc"  # mean 0.89 beats finetune's 0.825
    assert comparison.best_dense({"random_weights": results["random_weights"]}) is None
    tie = {"si": results["ewc"], "finetune": results["ewc"]}
    assert comparison.best_dense(tie) == "finetune"  # the first of DENSE_METHODS on a tie
    assert comparison.reference_method(results) == "joint"
    del results["joint"]
    assert comparison.reference_method(results) == "ewc"
    passed, check = comparison.reference_check(results, n_classes=10)
    assert passed and check == "ewc reaches 89.0% >= halfway from chance (10%) to 100%"
    assert not comparison.reference_check({"x": _result("x", [[0.5]])}, n_classes=10)[0]  # 50 < 55


def test_continual_verdicts_answer_and_samples():
    results = _results()
    dense_bytes = 192040
    verdicts = comparison.continual_verdicts(results, True)
    assert verdicts == {
        "zero_forgetting_random_weights": True,
        "random_weights_within_5_points_of_best_dense": True,  # ewc 89.0 vs 85.0: 4 points
        "random_weights_forget_less_than_finetune": True,  # 0 < 20
        "storage_ratio_at_least_100": False,  # what one more task adds: 25640 / 2564 = 10
    }
    text = comparison.continual_answer(results, dense_bytes, True).data
    assert (
        "Random weights reach 85.0% on average, 4.0 points behind the best continual dense baseline (ewc)"
        in text
    )
    assert "they forget 0.0 points, ewc 10.0." in text
    assert "2,564 bytes for random weights, 10.0x less than ewc's 25,640 (a head)" in text
    assert "stored once: 8 bytes (the seed) against 499,200" in text
    assert "(192,040 bytes) would be 75x, but no continual baseline here stores one" in text
    assert "| `storage_ratio_at_least_100` | no |" in text
    samples = comparison.continual_samples(results)
    assert samples["random_weights_forgetting"] == [0.0]
    assert samples["best_dense_minus_random_weights_accuracy"] == pytest.approx([4.0])
    assert samples["storage_ratio"] == pytest.approx([10.0])
    alone = {"random_weights": results["random_weights"]}
    assert comparison.continual_verdicts(alone, True) == {"zero_forgetting_random_weights": True}
    assert comparison.continual_samples(alone) == {"random_weights_forgetting": [0.0]}
    assert comparison.continual_samples({"ewc": results["ewc"]}) == {}


def test_continual_tables():
    results = _results()
    t = comparison.continual_table(results)
    assert t.rows[0] == ("random_weights", "85.0", "0.0", "0.0", "641", "2,564", "8")
    assert t.rows[2][5:] == ("25,640", "499,200")  # ewc: a head per task; trunk, Fisher and anchor once
    assert t.rows[1][:4] == ("finetune", "82.5", "20.0", "-20.0")
    assert t.rows[3][2:4] == ("—", "—")  # joint: nothing to forget
    t = comparison.inference_table(results)
    assert t.column("method") == ["random_weights", "finetune", "ewc"]  # joint infers nothing
    assert t.rows[0] == (
        "random_weights", "per sample", "25.0", "50.0", "close to domain-incremental: each sample on its own"
    )  # fmt: skip
    results["random_weights"].batch_inferred_accuracy = 0.875
    results["random_weights"].batch_task_inference_accuracy = 1.0
    t = comparison.inference_table(results)
    scenario = "task-incremental, task id inferred per batch (SupSup)"
    assert t.rows[0] == ("random_weights", "per test batch", "100.0", "87.5", scenario)
    assert t.column("task inferred")[:2] == ["per test batch", "per sample"]
    assert "trained with the task id" in t.caption
    assert comparison.continual_metrics(results)["random_weights_batch_inferred_accuracy"] == 87.5
    t = comparison.continual_timing_table(results)
    # the median over the tasks after the first (1.0 s, the warm-up, is left out)
    assert t.column("seconds per task") == ["3.00", "4.00", "3.00", "3.00"]
    assert "Random weights train faster than fine-tuning the dense network here: ratio 0.75." in t.caption
    assert comparison.continual_timings(results) == {
        "random_weights_seconds_per_task": 3.0,
        "finetune_seconds_per_task": 4.0,
        "ewc_seconds_per_task": 3.0,
        "joint_seconds_per_task": 3.0,
        "random_weights_over_finetune_time": 0.75,
    }


def test_continual_metrics_and_rows_are_those_the_notebook_recorded():
    results = _results()
    metrics = comparison.continual_metrics(results)
    # percentages rounded to 2 decimals, in the record's order; joint has no forgetting to report
    assert list(metrics.items()) == [
        ("random_weights_accuracy", 85.0),
        ("random_weights_forgetting", 0.0),
        ("random_weights_params_per_task", 641),
        ("random_weights_bytes_per_task", 2564),
        ("random_weights_fixed_bytes", 8),
        ("random_weights_inferred_accuracy", 50.0),
        ("finetune_accuracy", 82.5),
        ("finetune_forgetting", 20.0),
        ("finetune_params_per_task", 48010),
        ("finetune_bytes_per_task", 25640),
        ("finetune_fixed_bytes", 166400),
        ("finetune_inferred_accuracy", 50.0),
        ("ewc_accuracy", 89.0),
        ("ewc_forgetting", 10.0),
        ("ewc_params_per_task", 48010),
        ("ewc_bytes_per_task", 25640),
        ("ewc_fixed_bytes", 499200),
        ("ewc_inferred_accuracy", 50.0),
        ("joint_accuracy", 96.5),
        ("joint_params_per_task", 100),
        ("joint_bytes_per_task", 400),
        ("joint_fixed_bytes", 8),
    ]
    assert "joint_forgetting" not in metrics and "joint_inferred_accuracy" not in metrics
    rows = comparison.continual_per_task(results)
    assert rows[1] == {"method": "random_weights", "task": "t1", "final_accuracy": pytest.approx(80.0)}
    assert len(rows) == 8


def test_the_panel_trains_each_choice_on_an_embedded_sequence(monkeypatch):
    from neuromod_lib.data import sequences

    assert comparison.embedded_benchmarks() and set(comparison.embedded_benchmarks()) <= set(
        sequences.BENCHMARKS
    )
    assert all("digits" in b or "mnist1d" in b for b in comparison.embedded_benchmarks())
    made, ran = [], []
    monkeypatch.setattr(
        sequences, "make_sequence", lambda b, n, **kw: made.append((b, n, kw)) or f"seq-{b}-{n}"
    )
    monkeypatch.setattr(
        continual, "learn_sequence", lambda m, seq, config, device: ran.append((m, seq, config)) or m
    )
    train = comparison.continual_trainer("budget", seed=4, max_train=50, device="cpu")
    assert train("split_digits", 3, "ewc") == "ewc"
    assert made == [("split_digits", 3, {"seed": 4, "max_train": 50})]
    assert ran == [("ewc", "seq-split_digits-3", "budget")]


# --- notebook 07 -------------------------------------------------------------------------------


def _rows() -> list[Row]:
    return [
        Row("attributes", "deterministic_gain", 60.0, 512, 2048, 0.1, 0.0, 0.96, 0.96),
        Row("attributes", "synaptic", 79.0, 768, 3072, 0.2, 0.0, 0.91, 0.80),
        Row("attributes", "random_weights", 77.0, 513, 2052, 0.05, 0.0, 0.90, 0.82),
        Row("attributes", "finetune", 80.0, 132610, 2570, 0.1, 5.5, fixed_bytes=528000),
        Row("digits", "deterministic_gain", 50.0, 640, 2560, 0.1, 0.0, 1.00, 0.89),
        Row("digits", "synaptic", 72.0, 1408, 5632, 0.1, 0.0, 0.96, 0.69),
        Row("digits", "random_weights", 88.0, 641, 2564, 0.02, 0.0, 0.95, 0.53),
        Row("digits", "finetune", 87.0, 48010, 192040, 0.05, 6.0),
        Row("cognitive", "synaptic", 86.0, 64, 256, 0.5, None, 0.96, 0.61),
    ]


def _accuracies(forgets: bool):
    constant = torch.tensor([[0.9, NAN], [0.9, 0.8]])
    fading = torch.tensor([[0.9, NAN], [0.7, 0.8]])
    by_family = {
        f: SimpleNamespace(accuracy=constant) for f in ("deterministic_gain", "synaptic", "random_weights")
    }
    by_family["finetune"] = SimpleNamespace(accuracy=fading)
    if forgets:
        by_family["synaptic"] = SimpleNamespace(accuracy=fading)
    return {"attributes": by_family, "digits": dict(by_family)}


FAMILIES = ("deterministic_gain", "synaptic", "random_weights", "finetune")


def test_family_table_shows_every_row_and_dashes_what_does_not_apply():
    plan = SimpleNamespace(ambiguity_at=0.4, sigmas=(0.0, 0.5))
    t = comparison.family_table(_rows(), plan)
    assert t.header[:3] == ("task set", "family", "accuracy %") and len(t.rows) == 9
    assert t.rows[3] == ("attributes", "finetune", "80.0", "132,610", "2,570", "528,000", "5.5", "—", "—")
    assert t.rows[-1][5:] == ("—", "—", "0.96", "0.61")
    assert "λ = 0.4 / σ = 0.5" in t.caption


def test_task_set_table_names_the_sequences_and_the_rnns():
    task = SimpleNamespace(y_train=torch.zeros(5))
    seq = SimpleNamespace(tasks=[task, SimpleNamespace(y_train=torch.zeros(7))], n_inputs=64, n_classes=10)
    plan = SimpleNamespace(
        task_sets=("digits", "cognitive"), rnn_tasks=("go", "anti"), rnn_neurons=32, rnn_replicates=2
    )
    t = comparison.task_set_table({"digits": seq}, plan)
    assert t.rows[0] == ("digits", "2", "64", "10", "5-7")
    assert (
        t.rows[1][:2] == ("cognitive", "2 (go, anti)")
        and t.caption == "cognitive: RNNs of 32 units, 2 per family."
    )
    assert comparison.task_set_table({"digits": seq}, SimpleNamespace(task_sets=("digits",))).caption == ""


def test_family_timings_and_their_table():
    rows = _rows()
    timing = comparison.family_timings(rows)
    assert timing["digits__random_weights__seconds_per_task"] == 0.02 and len(timing) == len(rows)
    t = comparison.family_timing_table(rows)
    assert "attributes: random_weights; digits: random_weights; cognitive: synaptic" in t.caption
    assert t.rows[0] == ("attributes", "deterministic_gain", "0.100")


def test_forgetting_verdicts_need_zero_forgetting_and_constant_columns():
    rows = _rows()
    assert comparison.forgetting_verdicts(rows, _accuracies(False)) == {
        "families_forget_nothing": True,
        "finetune_forgets": True,
    }
    assert not comparison.forgetting_verdicts(rows, _accuracies(True))["families_forget_nothing"]
    rows[1].forgetting = 0.5
    assert not comparison.forgetting_verdicts(rows, _accuracies(False))["families_forget_nothing"]
    rows[7].forgetting = 0.0
    assert not comparison.forgetting_verdicts(rows, _accuracies(False))["finetune_forgets"]
    text = comparison.forgetting_answer(rows, _accuracies(False)).data
    assert text == (
        "Modulation families: largest forgetting 0.50 points; every column constant: True. "
        "Finetune forgets 5.5, 0.0 points."
    )


def test_most_accurate_and_wins_on_a_made_up_table():
    rows = _rows()
    assert {s: r.family for s, r in comparison.most_accurate(rows).items()} == {
        "attributes": "synaptic",  # finetune's 80 does not compete
        "digits": "random_weights",
        "cognitive": "synaptic",
    }
    best = {
        "accuracy": {"attributes": ["synaptic"], "digits": ["random_weights"], "cognitive": ["synaptic"]},
        "smallest storage per task": {"attributes": ["deterministic_gain"], "digits": ["deterministic_gain"]},
        "robust to a noisy context": {},
    }
    assert comparison.wins("accuracy", best, rows, FAMILIES) == []  # synaptic ran on digits and lost there
    assert comparison.wins("smallest storage per task", best, rows, FAMILIES) == ["deterministic_gain"]
    assert comparison.wins("robust to a noisy context", best, rows, FAMILIES) == []
    only_where_ran = {"accuracy": {"cognitive": ["synaptic"]}}
    assert comparison.wins("accuracy", only_where_ran, rows, FAMILIES) == ["synaptic"]


def _old_notebook_07(rows, results, families):
    """What notebook 07 computed in its cells before they moved into the library (the reference)."""
    feedforward = [r for r in rows if r.forgetting is not None]
    family_forgetting = {
        (r.task_set, r.family): r.forgetting for r in feedforward if r.family in fam.FAMILIES
    }
    constant = all(
        torch.equal(res.accuracy[j:, j], res.accuracy[j, j].expand(len(res.accuracy) - j))
        for by_family in results.values()
        for f, res in by_family.items()
        if f in fam.FAMILIES
        for j in range(len(res.accuracy))
    )
    families_forget_nothing = (
        bool(family_forgetting) and all(v == 0 for v in family_forgetting.values()) and constant
    )
    finetune = [r.forgetting for r in feedforward if r.family == "finetune"]
    best = fam.needs(rows)
    accuracy_by_set = {
        s: max((r for r in rows if r.task_set == s and r.family in fam.FAMILIES), key=lambda r: r.accuracy)
        for s in dict.fromkeys(r.task_set for r in rows)
    }
    storage = best["smallest storage per task"]
    smallest = (
        bool(storage) and all(v == ["random_weights"] for s, v in storage.items() if s != "cognitive")
        if "random_weights" in families
        else None
    )
    metrics = {f"{r.task_set}__{r.family}__{k}": v for r in rows for k, v in r.metrics().items()}
    metrics.update(
        families_forget_nothing=families_forget_nothing,
        finetune_forgets=bool(finetune) and min(finetune) > 0,
        one_family_most_accurate=len({r.family for r in accuracy_by_set.values()}) == 1,
        random_weights_smallest_storage=smallest,
        **{f"most_accurate_{s}": r.family for s, r in accuracy_by_set.items()},
        **{
            f"most_robust_ambiguity_{s}": ",".join(f) or "none"
            for s, f in best["robust to an ambiguous context"].items()
        },
        **{
            f"most_robust_noise_{s}": ",".join(f) or "none"
            for s, f in best["robust to a noisy context"].items()
        },
    )
    return metrics


@pytest.mark.parametrize("forgets", [False, True])
def test_family_metrics_are_those_the_notebook_recorded(forgets):
    rows, results = _rows(), _accuracies(forgets)
    best = fam.needs(rows)
    verdicts = {
        **comparison.forgetting_verdicts(rows, results),
        **comparison.family_verdicts(rows, best, FAMILIES),
    }
    metrics = comparison.family_metrics(rows, best, verdicts)
    expected = _old_notebook_07(rows, results, FAMILIES)
    assert metrics == expected and list(metrics) == list(expected)
    assert comparison.family_per_task(rows)[0] == {
        "task_set": "attributes",
        "family": "deterministic_gain",
        **rows[0].metrics(),
    }


def test_family_verdicts_and_answer():
    rows = _rows()
    best = fam.needs(rows)
    verdicts = comparison.family_verdicts(rows, best, FAMILIES)
    # storage competes among families within 10 points of the best: deterministic gains (2,048 bytes) are not
    assert verdicts == {"one_family_most_accurate": False, "random_weights_smallest_storage": True}
    assert comparison.family_verdicts(rows, best, ("synaptic",))["random_weights_smallest_storage"] is None
    metrics = comparison.family_metrics(rows, best, {"random_weights_smallest_storage": None})
    assert "random_weights_smallest_storage" not in metrics  # None is not a metric a record takes
    text = comparison.family_answer(rows, best, FAMILIES).data
    assert "- One family is the most accurate on every task set: **no**." in text
    assert "- smallest storage per task: **random_weights** wins on every task set it ran on" in text
    assert "- accuracy: no family wins everywhere" in text
    # one seed: robustness is not ranked, and the answer and the table say so
    assert "- robust to an ambiguous context: **no family qualifies** on any task set" in text
    t = comparison.needs_table(best)
    assert t.header == ("need", "attributes", "digits", "cognitive")
    assert t.rows[0] == ("accuracy", "synaptic", "random_weights", "synaptic")
    robust = dict((r[0], r) for r in t.rows)["robust to an ambiguous context"]
    assert robust[1:] == ("no family qualifies",) * 3 and "at least 3 seeds" in t.caption


# --- seeds for the figure of notebook 07 -------------------------------------------------------


@pytest.fixture(scope="module")
def digits_plan():
    cfg = profiles.resolve(
        "07_modulation_families_compared", "smoke", task_sets="digits", families="deterministic_gain,finetune"
    )
    from neuromod_lib.data import sequences

    return fam.plan(cfg), {"digits": sequences.make_sequence(cfg.benchmark, 2, seed=0, max_train=60)}


def test_run_families_measures_every_family_on_every_sequence(digits_plan):
    plan, seqs = digits_plan
    rows, results = comparison.run_families(plan, seqs)
    assert [(r.task_set, r.family) for r in rows] == [
        ("digits", "deterministic_gain"),
        ("digits", "finetune"),
    ]
    assert list(results) == ["digits"] and list(results["digits"]) == ["deterministic_gain", "finetune"]


def test_seed_rows_repeat_the_runs_with_the_next_seeds(digits_plan, monkeypatch):
    plan, seqs = digits_plan
    first, _ = comparison.run_families(plan, seqs)
    (again,) = [comparison.seed_rows(plan, seqs, plan.configs["digits"].seed, n_seeds=2)]
    assert [(r.task_set, r.family) for r in again] == [(r.task_set, r.family) for r in first]
    assert [r.accuracy for r in again] != [r.accuracy for r in first]  # another seed, other numbers
    seen = []
    monkeypatch.setattr(comparison, "run_families", lambda p, s, device: seen.append(p) or ([p], {}))
    assert comparison.seed_rows(plan, seqs, 7, n_seeds=3) == seen
    assert [p.configs["digits"].seed for p in seen] == [8, 9]
    assert [p.rnn_setup.train_config.seed for p in seen] == [8, 9]
    assert plan.configs["digits"].seed == 0, "the notebook's plan is left as it was"
    assert comparison.seed_rows(plan, seqs, 7, n_seeds=1) == []
    with pytest.raises(ValueError, match="n_seeds=0"):
        comparison.seed_rows(plan, seqs, 7, n_seeds=0)


def test_the_search_chooses_each_familys_rate_and_every_seed_reuses_it(digits_plan, monkeypatch):
    plan, seqs = digits_plan
    searched = fam.with_search(plan, seqs)
    assert set(searched.selections["digits"]) == {"deterministic_gain", "finetune"}
    chosen = searched.selections["digits"]["deterministic_gain"]
    assert chosen.field == "modulation_lr" and chosen.chosen in chosen.grid
    assert fam.tuned(plan.configs["digits"], chosen).lr == chosen.chosen
    assert (
        fam.tuned(plan.configs["digits"], searched.selections["digits"]["finetune"]).dense_lr
        in (selection.SEARCH["finetune"][1])
    )
    assert fam.with_search(dataclasses.replace(plan, search=False), seqs).selections == {}
    used = []
    real = fam.measure_family
    monkeypatch.setattr(fam, "measure_family", lambda f, s, c, **k: used.append((f, c)) or real(f, s, c, **k))
    comparison.seed_rows(searched, seqs, 0, n_seeds=2)
    assert used[0][1].lr == chosen.chosen and used[0][1].seed == 1  # another seed, the same choice
    table = selection.search_tables(searched.selections)
    assert table.header[:2] == ("task set", "method") and len(table.rows) == 2
    metrics = selection.selection_metrics_by_set(searched.selections)
    assert metrics["hyperparameters_selected_on"] == "validation"
    assert metrics["digits__deterministic_gain__modulation_lr"] == chosen.chosen


def test_the_other_readout_keeps_the_feedforward_sets_and_reports_both(digits_plan):
    plan, seqs = digits_plan
    other = fam.with_readout(dataclasses.replace(plan, task_sets=("digits", "cognitive")), "per_task")
    assert other.task_sets == ("digits",) and other.configs["digits"].readout == "per_task"
    assert other.selections == {}
    rows, _ = comparison.run_families(plan, seqs)
    per_task, _ = comparison.run_families(other, seqs)
    t = comparison.readout_table({"shared": rows, "per_task": per_task})
    assert t.header == ("task set", "family", "shared readout %", "per_task readout %")
    assert t.rows[0][:2] == ("digits", "deterministic_gain")
    assert t.rows[0][2] == f"{rows[0].accuracy:.1f}" and t.rows[0][3] == f"{per_task[0].accuracy:.1f}"
