"""Short exercises: the student writes the few lines of a modulation, the library checks them.

Each exercise (Neuromatch style) is three cells of a notebook:

1. ``ex = nm.exercises.start("stochastic_gain")``: small random inputs (a fixed seed), described;
2. ``yours = ...`` — the student replaces ``...`` with an expression of ``ex``'s tensors — then
   ``nm.exercises.check("stochastic_gain", yours)``, which compares it with the library's own
   function (:mod:`neuromod_lib.modulation`) on the same inputs and says what is wrong;
3. a Markdown cell whose collapsed *Solution* block (one click) holds :attr:`Exercise.solution`.

The committed notebooks keep ``yours = ...``: :func:`check` then answers "not done yet" instead of
failing, so the notebooks still run headless (papermill, nbval); the test suite runs every solution
through :func:`check`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch
from IPython.display import Markdown

from . import modulation

__all__ = ["EXERCISES", "Exercise", "check", "solution", "start"]


@dataclass(frozen=True)
class Exercise:
    """One exercise: its inputs (drawn from a seed), the library's answer, and a solution in code."""

    title: str
    inputs: Callable[[torch.Generator], dict[str, torch.Tensor | float]]
    reference: Callable[..., torch.Tensor]
    solution: str
    shapes: str


def _feature_map(g: torch.Generator) -> dict[str, Any]:
    return {"x": torch.rand(4, 3, 5, 5, generator=g), "c": torch.randn(4, 3, generator=g)}


def _stochastic(g: torch.Generator) -> dict[str, Any]:
    return {
        "x": torch.rand(6, 5, generator=g),
        "c": torch.randn(6, 5, generator=g),
        "m": 1 + 0.5 * torch.randn(6, generator=g),  # m = 1 + xi, as in the predecessor code
        "sigma_m": 0.5,
    }


def _excitability(g: torch.Generator) -> dict[str, Any]:
    context = torch.softmax(torch.randn(4, 3, generator=g), dim=1)  # mixtures of 3 tasks
    return {
        "drive": torch.randn(4, 8, generator=g),
        "context": context,
        "G": 0.3 * torch.randn(3, 8, generator=g),
        "B": 0.3 * torch.randn(3, 8, generator=g),
    }


def _random_weights(g: torch.Generator) -> dict[str, Any]:
    return {
        "h": torch.relu(torch.randn(5, 12, generator=g)),
        "contexts": torch.randn(3, 12, generator=g),
        "strengths": 1 + 0.1 * torch.randn(3, generator=g),
        "W_R": torch.randn(4, 12, generator=g) / 12**0.5,
        "task_ids": torch.tensor([0, 2, 1, 1, 0]),
    }


EXERCISES: dict[str, Exercise] = {
    "deterministic_gain": Exercise(
        title="gain per channel of a feature map",
        inputs=_feature_map,
        reference=lambda x, c: modulation.exp_gain(x, c),
        solution="yours = ex.x * ex.c.exp()[:, :, None, None]",
        shapes="x (B, C, H, W) feature maps, c (B, C) each sample's log gains",
    ),
    "stochastic_gain": Exercise(
        title="stochastic gain of comodulation",
        inputs=_stochastic,
        reference=lambda x, c, m, sigma_m: modulation.exp_gain(
            x, modulation.stochastic_log_gain(c, m, sigma_m)
        ),
        solution="yours = ex.x * (ex.c * ex.m[:, None] - ex.sigma_m**2 * ex.c**2 / 2).exp()",
        shapes="x (B, D) activity, c (B, D) couplings, m (B,) the shared modulator, sigma_m its std",
    ),
    "excitability": Exercise(
        title="the excitability pathway",
        inputs=_excitability,
        reference=lambda drive, context, G, B: modulation.excitability(drive, context, G, B),  # noqa: N803
        solution="yours = (1 + ex.context @ ex.G) * ex.drive + ex.context @ ex.B",
        shapes="drive (B, N) input drive, context (B, K) context vectors, G and B (K, N) per-task tables",
    ),
    "random_weights": Exercise(
        title="learned context on fixed random weights",
        inputs=_random_weights,
        reference=lambda h, contexts, strengths, W_R, task_ids: modulation.random_weight_logits(  # noqa: N803
            h, task_ids, contexts, strengths, W_R
        ),
        solution=(
            "t = ex.task_ids\n"
            "yours = ex.strengths[t, None] * ((ex.h * ex.contexts[t]) @ ex.W_R.T)"
        ),
        shapes=(
            "h (B, H) hidden activity, contexts (T, H) and strengths (T,) per task, W_R (C, H) the fixed "
            "readout, task_ids (B,)"
        ),
    ),
}


def _exercise(name: str) -> Exercise:
    if name not in EXERCISES:
        raise ValueError(f"exercise {name!r} is unknown; allowed: {', '.join(EXERCISES)}")
    return EXERCISES[name]


def _inputs(name: str) -> dict[str, Any]:
    return _exercise(name).inputs(torch.Generator().manual_seed(0))


def start(name: str) -> SimpleNamespace:
    """The inputs of exercise ``name`` as attributes (``ex.x``, ``ex.c``, ...), the same every time."""
    return SimpleNamespace(**_inputs(name))


def verdict(name: str, answer: Any) -> tuple[bool | None, str]:
    """``(passed, message)`` for ``answer``: None when it is still ``...`` (not done yet)."""
    ex = _exercise(name)
    if answer is ...:
        return None, (
            f"**Not done yet.** Replace `...` with your expression of the {ex.title}, then run the cell "
            "again (the solution is one click away, below)."
        )
    expected = ex.reference(**_inputs(name))
    if not isinstance(answer, torch.Tensor):
        return False, f"**Not yet:** the answer is a {type(answer).__name__}; expected a tensor."
    if answer.shape != expected.shape:
        return False, (
            f"**Not yet:** the answer has shape {tuple(answer.shape)}; expected {tuple(expected.shape)} "
            f"({ex.shapes})."
        )
    error = (answer.double() - expected.double()).abs().max().item()
    if not error <= 1e-5 * (1 + expected.abs().max().item()):
        return False, f"**Not yet:** the largest difference from the library's answer is {error:.3g}."
    return True, f"**Correct:** your answer is the library's {ex.title} (`neuromod_lib.modulation`)."


def check(name: str, answer: Any) -> Markdown:
    """Compare ``answer`` with the library's on exercise ``name``'s inputs; say what is right or wrong."""
    return Markdown(verdict(name, answer)[1])


def solution(name: str) -> str:
    """The solution of exercise ``name``, as a collapsed Markdown block (the notebook's solution cell)."""
    code = _exercise(name).solution
    summary = "<summary><b>Solution</b> (click to open)</summary>"
    return f"<details>{summary}\n\n```python\n{code}\n```\n\n</details>"
