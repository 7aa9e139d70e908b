"""Interactive panels for the notebooks: sliders over a figure function of :mod:`neuromod_lib.plots`.

Every panel follows one pattern, so later notebooks add a panel in a few lines:

* the figure is drawn by a plain function of :mod:`neuromod_lib.plots` that returns a
  :class:`~matplotlib.figure.Figure` (testable without any widget);
* :func:`_panel` wraps it in an :class:`ipywidgets.interactive` with named sliders
  (``continuous_update=False``: the figure is redrawn when a slider is released, not on
  every pixel of a drag);
* each redraw renders the figure to PNG, puts it in the panel's output widget and closes it,
  so figures do not pile up in pyplot however long the slider is played with. The last
  figure stays available as ``panel.result`` (closed), which is what the tests inspect.

The figure goes into the output widget as *state* (its ``outputs``, as
:meth:`ipywidgets.Output.append_display_data` does), never by capturing the cell's output
(``with output: ... plt.show()``, what ``interactive.update`` does). Captured output is what
made headless runs hang (issue 11): nbclient, which papermill and nbconvert run on, mimics the
output widget of a frontend and, for every captured output, sends the widget's new state back
to the kernel on the shell socket, through a synchronous shadow of the asyncio socket on which
it is at the same time awaiting the cell's ``execute_reply``. When the reply is already there
(a loaded machine: nbclient reads the captured output late), that send consumes the
socket's edge-triggered wake-up, the wait is never woken and the run hangs forever at the
widget cell (nbclient #312, papermill #723). With the figure set as state nothing is captured,
so nbclient sends nothing; and the figure is saved with the notebook's widget state, so the
panel shows it when an executed notebook is reopened.

Panels work headless: they can be built and updated without a display or a kernel.
"""

from __future__ import annotations

import base64
import functools
import io
import traceback
from collections.abc import Callable

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from . import plots
from .progress import show_bars_in

__all__ = [
    "continual_widget",
    "families_widget",
    "gain_widget",
    "lambda_widget",
    "packing_widget",
    "sigma_widget",
    "tuning_widget",
]


def _slider(description: str, low: float, high: float, step: float, value: float) -> widgets.FloatSlider:
    """A float slider that updates on release and reads out two decimals."""
    return widgets.FloatSlider(
        value=value,
        min=low,
        max=high,
        step=step,
        description=description,
        continuous_update=False,
        readout_format=".2f",
    )


def _figure_output(fig: Figure) -> dict:
    """``fig`` as a notebook ``display_data`` output: a PNG cropped as the inline backend crops
    it (``bbox_inches="tight"``) and the figure's text form."""
    png = io.BytesIO()
    fig.savefig(png, format="png", bbox_inches="tight")
    return {
        "output_type": "display_data",
        "data": {"image/png": base64.b64encode(png.getvalue()).decode("ascii"), "text/plain": repr(fig)},
        "metadata": {},
    }


class _Panel(widgets.interactive):
    """An ``interactive`` that writes each redraw into its output widget's state.

    ``f(**values)`` must return a figure (closed or not); ``update`` renders it with
    :func:`_figure_output` and sets it as ``self.out.outputs``. An exception is shown in the
    output widget as an error output (and logged, as ``interactive`` logs it without a kernel).
    Progress bars opened while ``f`` runs (a panel that trains on demand) are shown in the
    output widget too (:func:`neuromod_lib.progress.show_bars_in`). Nothing is captured from
    the cell's output stream: see the module docstring for why.
    """

    def __repr__(self) -> str:
        """``interactive(children=...)``, as before: the text saved beside the widget view
        (what viewers without widgets, such as GitHub, show)."""
        return "interactive" + super().__repr__().removeprefix(type(self).__name__)

    def update(self, *args) -> None:
        """Call ``f`` with the current widget values and show its figure (``args``: ignored,
        for use as a traitlets observer)."""
        self.kwargs = {widget._kwarg: widget.get_interact_value() for widget in self.kwargs_widgets}
        try:
            with show_bars_in(self.out):
                self.result = self.f(**self.kwargs)
            self.out.outputs = (_figure_output(self.result),)
        except Exception as e:
            self.log.warning("Exception in interact callback: %s", e, exc_info=True)
            lines = "".join(traceback.format_exception(type(e), e, e.__traceback__)).splitlines()
            self.out.outputs = (
                {"output_type": "error", "ename": type(e).__name__, "evalue": str(e), "traceback": lines},
            )


def _panel(draw: Callable[..., Figure], **sliders: widgets.ValueWidget) -> widgets.interactive:
    """Wrap a figure-returning ``draw(**values)`` in a :class:`_Panel` with ``sliders``.

    Each keyword names an argument of ``draw`` and gives its widget (in display order). On
    every change, ``draw`` is called with the current values and its figure is closed and
    shown in the panel's output; the closed figure is ``panel.result``.
    """

    def show(**values: float) -> Figure:
        fig = draw(**values)
        plt.close(fig)
        return fig

    # No functools.wraps: ``interactive`` reads the signature (via ``__wrapped__``) to find its
    # arguments, and ``show`` must expose only the sliders given here, not every argument of ``draw``.
    return _Panel(show, **sliders)


def tuning_widget(
    n_neurons: int = 16,
    kappa: float = 2.0,
    *,
    gain: float = 1.0,
    threshold: float = 0.0,
    fraction: float = 1.0,
) -> widgets.interactive:
    """Sliders for gain, threshold and the modulated fraction over :func:`plots.tuning_figure`.

    ``gain`` 0..3 (multiplicative; 1 = baseline), ``threshold`` 0..0.9 (subtractive shift of
    the drive; 0 = baseline) and ``fraction`` 0..1 (share of neurons modulated), all in steps
    of 0.05, starting at the given values (so a notebook can draw the same figure with a plain
    call before the panel). ``n_neurons`` and ``kappa`` are fixed for the panel. The children
    are the three sliders in that order, then the output area.
    """
    draw = functools.partial(plots.tuning_figure, n_neurons=n_neurons, kappa=kappa)
    return _panel(
        draw,
        gain=_slider("gain", 0.0, 3.0, 0.05, gain),
        threshold=_slider("threshold", 0.0, 0.9, 0.05, threshold),
        fraction=_slider("fraction", 0.0, 1.0, 0.05, fraction),
    )


def gain_widget(setup, image: torch.Tensor, site: str, channels: list[int]) -> widgets.interactive:
    """One gain slider (0..3) per channel of ``channels`` at ``site``: the feature maps and the
    pretraining tasks' outputs of :meth:`neuromod_lib.setups.AdaptationSetup.gain_response` redraw live."""
    task_names = list(setup.pretrain_tasks.names)

    def draw(**values: float) -> Figure:
        gains = [values[f"ch{c}"] for c in channels]
        return plots.gain_figure(
            *setup.gain_response(image, site, channels, gains), task_names, channels, gains
        )

    return _panel(draw, **{f"ch{c}": _slider(f"ch {c}", 0.0, 3.0, 0.05, 1.0) for c in channels})


def sigma_widget(couplings: tuple[float, ...] = (0.5, 1.0, 2.0)) -> widgets.interactive:
    """A ``sigma_m`` slider over :func:`plots.gain_distribution`: how the shared modulator's
    strength spreads the gains of units with different couplings (their mean stays exp(c))."""
    draw = functools.partial(plots.gain_distribution, list(couplings))
    return _panel(draw, sigma_m=_slider("sigma_m", 0.0, 0.5, 0.01, 0.1))


def packing_widget(model, result, task_config) -> widgets.interactive:
    """Pick N, pathway and task: one trial's output of that trained network against the target.

    ``model``, ``result``: the stack and :class:`~neuromod_lib.multitask.TrainResult` of
    :func:`neuromod_lib.packing.packing_sweep`; the network shown is the first replicate of that
    size and pathway trained on the most tasks.
    """
    from .multitask import largest_task_network, network_trials

    sizes = sorted(set(model.sizes))
    tasks = max(result.tasks, key=len)
    pathways = list(dict.fromkeys(result.pathways))

    def draw(n: int, pathway: str, task: str) -> Figure:
        s, _ = largest_task_network(result, pathway, sizes=model.sizes, n_neurons=n)
        batch, outputs = network_trials(model, s, task, tasks.index(task), task_config)
        return plots.trial_output(outputs, batch, title=f"N={n}, {pathway} pathway, task {task}")

    return _panel(
        draw,
        n=widgets.Dropdown(options=sizes, value=sizes[-1], description="N"),
        pathway=widgets.Dropdown(options=pathways, value=pathways[-1], description="pathway"),
        task=widgets.Dropdown(options=list(tasks), value=tasks[0], description="task"),
    )


def lambda_widget(panels: dict, lambdas: list[float]) -> widgets.interactive:
    """A λ slider over :func:`plots.state_space`: trajectories and fixed points of the chosen mixture
    ``(1 - λ) e_A + λ e_B`` stand out, the other mixtures stay faint for comparison."""
    step = lambdas[1] - lambdas[0]

    def draw(lam: float) -> Figure:
        index = min(range(len(lambdas)), key=lambda i: abs(lambdas[i] - lam))
        return plots.state_space(panels, lambdas, highlight=index)

    return _panel(draw, lam=_slider("λ", lambdas[0], lambdas[-1], step, lambdas[len(lambdas) // 2]))


def continual_widget(
    compute: Callable, benchmarks: list[str], methods: list[str], *, n_tasks: int, max_tasks: int = 10
) -> widgets.interactive:
    """Choose a benchmark, the number of tasks and a method: its accuracy matrix, trained on demand.

    ``compute(benchmark, n_tasks, method)`` returns a ``ContinualResult`` (the notebook passes a
    cached call of :func:`neuromod_lib.continual.learn_sequence`, so each choice trains once).
    """

    def draw(benchmark: str, n_tasks: int, method: str) -> Figure:
        return plots.accuracy_matrices({method: compute(benchmark, n_tasks, method)}, columns=1)

    return _panel(
        draw,
        benchmark=widgets.Dropdown(options=benchmarks, value=benchmarks[0], description="benchmark"),
        n_tasks=widgets.IntSlider(
            value=n_tasks, min=1, max=max_tasks, description="tasks", continuous_update=False
        ),
        method=widgets.Dropdown(options=methods, value=methods[0], description="method"),
    )


def families_widget(rows: list, task_sets: list[str], families: list[str]) -> widgets.interactive:
    """Choose a task set and the families to compare: their bars from :func:`plots.family_comparison`.

    ``rows``: the notebook's :class:`~neuromod_lib.families.Row` list (already computed: the
    panel only redraws). Selecting no family shows them all.
    """

    def draw(task_set: str, chosen: tuple[str, ...]) -> Figure:
        return plots.family_comparison(rows, task_sets=[task_set], families=list(chosen) or families)

    return _panel(
        draw,
        task_set=widgets.Dropdown(options=task_sets, value=task_sets[0], description="task set"),
        chosen=widgets.SelectMultiple(
            options=families, value=tuple(families), description="families", rows=6
        ),
    )
