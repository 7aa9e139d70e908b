"""Checks of user input shared by the whole library: one wording, raised before any work.

- :func:`check_fields`: every config dataclass checks its fields with it in ``__post_init__``,
  so a bad value fails when the config is made, with a one-line ``ValueError`` that names the
  class, the field, the bad value and what is allowed;
- :func:`is_number` / :func:`is_int`: the predicates those checks use. NaN, infinities and
  booleans are not numbers here (``True`` would silently mean 1);
- :func:`check_finite`: a tensor input (a context vector, say) holds no NaN or infinity;
- :func:`check_trained`: task ids name tasks a model has already been given.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

import torch

#: ``(field, ok, allowed)``, or ``(field, ok, allowed, wording)``: see :func:`check_fields`
Check = tuple[str, bool, str] | tuple[str, bool, str, str]


def is_number(x: Any) -> bool:
    """Whether ``x`` is a finite real number (not NaN, not infinite, not a bool)."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


def is_int(x: Any) -> bool:
    """Whether ``x`` is an integer (not a bool)."""
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def check_fields(config: Any, checks: Iterable[Check]) -> None:
    """Raise ``ValueError`` for the first check of ``config`` whose ``ok`` is false.

    The message is ``"{Class}.{field}={value!r} is not allowed; allowed: {allowed}"``. A fourth
    item replaces ``"{field}={value!r} is not allowed"`` by a wording of its own, for a rule
    better said in words (``"steps=25 must be a multiple of eval_every=10"``). The ``ok`` values
    are computed before the call, so guard each with the type test first
    (``is_int(n) and n >= 1``): a check must not raise for a value of the wrong type.
    """
    for field, ok, allowed, *wording in checks:
        if not ok:
            what = wording[0] if wording else f"{field}={getattr(config, field)!r} is not allowed"
            raise ValueError(f"{type(config).__name__}.{what}; allowed: {allowed}")


def check_finite(name: str, tensor: torch.Tensor) -> torch.Tensor:
    """Return ``tensor`` if every entry is finite; else ``ValueError`` naming ``name`` and a bad entry."""
    bad = ~torch.isfinite(tensor)
    if bool(bad.any()):
        index = [int(i) for i in bad.nonzero()[0]]
        value = tensor[tuple(index)].item()
        raise ValueError(
            f"{name} contains NaN or infinite values ({value} at index {index}); allowed: finite values"
        )
    return tensor


def trained_range(n_tasks: int) -> str:
    """The ids of ``n_tasks`` tasks as text: ``0..n-1``, or ``none``."""
    return f"0..{n_tasks - 1}" if n_tasks else "none"


def check_trained(task_ids: torch.Tensor, n_tasks: int) -> torch.Tensor:
    """Return ``task_ids`` (a tensor of any shape) if every id is one of the ``n_tasks`` tasks so far.

    Else ``ValueError``: ``"task 5 was never trained; trained tasks: 0..2"`` (the first bad id), so
    asking a continual learner about a task it has not learned fails clearly, not with an
    ``IndexError`` or, for a negative id, silently with another task's answer.
    """
    outside = (task_ids < 0) | (task_ids >= n_tasks)
    if bool(outside.any()):
        bad = int(task_ids[outside].flatten()[0])
        raise ValueError(f"task {bad} was never trained; trained tasks: {trained_range(n_tasks)}")
    return task_ids
