"""What a notebook run records, and the summary gathered from all of them.

Each notebook ends with one call, ``record(cfg, metrics, device=...)``, which writes
``<results_dir>/<notebook>.json`` atomically: the headline numbers (rounded, so that the
same seed gives the same file), the profile, the seed, every parameter, the device and the
library versions. ``write_summary`` turns all records into ``summary.md``. Numbers in the
summary come only from these records, never typed in.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .profiles import Config
from .storage import read_json, write_json, write_text

_DIGITS = 4


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, _DIGITS)
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


def record(
    cfg: Config,
    metrics: Mapping[str, Any],
    *,
    device: torch.device | str,
    timings: Mapping[str, float] | None = None,
) -> Path:
    """Write the headline ``metrics`` of the notebook run configured by ``cfg``.

    ``metrics`` maps a short name to a number, string or bool; floats are rounded to
    4 decimals. The file is ``<cfg.results_dir>/<cfg.notebook>.json``. ``timings`` (seconds and
    ratios of them) are machine-dependent: they are kept in the record under ``"timings"``,
    apart from the metrics, so that the committed summary stays identical from run to run.
    """
    bad = [k for k, v in {**metrics, **(timings or {})}.items() if not isinstance(v, (int, float, str, bool))]
    if bad:
        raise ValueError(f"metrics {bad} must be numbers, strings or booleans")
    entry = {
        "notebook": cfg.notebook,
        "profile": cfg.profile,
        "seed": cfg.seed,
        "device": str(device),
        "parameters": _round(dict(cfg)),
        "metrics": _round(dict(metrics)),
        "timings": _round(dict(timings or {})),
        "versions": versions(),
    }
    return write_json(Path(cfg.results_dir) / f"{cfg.notebook}.json", entry)


def load(results_dir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Every record in ``results_dir``, by notebook name, in notebook order."""
    folder = Path(results_dir)
    return {p.stem: read_json(p) for p in sorted(folder.glob("*.json"))} if folder.is_dir() else {}


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


def summary_markdown(records: Mapping[str, Mapping[str, Any]]) -> str:
    """A Markdown table of every notebook's headline numbers."""
    lines = [
        "# Results summary",
        "",
        "Written by `python -m neuromod_lib run` from the records the notebooks made",
        "(`results/<notebook>.json`); nothing here is typed in.",
        "",
        "| notebook | profile | seed | device | headline numbers |",
        "|---|---|---|---|---|",
    ]
    for name, rec in records.items():
        row = [name, rec["profile"], str(rec["seed"]), rec["device"], headline(rec["metrics"])]
        lines.append("| " + " | ".join(row) + " |")
    if records:
        v = next(iter(records.values()))["versions"]
        lines += ["", f"python {v['python']}, torch {v['torch']}, torchvision {v['torchvision']}."]
    return "\n".join(lines) + "\n"


def write_summary(results_dir: str | os.PathLike) -> Path:
    """Write ``<results_dir>/summary.md`` from every record there."""
    return write_text(Path(results_dir) / "summary.md", summary_markdown(load(results_dir)))
