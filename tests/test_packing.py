"""Tests of the packing experiment (neuromod_lib.packing): capacity, the saturation check, the
verdict range, the paired tests, and one tiny end-to-end sweep of every size in one stack."""

from __future__ import annotations

import pytest
import torch

from neuromod_lib import multitask as mt
from neuromod_lib import packing
from neuromod_lib.data.tasks import TaskConfig
from neuromod_lib.multitask import TrainConfig
from neuromod_lib.packing import PackingSweep, packing_answer, packing_sweep

pytestmark = pytest.mark.usefixtures("one_thread")

TASK_CONFIG = TaskConfig(n_ring=8)
PATHWAYS = ("rule", "excitability", "synaptic", "both")


def sweep_of(solved: dict, sizes=(8, 16), ks=(1, 2), pathways=PATHWAYS, reps=3, late: dict | None = None):
    """A sweep in packing_sweep's row order; ``solved[(n, p, r)]``: the Ks solved at the end;
    ``late[(n, p, r)]``: the Ks solved at the end but not yet at the check step."""
    late = late or {}
    rows = [
        {
            "n_neurons": n, "pathway": p, "replicate": r, "k": k,
            "solved": k in solved.get((n, p, r), ()),
            "solved_at_check": k in solved.get((n, p, r), ()) and k not in late.get((n, p, r), ()),
            "steps_to_criterion": 100.0 * k if k in solved.get((n, p, r), ()) else float("nan"),
        }
        for n in sizes for k in ks for r in range(reps) for p in pathways
    ]  # fmt: skip
    return PackingSweep(rows, 0.9, 300, 200)


def test_capacity_is_the_largest_solved_k_per_replicate():
    solved = {(8, "rule", 0): (1, 2), (8, "rule", 1): (2,), (8, "both", 2): (1,), (16, "both", 0): (2,)}
    cap = sweep_of(solved, pathways=("rule", "both")).capacity()
    assert cap[(8, "rule")] == [2, 2, 0]  # replicate 1 solved K = 2 although it failed K = 1
    assert cap[(8, "both")] == [0, 0, 1] and cap[(16, "both")] == [2, 0, 0] and cap[(16, "rule")] == [0, 0, 0]


def test_a_verdict_that_changes_after_the_check_step_makes_its_cell_budget_limited():
    solved = {(n, p, r): (1, 2) for n in (8, 16) for p in PATHWAYS for r in range(3)}
    solved[(16, "synaptic", 0)] = (1,)  # so that synaptic and excitability differ somewhere
    sweep = sweep_of(solved, late={(16, "synaptic", 1): (2,)})
    assert sweep.budget_limited() == [(16, "synaptic", 2)]
    assert not sweep.saturated(16, "synaptic", 2) and sweep.saturated(16, "synaptic", 1)
    assert not sweep.determined(16, "synaptic") and sweep.determined(16, "both")
    assert sweep.determined_sizes("synaptic") == [8] and sweep.determined_sizes("both") == [8, 16]
    assert sweep.saturated_cells("excitability", "synaptic") == [(8, 1), (8, 2), (16, 1)]
    assert "(budget-limited)" in dict((r[0], r) for r in sweep.capacity_table().rows)["16"][3]
    solved_rows = {(r[0], r[1]): r for r in sweep.solved_table().rows}
    assert solved_rows[("16", "synaptic")][3] == "2/3 @200 †" and solved_rows[("8", "rule")][2] == "3/3 @100"
    table = {r[0]: r for r in sweep.saturation_table().rows}
    assert table["synaptic"] == ("synaptic", "3", "1", "N=16 K=2") and table["rule"][2] == "0"
    answer = packing_answer(sweep)
    assert answer.determined["synaptic"] == [8] and answer.mean_capacity["synaptic"] == 2.0
    # the budget-limited cell (16, K = 2) is left out of the paired comparison: per (N, replicate) the
    # mean over K = 1, 2 at N = 8 and over K = 1 alone at N = 16
    assert answer.pairs["excitability - synaptic"] == [0.0] * 6
    assert "synaptic" not in answer.growth and answer.growth["both"].n == 3
    # growth pooled over the pathways determined at both ends, per replicate
    assert answer.grows.name == "mean over rule, excitability, both: N=16 - N=8" and answer.grows.n == 3
    metrics = answer.metrics()
    assert metrics["saturated_sizes_synaptic"] == "8" and metrics["capacity_N16_synaptic"] == 1.67


def test_no_verdict_when_no_capacity_is_saturated():
    solved = {(n, p, r): (1,) for n in (8, 16) for p in PATHWAYS for r in range(3)}
    late = {(n, p, 0): (1,) for n in (8, 16) for p in PATHWAYS}
    sweep = sweep_of(solved, late=late)
    answer = packing_answer(sweep)
    assert answer.growth == {} and answer.grows is None
    assert "No verdict" in answer.conclusions().data
    assert not sweep.training_check()[0]


def test_the_answer_tests_paired_units_with_holm_and_one_sided_growth():
    # excitability solves K = 2 where synaptic does not, in every (size, replicate); both = synaptic
    solved = {}
    for n in (8, 16):
        for r in range(5):
            solved[(n, "excitability", r)] = (1, 2)
            solved[(n, "synaptic", r)] = (1,)
            solved[(n, "both", r)] = (1,)
            solved[(n, "rule", r)] = (1,) if n == 8 else (1, 2)
    sweep = sweep_of(solved, reps=5)
    answer = packing_answer(sweep, seed=0)
    # one value per (N, replicate) unit, the mean over K = 1, 2 of the solved difference: 2 sizes x 5
    assert answer.pairs["excitability - synaptic"] == [0.5] * 10
    assert answer.pairs["both - excitability"] == [-0.5] * 10
    assert answer.pairs["both - synaptic"] == [0.0] * 10
    c = answer.comparisons["excitability - synaptic"]
    # exact sign-flip: 2 of 1024 patterns as extreme; Holm over three comparisons (the third has p = 1)
    assert c.paired and c.n == 10 and c.mean == 0.5 and c.p == pytest.approx(3 * 2 / 1024)
    assert answer.comparisons["both - synaptic"].p == 1.0
    assert answer.samples() == {
        "both_minus_excitability_solved": [-0.5] * 10,
        "both_minus_synaptic_solved": [0.0] * 10,
    }
    v = answer.verdicts()
    assert v["pathways_differ_in_capacity"] is True
    assert v["both_beats_each_single"] is False and v["both_at_least_each_single"] is False
    assert answer.growth["rule"].mean == 1.0 and answer.growth["excitability"].mean == 0.0
    # per replicate, the mean over the four pathways: +1/4 in each of 5 replicates; one-sided 1/32
    assert answer.grows.n == 5 and answer.grows.mean == 0.25 and answer.grows.p == pytest.approx(1 / 32)
    assert answer.grows.alternative == "greater" and v["capacity_grows_with_n"] is True
    assert answer.mean_capacity == {"rule": 1.5, "excitability": 2.0, "synaptic": 1.0, "both": 1.0}
    text = answer.conclusions().data
    assert "Excitability vs synaptic, tasks solved by networks of the same start: +0.500" in text
    assert "**a difference**" in text and "(one-sided)" in text and "rises with N: **yes**" in text
    m = answer.metrics()
    assert m["excitability_minus_synaptic_mean"] == 0.5 and m["excitability_minus_synaptic_p"] == 0.0059
    assert m["growth_p"] == 0.0312 and m["pathways_differ_in_capacity"] is True
    rows = answer.comparison_table().rows
    assert rows[0][0] == "solved: excitability - synaptic" and len(rows) == 3 + 4 + 1


def test_three_replicates_cannot_show_growth_even_when_every_one_grows():
    solved = {(n, p, r): (1,) if n == 8 else (1, 2) for n in (8, 16) for p in PATHWAYS for r in range(3)}
    answer = packing_answer(sweep_of(solved))
    assert answer.grows.mean == 1.0 and answer.grows.p == pytest.approx(1 / 8)
    assert answer.verdicts()["capacity_grows_with_n"] is False


def test_training_check_needs_a_verdict_size_and_half_the_largest_networks_solving_the_smallest_k():
    solved = {(n, p, r): (1,) for n in (8, 16) for p in PATHWAYS for r in range(3)}
    ok, text = sweep_of(solved).training_check()
    assert ok and "sizes with a saturated capacity: rule [8, 16]" in text and "rule 3/3" in text
    fewer = {k: v for k, v in solved.items() if not (k[0] == 16 and k[1] == "both" and k[2] < 2)}
    ok, text = sweep_of(fewer).training_check()
    assert not ok and "both 1/3" in text


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
def test_packing_sweep_checks_its_grid_before_training(monkeypatch, kw, words):
    monkeypatch.setattr(mt, "fit", lambda *a, **k: pytest.fail("training started before the checks"))
    args = {"sizes": [8], "ks": [1, 2], "pathways": ["rule"], "replicates": 1, **kw}
    config = TrainConfig(steps=20, batch=8, eval_every=10, eval_trials=4, final_trials=4)
    with pytest.raises(ValueError, match=words):
        packing_sweep(task_config=TASK_CONFIG, config=config, progress=False, **args)


def test_one_stack_trains_every_size_and_pairs_the_pathways(monkeypatch):
    monkeypatch.setattr(mt, "performance", lambda outputs, batch: torch.ones(outputs.shape[:-2]))
    config = TrainConfig(
        steps=30, batch=8, eval_every=10, eval_trials=4, final_trials=8, stop_when_solved=False
    )
    sweep, model, result = packing_sweep(
        [4, 8], [1, 2], ["rule", "both"], 2, TASK_CONFIG, config, rnn_kw={"matched": True}, progress=False
    )
    assert model.n_networks == len(sweep.rows) == 2 * 2 * 2 * 2
    assert model.config.n_neurons == 8 and sorted(set(model.sizes)) == [4, 8]
    assert result.history_steps == [10, 20, 30] and result.check_step == 20
    for s, row in enumerate(sweep.rows):
        n = row["n_neurons"]
        assert model.sizes[s] == n and result.tasks[s] == ("go", "anti")[: row["k"]]
        per_task = {"rule": n, "both": 2 * n}[row["pathway"]]  # matched: N K and 2 N K
        assert row["context_params"] == per_task * row["k"]
        assert row["solved"] and row["solved_at_check"] and row["steps_to_criterion"] == 10.0
    # networks of one size and replicate start from the same weights whatever their pathway and K
    same = [s for s, r in enumerate(sweep.rows) if (r["n_neurons"], r["replicate"]) == (8, 1)]
    assert len(same) == 4
    fresh = packing.network_seed(0, 8, 1)
    assert fresh == packing.network_seed(0, 8, 1) != packing.network_seed(0, 8, 0)
    assert sweep.capacity() == {
        (4, "rule"): [2, 2],
        (4, "both"): [2, 2],
        (8, "rule"): [2, 2],
        (8, "both"): [2, 2],
    }
    assert sweep.budget_limited() == [] and sweep.determined_sizes("both") == [4, 8]


def test_networks_of_one_size_and_replicate_start_alike(monkeypatch):
    config = TrainConfig(
        steps=10, batch=4, eval_every=10, eval_trials=2, final_trials=2, stop_when_solved=False
    )
    built = {}

    def build(*args, **kwargs):
        built.update(kwargs)
        built["model"] = packing_module_model(*args, **kwargs)
        built["start"] = built["model"].w_rec.detach().clone()
        return built["model"]

    packing_module_model = packing.ModulatedRNN
    monkeypatch.setattr(packing, "ModulatedRNN", build)
    sweep, _, _ = packing_sweep([4], [1, 2], ["rule", "synaptic"], 2, TASK_CONFIG, config, progress=False)
    assert built["seeds"] == [packing.network_seed(0, 4, r["replicate"]) for r in sweep.rows]
    start = built["start"]
    for a, ra in enumerate(sweep.rows):
        for b, rb in enumerate(sweep.rows):
            assert torch.equal(start[a], start[b]) == (ra["replicate"] == rb["replicate"])
