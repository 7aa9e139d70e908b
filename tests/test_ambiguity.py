"""Tests of notebook 05's measures (neuromod_lib.ambiguity) on hand-made curves, and its paired tests."""

from __future__ import annotations

import math

import pytest
import torch

from neuromod_lib import ambiguity, stats

LAMBDAS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]


def switch(at: float, low: float = 0.0, high: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Curves of a network that does A below ``at`` and B above it (performance ``high``, else ``low``)."""
    lam = torch.tensor(LAMBDAS)
    on_a = torch.where(lam < at, high, low)[None]
    on_b = torch.where(lam > at, high, low)[None]
    return on_a, on_b


def test_normalised_curves_use_each_networks_own_endpoints():
    on_a = torch.tensor([[0.9, 0.8, 0.5, 0.1], [0.6, 0.6, 0.6, 0.6]])
    on_b = torch.tensor([[0.0, 0.2, 0.5, 0.8], [0.2, 0.3, 0.4, 0.9]])
    follow_a, follow_b = ambiguity.normalised(on_a, on_b, [0.0, 0.3, 0.6, 1.0])
    torch.testing.assert_close(follow_a[0], torch.tensor([1.0, 0.875, 0.5, 0.0], dtype=torch.float64))
    torch.testing.assert_close(follow_b[0], torch.tensor([0.0, 0.25, 0.625, 1.0], dtype=torch.float64))
    assert bool(follow_a[1].isnan().all())  # A's answer is no better under A's context: no range


def test_a_clean_switch_at_one_half_tolerates_the_whole_half():
    on_a, on_b = switch(0.5)
    # A is kept fully to λ = 0.4 and lost at 0.5: 90 % is crossed at 0.41 (interpolated); B alike
    assert ambiguity.tolerance(on_a, on_b, LAMBDAS).tolist() == pytest.approx([0.41])
    assert ambiguity.crossing(on_a, on_b, LAMBDAS).tolist() == pytest.approx([0.5])


def test_tolerance_interpolates_where_the_dominant_answer_falls_below_90_percent():
    lam = torch.tensor(LAMBDAS)
    on_a = (1 - lam / 0.5).clamp(min=0)[None]  # falls linearly from 1 to 0 at λ = 0.5
    on_b = torch.flip(on_a, [1])
    # follow_a = 1 - 2λ crosses 0.9 at λ = 0.05; by symmetry B keeps 90 % down to λ = 0.95
    assert ambiguity.tolerance(on_a, on_b, LAMBDAS).tolist() == pytest.approx([0.05])
    assert ambiguity.crossing(on_a, on_b, LAMBDAS).tolist() == pytest.approx([0.5])


def test_an_early_switch_is_less_tolerant_and_crosses_early():
    early, late = switch(0.25), switch(0.75)
    for on_a, on_b, tol, cross in ((*early, 0.355, 0.25), (*late, 0.355, 0.75)):
        # early: A kept to 0.21 (interpolated), B from 0.3 on (0.5 from that side, the cap): (0.21 + 0.5) / 2
        assert ambiguity.tolerance(on_a, on_b, LAMBDAS).tolist() == pytest.approx([tol])
        assert ambiguity.crossing(on_a, on_b, LAMBDAS).tolist() == pytest.approx([cross])


def test_noise_retention_is_relative_to_the_networks_own_clean_performance():
    noisy = torch.tensor([[0.9, 0.9, 0.45], [0.5, 0.25, 0.25], [0.0, 0.1, 0.2]])
    kept = ambiguity.noise_retention(noisy)
    assert kept[:2].tolist() == pytest.approx([0.75, 0.5]) and math.isnan(kept[2])


@pytest.mark.parametrize(
    "call, words",
    [
        (
            lambda: ambiguity.tolerance(torch.ones(2, 3), torch.ones(2, 4), [0, 0.5, 1]),
            "one column per lambda",
        ),
        (lambda: ambiguity.tolerance(torch.ones(2, 3), torch.ones(2, 3), [0.1, 0.5, 1]), "lambdas"),
        (lambda: ambiguity.noise_retention(torch.ones(3, 1)), "noisy level"),
    ],
)
def test_bad_curves_are_rejected(call, words):
    with pytest.raises(ValueError, match=words):
        call()


def networks(switch_at: dict[str, list[float]], solved: dict[str, list[bool]] | None = None):
    """Stacked curves of replicates of each pathway switching at the given λ, in the notebook's order."""
    pathways, replicates, a, b, noisy, done = [], [], [], [], [], []
    reps = len(next(iter(switch_at.values())))
    for r in range(reps):
        for p, ats in switch_at.items():
            on_a, on_b = switch(ats[r])
            pathways.append(p), replicates.append(r), a.append(on_a), b.append(on_b)
            noisy.append(torch.tensor([[0.9, 0.9 * ats[r], 0.9 * ats[r] / 2]]))
            done.append(True if solved is None else solved[p][r])
    return pathways, replicates, torch.tensor(done), torch.cat(a), torch.cat(b), torch.cat(noisy)


def test_the_answer_pairs_replicates_and_tests_with_holm_correction():
    ats = {
        "excitability": [0.45, 0.45, 0.45, 0.35, 0.45, 0.45, 0.45, 0.45],
        "synaptic": [0.25, 0.25, 0.15, 0.25, 0.25, 0.25, 0.25, 0.15],
        "both": [0.45] * 8,
    }
    pathways, reps, solved, on_a, on_b, noisy = networks(ats)
    answer = ambiguity.ambiguity_answer(pathways, reps, solved, on_a, on_b, LAMBDAS, noisy, seed=0)
    t = answer.tests["tolerance"]
    d = answer.pairs["tolerance excitability - synaptic"]
    assert len(d) == 8 and all(v > 0 for v in d)
    raw = {
        name: stats.compare(name, answer.pairs[f"tolerance {name}"], paired=True, seed=0)
        for name in ("excitability - synaptic", "both - excitability", "both - synaptic")
    }
    assert t["excitability - synaptic"].mean == pytest.approx(raw["excitability - synaptic"].mean)
    adjusted = stats.holm([c.p for c in raw.values()])
    assert [c.p for c in t.values()] == pytest.approx(adjusted)  # Holm over the three comparisons
    v = answer.verdicts()
    assert v["pathways_differ_in_ambiguity"] is True
    assert v["both_most_robust_to_ambiguity"] is False  # both = excitability at 7 of 8 replicates
    m = answer.metrics()
    assert m["n_replicates"] == 8 and m["ambiguity_test_p"] == round(t["excitability - synaptic"].p, 4)
    assert m["most_robust_to_mixture"] == "both" and m["tolerance_synaptic"] < m["tolerance_excitability"]
    assert answer.training_check()[0]
    assert answer.samples() == {
        "excitability_minus_synaptic_tolerance": d,
        "both_minus_excitability_tolerance": answer.pairs["tolerance both - excitability"],
        "both_minus_synaptic_tolerance": answer.pairs["tolerance both - synaptic"],
    }
    text = answer.conclusions().data
    assert "Excitability − synaptic, ambiguity tolerance: +" in text and "**a difference**" in text


def test_unsolved_networks_are_left_out_and_too_few_fail_the_training_check():
    ats = {"excitability": [0.45] * 8, "synaptic": [0.25] * 8}
    solved = {"excitability": [True] * 8, "synaptic": [True] * 5 + [False] * 3}
    pathways, reps, done, on_a, on_b, noisy = networks(ats, solved)
    answer = ambiguity.ambiguity_answer(pathways, reps, done, on_a, on_b, LAMBDAS, noisy)
    assert answer.solved == {"excitability": (8, 8), "synaptic": (5, 8)}
    assert answer.tests["tolerance"]["excitability - synaptic"].n == 5  # only replicates solved in both
    assert answer.min_replicates == 5
    ok, text = answer.training_check()
    assert not ok and "synaptic 5/8" in text and "excitability - synaptic 5" in text
    rows = {r[0]: r for r in answer.summary_table().rows}
    assert rows["synaptic"][1] == "5/8"


def test_the_training_check_counts_replicate_pairs_not_networks_per_pathway():
    """8 solved networks in each pathway, but only 6 replicates where both solved: too few pairs."""
    ats = {"excitability": [0.45] * 10, "synaptic": [0.25] * 10}
    solved = {"excitability": [True] * 8 + [False] * 2, "synaptic": [False] * 2 + [True] * 8}
    pathways, reps, done, on_a, on_b, noisy = networks(ats, solved)
    answer = ambiguity.ambiguity_answer(pathways, reps, done, on_a, on_b, LAMBDAS, noisy)
    assert answer.solved == {"excitability": (8, 10), "synaptic": (8, 10)}
    assert answer.min_replicates == 6 and answer.metrics()["n_replicates"] == 6
    assert not answer.training_check()[0]
