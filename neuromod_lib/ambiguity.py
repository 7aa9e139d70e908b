"""How robust each context pathway is to an ambiguous or noisy context (notebook 05), decided by tests.

Networks trained on several tasks see contexts they never saw in training: mixtures
``(1 - λ) e_A + λ e_B`` of two tasks A and B, and noisy one-hot contexts ``e_k + σ ξ``
(:func:`neuromod_lib.multitask.mixture_performance`, :func:`~neuromod_lib.multitask.noise_performance`:
the same trials and the same network noise at every λ and σ, so that curves are paired).

Only networks that solved their tasks are analysed, and each network's curves are
**normalised by its own endpoints**, so that a network that is merely better trained does not
look more robust:

- ``follow_a(λ) = (p_A(λ) - p_A(1)) / (p_A(0) - p_A(1))``: 1 at λ = 0, 0 at λ = 1, where
  ``p_A(λ)`` is the performance scored against A's answer on A's trials; ``follow_b`` alike
  (0 at λ = 0, 1 at λ = 1);
- **crossing λ**: where ``follow_a - follow_b`` first changes sign (linear interpolation): 0.5
  for a network that splits the mixture evenly, < 0.5 if B takes over early;
- **tolerance**: how far the mixture can move from a pure context while the network still does
  the dominant task at 90 % of its own range: the mean of the largest λ ≤ 0.5 up to which
  ``follow_a >= 0.9`` and the same from λ = 1 down for ``follow_b`` (interpolated; 0.5 is perfect);
- **noise retention**: performance at each σ > 0 divided by the network's own performance at
  σ = 0, averaged over the noisy levels.

Pathways are compared with paired sign-flip permutation tests over replicates (networks of one
replicate start from the same weights) and bootstrap intervals (:mod:`neuromod_lib.stats`),
Holm-corrected over the comparisons of one measure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from IPython.display import Markdown

from . import stats
from .tables import Table, table

__all__ = [
    "AmbiguityAnswer",
    "ambiguity_answer",
    "crossing",
    "normalised",
    "noise_retention",
    "tolerance",
]

#: the fraction of its own range a network must keep to count as still doing the dominant task
KEEP = 0.9
#: the fewest solved networks per compared pathway for a verdict (the issue's and the paper's minimum)
MIN_SOLVED = 8


def _check_curves(on_a: torch.Tensor, on_b: torch.Tensor, lambdas: Sequence[float]) -> torch.Tensor:
    lam = torch.tensor([float(v) for v in lambdas], dtype=torch.float64)
    if on_a.shape != on_b.shape or on_a.dim() != 2 or on_a.shape[1] != len(lam):
        raise ValueError(
            f"on_a {tuple(on_a.shape)} and on_b {tuple(on_b.shape)} must both be (S, {len(lam)}): "
            "one column per lambda"
        )
    if len(lam) < 3 or float(lam[0]) != 0.0 or float(lam[-1]) != 1.0 or not bool((lam.diff() > 0).all()):
        raise ValueError(f"lambdas={list(lambdas)!r} must rise from 0 to 1 with at least 3 values")
    return lam


def normalised(
    on_a: torch.Tensor, on_b: torch.Tensor, lambdas: Sequence[float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(follow_a, follow_b)`` ``(S, L)`` (see the module docstring); NaN rows where a network's
    endpoints do not differ (it does not tell A's answer from B's)."""
    _check_curves(on_a, on_b, lambdas)
    a, b = on_a.double(), on_b.double()
    range_a, range_b = a[:, :1] - a[:, -1:], b[:, -1:] - b[:, :1]
    follow_a = (a - a[:, -1:]) / range_a.where(range_a > 0, math.nan)
    follow_b = (b - b[:, :1]) / range_b.where(range_b > 0, math.nan)
    return follow_a, follow_b


def _first_below(values: torch.Tensor, xs: torch.Tensor, level: float) -> torch.Tensor:
    """Per row, where ``values`` (starting at or above ``level``) first fall below it, interpolated; the
    last x if never; NaN for a row holding NaN."""
    below = values < level
    i = torch.where(below.any(1), below.int().argmax(1), values.shape[1] - 1)
    prev = (i - 1).clamp(min=0)
    v0, v1 = values.gather(1, prev[:, None])[:, 0], values.gather(1, i[:, None])[:, 0]
    frac = ((v0 - level) / (v0 - v1)).where(below.any(1) & (i > 0), torch.ones_like(v0))
    out = xs[prev] + frac * (xs[i] - xs[prev])
    return out.where(~values.isnan().any(1), math.nan)


def tolerance(on_a: torch.Tensor, on_b: torch.Tensor, lambdas: Sequence[float]) -> torch.Tensor:
    """``(S,)`` ambiguity tolerance in [0, 0.5] (see the module docstring)."""
    lam = _check_curves(on_a, on_b, lambdas)
    follow_a, follow_b = normalised(on_a, on_b, lambdas)
    half = lam <= 0.5
    side_a = _first_below(follow_a[:, half], lam[half], KEEP)
    down = torch.flip(lam, [0])
    side_b = 1 - _first_below(torch.flip(follow_b, [1])[:, down >= 0.5], down[down >= 0.5], KEEP)
    return (side_a + side_b) / 2


def crossing(on_a: torch.Tensor, on_b: torch.Tensor, lambdas: Sequence[float]) -> torch.Tensor:
    """``(S,)`` the first λ where ``follow_a - follow_b`` changes sign (interpolated). The gap is +1 at
    λ = 0 and -1 at λ = 1 by the normalisation, so it always does; NaN where the endpoints do not differ."""
    lam = _check_curves(on_a, on_b, lambdas)
    follow_a, follow_b = normalised(on_a, on_b, lambdas)
    return _first_below(follow_a - follow_b, lam, 0.0)


def noise_retention(noisy: torch.Tensor) -> torch.Tensor:
    """``(S,)`` performance under context noise relative to the network's own noise-free performance:
    ``noisy (S, len(sigmas))`` with the first σ = 0; the mean over the noisy levels of ``p(σ) / p(0)``."""
    if noisy.dim() != 2 or noisy.shape[1] < 2:
        raise ValueError(
            f"noisy must be (S, levels), sigma = 0 first, at least one noisy level; got {tuple(noisy.shape)}"
        )
    clean = noisy[:, :1].double()
    return (noisy[:, 1:].double() / clean.where(clean > 0, math.nan)).mean(1)


@dataclass(frozen=True)
class AmbiguityAnswer:
    """Notebook 05's answer: per pathway the solved networks' measures, their intervals, and the tests.

    ``measures``: ``{measure: {pathway: values over the solved networks}}`` for "tolerance",
    "crossing" and "noise retention"; ``tests``: ``{measure: {comparison: Comparison}}`` with
    Holm-adjusted p-values; ``solved``: pathway -> (solved, trained) networks;
    ``min_replicates``: the fewest replicate pairs behind a tolerance comparison; ``pairs``: the
    paired differences tested, ``"<measure> <x> - <y>"`` -> one value per replicate pair.
    """

    measures: dict[str, dict[str, list[float]]]
    tests: dict[str, dict[str, stats.Comparison]]
    solved: dict[str, tuple[int, int]]
    min_replicates: int
    pairs: dict[str, list[float]]

    def samples(self) -> dict[str, list[float]]:
        """Per replicate pair, what the report judges: the tolerance differences excitability −
        synaptic, both − excitability and both − synaptic (replicates where the two sides solved)."""
        return {
            f"{key.removeprefix('tolerance ').replace(' - ', '_minus_')}_tolerance": d
            for key, d in self.pairs.items()
            if key.startswith("tolerance ") and d
        }

    def training_check(self) -> tuple[bool, str]:
        """``(passed, what was checked)`` for :func:`neuromod_lib.results.record`: every comparison
        rests on at least :data:`MIN_SOLVED` replicate pairs whose two networks solved their tasks."""
        counts = ", ".join(f"{p} {done}/{total}" for p, (done, total) in self.solved.items())
        pairs = ", ".join(f"{c.name} {c.n}" for c in self.tests.get("tolerance", {}).values()) or "none"
        return (
            self.min_replicates >= MIN_SOLVED,
            f"at least {MIN_SOLVED} replicate pairs per comparison: {pairs} (solved networks: {counts})",
        )

    def summary_table(self) -> Table:
        """Per pathway: solved networks, and each measure's mean with its 95 % bootstrap interval."""
        rows = []
        for p, (done, total) in self.solved.items():
            cells = []
            for values in self.measures.values():
                v = [x for x in values.get(p, []) if x == x]
                if v:
                    low, high = stats.bootstrap_ci(v) if len(v) > 1 else (v[0], v[0])
                    cells.append(f"{sum(v) / len(v):.3f} [{low:.3f}, {high:.3f}]")
                else:
                    cells.append("—")
            rows.append([p, f"{done}/{total}", *cells])
        return table(
            rows,
            ["pathway", "networks counted", *self.measures],
            caption="networks counted: solved (and saturated) / trained; their mean [95% bootstrap interval]",
        )

    def test_table(self) -> Table:
        rows = [
            [measure, c.name, c.mean, f"[{c.ci[0]:+.3f}, {c.ci[1]:+.3f}]", c.p, c.n]
            for measure, tests in self.tests.items()
            for c in tests.values()
        ]
        return table(
            rows,
            ["measure", "difference", "mean", "95% CI", "p (Holm)", "networks"],
            formats={"mean": "+.3f", "p (Holm)": ".3g"},
        )

    def verdicts(self) -> dict[str, bool]:
        """``pathways_differ_in_<m>``: excitability vs synaptic significant; ``both_most_robust_<m>``:
        both significantly above each single pathway; for m in ambiguity (tolerance) and noise."""
        out = {}
        for key, measure in (("ambiguity", "tolerance"), ("noise", "noise retention")):
            t = self.tests.get(measure, {})
            if "excitability - synaptic" in t:
                out[f"pathways_differ_in_{key}"] = t["excitability - synaptic"].significant()
            if "both - excitability" in t and "both - synaptic" in t:
                out[f"both_most_robust_to_{key}"] = all(
                    t[c].significant() and t[c].mean > 0 for c in ("both - excitability", "both - synaptic")
                )
        return out

    def most_robust(self, measure: str = "tolerance") -> str:
        finite = {p: [x for x in v if x == x] for p, v in self.measures[measure].items()}
        means = {p: sum(v) / len(v) for p, v in finite.items() if v}
        return max(means, key=means.get) if means else "none"

    def conclusions(self) -> Markdown:
        lines = []
        if not any(done for done, _ in self.solved.values()):
            return Markdown("**No verdict**: no network solved its tasks, so there is nothing to compare.")
        v = self.verdicts()
        for key, measure, what in (
            ("ambiguity", "tolerance", "ambiguity tolerance"),
            ("noise", "noise retention", "performance kept under context noise"),
        ):
            t = self.tests.get(measure, {})
            if "excitability - synaptic" in t:
                said = (
                    "**a difference**" if v[f"pathways_differ_in_{key}"] else "**no significant difference**"
                )
                lines.append(
                    f"- Excitability − synaptic, {what}: {t['excitability - synaptic'].text()}: {said}."
                )
            if f"both_most_robust_to_{key}" in v:
                both = "; ".join(f"{c}: {t[c].text()}" for c in ("both - excitability", "both - synaptic"))
                lines.append(
                    f"- Both pathways together, {what}: {both}: both most robust: "
                    f"**{'yes' if v[f'both_most_robust_to_{key}'] else 'no'}**."
                )
        lines.append(
            f"- Highest mean tolerance: **{self.most_robust('tolerance')}**; highest noise retention: "
            f"**{self.most_robust('noise retention')}**."
        )
        return Markdown("\n".join(lines))

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for measure, values in self.measures.items():
            key = measure.replace(" ", "_")
            for p, v in values.items():
                v = [x for x in v if x == x]
                if v:
                    out[f"{key}_{p}"] = round(sum(v) / len(v), 3)
        for measure, tests in self.tests.items():
            key = measure.replace(" ", "_")
            for c in tests.values():
                name = c.name.replace(" - ", "_minus_")
                out[f"{key}_{name}_p"] = round(c.p, 4)
        t = self.tests.get("tolerance", {})
        if "excitability - synaptic" in t:
            out["ambiguity_test_p"] = round(t["excitability - synaptic"].p, 4)
            out["ambiguity_ci_low"] = round(t["excitability - synaptic"].ci[0], 3)
            out["ambiguity_ci_high"] = round(t["excitability - synaptic"].ci[1], 3)
        out["n_replicates"] = self.min_replicates
        out.update(self.verdicts())
        out["most_robust_to_mixture"] = self.most_robust("tolerance")
        return out


_COMPARISONS = (("excitability", "synaptic"), ("both", "excitability"), ("both", "synaptic"))


def ambiguity_answer(
    pathways: Sequence[str],
    replicates: Sequence[int],
    solved: torch.Tensor,
    on_a: torch.Tensor,
    on_b: torch.Tensor,
    lambdas: Sequence[float],
    noisy: torch.Tensor,
    *,
    seed: int = 0,
) -> AmbiguityAnswer:
    """Measures of the solved networks per pathway, and the paired tests between pathways.

    ``pathways`` and ``replicates`` name each network's pathway and replicate; networks of one
    replicate start from the same weights, so each comparison is a sign-flip permutation test over
    the replicates whose networks solved their tasks in *both* pathways, with a bootstrap interval
    of the mean difference; p-values are Holm-adjusted over the comparisons of each measure.
    """
    if not len(pathways) == len(replicates) == len(solved) == len(on_a) == len(noisy):
        raise ValueError("pathways, replicates, solved, on_a and noisy must have one entry per network")
    per_network = {
        "tolerance": tolerance(on_a, on_b, lambdas),
        "crossing": crossing(on_a, on_b, lambdas),
        "noise retention": noise_retention(noisy),
    }
    order = list(dict.fromkeys(pathways))
    keep = {
        p: {int(replicates[s]): s for s, q in enumerate(pathways) if q == p and bool(solved[s])}
        for p in order
    }
    measures = {
        m: {p: [float(v[s]) for s in keep[p].values()] for p in order} for m, v in per_network.items()
    }
    tests: dict[str, dict[str, stats.Comparison]] = {}
    pairs: dict[str, list[float]] = {}
    for m in ("tolerance", "noise retention"):
        raw = {}
        for x, y in _COMPARISONS:
            if x not in keep or y not in keep:
                continue
            both = sorted(set(keep[x]) & set(keep[y]))
            d = [float(per_network[m][keep[x][r]] - per_network[m][keep[y][r]]) for r in both]
            d = [v for v in d if v == v]
            if len(d) >= 2:
                raw[f"{x} - {y}"] = stats.compare(f"{x} - {y}", d, paired=True, seed=seed)
                pairs[f"{m} {x} - {y}"] = d
        tests[m] = stats.holm_adjusted(raw)
    counts = {p: (len(keep[p]), sum(q == p for q in pathways)) for p in order}
    tested = [c.n for c in tests["tolerance"].values()]
    return AmbiguityAnswer(measures, tests, counts, min(tested, default=0), pairs)
