"""The packing experiment of Vedovati & Ching (2024): how many tasks fit in N neurons, per pathway.

For each network size N, task count K (the first K tasks of
:data:`~neuromod_lib.data.tasks.PACKING_ORDER`), context pathway and replicate, one network
learns its K tasks. Every network of the sweep — every size too (smaller ones padded, see
:class:`~neuromod_lib.models.rnn.ModulatedRNN`) — trains in **one stack**, for the whole step
budget. The networks of one replicate and size start from the same weights whatever their
pathway and K, so pathways are compared in pairs.

A network **solved** its tasks when every task is at criterion on the large final evaluation
(:class:`~neuromod_lib.multitask.TrainConfig`'s ``final_trials``). The **saturation check**: a
(pathway, N, K) cell is *saturated* when every replicate's verdict at the end is the one it
had at about 2/3 of the budget, and *budget-limited* otherwise; a budget-limited cell says
"more training might change this", so a (pathway, N) capacity with one is left out of the
verdicts. **Capacity** of a replicate: the largest K it solved.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from IPython.display import Markdown

from . import stats
from .data.tasks import PACKING_ORDER, TaskConfig
from .models.rnn import ModulatedRNN, check_pathways
from .multitask import TrainConfig, TrainResult, rnn_config, train_networks
from .tables import Table, format_value, table

__all__ = [
    "COMPARISONS",
    "PackingAnswer",
    "PackingSweep",
    "check_grid",
    "packing_answer",
    "packing_sweep",
]

Cell = tuple[int, str, int]  # (N, pathway, K)


@dataclass
class PackingSweep:
    """One row per trained network: its size, pathway, replicate, K, context parameters and outcome.

    Row keys: ``n_neurons``, ``pathway``, ``replicate``, ``k``, ``context_params`` (for its K),
    ``shared_params``, ``solved`` (end of training), ``solved_at_check`` (at ``check_step``),
    ``min_perf`` (its worst task at the end), ``steps_to_criterion`` (NaN if never).
    """

    rows: list[dict]
    criterion: float
    steps: int
    check_step: int

    @property
    def sizes(self) -> list[int]:
        return sorted({row["n_neurons"] for row in self.rows})

    @property
    def pathways(self) -> list[str]:
        return list(dict.fromkeys(row["pathway"] for row in self.rows))

    @property
    def ks(self) -> list[int]:
        return sorted({row["k"] for row in self.rows})

    @property
    def replicates(self) -> int:
        return len({row["replicate"] for row in self.rows})

    def cell(self, n: int, pathway: str, k: int) -> list[dict]:
        """The rows of one (N, pathway, K) cell, one per replicate, in replicate order."""
        rows = [r for r in self.rows if (r["n_neurons"], r["pathway"], r["k"]) == (n, pathway, k)]
        return sorted(rows, key=lambda r: r["replicate"])

    def cells(self) -> list[Cell]:
        return [(n, p, k) for n in self.sizes for p in self.pathways for k in self.ks]

    def saturated(self, n: int, pathway: str, k: int) -> bool:
        """Every replicate of the cell has the same verdict at ``check_step`` and at the end."""
        return all(r["solved"] == r["solved_at_check"] for r in self.cell(n, pathway, k))

    def budget_limited(self) -> list[Cell]:
        return [c for c in self.cells() if not self.saturated(*c)]

    def determined(self, n: int, pathway: str) -> bool:
        """The capacity of ``pathway`` at ``n`` rests on saturated cells only."""
        return all(self.saturated(n, pathway, k) for k in self.ks)

    def determined_sizes(self, pathway: str) -> list[int]:
        """The sizes at which ``pathway``'s capacity rests on saturated cells only."""
        return [n for n in self.sizes if self.determined(n, pathway)]

    def saturated_cells(self, *pathways: str) -> list[tuple[int, int]]:
        """The (N, K) whose cells are saturated for every one of ``pathways``: where they are compared."""
        return [(n, k) for n in self.sizes for k in self.ks if all(self.saturated(n, p, k) for p in pathways)]

    def solved_count(self, n: int, pathway: str, k: int) -> int:
        return sum(r["solved"] for r in self.cell(n, pathway, k))

    def capacity(self) -> dict[tuple[int, str], list[int]]:
        """``(N, pathway) -> [capacity per replicate]``: the largest K solved (0 if none)."""
        out = {}
        for n in self.sizes:
            for p in self.pathways:
                best = [0] * self.replicates
                for k in self.ks:
                    for r in self.cell(n, p, k):
                        if r["solved"]:
                            best[r["replicate"]] = max(best[r["replicate"]], k)
                out[(n, p)] = best
        return out

    def capacity_table(self) -> Table:
        """Size N (rows) × pathway (columns): mean capacity over replicates [each replicate]; a
        capacity resting on a budget-limited cell is marked "(budget-limited)"."""
        cap = self.capacity()
        rows = []
        for n in self.sizes:
            cells = []
            for p in self.pathways:
                mark = "" if self.determined(n, p) else " (budget-limited)"
                cells.append(f"{statistics.mean(cap[(n, p)]):.2f} {cap[(n, p)]}{mark}")
            rows.append([n, *cells])
        caption = (
            "capacity: the largest K with every task solved, mean over replicates [and per replicate]; "
            f"the K grid stops at {max(self.ks)}"
        )
        return table(rows, ["N", *self.pathways], caption=caption)

    def solved_table(self) -> Table:
        """Per size and pathway (rows) and K (columns): replicates solved / all, the median steps to
        criterion of those that solved, and "†" where the cell is budget-limited."""
        rows = []
        for n in self.sizes:
            for p in self.pathways:
                cells = []
                for k in self.ks:
                    rs = self.cell(n, p, k)
                    steps = [
                        r["steps_to_criterion"]
                        for r in rs
                        if r["solved"] and r["steps_to_criterion"] == r["steps_to_criterion"]
                    ]
                    median = f" @{statistics.median(steps):.0f}" if steps else ""
                    dagger = "" if self.saturated(n, p, k) else " †"
                    cells.append(f"{sum(r['solved'] for r in rs)}/{len(rs)}{median}{dagger}")
                rows.append([n, p, *cells])
        caption = (
            "replicates that solved all K tasks at the end (@ median steps to criterion); "
            f"†: budget-limited (a verdict changed between step {self.check_step} and step {self.steps})"
        )
        return table(rows, ["N", "pathway", *(f"K={k}" for k in self.ks)], caption=caption)

    def saturation_table(self) -> Table:
        """How many cells are saturated and budget-limited, per pathway."""
        rows = []
        for p in self.pathways:
            limited = [c for c in self.budget_limited() if c[1] == p]
            where = ", ".join(f"N={n} K={k}" for n, _, k in limited) or "—"
            rows.append([p, len(self.sizes) * len(self.ks) - len(limited), len(limited), where])
        return table(rows, ["pathway", "saturated cells", "budget-limited cells", "budget-limited at"])

    def training_check(self) -> tuple[bool, str]:
        """``(passed, what was checked)`` for :func:`neuromod_lib.results.record`: every pathway has
        a size whose capacity is saturated and, at the largest N, at least half the networks of every
        pathway solve the smallest K."""
        k_min, n_max, reps = min(self.ks), max(self.sizes), self.replicates
        solved_first = {p: self.solved_count(n_max, p, k_min) for p in self.pathways}
        determined = {p: self.determined_sizes(p) for p in self.pathways}
        passed = all(determined.values()) and all(2 * v >= reps for v in solved_first.values())
        return (
            passed,
            "sizes with a saturated capacity: "
            + ", ".join(f"{p} {determined[p] or 'none'}" for p in self.pathways)
            + f"; at N = {n_max}, networks solving K = {k_min}: "
            + ", ".join(f"{p} {v}/{reps}" for p, v in solved_first.items()),
        )


#: the pathway comparisons of notebook 04, tested together (Holm)
COMPARISONS = (("excitability", "synaptic"), ("both", "excitability"), ("both", "synaptic"))


@dataclass(frozen=True)
class PackingAnswer:
    """Notebook 04's answer, from saturated cells only.

    ``determined``: pathway -> the sizes at which its capacity rests on saturated cells only;
    ``mean_capacity``: pathway -> mean over those sizes and replicates.

    ``comparisons``: whether one pathway solves tasks where another does not. The unit is an
    (N, replicate): its networks start from the same weights whatever their pathway and K, so
    the K cells of one unit are not independent, while units are. Per unit, the mean over the K
    cells saturated for both pathways of solved(x) − solved(y); an exact sign-flip test over the
    units and a bootstrap interval, Holm-adjusted over :data:`COMPARISONS` (excitability −
    synaptic, both − excitability, both − synaptic). ``pairs``: those per-unit differences.

    ``growth``: per pathway, its capacity at its largest minus its smallest determined size, per
    replicate; ``grows``: the test of "capacity rises with N", stated before the run, so
    one-sided: per replicate, the capacity at the largest minus the smallest size of the sweep,
    averaged over the pathways whose capacity is determined at both (networks of different sizes
    start from different draws, so replicates are independent; the pathways of one replicate are
    not, hence the mean).
    """

    capacity: dict[tuple[int, str], list[int]]
    determined: dict[str, list[int]]
    pathways: list[str]
    replicates: int
    mean_capacity: dict[str, float]
    comparisons: dict[str, stats.Comparison]
    growth: dict[str, stats.Comparison]
    grows: stats.Comparison | None
    pairs: dict[str, list[float]]

    def mean_capacity_table(self) -> Table:
        rows = [
            [p, self.mean_capacity[p], ", ".join(map(str, self.determined[p])) or "none"]
            for p in self.pathways
        ]
        return table(rows, ["pathway", "mean capacity", "over the saturated sizes N"],
                     formats={"mean capacity": ".2f"})  # fmt: skip

    def comparison_table(self) -> Table:
        """Every tested difference: mean, 95 % bootstrap interval, p-value, number of units."""
        named = [(f"solved: {c.name}", c) for c in self.comparisons.values()]
        named += [(f"capacity: {c.name}", c) for c in self.growth.values()]
        if self.grows is not None:
            named.append((f"capacity: {self.grows.name}", self.grows))
        rows = [
            [name, c.mean, f"[{c.ci[0]:+.2f}, {c.ci[1]:+.2f}]", c.p, c.alternative, c.n] for name, c in named
        ]
        return table(
            rows,
            ["difference", "mean", "95% CI", "p", "test", "units"],
            formats={"mean": "+.2f", "p": ".3g"},
            caption="solved: per (N, replicate), mean over saturated K, p Holm-adjusted over the three "
            "comparisons; capacity: per replicate",
        )

    def verdicts(self) -> dict[str, bool | None]:
        """The computed answers (None where the sweep lacks what a question needs)."""
        c = self.comparisons
        e_s = c.get("excitability - synaptic")
        b = [c[k] for k in ("both - excitability", "both - synaptic") if k in c]
        both = len(b) == 2
        return {
            "pathways_differ_in_capacity": e_s.significant() if e_s else None,
            "both_beats_each_single": all(x.significant() and x.mean > 0 for x in b) if both else None,
            "both_at_least_each_single": all(x.ci[1] >= 0 for x in b) if both else None,
            "capacity_grows_with_n": (self.grows.significant() and self.grows.mean > 0)
            if self.grows
            else None,
        }

    def conclusions(self) -> Markdown:
        """The answer in sentences, every one computed."""
        if not any(self.determined.values()):
            return Markdown("**No verdict**: no pathway has a size whose capacity is saturated.")
        v = self.verdicts()
        lines = ["Verdicts from saturated cells only (p Holm-adjusted over the three pathway comparisons)."]
        c = self.comparisons
        if "excitability - synaptic" in c:
            said = "a difference" if v["pathways_differ_in_capacity"] else "no significant difference"
            lines.append(
                "Excitability vs synaptic, tasks solved by networks of the same start: "
                f"{c['excitability - synaptic'].text()}: **{said}**."
            )
        if v["both_beats_each_single"] is not None:
            lines.append(
                f"Both pathways vs excitability: {c['both - excitability'].text()}; vs synaptic: "
                f"{c['both - synaptic'].text()}. Both pack more than each: "
                f"**{format_value(v['both_beats_each_single'])}**; at least as many (both intervals reach 0 "
                f"or above): **{format_value(v['both_at_least_each_single'])}**."
            )
        if self.grows is not None:
            grow = "; ".join(
                f"{p} {g.mean:+.2f} (N = {self.determined[p][0]} to {self.determined[p][-1]})"
                for p, g in self.growth.items()
            )
            lines.append(
                f"Capacity from the smallest to the largest saturated size: {grow}; per replicate, "
                f"averaged over pathways, {self.grows.text()}: rises with N: "
                f"**{format_value(v['capacity_grows_with_n'])}**."
            )
        return Markdown("\n\n".join(lines))

    def metrics(self) -> dict[str, Any]:
        """The headline numbers recorded."""
        metrics: dict[str, Any] = {
            f"capacity_N{n}_{p}": round(statistics.mean(self.capacity[(n, p)]), 2)
            for n in sorted({n for n, _ in self.capacity})
            for p in self.pathways
        }
        metrics.update({f"mean_capacity_{p}": round(v, 2) for p, v in self.mean_capacity.items() if v == v})
        metrics.update({f"saturated_sizes_{p}": ",".join(map(str, n)) for p, n in self.determined.items()})
        tested = {**self.comparisons, **{f"growth {p}": g for p, g in self.growth.items()}}
        if self.grows is not None:
            tested["growth"] = self.grows
        for name, c in tested.items():
            key = name.replace(" - ", "_minus_").replace(" ", "_")
            metrics[f"{key}_mean"] = round(c.mean, 3)
            metrics[f"{key}_p"] = round(c.p, 4)
        metrics.update({k: v for k, v in self.verdicts().items() if v is not None})
        return metrics

    def samples(self) -> dict[str, list[float]]:
        """Per (N, replicate) unit, what the report's verdicts are judged from: the mean over
        saturated K of whether ``both`` solved (1) or not (0) minus the same for each single pathway."""
        return {
            f"{name.replace(' - ', '_minus_')}_solved": self.pairs[name]
            for name in ("both - excitability", "both - synaptic")
            if self.pairs.get(name)
        }


def _unit_differences(sweep: PackingSweep, x: str, y: str) -> list[float]:
    """Per (N, replicate): the mean of solved(x) − solved(y) over the K cells saturated for both."""
    cells = sweep.saturated_cells(x, y)
    out = []
    for n in sweep.sizes:
        ks = [k for m, k in cells if m == n]
        if not ks:
            continue
        for r in range(sweep.replicates):
            d = [int(sweep.cell(n, x, k)[r]["solved"]) - int(sweep.cell(n, y, k)[r]["solved"]) for k in ks]
            out.append(sum(d) / len(ks))
    return out


def _growth(
    capacity: dict[tuple[int, str], list[int]], determined: dict[str, list[int]], seed: int
) -> tuple[dict[str, stats.Comparison], stats.Comparison | None]:
    """Per pathway, and averaged over pathways per replicate (one-sided), largest − smallest size."""
    growth = {}
    for p, sizes in determined.items():
        if len(sizes) > 1:
            lo, hi = sizes[0], sizes[-1]
            growth[p] = stats.compare(f"{p}: N={hi} - N={lo}", capacity[(hi, p)], capacity[(lo, p)],
                                      paired=True, alternative="greater", seed=seed)  # fmt: skip
    lo, hi = min(capacity)[0], max(capacity)[0]
    both_ends = [p for p, sizes in determined.items() if lo in sizes and hi in sizes]
    if lo == hi or not both_ends:
        return growth, None
    per_replicate = [
        statistics.mean(capacity[(hi, p)][r] - capacity[(lo, p)][r] for p in both_ends)
        for r in range(len(capacity[(lo, both_ends[0])]))
    ]
    name = f"mean over {', '.join(both_ends)}: N={hi} - N={lo}"
    return growth, stats.compare(name, per_replicate, paired=True, alternative="greater", seed=seed)


def packing_answer(sweep: PackingSweep, *, seed: int = 0) -> PackingAnswer:
    """:class:`PackingAnswer` of a :class:`PackingSweep` (see there); tests are seeded with ``seed``."""
    if not sweep.rows:
        raise ValueError("sweep has no rows: nothing was trained")
    capacity, pathways = sweep.capacity(), sweep.pathways
    determined = {p: sweep.determined_sizes(p) for p in pathways}
    mean_capacity = {
        p: statistics.mean(c for n in determined[p] for c in capacity[(n, p)]) if determined[p] else math.nan
        for p in pathways
    }
    pairs = {
        f"{x} - {y}": _unit_differences(sweep, x, y)
        for x, y in COMPARISONS
        if x in pathways and y in pathways
    }
    raw = {name: stats.compare(name, d, paired=True, seed=seed) for name, d in pairs.items() if d}
    growth, grows = _growth(capacity, determined, seed)
    return PackingAnswer(
        capacity,
        determined,
        list(pathways),
        sweep.replicates,
        mean_capacity,
        stats.holm_adjusted(raw),
        growth,
        grows,
        pairs,
    )


def check_grid(sizes: Sequence[int], ks: Sequence[int], replicates: int, n_available: int) -> None:
    """``ValueError`` naming the parameter unless sizes, task counts and replicates make a grid."""
    if not sizes or any(not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in sizes):
        raise ValueError(f"sizes={list(sizes)!r} must be network sizes N >= 1")
    if not ks or any(not isinstance(k, int) or isinstance(k, bool) or k < 1 for k in ks):
        raise ValueError(f"ks={list(ks)!r} must be task counts K >= 1")
    if max(ks) > n_available:
        raise ValueError(f"K={max(ks)} is larger than the {n_available} tasks available")
    if not isinstance(replicates, int) or isinstance(replicates, bool) or replicates < 1:
        raise ValueError(f"replicates={replicates!r} must be an integer >= 1")


def network_seed(seed: int, n: int, replicate: int) -> int:
    """The initial-weight seed of every network of size ``n`` and ``replicate`` (any pathway, any K)."""
    return seed * 1_000_003 + replicate * 10_007 + n


def packing_sweep(
    sizes: Sequence[int],
    ks: Sequence[int],
    pathways: Sequence[str],
    replicates: int,
    task_config: TaskConfig,
    config: TrainConfig,
    *,
    order: Sequence[str] | None = None,
    device: torch.device | str = "cpu",
    rnn_kw: dict | None = None,
    progress: bool | None = None,
) -> tuple[PackingSweep, ModulatedRNN, TrainResult]:
    """Train every (size, K, replicate, pathway) network as one stack; see the module docstring.

    A network with K tasks learns the first K of ``order`` (default :data:`PACKING_ORDER`).
    Returns the sweep, the trained stack and its :class:`~neuromod_lib.multitask.TrainResult`.
    """
    order = tuple(PACKING_ORDER if order is None else order)
    pathways = check_pathways(pathways)
    sizes, ks = sorted(sizes), sorted(ks)
    check_grid(sizes, ks, replicates, len(order))
    combos = [(n, kk, r, p) for n in sizes for kk in ks for r in range(replicates) for p in pathways]
    model = ModulatedRNN(
        rnn_config(task_config, max(sizes), max(ks), **(rnn_kw or {})),
        [c[3] for c in combos],
        sizes=[c[0] for c in combos],
        seeds=[network_seed(config.seed, c[0], c[2]) for c in combos],
    ).to(device)
    result = train_networks(model, [order[: c[1]] for c in combos], task_config, config, progress=progress)
    counts, shared = model.context_parameters(), model.shared_parameters()
    rows = [
        {
            "n_neurons": n,
            "pathway": p,
            "replicate": r,
            "k": kk,
            "context_params": counts[s] * kk // max(ks),
            "shared_params": shared[s],
            "solved": bool(result.solved[s]),
            "solved_at_check": bool(result.solved_at_check[s]),
            "min_perf": float(result.perf[s].nan_to_num(1.0).min()),
            "steps_to_criterion": float(result.solved_at[s]),
        }
        for s, (n, kk, r, p) in enumerate(combos)
    ]
    return PackingSweep(rows, config.criterion, config.steps, config.check_step), model, result
