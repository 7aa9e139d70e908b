"""One reproduction report from the recorded runs: ``python -m neuromod_lib report``.

Reads every run record under ``results/runs/`` (written by :func:`neuromod_lib.results.record`
at the end of each notebook, one per run) and writes ``results/report.md``:

- a *Run* section: when the report was written, which notebooks were recorded (how many runs),
  and the profiles, seeds, devices and versions of python, torch and torchvision found in the
  records, with a count of the verdicts;
- the papers' claims, each judged per parameter point under **the gate** (:func:`judge`): only
  from runs of a non-``smoke`` profile whose training-success check passed, with at least
  ``MIN_SEEDS`` seeds or replicates of the compared quantity (the records' ``samples``), and
  *supported* only when the 95 % t interval of that quantity lies on the claimed side;
  everything else is *not judged*, with the reason. Each verdict names the records it used;
- per notebook and parameter point: its seeds, device and versions, its metrics as a table (mean
  ± sd [95 % CI] over seeds when there are several), and the figures of its newest run.

Nothing is typed in. Metrics named ``<group>__<variant>__<measure>`` (notebook 07:
``digits__synaptic__accuracy``) are shown as one table with a row per group and variant and a
column per measure; every other metric is a row of a ``metric | value`` table.

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import nbformat

from . import results, tables
from .storage import write_atomic, write_text


@dataclass(frozen=True)
class Claim:
    """A paper's claim, the notebook that tests it, and the quantity that decides it.

    ``quantity`` names the notebook's recorded ``samples`` (one value per seed or replicate);
    the claim is that their mean stands in ``relation`` to ``bound``: ``<``, ``>``, ``>=``
    (the 95 % confidence interval lies on that side), ``!=`` (the interval excludes the bound)
    or ``==`` (every value equals the bound: a structural claim, such as zero forgetting).
    """

    paper: str
    text: str
    notebook: str
    quantity: str
    relation: str
    bound: float = 0.0


CLAIMS: tuple[Claim, ...] = (
    Claim("Boeshertz et al. 2023", "Per-task gains adapt a frozen CNN better than a new head alone",
          "01_gain_modulation", "gain_minus_head_only_error", "<"),
    Claim("Boeshertz et al. 2023", "Stochastic comodulation beats deterministic gains",
          "02_stochastic_comodulation", "stochastic_minus_deterministic", "<"),
    Claim("Boeshertz et al. 2023", "Stochastic comodulation adds no learnable parameter",
          "02_stochastic_comodulation", "extra_params_stochastic", "=="),
    Claim("Boeshertz et al. 2023", "Gains help on every backbone studied",
          "03_architecture_study", "worst_backbone_gain_minus_head_only_error", "<"),
    Claim("Vedovati & Ching 2024",
          "Excitability and synapses together pack at least as many tasks as excitability alone",
          "04_rnn_task_packing", "both_minus_excitability_solved", ">="),
    Claim("Vedovati & Ching 2024",
          "Excitability and synapses together pack at least as many tasks as synapses alone",
          "04_rnn_task_packing", "both_minus_synaptic_solved", ">="),
    Claim("Vedovati & Ching 2024",
          "Excitability and synaptic modulation differ in robustness to ambiguous context",
          "05_rnn_ambiguity_and_dynamics", "excitability_minus_synaptic_tolerance", "!="),
    Claim("Vedovati & Ching 2024",
          "The two pathways combined tolerate a mixed context better than excitability alone",
          "05_rnn_ambiguity_and_dynamics", "both_minus_excitability_tolerance", ">"),
    Claim("Vedovati & Ching 2024",
          "The two pathways combined tolerate a mixed context better than synapses alone",
          "05_rnn_ambiguity_and_dynamics", "both_minus_synaptic_tolerance", ">"),
    Claim("Hong & Pavlic 2022", "Learned contexts on fixed random weights forget nothing (task id given)",
          "06_random_weight_continual_learning", "random_weights_forgetting", "=="),
    Claim("Hong & Pavlic 2022", "Accuracy within 5 points of the best continual dense baseline",
          "06_random_weight_continual_learning", "best_dense_minus_random_weights_accuracy", "<", 5.0),
    Claim("Hong & Pavlic 2022",
          "At least 100x less storage per added task than the best continual dense baseline",
          "06_random_weight_continual_learning", "storage_ratio", ">=", 100.0),
)  # fmt: skip

#: fewest seeds (or replicates) a verdict is judged from
MIN_SEEDS = 3
RELATIONS = ("<", ">", ">=", "!=", "==")

#: Row headers of the pivot table of ``<group>__<variant>__<measure>`` metrics, by notebook.
PIVOT_ROW_NAMES: dict[str, tuple[str, str]] = {"07_modulation_families_compared": ("task set", "family")}
_DEFAULT_ROW_NAMES = ("group", "variant")

FIGURES_DIR = "figures"
_FIGURE_NAME = re.compile(r"fig-\d+-\d+\.png")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")


@dataclass(frozen=True)
class Verdict:
    """How a claim fares at one parameter point: ``supported``, ``not supported`` or ``not judged``,
    why (the numbers, or the reason it was not judged), and the records it was judged from."""

    status: str
    detail: str
    runs: tuple[str, ...] = ()
    point: str = ""

    def text(self) -> str:
        return f"{self.status}: {self.detail}" if self.detail else self.status


def _decide(claim: Claim, values: list[float]) -> tuple[str, str]:
    """``(status, detail)`` for ``values`` of ``claim.quantity`` from at least MIN_SEEDS seeds."""
    s = results.stat(values)
    lo, hi = s.ci if s.ci is not None else (s.mean, s.mean)
    numbers = f"mean {s.mean:.4g}, 95 % CI [{lo:.4g}, {hi:.4g}], n = {s.n}"
    b = claim.bound
    if claim.relation == "==":
        ok = all(v == b for v in values)
        return ("supported" if ok else "not supported"), f"{numbers}; every value {'=' if ok else '≠'} {b:g}"
    ok = {"<": hi < b, ">": lo > b, ">=": lo >= b, "!=": hi < b or lo > b}[claim.relation]
    if claim.relation == "!=":
        where = f"the CI {'excludes' if ok else 'includes'} {b:g}"
    else:
        where = f"the CI {'lies' if ok else 'does not lie'} entirely {claim.relation} {b:g}"
    return ("supported" if ok else "not supported"), f"{numbers}; {where}"


def judge(claim: Claim, runs: Sequence[Mapping[str, Any]]) -> Verdict:
    """The verdict on ``claim`` from the ``runs`` of one parameter point of its notebook.

    The gate: only runs of a non-``smoke`` profile, whose training-success check passed, with
    ``claim.quantity`` recorded; at least MIN_SEEDS values in all. Anything else is
    ``not judged`` with the reason.
    """
    if not runs:
        return Verdict("not judged", "not run")
    paths = tuple(r["path"] for r in runs)
    point = f"{runs[0]['profile']} `{runs[0]['key']}`"
    if all(r["profile"] == "smoke" for r in runs):
        return Verdict("not judged", "smoke profile (a test of the code, not of the claim)", paths, point)
    passed = [r for r in runs if (r.get("training") or {}).get("passed")]
    if not passed:
        checks = {(r.get("training") or {}).get("check", "no training check recorded") for r in runs}
        return Verdict(
            "not judged", f"training check failed or missing ({'; '.join(sorted(checks))})", paths, point
        )
    values = [v for r in passed for v in r.get("samples", {}).get(claim.quantity, [])]
    used = tuple(r["path"] for r in passed)
    if not values:
        return Verdict("not judged", f"`{claim.quantity}` not recorded", used, point)
    if len(values) < MIN_SEEDS:
        return Verdict("not judged", f"{len(values)} seed(s), at least {MIN_SEEDS} needed", used, point)
    status, detail = _decide(claim, values)
    return Verdict(status, detail, used, point)


def verdicts(claim: Claim, runs: Sequence[Mapping[str, Any]]) -> list[Verdict]:
    """One verdict per parameter point of ``claim.notebook`` among ``runs`` (``not run`` if none)."""
    mine = [r for r in runs if r["notebook"] == claim.notebook]
    grouped = results.points(mine)
    return [judge(claim, group) for group in grouped.values()] or [judge(claim, [])]


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
    """Where executed notebooks are looked for: ``<results>/notebooks`` (``run``'s default output),
    the ``notebooks/`` folder beside ``<results>`` (``run --in-place``) and ``<results>/sweeps``
    (``sweep``'s default output, one notebook per run)."""
    results_path = Path(results_dir).resolve()
    return [results_path / "notebooks", results_path.parent / "notebooks", results_path / "sweeps"]


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
    candidates = [folder / f"{name}.ipynb" for folder in dirs]  # run's outputs (and --in-place)
    if {"profile", "seed", "key"} <= record.keys():  # a sweep's output of this very run
        candidates += [results.sweep_notebook_path(folder, {**record, "notebook": name}) for folder in dirs]
    for path in candidates:
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
    """A metric as a Markdown table cell (:func:`neuromod_lib.tables.format_value`, ``|`` escaped)."""
    return tables.format_value(value).replace("|", "\\|")


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


def _device_text(rec: Mapping[str, Any]) -> str:
    return f"`{rec['device']}`"


def _joined(runs: Sequence[Mapping[str, Any]], field: Callable[[Mapping[str, Any]], str]) -> str:
    return ", ".join(dict.fromkeys(field(r) for r in runs))


def _run_section(
    runs: Sequence[Mapping[str, Any]],
    figures: Mapping[str, NotebookFigures],
    judged: Sequence[tuple[Claim, Verdict]],
    generated: datetime,
) -> list[str]:
    from .notebooks import CATALOGUE

    by_notebook: dict[str, list[Mapping[str, Any]]] = {}
    for r in runs:
        by_notebook.setdefault(r["notebook"], []).append(r)
    lines = ["## Run", "", f"- generated: {generated.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC"]
    missing = [nb.name for nb in CATALOGUE if nb.name not in by_notebook]
    recorded = f"- notebooks recorded: {len(by_notebook)} ({len(runs)} runs)"
    if missing:
        recorded += f"; not run: {', '.join(f'`{n}`' for n in missing)}"
    lines.append(recorded)
    if runs:
        lines += [
            "- profile: "
            + _across({n: _joined(g, lambda r: f"`{r['profile']}`") for n, g in by_notebook.items()}),
            "- seeds: " + _across({n: _joined(g, lambda r: str(r["seed"])) for n, g in by_notebook.items()}),
            "- device: " + _across({n: _joined(g, _device_text) for n, g in by_notebook.items()}),
            "- versions: " + _across({n: _joined(g, _version_text) for n, g in by_notebook.items()}),
        ]
    counts = {status: sum(v.status == status for _, v in judged) for status in STATUSES}
    lines.append(
        f"- verdicts ({len(judged)}, one per claim and parameter point): "
        + ", ".join(f"{n} {status}" for status, n in counts.items())
    )
    n_figures = sum(len(f.figures) for f in figures.values())
    lines.append(f"- figures: {n_figures}, from the executed notebooks that match their record")
    return lines


STATUSES = ("supported", "not supported", "not judged")


def _stat_cell(value: results.Stat | str) -> Any:
    if not isinstance(value, results.Stat) or value.ci is None:
        return value.mean if isinstance(value, results.Stat) else value
    lo, hi = value.ci
    return f"{value.mean:.4g} ± {value.sd:.3g} [{lo:.4g}, {hi:.4g}]"


def _judged(runs: Sequence[Mapping[str, Any]]) -> list[tuple[Claim, Verdict]]:
    return [(claim, v) for claim in CLAIMS for v in verdicts(claim, runs)]


def render(
    runs: Sequence[Mapping[str, Any]],
    figures: Mapping[str, NotebookFigures] | None = None,
    *,
    generated: datetime | None = None,
    results_dir: str | os.PathLike | None = None,
) -> str:
    """The report as Markdown (see the module docstring); ``runs`` as from :func:`results.load_runs`,
    ``figures`` as from :func:`write_figures`."""
    figures = figures or {}
    judged = _judged(runs)
    lines = [
        "# Reproduction report",
        "",
        "Generated by `python -m neuromod_lib report` from the run records in `results/runs/`; "
        "no number is typed in.",
        "",
        *_run_section(runs, figures, judged, generated or datetime.now(timezone.utc)),
        "",
        "## The papers' claims",
        "",
        f"A claim is judged only from runs of a non-smoke profile that passed their notebook's training "
        f"check, with at least {MIN_SEEDS} seeds (or replicates) of the compared quantity; it is "
        "*supported* only if the 95 % confidence interval of that quantity lies on the claimed side. "
        "Everything else is *not judged*, with the reason.",
        "",
        "| paper | claim | notebook | quantity | parameter point | verdict | runs |",
        "|---|---|---|---|---|---|---|",
    ]
    for claim, v in judged:
        shown = ", ".join(f"`{_relative(p, results_dir)}`" for p in v.runs) or "—"
        quantity = f"`{claim.quantity}` {claim.relation} {claim.bound:g}"
        lines.append(
            f"| {claim.paper} | {claim.text} | `{claim.notebook}` | {quantity} | {v.point or '—'} | "
            f"{v.text()} | {shown} |"
        )
    for (name, profile, key), group in results.points(runs).items():
        seeds = ", ".join(str(r["seed"]) for r in group)
        lines += [
            "",
            f"## `{name}` — profile `{profile}`, parameters `{key}`",
            "",
            f"seeds {seeds}; device {_joined(group, _device_text)}; {_joined(group, _version_text)}",
            "",
        ]
        if len(group) > 1:
            lines += ["Numbers: mean ± sd [95 % CI] over the seeds.", ""]
        stats = (
            group[0]["metrics"]
            if len(group) == 1
            else {k: _stat_cell(v) for k, v in results.aggregate(group).items()}
        )
        lines += metrics_tables(stats, PIVOT_ROW_NAMES.get(name, _DEFAULT_ROW_NAMES))
        found = figures.get(name)
        if found is None or profile != _newest(runs, name)["profile"] or key != _newest(runs, name)["key"]:
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


def _relative(path: str, results_dir: str | os.PathLike | None) -> str:
    if results_dir is None:
        return path
    try:
        return Path(path).resolve().relative_to(Path(results_dir).resolve()).as_posix()
    except ValueError:
        return path


def _newest(runs: Sequence[Mapping[str, Any]], name: str) -> Mapping[str, Any]:
    """The most recently written run of notebook ``name``: the one whose figures the report shows."""
    mine = [r for r in runs if r["notebook"] == name]
    return max(mine, key=lambda r: Path(r["path"]).stat().st_mtime if Path(r["path"]).exists() else 0.0)


def write_report(
    results_dir: str | os.PathLike,
    notebooks_dirs: Sequence[str | os.PathLike] | None = None,
    runs_dirs: Sequence[str | os.PathLike] | None = None,
) -> Path:
    """Write ``<results_dir>/report.md`` and its figures (atomically) from the run records there;
    return its path.

    ``notebooks_dirs``: folders of executed notebooks to take the figures from (default
    :func:`default_notebook_dirs`); figures are those of each notebook's newest run.
    ``runs_dirs``: merge the records of these results folders instead (:func:`results.merge_runs`:
    a sweep run on several machines), and write every run to ``<results_dir>/runs.csv`` too.
    """
    if runs_dirs:
        runs = results.merge_runs(runs_dirs)
        write_text(Path(results_dir) / "runs.csv", results.runs_csv(runs))
    else:
        runs = results.load_runs(results_dir)
    newest = {name: _newest(runs, name) for name in dict.fromkeys(r["notebook"] for r in runs)}
    figures = write_figures(results_dir, newest, notebooks_dirs)
    return write_text(Path(results_dir) / "report.md", render(runs, figures, results_dir=results_dir))
