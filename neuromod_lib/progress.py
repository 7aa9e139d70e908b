"""Progress bars that show in a terminal or notebook and stay silent in CI.

A bar is a help while someone waits for a run; in CI logs and in executed notebooks that
are committed, its many redraws are only noise. So bars are on by default and off when
``$CI`` is ``true``/``1`` or ``$NEUROMOD_PROGRESS`` is ``0``/``false``; an explicit
``progress=True/False`` argument always wins.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm


def progress_enabled(progress: bool | None = None) -> bool:
    """Whether to show progress bars: ``progress`` if given, else decided by the environment."""
    if progress is not None:
        return bool(progress)
    if os.environ.get("CI", "").strip().lower() in ("true", "1"):
        return False
    return os.environ.get("NEUROMOD_PROGRESS", "").strip().lower() not in ("0", "false")


def progress_bar(
    iterable: Iterable[Any] | None = None,
    *,
    total: int | None = None,
    desc: str | None = None,
    progress: bool | None = None,
    **kw: Any,
) -> tqdm:
    """A ``tqdm.auto`` bar that disappears when done (``leave=False``) and fits the window.

    It is disabled (a plain pass-through) unless :func:`progress_enabled` says otherwise;
    further keyword arguments go to ``tqdm`` and may override these defaults.
    """
    kw = {"leave": False, "dynamic_ncols": True, **kw}
    return tqdm(iterable, total=total, desc=desc, disable=not progress_enabled(progress), **kw)
