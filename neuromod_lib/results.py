"""What a notebook run records, where, and how runs are gathered into summaries.

**One record per run.** Each notebook ends with one call, ``record(cfg, metrics, device=...)``,
which writes

    <results_dir>/runs/<notebook>/<profile>/seed-<seed>-<key>.json

atomically, where ``<key>`` is a short hash of every parameter that can change the numbers
(all but ``seed``, ``device`` and ``results_dir``, see :func:`run_key`). Two runs with different
seeds or parameters therefore leave two records; re-running the same point replaces its record.
A record holds the headline metrics (floats rounded to 4 decimals, so the same seed gives the
same file on the same machine; NaN is written as ``null``), the replicate values of the
compared quantities (``samples``: one value per independent seed or replicate, from which the
report's confidence intervals are computed), the notebook's training-success check, the
parameters, the device, the floating-point path (CPU capability, threads) and the versions.
``per_task`` rows go to a CSV beside the JSON (``seed-<seed>-<key>.csv``).

**The committed reference.** ``python -m neuromod_lib run all --in-place`` (``make notebooks``)
runs the committed notebooks with their default ``quick`` parameters; only such a run copies
each record to ``<results_dir>/reference/<notebook>.json`` and rewrites ``summary.md`` from those
references. Every other run writes its own record and never touches either. The references are
committed: the test suite compares a fresh run's record with them (:func:`compare`).

**Aggregation.** :func:`points` groups records by notebook, profile and parameter key;
:func:`aggregate` gives, per metric, the mean, sd and a 95 % t confidence interval over seeds.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import platform
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .profiles import Config
from .storage import read_json, write_json, write_text

_DIGITS = 4
RUNS_DIR = "runs"
REFERENCE_DIR = "reference"
#: what the run key leaves out: where or on what a run computed (not what), and what the record's
#: path already names (notebook, profile, seed)
NOT_IN_KEY = ("notebook", "profile", "seed", "device", "results_dir")
_REQUIRED = ("notebook", "profile", "seed", "key", "parameters", "metrics")


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, _DIGITS) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_round(v) for v in value]
    return value


def versions() -> dict[str, str]:
    """Versions of what produced a result (python, torch, torchvision)."""
    import torchvision

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
    }


def float_path() -> dict[str, Any]:
    """What decides the floating-point path on the CPU: the vectorised kernels torch picked and
    the number of threads. Two machines that differ here compute trained metrics that differ in
    their last digits (see :func:`compare`)."""
    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads()}


def run_key(parameters: Mapping[str, Any]) -> str:
    """An 8-character hash of the parameters that can change a run's numbers (not ``NOT_IN_KEY``)."""
    kept = {k: v for k, v in sorted(parameters.items()) if k not in NOT_IN_KEY}
    return hashlib.sha256(json.dumps(_round(kept), sort_keys=True).encode()).hexdigest()[:8]


def record_path(results_dir: str | os.PathLike, notebook: str, profile: str, seed: int, key: str) -> Path:
    """``<results_dir>/runs/<notebook>/<profile>/seed-<seed>-<key>.json``."""
    return Path(results_dir) / RUNS_DIR / notebook / profile / f"seed-{seed}-{key}.json"


def sweep_notebook_path(output_dir: str | os.PathLike, record: Mapping[str, Any]) -> Path:
    """Where a sweep writes the executed notebook of the run whose record is ``record`` (a record, or
    a resolved config with its ``key``): ``<output_dir>/<notebook>/<profile>/seed-<seed>-<key>.ipynb``,
    named as the record is, so that no two runs share a file and a report finds each run's figures."""
    name = f"seed-{record['seed']}-{record['key']}.ipynb"
    return Path(output_dir) / record["notebook"] / record["profile"] / name


def run_path(results_dir: str | os.PathLike, cfg: Mapping[str, Any]) -> Path:
    """Where the record of the run configured by ``cfg`` (a resolved :class:`Config`) is written."""
    key = run_key(cfg)
    return record_path(results_dir, cfg["notebook"], cfg["profile"], cfg["seed"], key)


def figure_dir(cfg: Mapping[str, Any]) -> Path:
    """Where the figures of the run configured by ``cfg`` go: a ``figures/`` folder beside its record,
    one subfolder per run, ``<results_dir>/runs/<notebook>/<profile>/figures/seed-<seed>-<key>/``
    (:func:`neuromod_lib.plots.save_figure` writes there)."""
    record = run_path(cfg["results_dir"], cfg)
    return record.parent / "figures" / record.stem


def _parameters(cfg: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cfg.items() if k not in ("notebook", "profile")}


def _check_scalars(what: str, values: Mapping[str, Any]) -> None:
    bad = [k for k, v in values.items() if not isinstance(v, (int, float, str, bool))]
    if bad:
        raise ValueError(f"{what} {bad} must be numbers, strings or booleans")


def _check_samples(samples: Mapping[str, Sequence[float]]) -> None:
    for name, values in samples.items():
        ok = isinstance(values, (list, tuple)) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
        )
        if not ok or not values:
            raise ValueError(
                f"samples[{name!r}]={values!r} must be a non-empty list of numbers (one per seed)"
            )


def _csv_text(rows: Sequence[Mapping[str, Any]]) -> str:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(_round([dict(row) for row in rows]))
    return out.getvalue()


def record(
    cfg: Config,
    metrics: Mapping[str, Any],
    *,
    device: torch.device | str,
    timings: Mapping[str, float] | None = None,
    samples: Mapping[str, Sequence[float]] | None = None,
    trained: tuple[bool, str] | None = None,
    per_task: Sequence[Mapping[str, Any]] | None = None,
) -> Path:
    """Write the record of the notebook run configured by ``cfg``; return its path.

    - ``metrics``: short name -> number, string or bool (the headline numbers; floats rounded).
    - ``timings``: machine-dependent seconds and ratios, kept apart from the metrics so that
      summaries and comparisons never depend on the machine's speed.
    - ``samples``: compared quantity -> one value per independent seed or replicate; the
      report's verdicts are confidence intervals over these.
    - ``trained``: ``(passed, what was checked)`` — the notebook's training-success check; a
      verdict is judged only from runs that passed it.
    - ``per_task``: rows (dicts of scalars) written as a CSV beside the record.
    """
    _check_scalars("metrics", metrics)
    _check_scalars("timings", timings or {})
    _check_samples(samples or {})
    for row in per_task or ():
        _check_scalars("per_task row", row)
    params = _parameters(cfg)
    entry: dict[str, Any] = {
        "notebook": cfg.notebook,
        "profile": cfg.profile,
        "seed": cfg.seed,
        "key": run_key(params),
        "device": str(device),
        "parameters": _round(params),
        "metrics": _round(dict(metrics)),
        "samples": _round({k: list(v) for k, v in (samples or {}).items()}),
        "training": None if trained is None else {"passed": bool(trained[0]), "check": str(trained[1])},
        "timings": _round(dict(timings or {})),
        "float_path": float_path(),
        "versions": versions(),
    }
    path = run_path(cfg.results_dir, cfg)
    if per_task:
        write_text(path.with_suffix(".csv"), _csv_text(per_task))
    return write_json(path, entry)


def read_record(path: str | os.PathLike) -> dict[str, Any]:
    """One record, checked: a file that is not a neuromod record is a ValueError naming it."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"record {str(path)!r} is not a JSON object; delete it or re-run its notebook")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise ValueError(
            f"record {str(path)!r} is not a neuromod record (missing {', '.join(missing)}); "
            "delete it or re-run its notebook"
        )
    data.setdefault("samples", {})
    data.setdefault("training", None)
    data["path"] = str(path)
    return data


def load_runs(results_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Every run record under ``<results_dir>/runs/``, sorted by notebook, profile, key and seed."""
    root = Path(results_dir) / RUNS_DIR
    runs = [read_record(p) for p in sorted(root.glob("*/*/seed-*.json"))] if root.is_dir() else []
    return sorted(runs, key=lambda r: (r["notebook"], r["profile"], r["key"], r["seed"]))


def merge_runs(results_dirs: Sequence[str | os.PathLike]) -> list[dict[str, Any]]:
    """Every run record under the ``runs/`` of each folder (several machines' results of one sweep):
    one record per (notebook, profile, key, seed) — the newest file where two folders hold the same
    run — sorted as :func:`load_runs` sorts."""
    newest: dict[tuple[str, str, str, int], dict[str, Any]] = {}
    for folder in results_dirs:
        for run in load_runs(folder):
            where = (run["notebook"], run["profile"], run["key"], run["seed"])
            kept = newest.get(where)
            if kept is None or Path(run["path"]).stat().st_mtime > Path(kept["path"]).stat().st_mtime:
                newest[where] = run
    return sorted(newest.values(), key=lambda r: (r["notebook"], r["profile"], r["key"], r["seed"]))


def runs_csv(runs: Sequence[Mapping[str, Any]]) -> str:
    """One CSV line per run: where it comes from, its parameters and every metric (blank if absent)."""
    metric_names = list(dict.fromkeys(k for r in runs for k in r["metrics"]))
    rows = [
        {
            "notebook": r["notebook"], "profile": r["profile"], "key": r["key"], "seed": r["seed"],
            "device": r.get("device", ""), "path": r.get("path", ""),
            "parameters": json.dumps(r.get("parameters", {}), sort_keys=True),
            **{name: r["metrics"].get(name, "") for name in metric_names},
        }
        for r in runs
    ]  # fmt: skip
    return _csv_text(rows)


def load_reference(results_dir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The committed reference records (``<results_dir>/reference/<notebook>.json``), by notebook."""
    root = Path(results_dir) / REFERENCE_DIR
    found = sorted(root.glob("*.json")) if root.is_dir() else []
    return {p.stem: read_record(p) for p in found}


def write_reference(results_dir: str | os.PathLike, run: Mapping[str, Any]) -> Path:
    """Make ``run`` (a record) the committed reference of its notebook."""
    kept = {k: v for k, v in run.items() if k != "path"}
    return write_json(Path(results_dir) / REFERENCE_DIR / f"{run['notebook']}.json", kept)


# --- aggregation ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stat:
    """A quantity over ``n`` seeds: mean, sd (0 for one seed) and a 95 % t interval (None for n < 2)."""

    n: int
    mean: float
    sd: float
    ci: tuple[float, float] | None

    def text(self, digits: int = _DIGITS) -> str:
        """``m`` for one seed (as recorded), ``m ± sd`` (``digits`` decimals) for several."""
        if self.n == 1:
            return f"{self.mean:g}"
        return f"{self.mean:.{digits}f} ± {self.sd:.{digits}f}"


def t_quantile(df: int, level: float = 0.95) -> float:
    """The two-sided Student-t quantile for ``df`` degrees of freedom (scipy)."""
    from scipy import stats

    return float(stats.t.ppf(0.5 + level / 2, df))


def stat(values: Sequence[float], level: float = 0.95) -> Stat:
    """Mean, sd and the ``level`` t confidence interval of the mean of ``values``."""
    xs = [float(v) for v in values]
    n = len(xs)
    if n == 0:
        raise ValueError("values must hold at least one number")
    mean = sum(xs) / n
    if n == 1:
        return Stat(1, mean, 0.0, None)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_quantile(n - 1, level) * sd / math.sqrt(n)
    return Stat(n, mean, sd, (mean - half, mean + half))


def points(runs: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    """Runs grouped by parameter point ``(notebook, profile, key)``: the seeds of one experiment."""
    grouped: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for run in runs:
        grouped.setdefault((run["notebook"], run["profile"], run["key"]), []).append(dict(run))
    return grouped


def aggregate(runs: Sequence[Mapping[str, Any]]) -> dict[str, Stat | str]:
    """Per metric over the runs of one point: a :class:`Stat` for numbers, and for booleans and
    strings the value if every run agrees, else ``"mixed (a: 2, b: 1)"``."""
    names = list(dict.fromkeys(k for run in runs for k in run["metrics"]))
    out: dict[str, Stat | str] = {}
    for name in names:
        values = [run["metrics"][name] for run in runs if run["metrics"].get(name) is not None]
        if not values:
            continue
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            out[name] = stat(values)
            continue
        counts: dict[str, int] = {}
        for v in values:
            counts[str(v)] = counts.get(str(v), 0) + 1
        only = next(iter(counts))
        out[name] = (
            only if len(counts) == 1 else "mixed (" + ", ".join(f"{k}: {c}" for k, c in counts.items()) + ")"
        )
    return out


# --- rendering -----------------------------------------------------------------------------------


def format_metrics(metrics: Mapping[str, Any]) -> str:
    """``a=1, b=0.25`` — a one-line rendering of a record's metrics."""
    return ", ".join(f"{k}={v}" for k, v in metrics.items())


def table_cell(key: str) -> tuple[str, str, str] | None:
    """``(row group, row, column)`` of a metric named ``group__row__column`` (e.g. notebook 07's
    ``digits__synaptic__accuracy``): one cell of a table; None for any other name."""
    parts = key.split("__")
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 and all(parts) else None


def headline(metrics: Mapping[str, Any]) -> str:
    """:func:`format_metrics` of the headline numbers only: table cells (:func:`table_cell`;
    ``report.md`` shows them as a table) are counted instead of listed."""
    detail = [k for k in metrics if table_cell(k)]
    line = format_metrics({k: v for k, v in metrics.items() if k not in detail})
    if detail:
        line += f"{', ' if line else ''}(+ {len(detail)} table cells in report.md)"
    return line


def _aggregate_line(stats: Mapping[str, Stat | str]) -> str:
    return headline({k: v.text() if isinstance(v, Stat) else v for k, v in stats.items()})


def summary_markdown(
    runs: Sequence[Mapping[str, Any]], *, title: str = "Results summary", source: str
) -> str:
    """A Markdown table: one row per parameter point with its seeds and headline numbers
    (mean ± sd over seeds where there are several), and the records it comes from."""
    lines = [
        f"# {title}",
        "",
        f"Written by `python -m neuromod_lib` from {source}; nothing here is typed in.",
        "",
        "| notebook | profile | parameters | seeds | device | headline numbers |",
        "|---|---|---|---|---|---|",
    ]
    for (name, profile, key), group in points(runs).items():
        seeds = ", ".join(str(r["seed"]) for r in group)
        devices = ", ".join(sorted({r["device"] for r in group}))
        row = [name, profile, f"`{key}`", seeds, devices, _aggregate_line(aggregate(group))]
        lines.append("| " + " | ".join(row) + " |")
    if runs:
        v = runs[0]["versions"]
        lines += ["", f"python {v['python']}, torch {v['torch']}, torchvision {v['torchvision']}."]
    return "\n".join(lines) + "\n"


def write_summary(results_dir: str | os.PathLike) -> Path:
    """Write ``<results_dir>/summary.md`` from the committed reference records (only the
    ``run all --in-place`` of ``make notebooks`` calls this)."""
    refs = list(load_reference(results_dir).values())
    text = summary_markdown(
        refs, source=f"the reference records (`{REFERENCE_DIR}/<notebook>.json`) of the committed notebooks"
    )
    return write_text(Path(results_dir) / "summary.md", text)


# --- comparing a run with the reference ----------------------------------------------------------


#: the level of the prediction interval a fresh run must fall in, and the least tolerance
#: (notebooks round their metrics to 2-3 decimals, so any floating-point change may move the last digit)
TOLERANCE_LEVEL = 0.99
TOLERANCE_FLOOR = 0.01


def tolerance(name: str, reference: float, spread: Mapping[str, Any]) -> float:
    """How far a metric may move from its ``reference`` value when only the floating-point path changes.

    The rule (README, "Outputs that travel"): training is chaotic, so a run on another CPU behaves
    like a run with another seed. ``spread`` is what ``tests/measure_seed_spread.py`` measured over
    n seeds of the same notebook and parameters: each metric's sd ``s``, and the median, over the
    notebook's metrics that varied, of sd / |mean|. A metric that varied with the seed may move by
    the half-width of the ``TOLERANCE_LEVEL`` prediction interval of one more seed,
    ``t(n - 1) * sqrt(1 + 1/n) * s`` — wide for three seeds, since three seeds pin an sd down only
    roughly — where ``s`` is first raised to the notebook's median relative sd times the value (an
    sd far below its notebook's typical spread is an underestimate). A metric that did not vary (a
    parameter or byte count, an analytic result) must match to ``TOLERANCE_FLOOR``.
    """
    sd = spread.get("sd", {}).get(name, 0.0)
    n = len(spread.get("seeds", ()))
    if sd <= 0 or n < 2:
        return TOLERANCE_FLOOR
    pooled = spread.get("median_relative_sd", 0.0) * abs(reference)
    half_width = t_quantile(n - 1, TOLERANCE_LEVEL) * math.sqrt(1 + 1 / n) * max(sd, pooled)
    return max(half_width, TOLERANCE_FLOOR)


def compare(fresh: Mapping[str, Any], reference: Mapping[str, Any], spread: Mapping[str, Any]) -> list[str]:
    """Why ``fresh`` (a record) does not reproduce ``reference`` (one line per problem; empty if it does).

    ``spread``: ``{"sd": {metric: sd over seeds}, "median_relative_sd": r, "seed_dependent":
    [metric, ...]}`` as ``tests/measure_seed_spread.py`` writes it. Required: the same notebook, profile and
    parameter key; every metric of the reference present and no other; numbers within
    :func:`tolerance`; booleans and strings (the verdicts and the names they pick) identical,
    except those that already took different values on different seeds: those are not findings of
    one run, and any value is accepted.
    """
    problems = [
        f"{field}: fresh {fresh.get(field)!r}, reference {reference.get(field)!r}"
        for field in ("notebook", "profile", "key")
        if fresh.get(field) != reference.get(field)
    ]
    if problems:
        return problems
    got, want = fresh["metrics"], reference["metrics"]
    seed_dependent = set(spread.get("seed_dependent", ()))
    problems += [f"{k}: not in the reference record" for k in got if k not in want]
    for name, expected in want.items():
        if name not in got:
            problems.append(f"{name}: missing from the fresh record")
            continue
        value = got[name]
        if all(type(v) in (int, float) for v in (value, expected)):
            allowed = tolerance(name, expected, spread)
            if abs(value - expected) > allowed:
                problems.append(f"{name}: fresh {value}, reference {expected}, |diff| > {allowed:.4g}")
        elif value != expected and name not in seed_dependent:
            problems.append(f"{name}: fresh {value!r}, reference {expected!r} (verdicts must agree)")
    return problems
