"""Progress bars: silent when off, and a finished notebook bar leaves no view of a closed widget.

In a notebook the bars are ipywidgets. The rule checked here (issue 11): no output that a
frontend keeps may show a widget whose model is closed, or JupyterLab shows "Error displaying
widget: model not found" when the saved notebook is reopened. The unit tests stand in for
the kernel with an IPython shell that records what it publishes (display and
``update_display_data``, replayed as a frontend applies them); one test runs a real kernel
with nbclient, as papermill does, and checks the saved notebook.
"""

from __future__ import annotations

import io
from types import SimpleNamespace

import ipywidgets
import nbformat
import pytest
from IPython.core.displaypub import CapturingDisplayPublisher
from IPython.core.formatters import DisplayFormatter
from IPython.core.interactiveshell import InteractiveShell
from ipywidgets.widgets.widget import _instances as open_models

from neuromod_lib import progress
from neuromod_lib.progress import notebook_bar, progress_bar, progress_enabled, show_bars_in

VIEW = "application/vnd.jupyter.widget-view+json"
STATE = "application/vnd.jupyter.widget-state+json"
NotebookBar = notebook_bar()


@pytest.fixture
def kernel(monkeypatch):
    """A stand-in kernel for IPython's display machinery, recording what it publishes, with bars
    in notebook mode. (No real shell: one would take over ``sys.modules["__main__"]``.)"""
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("NEUROMOD_PROGRESS", raising=False)
    shell = SimpleNamespace(display_formatter=DisplayFormatter(), display_pub=CapturingDisplayPublisher())
    monkeypatch.setattr(InteractiveShell, "initialized", classmethod(lambda cls: True))
    monkeypatch.setattr(InteractiveShell, "instance", classmethod(lambda cls, *args, **kwargs: shell))
    monkeypatch.setattr(progress, "in_kernel", lambda: True)
    return shell.display_pub


def cell_outputs(published: list[dict]) -> list[dict]:
    """The output bundles a frontend keeps: displays appended, updates applied by display id."""
    outputs: list[tuple[str | None, dict]] = []
    for msg in published:
        display_id = (msg["transient"] or {}).get("display_id")
        if msg["update"]:
            outputs = [(i, msg["data"] if i == display_id else data) for i, data in outputs]
        else:
            outputs.append((display_id, msg["data"]))
    return [data for _, data in outputs]


def dead_views(bundles) -> list[str]:
    """Model ids shown by widget views among ``bundles`` whose model is closed."""
    return [b[VIEW]["model_id"] for b in bundles if VIEW in b and b[VIEW]["model_id"] not in open_models]


def test_finished_bar_takes_its_output_back_and_closes_its_models(kernel):
    bar = progress_bar(range(4), desc="steps")
    assert isinstance(bar, NotebookBar) and bar.leave is False
    shown = cell_outputs(kernel.outputs)
    assert len(shown) == 1 and VIEW in shown[0]  # live: a widget view while it runs
    models = [bar.container, *bar.container.children]
    assert all(m.model_id in open_models for m in models)
    assert list(bar) == [0, 1, 2, 3]
    outputs = cell_outputs(kernel.outputs)
    assert outputs == [{"text/plain": ""}]  # the view is replaced, not left behind
    assert dead_views(outputs) == []
    assert all(m.comm is None for m in models)  # no model left open (kernel or saved state)
    assert all(m.layout.comm is None for m in models)


def test_kept_and_failed_bars_stay_with_open_models(kernel):
    for _ in progress_bar(range(2), leave=True):
        pass
    with pytest.raises(RuntimeError):
        for _ in progress_bar(range(3)):
            raise RuntimeError("stop")
    outputs = cell_outputs(kernel.outputs)
    assert [VIEW in o for o in outputs] == [True, True]
    assert dead_views(outputs) == []
    failed = open_models[outputs[1][VIEW]["model_id"]]
    assert failed.children[1].bar_style == "danger"


def test_manual_bar_and_delayed_bar(kernel):
    with progress_bar(total=3, desc="manual") as bar:
        bar.update(3)
    delayed = progress_bar(range(2), delay=3600)  # finishes before it is ever shown
    assert list(delayed) == [0, 1]
    outputs = cell_outputs(kernel.outputs)
    assert outputs == [{"text/plain": ""}] and dead_views(outputs) == []
    assert delayed.container.comm is None


def test_bar_inside_a_panel_shows_in_its_output_widget_and_leaves(kernel):
    out = ipywidgets.Output()
    with show_bars_in(out):
        bar = progress_bar(range(3))
        assert [VIEW in o["data"] for o in out.outputs] == [True]
        assert list(bar) == [0, 1, 2]
    assert out.outputs == () and out.msg_id == ""  # state only: nothing captured
    assert kernel.outputs == []  # and nothing in the cell
    assert bar.container.comm is None


@pytest.mark.parametrize("name, value", [("CI", "true"), ("CI", "1"), ("NEUROMOD_PROGRESS", "0"),
                                         ("NEUROMOD_PROGRESS", "false")])
def test_silent_in_ci_and_when_switched_off(kernel, monkeypatch, capsys, name, value):
    monkeypatch.setenv(name, value)
    assert not progress_enabled()
    bar = progress_bar(range(3), desc="x")
    assert bar.disable and not isinstance(bar, NotebookBar)
    assert list(bar) == [0, 1, 2]
    assert kernel.outputs == []
    assert capsys.readouterr() == ("", "")


def test_outside_a_kernel_a_text_bar_that_clears_itself(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("NEUROMOD_PROGRESS", raising=False)
    assert not progress.in_kernel()
    stream = io.StringIO()
    bar = progress_bar(range(3), desc="x", file=stream)
    assert not isinstance(bar, NotebookBar) and not bar.disable
    assert list(bar) == [0, 1, 2]
    assert "x" in stream.getvalue() and stream.getvalue().endswith("\r")  # leave=False: line cleared


def test_headless_run_saves_no_view_of_a_closed_model(tmp_path):
    """A real kernel driven by nbclient (what papermill runs): finished bars leave no widget view."""
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(
            "from neuromod_lib.progress import progress_bar\n"
            "for _ in progress_bar(range(3), desc='a', progress=True):\n"
            "    for _ in progress_bar(range(2), desc='b', progress=True):\n"
            "        pass\n"
            "print('done')"
        ),
        nbformat.v4.new_code_cell("for _ in progress_bar(range(2), progress=True, leave=True):\n    pass"),
    ])
    resources = {"metadata": {"path": str(tmp_path)}}
    NotebookClient(nb, timeout=120, kernel_name="python3", resources=resources).execute()
    state = nb.metadata.get("widgets", {}).get(STATE, {}).get("state", {})
    first, kept = (cell.outputs for cell in nb.cells)
    assert not [o for o in first if VIEW in o.get("data", {})]  # four finished bars, no view left
    assert first[-1]["text"] == "done\n"
    views = [o["data"][VIEW]["model_id"] for o in kept if VIEW in o.get("data", {})]
    assert len(views) == 1 and set(views) <= set(state)  # the kept bar: its model is saved
