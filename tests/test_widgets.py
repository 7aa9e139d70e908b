"""The tuning figure and its slider panel, headless under the Agg backend."""

from __future__ import annotations

import base64
import logging

import matplotlib

matplotlib.use("Agg")

import ipywidgets  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from neuromod_lib.plots import tuning_figure  # noqa: E402
from neuromod_lib.widgets import _panel, tuning_widget  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _ydata(ax, linestyle: str) -> np.ndarray:
    """Stacked y-data of the lines of ``ax`` drawn with ``linestyle`` ('--' baseline, '-' modulated)."""
    return np.stack([line.get_ydata() for line in ax.lines if line.get_linestyle() == linestyle])


def test_tuning_figure_has_two_panels_with_fixed_limits():
    fig = tuning_figure()
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2
    left, right = fig.axes
    assert _ydata(left, "--").shape == (16, 361) and _ydata(left, "-").shape == (16, 361)
    assert left.get_xlim() == (-180, 180)
    assert left.get_ylim() == right.get_ylim() == pytest.approx((0, 3.15))
    assert tuning_figure(gain=2.0).axes[0].get_ylim() == left.get_ylim()  # slider moves keep the scale


def test_tuning_figure_data_follows_gain_and_threshold():
    base = tuning_figure()
    gained = tuning_figure(gain=2.0)
    raised = tuning_figure(threshold=0.5)
    # Dashed baseline never moves; the solid modulated curves do.
    for fig in (gained, raised):
        np.testing.assert_array_equal(_ydata(fig.axes[0], "--"), _ydata(base.axes[0], "--"))
    np.testing.assert_allclose(_ydata(gained.axes[0], "-"), 2 * _ydata(base.axes[0], "-"))
    assert _ydata(raised.axes[0], "-").max() == pytest.approx(0.5)
    assert (_ydata(raised.axes[0], "-") == 0).sum() > (_ydata(base.axes[0], "-") == 0).sum()
    # The population panel changes too.
    assert not np.array_equal(gained.axes[1].lines[1].get_ydata(), base.axes[1].lines[1].get_ydata())


def test_tuning_figure_modulates_only_the_fraction():
    fig = tuning_figure(gain=2.0, fraction=0.25)
    peaks = _ydata(fig.axes[0], "-").max(axis=1)
    # Preferred directions off the 1-degree plotting grid peak just below the true maximum.
    np.testing.assert_allclose(np.sort(peaks), [1.0] * 12 + [2.0] * 4, rtol=1e-3)


def test_tuning_widget_has_the_documented_sliders():
    w = tuning_widget()
    assert isinstance(w, ipywidgets.interactive)
    sliders = {c.description: c for c in w.children if isinstance(c, ipywidgets.FloatSlider)}
    assert list(sliders) == ["gain", "threshold", "fraction"]
    expected = {"gain": (0.0, 3.0, 1.0), "threshold": (0.0, 0.9, 0.0), "fraction": (0.0, 1.0, 1.0)}
    for name, (low, high, value) in expected.items():
        s = sliders[name]
        assert (s.min, s.max, s.value, s.step) == (low, high, value, 0.05)
        assert s.continuous_update is False
    assert len(w.children) == 4  # three sliders and the output, no sliders for fixed arguments
    assert plt.get_fignums() == []


def test_moving_a_slider_redraws_without_error_or_leaked_figures(caplog):
    w = tuning_widget(n_neurons=8)
    with caplog.at_level(logging.WARNING):
        w.children[0].value = 2.0
        w.children[1].value = 0.25
        w.update()
    assert not [r for r in caplog.records if "Exception in interact callback" in r.getMessage()]
    fig = w.result
    assert isinstance(fig, Figure)
    assert _ydata(fig.axes[0], "-").shape == (8, 361)
    assert _ydata(fig.axes[0], "-").max() == pytest.approx(2.0 * (1 - 0.25))
    assert plt.get_fignums() == []


def test_tuning_widget_starts_at_the_given_values_and_draws_that_figure():
    w = tuning_widget(n_neurons=8, gain=1.5, threshold=0.3, fraction=0.5)
    assert [c.value for c in w.children[:3]] == [1.5, 0.3, 0.5]
    w.update()
    plain = tuning_figure(1.5, 0.3, n_neurons=8, fraction=0.5)
    np.testing.assert_array_equal(_ydata(w.result.axes[0], "-"), _ydata(plain.axes[0], "-"))
    plt.close(plain)


def _png(output: dict) -> bytes:
    assert output["output_type"] == "display_data"
    png = base64.b64decode(output["data"]["image/png"])
    assert png.startswith(b"\x89PNG")
    return png


def test_panel_puts_its_figure_in_the_output_state_and_captures_nothing():
    """The figure is the output widget's state (saved with the notebook), never captured cell
    output: capture is what made nbclient hang (see neuromod_lib.widgets)."""
    w = tuning_widget(n_neurons=8)
    assert w.out.msg_id == ""
    (first,) = w.out.outputs
    w.children[0].value = 2.5
    assert w.out.msg_id == ""
    (second,) = w.out.outputs
    assert _png(first) != _png(second)
    assert repr(w).startswith("interactive(children=(FloatSlider(")
    assert plt.get_fignums() == []


def test_panel_shows_an_error_in_its_output(caplog):
    def draw(x: float) -> Figure:
        raise ValueError("no figure for x")

    with caplog.at_level(logging.WARNING):
        w = _panel(draw, x=ipywidgets.FloatSlider(value=1.0))
    (error,) = w.out.outputs
    assert error["output_type"] == "error"
    assert (error["ename"], error["evalue"]) == ("ValueError", "no figure for x")
    assert "Exception in interact callback" in caplog.text


def test_headless_run_sends_nothing_to_the_kernel_and_saves_the_figure(monkeypatch, tmp_path):
    """nbclient (papermill's executor) runs a panel cell: its output-widget mimic must never send
    state to the kernel on the shell socket (the send that loses the execute_reply wake-up),
    and the saved widget state holds the figure."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.output_widget import OutputWidget

    sent = []
    monkeypatch.setattr(OutputWidget, "send", lambda self, *a, **k: sent.append(a))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "from neuromod_lib.widgets import tuning_widget\ntuning_widget(n_neurons=8, gain=1.5)"
    )])
    resources = {"metadata": {"path": str(tmp_path)}}
    NotebookClient(nb, timeout=120, kernel_name="python3", resources=resources).execute()
    assert sent == []
    state = nb.metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"]
    (view,) = [o for o in nb.cells[0].outputs if "application/vnd.jupyter.widget-view+json" in o["data"]]
    assert view["data"]["application/vnd.jupyter.widget-view+json"]["model_id"] in state
    (output_model,) = [m["state"] for m in state.values() if m["model_name"] == "OutputModel"]
    (figure,) = output_model["outputs"]
    _png(figure)
