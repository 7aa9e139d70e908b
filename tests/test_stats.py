"""Tests of neuromod_lib.stats against exact enumerations done another way, and of its errors."""

from __future__ import annotations

import itertools
import statistics

import pytest

from neuromod_lib import stats


def test_sign_flip_test_counts_every_sign_pattern_exactly():
    d = [1.0, 2.0, 3.0]
    # by hand: |mean| of the 8 patterns; those >= 2 (the observed): +++ and --- only
    assert stats.sign_flip_test(d) == pytest.approx(2 / 8)
    assert stats.sign_flip_test([0.5, -0.5]) == 1.0  # every pattern is as extreme as a zero mean
    assert stats.sign_flip_test([1.0] * 6) == pytest.approx(2 / 64)


def test_one_sided_sign_flip_counts_patterns_with_a_mean_as_large():
    # by hand: of the 8 patterns of (1, 2, 3) only +++ has a mean >= 2; of (1, 1, -1) the means >= 1/3
    # are +++ (1), ++- (1/3), +-+ (1/3) and -++ (1/3)
    assert stats.sign_flip_test([1.0, 2.0, 3.0], alternative="greater") == pytest.approx(1 / 8)
    assert stats.sign_flip_test([1.0, 1.0, -1.0], alternative="greater") == pytest.approx(4 / 8)
    assert stats.sign_flip_test([-1.0, -2.0], alternative="greater") == 1.0
    # zeros never change sign: p is the same with or without them
    assert stats.sign_flip_test([1.0, 2.0, 0.0, 0.0]) == stats.sign_flip_test([1.0, 2.0])
    c = stats.compare("growth", [1.0] * 5, paired=True, alternative="greater")
    assert c.p == pytest.approx(1 / 32) and "(one-sided)" in c.text()


def test_holm_adjusted_keeps_names_and_everything_but_p():
    raw = {
        name: stats.compare(name, d, paired=True)
        for name, d in (("a", [1.0, 2.0, 3.0]), ("b", [1.0] * 6), ("c", [0.5, -0.5]))
    }
    out = stats.holm_adjusted(raw)
    assert list(out) == ["a", "b", "c"]
    assert [c.p for c in out.values()] == pytest.approx(stats.holm([c.p for c in raw.values()]))
    assert all(out[k].mean == raw[k].mean and out[k].ci == raw[k].ci and out[k].n == raw[k].n for k in raw)


def test_sign_flip_test_monte_carlo_is_close_to_the_exact_value():
    d = [0.3, 1.1, -0.2, 0.8, 0.5, 0.9, 0.4, 1.3, -0.1, 0.7, 0.6, 0.2]
    exact = stats.sign_flip_test(d, n_resamples=10**6)
    approx = stats.sign_flip_test(d, n_resamples=2000, seed=1)
    assert exact < 0.01 and abs(approx - exact) < 0.01


def test_permutation_test_enumerates_every_split():
    x, y = [3.0, 4.0], [1.0, 2.0, 0.0]
    observed = statistics.mean(x) - statistics.mean(y)
    pooled = x + y
    extreme = 0
    splits = list(itertools.combinations(range(5), 2))
    for chosen in splits:
        a = [pooled[i] for i in chosen]
        b = [pooled[i] for i in range(5) if i not in chosen]
        extreme += abs(statistics.mean(a) - statistics.mean(b)) >= abs(observed) - 1e-12
    assert stats.permutation_test(x, y) == pytest.approx(extreme / len(splits))
    assert stats.permutation_test([1.0, 1.0], [1.0, 1.0]) == 1.0


def test_bootstrap_interval_covers_the_mean_and_shrinks_with_agreement():
    low, high = stats.bootstrap_ci([1.0, 2.0, 3.0, 4.0, 5.0], seed=0)
    assert low < 3.0 < high and low >= 1.0 and high <= 5.0
    assert stats.bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0)


def test_holm_adjusts_step_down_and_keeps_order():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert stats.holm([]) == []


def test_compare_paired_and_independent():
    c = stats.compare("a - b", [3.0, 4.0, 5.0], [1.0, 1.0, 1.0], paired=True)
    assert c.paired and c.n == 3 and c.mean == 3.0 and c.p == pytest.approx(2 / 8) and c.significant(0.3)
    assert c.text() == "+3.000 [+2.000, +4.000], p = 0.25 (n = 3 pairs)"
    u = stats.compare("a - b", [3.0, 4.0], [1.0, 2.0, 0.0], paired=False)
    assert (
        not u.paired
        and u.n == 5
        and u.mean == 2.5
        and u.p == stats.permutation_test([3.0, 4.0], [1.0, 2.0, 0.0])
    )
    assert u.ci[0] <= 2.5 <= u.ci[1]


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: stats.sign_flip_test([]), "differences"),
        (lambda: stats.sign_flip_test([1.0, float("nan")]), "differences"),
        (lambda: stats.permutation_test([], [1.0]), "x"),
        (lambda: stats.bootstrap_ci([float("inf")]), "values"),
        (lambda: stats.compare("d", [1.0, 2.0], [1.0], paired=True), "equal lengths"),
        (lambda: stats.sign_flip_test([1.0], alternative="less"), "alternative='less'.*two-sided, greater"),
        (lambda: stats.compare("d", [1.0], [2.0], paired=False, alternative="greater"), "two-sided only"),
    ],
)
def test_bad_samples_are_rejected_naming_them(call, words):
    with pytest.raises(ValueError, match=words):
        call()
