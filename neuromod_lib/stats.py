"""Tests that decide the RNN notebooks' verdicts: permutation tests, bootstrap intervals, Holm's correction.

A verdict such as "excitability and synaptic modulation differ in robustness" is printed only if
a test over replicate networks could have gone either way. With the few replicates a notebook
can train, the t distribution's assumptions are hard to check, so these tests assume nothing
about the distribution: a **sign-flip permutation test** for paired differences (networks that
start from the same weights), a **two-sample permutation test** for independent groups, and a
**percentile bootstrap** interval for a mean. Exact (every sign pattern or split) when that is
at most ``n_resamples`` cases, Monte Carlo otherwise, always from an explicit seed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

__all__ = [
    "Comparison",
    "bootstrap_ci",
    "compare",
    "holm",
    "holm_adjusted",
    "permutation_test",
    "sign_flip_test",
]


def _values(values: Sequence[float], name: str, least: int = 1) -> torch.Tensor:
    x = torch.as_tensor([float(v) for v in values], dtype=torch.float64)
    if x.numel() < least or not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must hold at least {least} finite numbers; got {list(values)!r}")
    return x


ALTERNATIVES = ("two-sided", "greater")


def _check_alternative(alternative: str) -> None:
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative={alternative!r} must be one of {', '.join(ALTERNATIVES)}")


def sign_flip_test(
    differences: Sequence[float],
    *,
    alternative: str = "two-sided",
    n_resamples: int = 20000,
    seed: int = 0,
) -> float:
    """p-value that paired ``differences`` have mean 0 (each sign equally likely under H0).

    The statistic is ``|mean|`` (``alternative="greater"``: the mean itself, for a hypothesis
    stated in advance as "x exceeds y"); p counts the sign patterns at least as extreme, the
    observed one included, so p is never 0. Zero differences never change sign: they leave p as
    it is without them.
    """
    _check_alternative(alternative)
    d = _values(differences, "differences")
    n = d.numel()
    if 2**n <= n_resamples:
        signs = torch.tensor(list(itertools.product((1.0, -1.0), repeat=n)), dtype=torch.float64)
    else:
        gen = torch.Generator().manual_seed(seed)
        signs = torch.randint(0, 2, (n_resamples, n), generator=gen).double() * 2 - 1
        signs = torch.cat([torch.ones(1, n, dtype=torch.float64), signs])
    if alternative == "greater":
        return float(((signs * d).mean(1) >= d.mean() - 1e-12).double().mean())
    return float(((signs * d).mean(1).abs() >= d.mean().abs() - 1e-12).double().mean())


def permutation_test(
    x: Sequence[float], y: Sequence[float], *, n_resamples: int = 20000, seed: int = 0
) -> float:
    """Two-sided p-value that independent groups ``x`` and ``y`` have the same mean (labels exchangeable)."""
    a, b = _values(x, "x"), _values(y, "y")
    pooled, n = torch.cat([a, b]), a.numel()
    if math.comb(pooled.numel(), n) <= n_resamples:
        splits = list(itertools.combinations(range(pooled.numel()), n))
        member = torch.zeros(len(splits), pooled.numel(), dtype=torch.bool)
        for i, chosen in enumerate(splits):
            member[i, list(chosen)] = True
    else:
        gen = torch.Generator().manual_seed(seed)
        order = torch.rand(n_resamples, pooled.numel(), generator=gen).argsort(1)
        member = torch.zeros(n_resamples + 1, pooled.numel(), dtype=torch.bool)
        member[0, :n] = True
        member[1:].scatter_(1, order[:, :n], True)
    first = (member * pooled).sum(1) / n
    second = (~member * pooled).sum(1) / b.numel()
    observed = abs(float(a.mean() - b.mean()))
    return float(((first - second).abs() >= observed - 1e-12).double().mean())


def bootstrap_ci(
    values: Sequence[float], *, level: float = 0.95, n_resamples: int = 10000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap ``level`` interval of the mean of ``values``."""
    x = _values(values, "values")
    gen = torch.Generator().manual_seed(seed)
    index = torch.randint(0, x.numel(), (n_resamples, x.numel()), generator=gen)
    return _percentile_interval(x[index].mean(1), level)


def _percentile_interval(resampled: torch.Tensor, level: float) -> tuple[float, float]:
    """The central ``level`` interval of bootstrap ``resampled`` statistics."""
    tail = (1 - level) / 2
    low, high = torch.quantile(resampled, torch.tensor([tail, 1 - tail], dtype=torch.float64))
    return float(low), float(high)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error control), in the order given."""
    p = [float(v) for v in pvalues]
    order = sorted(range(len(p)), key=p.__getitem__)
    adjusted, running = [0.0] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class Comparison:
    """One tested difference: its mean, bootstrap interval, p-value and the ``n`` values it rests on."""

    name: str
    mean: float
    ci: tuple[float, float]
    p: float
    n: int
    paired: bool
    alternative: str = "two-sided"

    def significant(self, alpha: float = 0.05) -> bool:
        """Whether the test rejects "no difference" at ``alpha``."""
        return self.p < alpha

    def text(self) -> str:
        """``+0.12 [+0.03, +0.20], p = 0.008 (n = 9 pairs)``."""
        unit = "pairs" if self.paired else "networks"
        side = "" if self.alternative == "two-sided" else " (one-sided)"
        return (
            f"{self.mean:+.3f} [{self.ci[0]:+.3f}, {self.ci[1]:+.3f}], p = {self.p:.3g}{side} "
            f"(n = {self.n} {unit})"
        )


def holm_adjusted(comparisons: dict[str, Comparison]) -> dict[str, Comparison]:
    """The same comparisons with Holm-adjusted p-values: one family, tested together."""
    adjusted = holm([c.p for c in comparisons.values()])
    return {name: replace(c, p=p) for (name, c), p in zip(comparisons.items(), adjusted, strict=True)}


def compare(
    name: str,
    x: Sequence[float],
    y: Sequence[float] | None = None,
    *,
    paired: bool,
    alternative: str = "two-sided",
    seed: int = 0,
) -> Comparison:
    """Test ``mean(x) - mean(y)`` (or, ``paired``, the mean of ``x - y``; ``y=None``: of ``x``).

    Paired: sign-flip test (``alternative`` as :func:`sign_flip_test`) and bootstrap interval of the
    differences. Independent: two-sided two-sample permutation test, and the bootstrap interval of
    the difference of means (each group resampled).
    """
    _check_alternative(alternative)
    if not (paired or y is None) and alternative != "two-sided":
        raise ValueError(f"alternative={alternative!r}: independent groups are tested two-sided only")
    if paired or y is None:
        if y is not None and len(x) != len(y):
            raise ValueError(f"paired samples must have equal lengths; got {len(x)} and {len(y)}")
        d = _values(x, "x") - (0 if y is None else _values(y, "y"))
        return Comparison(
            name,
            float(d.mean()),
            bootstrap_ci(d.tolist(), seed=seed),
            sign_flip_test(d.tolist(), alternative=alternative, seed=seed),
            d.numel(),
            True,
            alternative,
        )
    a, b = _values(x, "x"), _values(y, "y")
    gen = torch.Generator().manual_seed(seed)
    ia = torch.randint(0, a.numel(), (10000, a.numel()), generator=gen)
    ib = torch.randint(0, b.numel(), (10000, b.numel()), generator=gen)
    return Comparison(
        name,
        float(a.mean() - b.mean()),
        _percentile_interval(a[ia].mean(1) - b[ib].mean(1), 0.95),
        permutation_test(a.tolist(), b.tolist(), seed=seed),
        a.numel() + b.numel(),
        False,
    )
