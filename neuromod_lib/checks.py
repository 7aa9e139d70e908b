"""Checks of user input shared by the whole library: one wording, raised before any work.

- :func:`check_fields`: every config dataclass checks its fields with it in ``__post_init__``,
  so a bad value fails when the config is made, with a one-line ``ValueError`` that names the
  class, the field, the bad value and what is allowed;
- :func:`is_number` / :func:`is_int`: the predicates those checks use. NaN, infinities and
  booleans are not numbers here (``True`` would silently mean 1);
- :func:`check_finite`: a tensor input (a context vector, say) holds no NaN or infinity;
- :func:`check_trained`: task ids name tasks a model has already been given;
- :class:`Rule`: what one notebook parameter allows (type, bounds, choices, list entries), with
  the one-line :class:`ParameterError` every notebook config (:mod:`neuromod_lib.configs`) raises.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass
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


# --- notebook parameters ---------------------------------------------------------------------------


class ParameterError(ValueError):
    """A notebook parameter, profile or notebook name that is not allowed."""


_KINDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


@dataclass(frozen=True)
class Rule:
    """What one parameter allows: its ``kind`` (int, float, str, bool, or list with an ``item``
    rule for every entry), inclusive bounds ``low``/``high``, an exclusive lower bound ``above``, a
    closed set ``choices``, a compiled regex ``pattern`` described by ``allowed``. A list holds at
    least one entry and none twice; on the command line it is written with commas (``8,16,32``).
    """

    kind: type
    low: float | None = None
    high: float | None = None
    above: float | None = None
    choices: tuple[Any, ...] | None = None
    pattern: Any = None
    allowed: str | None = None
    item: Rule | None = None

    def describe(self) -> str:
        """What is allowed, in words (used in every error message)."""
        if self.allowed:
            return self.allowed
        if self.item is not None:
            words = self.item.describe().removeprefix("one of ")
            return "a list of " + words.replace("an integer", "integers").replace("a number", "numbers")
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        parts = [_KINDS[self.kind]]
        if self.above is not None:
            parts.append(f"> {self.above}")
        if self.low is not None:
            parts.append(f">= {self.low}")
        if self.high is not None:
            parts.append(f"<= {self.high}")
        return " ".join(parts)

    def check(self, name: str, value: Any) -> Any:
        """``value`` converted to this kind (an int to a float; a list's comma text to a list), or
        ``ParameterError`` naming ``name``, the value and what is allowed."""
        if self.item is not None:
            return self._check_list(name, value)
        bad = ParameterError(f"parameter {name}={value!r} is not allowed; allowed: {self.describe()}")
        if self.kind is bool:
            ok = isinstance(value, bool)
        elif self.kind is int:
            ok = is_int(value)
        elif self.kind is float:
            ok = is_number(value)
            value = float(value) if ok else value
        else:
            ok = isinstance(value, self.kind)
        ok = ok and (self.choices is None or value in self.choices)
        ok = ok and (self.pattern is None or bool(self.pattern.match(value)))
        ok = ok and (self.low is None or value >= self.low) and (self.high is None or value <= self.high)
        if not (ok and (self.above is None or value > self.above)):
            raise bad
        return value

    def _check_list(self, name: str, value: Any) -> list[Any]:
        text = isinstance(value, str)
        entries = [e.strip() for e in value.split(",")] if text else value
        if not isinstance(entries, (list, tuple)) or not entries:
            raise ParameterError(f"parameter {name}={value!r} is not allowed; allowed: {self.describe()}")
        checked: list[Any] = []
        for entry in entries:
            try:
                item = self.item.parse(name, entry) if text else self.item.check(name, entry)
            except ParameterError:
                raise ParameterError(
                    f"parameter {name}={value!r} is not allowed: entry {entry!r}; allowed: {self.describe()}"
                ) from None
            if item in checked:
                raise ParameterError(
                    f"parameter {name}={value!r} lists {entry!r} twice; allowed: {self.describe()}"
                )
            checked.append(item)
        return checked

    def parse(self, name: str, text: str) -> Any:
        """Command-line text (``-p name=text``; a list: ``a,b,c``) converted and checked."""
        if self.item is not None:
            return self._check_list(name, text)
        try:
            if self.kind is bool:
                lowered = text.strip().lower()
                if lowered not in {"true", "false", "1", "0", "yes", "no"}:
                    raise ValueError
                value: Any = lowered in {"true", "1", "yes"}
            else:
                value = self.kind(text)
        except ValueError:
            raise ParameterError(
                f"parameter {name}={text!r} is not {_KINDS[self.kind]}; allowed: {self.describe()}"
            ) from None
        return self.check(name, value)
