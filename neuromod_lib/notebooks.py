"""The notebooks of the walk: what each asks, and how to execute them with papermill.

Executing is crash-safe: papermill writes into a temporary file; only a run that finished
replaces the target (so a failure never clobbers a committed, executed notebook), and a
failed run is kept beside the results for inspection. Volatile metadata (timestamps,
durations, machine paths) is stripped so that re-running with the same seed changes nothing.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from .profiles import (
    DEFAULT_PROFILE,
    ParameterError,
    check_profile,
    default_results_dir,
    notebook_names,
    resolve,
    spec,
)
from .storage import atomic_path

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"


@dataclass(frozen=True)
class Notebook:
    """One notebook of the walk."""

    name: str
    question: str
    paper: str

    @property
    def path(self) -> Path:
        return NOTEBOOK_DIR / f"{self.name}.ipynb"

    @property
    def ready(self) -> bool:
        """Written and runnable (the file exists and its parameters are specified)."""
        return self.path.is_file() and self.name in notebook_names()


CATALOGUE: tuple[Notebook, ...] = (
    Notebook("00_overview", "What is neuromodulation, what will we build, which device am I on?", "—"),
    Notebook("01_gain_modulation",
             "Can per-task multiplicative gains on a frozen CNN adapt it to many tasks?",
             "Boeshertz, Haimerl & Savin 2023"),
    Notebook("02_stochastic_comodulation",
             "Does a shared random modulator tag task-relevant units and beat deterministic gains?",
             "Boeshertz, Haimerl & Savin 2023"),
    Notebook("03_architecture_study", "How does that depend on the backbone and on where gains act?",
             "Boeshertz, Haimerl & Savin 2023"),
    Notebook("04_rnn_task_packing",
             "Excitability vs synaptic modulation vs both: how many tasks fit in N neurons?",
             "Vedovati & Ching 2024"),
    Notebook("05_rnn_ambiguity_and_dynamics",
             "Which pathway survives ambiguous context, and what do the dynamics look like?",
             "Vedovati & Ching 2024"),
    Notebook("06_random_weight_continual_learning",
             "Can learned contexts on fixed random weights learn task after task with no forgetting?",
             "Hong & Pavlic 2022"),
    Notebook("07_modulation_families_compared", "One table: every modulation family on the same tasks",
             "all three"),
)


def ready() -> list[Notebook]:
    """The notebooks that can be run now, in walk order."""
    return [nb for nb in CATALOGUE if nb.ready]


def select(names: Sequence[str]) -> list[Notebook]:
    """Notebooks named by full name or number prefix (``01``); ``all`` or nothing means every ready one."""
    available = ready()
    if not names or list(names) == ["all"]:
        return available
    chosen: list[Notebook] = []
    for name in names:
        matches = [nb for nb in available if nb.name == name or nb.name.split("_")[0] == name]
        if len(matches) != 1:
            allowed = ", ".join(nb.name for nb in available)
            raise ParameterError(f"notebook={name!r} is unknown or not written yet; allowed: all, {allowed}")
        if matches[0] not in chosen:
            chosen.append(matches[0])
    return chosen


def tidy(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Strip what changes on every run although nothing changed: timings, machine paths and
    the random ids of widget models (renumbered in a fixed order)."""
    meta = nb.metadata.get("papermill", {})
    for key in ("start_time", "end_time", "duration", "input_path", "output_path", "environment_variables"):
        meta.pop(key, None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
        if cell.metadata.get("tags") == []:
            cell.metadata.pop("tags")
    return _renumber_widget_ids(nb)


#: the jupytext format of each notebook's twin (also in pyproject.toml's [tool.jupytext])
TWIN_FORMAT = "py:percent"


def twin_path(path: Path) -> Path:
    """The py:percent twin of a notebook: ``notebooks/NN_name.ipynb`` -> ``notebooks/NN_name.py``."""
    return Path(path).with_suffix(".py")


def twin_text(nb: nbformat.NotebookNode) -> str:
    """The py:percent text of ``nb``'s inputs (outputs never enter the twin), as jupytext writes it
    with this repository's settings (pyproject.toml: notebook metadata dropped, cell tags kept)."""
    import jupytext

    config = jupytext.config.find_jupytext_configuration_file(str(NOTEBOOK_DIR))
    settings = jupytext.config.load_jupytext_configuration_file(config) if config else None
    return jupytext.writes(nb, fmt=TWIN_FORMAT, config=settings)


def write_twin(path: Path) -> Path:
    """Rewrite the twin of the notebook at ``path`` from its inputs (atomically); return the twin."""
    twin = twin_path(path)
    with atomic_path(twin) as tmp:
        tmp.write_text(twin_text(nbformat.read(path, as_version=4)), encoding="utf-8")
    return twin


_WIDGET_ID = re.compile(r"[0-9a-f]{32}")


def _renumber_widget_ids(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Replace ipywidgets' random model ids by ``000...1``, ``000...2``, ... in the order in
    which they are reached from the cell outputs, so a re-run gives the same file."""
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state")
    if not state:
        return nb
    outputs = json.dumps([cell.get("outputs", []) for cell in nb.cells], sort_keys=True)
    queue = [i for i in _WIDGET_ID.findall(outputs) if i in state]
    queue += sorted(set(state) - set(queue), key=lambda i: json.dumps(state[i], sort_keys=True))
    order: dict[str, str] = {}
    while queue:
        old = queue.pop(0)
        if old in order:
            continue
        order[old] = f"{len(order) + 1:032x}"
        refs = re.findall(r"IPY_MODEL_([0-9a-f]{32})", json.dumps(state.get(old, {}), sort_keys=True))
        queue[:0] = [r for r in refs if r not in order]
    text = _WIDGET_ID.sub(lambda m: order.get(m.group(), m.group()), json.dumps(nb, sort_keys=True))
    renumbered = nbformat.reads(text, as_version=4)
    widget_state = renumbered.metadata.widgets["application/vnd.jupyter.widget-state+json"]
    widget_state["state"] = dict(sorted(widget_state["state"].items()))
    return renumbered


def injected_parameters(notebook: Notebook, profile: str, overrides: Mapping[str, Any],
                        results_dir: Path) -> dict[str, Any]:
    """The papermill parameters that differ from the notebook's own defaults.

    Injecting only what differs keeps committed notebooks free of machine paths.
    """
    params: dict[str, Any] = dict(overrides)
    if profile != DEFAULT_PROFILE:
        params["profile"] = profile
    default_results = (NOTEBOOK_DIR / default_results_dir()).resolve()
    if Path(results_dir).resolve() != default_results:
        params["results_dir"] = str(Path(results_dir).resolve())
    return params


class _KnownParameters(logging.Filter):
    """Drop papermill's "Passed unknown parameter" warning for parameters the notebook takes: a
    parameters cell shows only the common ones (:data:`neuromod_lib.profiles.SHOWN`) and
    :func:`~neuromod_lib.profiles.resolve` reads the rest from the notebook's namespace."""

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__()
        self.messages = {f"Passed unknown parameter: {name}" for name in names}

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() not in self.messages


def failed_path(results_dir: Path, name: str) -> Path:
    """Where the partial notebook of a failed run named ``name`` is kept:
    ``<results_dir>/failed/<name>.ipynb``. ``name`` is the notebook's for ``run``,
    ``<notebook>/<profile>/seed-<s>-<key>`` for a sweep's point, so that the failures of one sweep
    never overwrite each other."""
    return Path(results_dir) / "failed" / f"{name}.ipynb"


def execute(notebook: Notebook, output: Path, *, profile: str = DEFAULT_PROFILE,
            overrides: Mapping[str, Any] | None = None, results_dir: Path | None = None,
            progress: bool = False, timeout: int | None = None, failed_as: str | None = None) -> float:
    """Run ``notebook`` with papermill into ``output``; return the wall time in seconds.

    Parameters are validated first (nothing runs on bad input). On failure the partial
    notebook is kept at :func:`failed_path` (named ``failed_as``, default the notebook's name)
    and the error re-raised.
    """
    import papermill as pm

    overrides = dict(overrides or {})
    check_profile(profile)
    resolve(notebook.name, profile, **overrides)
    results_dir = Path(results_dir) if results_dir is not None else (NOTEBOOK_DIR / "../results").resolve()
    params = injected_parameters(notebook, profile, overrides, results_dir)
    known = _KnownParameters([*spec(notebook.name), "profile"])
    papermill_log = logging.getLogger("papermill")
    papermill_log.addFilter(known)
    env_before = os.environ.get("NEUROMOD_PROGRESS")
    os.environ["NEUROMOD_PROGRESS"] = "1" if progress else "0"
    start = time.perf_counter()
    try:
        with atomic_path(output) as tmp:
            tmp_nb = tmp.with_suffix(".ipynb")
            try:
                pm.execute_notebook(
                    str(notebook.path), str(tmp_nb), parameters=params, cwd=str(NOTEBOOK_DIR),
                    kernel_name="python3", language="python", progress_bar=False,
                    request_save_on_cell_execute=False, execution_timeout=timeout,
                )
            except BaseException:
                failed = failed_path(results_dir, failed_as or notebook.name)
                failed.unlink(missing_ok=True)  # a partial notebook of an earlier run would mislead
                if tmp_nb.exists():
                    failed.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(tmp_nb, failed)
                raise
            nbformat.write(tidy(nbformat.read(tmp_nb, as_version=4)), tmp)
            tmp_nb.unlink()
    finally:
        papermill_log.removeFilter(known)
        if env_before is None:
            os.environ.pop("NEUROMOD_PROGRESS", None)
        else:
            os.environ["NEUROMOD_PROGRESS"] = env_before
    return time.perf_counter() - start
