"""Progress bars that show in a terminal or notebook and stay silent in CI.

A bar is a help while someone waits for a run; in CI logs and in executed notebooks that
are committed, its many redraws are only noise. So bars are on by default and off when
``$CI`` is ``true``/``1`` or ``$NEUROMOD_PROGRESS`` is ``0``/``false``; an explicit
``progress=True/False`` argument always wins.

In a Jupyter kernel a bar is tqdm's widget bar, with one change: a bar that finishes with
``leave=False`` (the default here) takes its output back. tqdm's own notebook bar only
closes its box widget and hides it, so the cell keeps an output that shows a widget view:
JupyterLab saves that output but not the closed model, and reopening the notebook shows
"Error displaying widget: model not found" where each bar was (issue 11). Here the bar is
displayed with a display id and, when it finishes, that output is replaced by an empty text
(``update_display_data``, which JupyterLab, nbclient and papermill all apply to the saved
notebook) and all of the bar's widget models are closed. So no saved output refers to a
model that is gone, in JupyterLab (live) as under papermill (headless). A bar that stops on
an error stays, red, with its models open (as tqdm does), and so does a ``leave=True`` bar.
Inside :func:`show_bars_in` (a widget panel that trains on demand) a bar is shown in the
panel's output widget instead of the cell, and removed from it when it finishes.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
from collections.abc import Iterable, Iterator
from typing import Any

from tqdm.auto import tqdm

__all__ = ["notebook_bar", "progress_bar", "progress_enabled", "show_bars_in"]

# The output widget that bars opened now are shown in (None: the cell's output).
_SINK: contextvars.ContextVar[Any] = contextvars.ContextVar("neuromod_progress_sink", default=None)


def progress_enabled(progress: bool | None = None) -> bool:
    """Whether to show progress bars: ``progress`` if given, else decided by the environment."""
    if progress is not None:
        return bool(progress)
    if os.environ.get("CI", "").strip().lower() in ("true", "1"):
        return False
    return os.environ.get("NEUROMOD_PROGRESS", "").strip().lower() not in ("0", "false")


def in_kernel() -> bool:
    """Whether this runs in a Jupyter kernel (the test tqdm.autonotebook makes for its widget bar)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with ipykernel and ipywidgets
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in shell.config


@contextlib.contextmanager
def show_bars_in(output: Any) -> Iterator[None]:
    """Show the notebook bars opened in this block in the :class:`ipywidgets.Output` ``output``.

    The bar's view is added to ``output.outputs`` (the widget's state, not captured cell
    output) and removed when the bar finishes.
    """
    token = _SINK.set(output)
    try:
        yield
    finally:
        _SINK.reset(token)


def _close_models(widget: Any) -> None:
    """Close ``widget``, its children and their layout and style models (tqdm closes only the box)."""
    for child in getattr(widget, "children", ()):
        _close_models(child)
    for part in (getattr(widget, "layout", None), getattr(widget, "style", None), widget):
        if part is not None:
            part.close()


@functools.cache
def notebook_bar() -> type:
    """The :class:`NotebookBar` class (built on first use: tqdm's widget bar imports ipywidgets,
    which a run outside Jupyter does not need)."""
    from tqdm.notebook import tqdm_notebook

    class NotebookBar(tqdm_notebook):
        """tqdm's widget bar, shown so that it can take its output back when it finishes.

        It is shown with a display id (or in the output widget of :func:`show_bars_in`); when it
        closes without error and ``leave`` is false, that output is emptied and its models are
        closed, instead of tqdm's closed-but-displayed box (see the module docstring).
        """

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self._sink = _SINK.get()
            self._handle = None  # the DisplayHandle of the cell output, once shown there
            self._view: dict | None = None  # the output added to the sink's outputs, once shown there
            super().__init__(*args, display=False, **kwargs)
            if not self.disable and self.delay <= 0:
                self._show()

        def _show(self) -> None:
            """Display the bar: in the sink's output widget, else in the cell with a display id."""
            from IPython.display import display

            if self.displayed:
                return
            if self._sink is not None:
                self._view = {"output_type": "display_data", "data": self.container._repr_mimebundle_(),
                              "metadata": {}}
                self._sink.outputs = (*self._sink.outputs, self._view)
            else:
                self._handle = display(self.container, display_id=True)
            self.displayed = True

        def _take_back(self) -> None:
            """Remove the bar's output (empty it in the cell, drop it from the sink) and close its models."""
            if self._view is not None:
                self._sink.outputs = tuple(o for o in self._sink.outputs if o != self._view)
            elif self._handle is not None:
                self._handle.update({"text/plain": ""}, raw=True)
            self._view = self._handle = None
            _close_models(self.container)

        def display(self, msg: str | None = None, pos: int | None = None, close: bool = False,
                    bar_style: str | None = None, check_delay: bool = True) -> None:
            """tqdm's redraw, except that ``close`` (a finished ``leave=False`` bar) takes the
            output back, and a delayed bar is shown by :meth:`_show`."""
            if close and self.container.children[1].bar_style != "danger":
                self._take_back()
                return
            if self.container.comm is None:  # already taken back: nothing left to draw on
                return
            super().display(msg, pos, bar_style=bar_style, check_delay=False)
            if check_delay and self.delay > 0:
                self._show()

    return NotebookBar


def progress_bar(
    iterable: Iterable[Any] | None = None,
    *,
    total: int | None = None,
    desc: str | None = None,
    progress: bool | None = None,
    **kw: Any,
) -> tqdm:
    """A bar that disappears when done (``leave=False``) and fits the window.

    In a Jupyter kernel it is a :func:`notebook_bar` (a widget that leaves no output behind
    when done), elsewhere a ``tqdm.auto`` text bar. It is disabled (a plain pass-through)
    unless :func:`progress_enabled` says otherwise; further keyword arguments go to ``tqdm``
    and may override these defaults.
    """
    kw = {"leave": False, "dynamic_ncols": True, **kw}
    enabled = progress_enabled(progress)
    bar = notebook_bar() if enabled and in_kernel() else tqdm
    return bar(iterable, total=total, desc=desc, disable=not enabled, **kw)
