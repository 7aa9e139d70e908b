"""One reproduction report from what the notebooks recorded: ``python -m neuromod_lib report``.

Reads every record in ``results/`` (written by :func:`neuromod_lib.results.record` at the end of
each notebook) and writes ``results/report.md``:

- a *Run* section: when the report was written, which notebooks were recorded, and the
  profile(s), seed(s), device(s) and versions of python, torch and torchvision found in the
  records, with a count of the claims supported, not supported, not measured and not run;
- for each claim of the three papers, whether this run supports it;
- per recorded notebook: its profile, seed, device and versions, its headline numbers as a
  table, and its figures.

Nothing is typed in: a claim's verdict is read from the boolean the notebook computed and
recorded; a notebook that has not been run says so. Metrics named ``<group>__<variant>__<measure>``
(notebook 07: ``digits__synaptic__accuracy``) are shown as one table with a row per group and
variant and a column per measure; every other metric is a row of a ``metric | value`` table.

Figures are the PNG outputs of the executed notebooks, copied to
``results/figures/<notebook>/fig-<cell>-<output>.png`` and linked from the report. So that the
figures shown belong to the recorded run, a notebook's figures are taken only when

- a record of that notebook exists (a notebook without a record gets no section and no figures), and
- the executed notebook was run with the record's parameters: its parameters cell, overridden by
  what papermill injected (``metadata.papermill.parameters``), must agree with the record's
  profile and parameters (seed, results folder, every override). Otherwise the figures are left
  out and the report says why.

The executed notebooks are looked for in ``<results>/notebooks/`` (where ``run`` writes them by
default) and in the ``notebooks/`` folder beside ``<results>`` (``run --in-place``, what
``make notebooks`` does), or in the folders given; when several match, the newest file wins.
Each report rewrites the figures (atomically) and deletes any ``fig-*.png`` it did not write, so
no figure of an earlier run lingers.
"""

from __future__ import annotations

import ast
import base64
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import nbformat

from . import results
from .storage import write_atomic, write_text


@dataclass(frozen=True)
class Claim:
    """A paper's claim, the notebook that tests it, and the recorded boolean (or number) that answers it."""

    paper: str
    text: str
    notebook: str
    metric: str
    expected: Any = True


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "Boeshertz et al. 2023",
        "Per-task gains adapt a frozen CNN better than a new head alone",
        "01_gain_modulation",
        "gains_beat_head_only",
    ),
    Claim(
        "Boeshertz et al. 2023",
        "Stochastic comodulation beats deterministic gains",
        "02_stochastic_comodulation",
        "stochastic_beats_deterministic",
    ),
    Claim(
        "Boeshertz et al. 2023",
        "Stochastic comodulation adds no learnable parameter",
        "02_stochastic_comodulation",
        "extra_params_stochastic",
        0,
    ),
    Claim(
        "Boeshertz et al. 2023",
        "Gains help on every backbone studied",
        "03_architecture_study",
        "gains_help_every_backbone",
    ),
    Claim(
        "Vedovati & Ching 2024",
        "Excitability and synapses together pack at least as many tasks as either alone",
        "04_rnn_task_packing",
        "both_at_least_best_single",
    ),
    Claim(
        "Vedovati & Ching 2024",
        "Excitability and synaptic modulation differ in robustness to ambiguous context",
        "05_rnn_ambiguity_and_dynamics",
        "pathways_differ_in_ambiguity",
    ),
    Claim(
        "Vedovati & Ching 2024",
        "The two pathways combined are the most robust to a mixed context",
        "05_rnn_ambiguity_and_dynamics",
        "both_most_robust_to_ambiguity",
    ),
    Claim(
        "Hong & Pavlic 2022",
        "Learned contexts on fixed random weights forget nothing (task id given)",
        "06_random_weight_continual_learning",
        "zero_forgetting_random_weights",
    ),
    Claim(
        "Hong & Pavlic 2022",
        "Accuracy within 5 points of the best continual dense baseline",
        "06_random_weight_continual_learning",
        "random_weights_within_5_points_of_best_dense",
    ),
    Claim(
        "Hong & Pavlic 2022",
        "At least 100x less storage per task than a dense network",
        "06_random_weight_continual_learning",
        "storage_ratio_at_least_100",
    ),
)

#: Row headers of the pivot table of ``<group>__<variant>__<measure>`` metrics, by notebook.
PIVOT_ROW_NAMES: dict[str, tuple[str, str]] = {"07_modulation_families_compared": ("task set", "family")}
_DEFAULT_ROW_NAMES = ("group", "variant")

FIGURES_DIR = "figures"
_FIGURE_NAME = re.compile(r"fig-\d+-\d+\.png")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")


def verdict(claim: Claim, records: dict[str, dict]) -> str:
    """``supported``, ``not supported in this run`` or why it could not be judged."""
    rec = records.get(claim.notebook)
    if rec is None:
        return "not run"
    value = rec["metrics"].get(claim.metric)
    if value is None:
        return f"not measured (no `{claim.metric}` in the record)"
    return "supported" if value == claim.expected else "not supported in this run"


# --- figures -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NotebookImage:
    """One PNG output of an executed notebook: where it is, its bytes, and a caption (or None)."""

    cell: int
    output: int
    png: bytes
    caption: str | None


@dataclass(frozen=True)
class Figure:
    """A figure written for the report: its path relative to the results folder, and its caption."""

    path: str
    caption: str


@dataclass(frozen=True)
class NotebookFigures:
    """The figures of one recorded notebook, the executed notebook they come from, or why there are none."""

    figures: tuple[Figure, ...] = ()
    source: str | None = None  # the executed notebook, relative to the folder holding the results folder
    note: str = ""


def _caption(heading: str) -> str | None:
    """A heading made safe for ``![alt](...)`` and an italic line, or None if too long to be one."""
    text = re.sub(r"\*+", "", heading).replace("[", "(").replace("]", ")").replace("\\", "")
    text = " ".join(text.split())
    return text if 0 < len(text) <= 120 else None


def notebook_images(nb: nbformat.NotebookNode) -> list[NotebookImage]:
    """Every ``image/png`` output of the code cells of ``nb``, in order.

    The caption is the last heading of the nearest markdown cell above that has one (the section
    the figure belongs to). Outputs that do not decode to a PNG are skipped.
    """
    images: list[NotebookImage] = []
    heading: str | None = None
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            found = [m.group(1) for line in cell.source.splitlines() if (m := _HEADING.match(line))]
            if found:
                heading = _caption(found[-1])
            continue
        if cell.cell_type != "code":
            continue
        for j, output in enumerate(cell.get("outputs", [])):
            data = output.get("data", {}).get("image/png")
            if not data:
                continue
            text = "".join(data) if isinstance(data, list) else data
            try:
                png = base64.b64decode(text)
            except ValueError:
                continue
            if png.startswith(_PNG_SIGNATURE):
                images.append(NotebookImage(i, j, png, heading))
    return images


def _literals(source: str) -> dict[str, Any]:
    """``name = <literal>`` assignments of a cell (others, and cells that do not parse, are ignored)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    out: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except (ValueError, TypeError, SyntaxError):
                continue
    return out


def run_parameters(nb: nbformat.NotebookNode) -> dict[str, Any]:
    """The parameters ``nb`` was executed with: the literals of its ``parameters`` cell, overridden by
    those papermill injected. ``None`` means "the profile's value", as in the notebooks."""
    tagged = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    params = _literals(tagged[0].source) if tagged else {}
    params.update(nb.metadata.get("papermill", {}).get("parameters", {}) or {})
    return params


def _same(a: Any, b: Any) -> bool:
    numbers = (int, float)
    if (
        isinstance(a, numbers)
        and isinstance(b, numbers)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
    ):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-4)  # records round floats to 4 decimals
    return a == b


def parameter_mismatches(params: Mapping[str, Any], record: Mapping[str, Any]) -> list[str]:
    """``name: notebook X, record Y`` for each parameter the executed notebook set that the record
    disagrees with (``None``, the profile's value, is judged through the profile); empty if they agree."""
    recorded = {**record.get("parameters", {}), "profile": record.get("profile")}
    out = []
    for name, value in params.items():
        if value is None or name not in recorded or _same(value, recorded[name]):
            continue
        out.append(f"{name}: notebook {value!r}, record {recorded[name]!r}")
    return out


def default_notebook_dirs(results_dir: str | os.PathLike) -> list[Path]:
    """Where executed notebooks are looked for: ``<results>/notebooks`` (``run``'s default output)
    and the ``notebooks/`` folder beside ``<results>`` (``run --in-place``)."""
    results_path = Path(results_dir).resolve()
    return [results_path / "notebooks", results_path.parent / "notebooks"]


def _shown(path: Path, results_dir: Path) -> str:
    """``path`` relative to the folder holding the results folder when inside it, else absolute."""
    try:
        return path.relative_to(results_dir.parent).as_posix()
    except ValueError:
        return str(path)


def _figures_of(
    name: str, record: Mapping[str, Any], dirs: Sequence[Path], results_dir: Path
) -> tuple[NotebookFigures, list[NotebookImage]]:
    """The newest executed notebook of ``name`` in ``dirs`` that was run with ``record``'s parameters:
    how to report it, and its images (none, with a note saying why, when there is no such notebook)."""
    matching: list[tuple[Path, nbformat.NotebookNode]] = []
    rejected: list[str] = []
    for path in (folder / f"{name}.ipynb" for folder in dirs):
        if not path.is_file():
            continue
        try:
            nb = nbformat.read(path, as_version=4)
        except (OSError, ValueError) as error:  # unreadable: say so, do not fail the report
            rejected.append(f"`{_shown(path, results_dir)}` could not be read ({type(error).__name__})")
            continue
        mismatches = parameter_mismatches(run_parameters(nb), record)
        if mismatches:
            why = "; ".join(mismatches)
            rejected.append(f"`{_shown(path, results_dir)}` was not run with the recorded parameters ({why})")
        else:
            matching.append((path, nb))
    if not matching:
        if rejected:
            return NotebookFigures(note="Figures left out: " + "; ".join(rejected) + "."), []
        where = ", ".join(f"`{_shown(d, results_dir)}/`" for d in dirs)
        return NotebookFigures(note=f"No figures: no executed `{name}.ipynb` in {where}."), []
    path, nb = max(matching, key=lambda pair: pair[0].stat().st_mtime)
    shown, images = _shown(path, results_dir), notebook_images(nb)
    return NotebookFigures(source=shown, note="" if images else f"No figures in `{shown}`."), images


def write_figures(
    results_dir: str | os.PathLike,
    records: Mapping[str, Mapping[str, Any]],
    notebooks_dirs: Sequence[str | os.PathLike] | None = None,
) -> dict[str, NotebookFigures]:
    """Copy the PNG outputs of each recorded notebook's executed notebook into
    ``<results_dir>/figures/<notebook>/fig-<cell>-<output>.png`` (atomically) and return them by
    notebook; then delete every other ``fig-*-*.png`` under ``figures/`` (figures of earlier runs,
    or of notebooks whose figures are now left out). Other files there are never touched."""
    results_path = Path(results_dir).resolve()
    dirs = list(
        dict.fromkeys(Path(d).resolve() for d in (notebooks_dirs or default_notebook_dirs(results_path)))
    )
    figures_root = results_path / FIGURES_DIR
    by_notebook: dict[str, NotebookFigures] = {}
    written: set[Path] = set()
    for name, record in records.items():
        found, images = _figures_of(name, record, dirs, results_path)
        figures = []
        for k, image in enumerate(images, start=1):
            target = figures_root / name / f"fig-{image.cell}-{image.output}.png"
            write_atomic(target, lambda f, png=image.png: f.write(png))
            written.add(target)
            caption = f"Figure {k}: {image.caption}" if image.caption else f"Figure {k}"
            figures.append(Figure(target.relative_to(results_path).as_posix(), caption))
        by_notebook[name] = NotebookFigures(tuple(figures), found.source, found.note)
    if figures_root.is_dir():
        for folder in (p for p in figures_root.iterdir() if p.is_dir() and not p.is_symlink()):
            for stale in folder.iterdir():
                if _FIGURE_NAME.fullmatch(stale.name) and stale.is_file() and stale not in written:
                    stale.unlink()
            if not any(folder.iterdir()):
                folder.rmdir()
    return by_notebook


# --- tables --------------------------------------------------------------------------------------


def format_value(value: Any) -> str:
    """A metric as a table cell: ``yes``/``no`` for booleans, ``—`` for None, thousands separated."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "—"
    if isinstance(value, (int, float)):
        return f"{value:,}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def metrics_tables(metrics: Mapping[str, Any], row_names: tuple[str, str] = _DEFAULT_ROW_NAMES) -> list[str]:
    """Markdown lines: metrics named ``a__b__c`` as one table (a row per ``a, b``, a column per ``c``,
    ``—`` where a combination was not recorded), then every other metric as ``metric | value`` rows."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    measures: dict[str, None] = {}
    plain: dict[str, Any] = {}
    for key, value in metrics.items():
        parts = results.table_cell(key)
        if parts is None:
            plain[key] = value
            continue
        rows.setdefault(parts[:2], {})[parts[2]] = value
        measures[parts[2]] = None
    lines: list[str] = []
    if rows:
        lines += [
            "| " + " | ".join([*row_names, *(f"`{m}`" for m in measures)]) + " |",
            "|" + "---|" * (2 + len(measures)),
        ]
        for (group, variant), values in rows.items():
            cells = [f"`{group}`", f"`{variant}`", *(format_value(values.get(m)) for m in measures)]
            lines.append("| " + " | ".join(cells) + " |")
    if plain:
        lines += [""] if lines else []
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| `{k}` | {format_value(v)} |" for k, v in plain.items()]
    return lines


# --- the report ----------------------------------------------------------------------------------


def _version_text(rec: Mapping[str, Any]) -> str:
    v = rec.get("versions", {})
    return (
        f"python {v.get('python', '?')}, torch {v.get('torch', '?')}, torchvision {v.get('torchvision', '?')}"
    )


def _across(values: Mapping[str, str]) -> str:
    """``X (every notebook)`` when all notebooks agree, else ``X (a, b); Y (c)``."""
    groups: dict[str, list[str]] = {}
    for name, value in values.items():
        groups.setdefault(value, []).append(name)
    if len(groups) == 1:
        return f"{next(iter(groups))} (every recorded notebook)"
    return "; ".join(f"{value} ({', '.join(f'`{n}`' for n in names)})" for value, names in groups.items())


def _run_section(
    records: Mapping[str, Mapping[str, Any]],
    figures: Mapping[str, NotebookFigures],
    generated: datetime,
) -> list[str]:
    from .notebooks import CATALOGUE

    lines = ["## Run", "", f"- generated: {generated.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC"]
    missing = [nb.name for nb in CATALOGUE if nb.name not in records]
    recorded = f"- notebooks recorded: {len(records)}"
    if missing:
        recorded += f"; not run: {', '.join(f'`{n}`' for n in missing)}"
    lines.append(recorded)
    if records:
        lines += [
            "- profile: " + _across({n: f"`{r['profile']}`" for n, r in records.items()}),
            "- seed: " + _across({n: str(r["seed"]) for n, r in records.items()}),
            "- device: " + _across({n: f"`{r['device']}`" for n, r in records.items()}),
            "- versions: " + _across({n: _version_text(r) for n, r in records.items()}),
        ]
    counts: dict[str, int] = {"supported": 0, "not supported in this run": 0, "not measured": 0, "not run": 0}
    for claim in CLAIMS:
        v = verdict(claim, records)
        counts["not measured" if v.startswith("not measured") else v] += 1
    lines.append(
        f"- claims ({len(CLAIMS)}): {counts['supported']} supported, {counts['not supported in this run']} "
        f"not supported in this run, {counts['not measured']} not measured, {counts['not run']} not run"
    )
    n_figures = sum(len(f.figures) for f in figures.values())
    lines.append(f"- figures: {n_figures}, from the executed notebooks that match their record")
    return lines


def render(
    records: dict[str, dict],
    figures: Mapping[str, NotebookFigures] | None = None,
    *,
    generated: datetime | None = None,
) -> str:
    """The report as Markdown (see the module docstring); ``figures`` as from :func:`write_figures`."""
    figures = figures or {}
    lines = [
        "# Reproduction report",
        "",
        "Generated by `python -m neuromod_lib report` from the records in `results/`; no number is typed in.",
        "",
        *_run_section(records, figures, generated or datetime.now(timezone.utc)),
        "",
        "## The papers' claims",
        "",
        "| paper | claim | notebook | this run |",
        "|---|---|---|---|",
    ]
    for claim in CLAIMS:
        lines.append(f"| {claim.paper} | {claim.text} | `{claim.notebook}` | {verdict(claim, records)} |")
    lines += [
        "",
        "A claim *not supported in this run* may still hold at the paper's scale (`--profile paper`).",
    ]
    for name, rec in records.items():
        lines += [
            "",
            f"## `{name}`",
            "",
            f"profile `{rec['profile']}`, seed {rec['seed']}, device `{rec['device']}`; {_version_text(rec)}",
            "",
        ]
        lines += metrics_tables(rec["metrics"], PIVOT_ROW_NAMES.get(name, _DEFAULT_ROW_NAMES))
        found = figures.get(name)
        if found is None:
            continue
        lines += ["", "### Figures", ""]
        if found.note:
            lines.append(found.note)
        elif found.source is not None:
            lines += [f"From `{found.source}`.", ""]
        for fig in found.figures:
            lines += [f"![{fig.caption}]({fig.path})", "", f"*{fig.caption}*", ""]
        while lines[-1] == "":
            lines.pop()
    return "\n".join(lines) + "\n"


def write_report(
    results_dir: str | os.PathLike, notebooks_dirs: Sequence[str | os.PathLike] | None = None
) -> Path:
    """Write ``<results_dir>/report.md`` and its figures (atomically) from the records there; return its path.

    ``notebooks_dirs``: folders of executed notebooks to take the figures from (default
    :func:`default_notebook_dirs`).
    """
    records = results.load(results_dir)
    figures = write_figures(results_dir, records, notebooks_dirs)
    return write_text(Path(results_dir) / "report.md", render(records, figures))
