"""Exercises: the checker accepts the solution, says 'not done yet' for `...`, and names what is wrong."""

from __future__ import annotations

import re

import pytest
import torch

from neuromod_lib import exercises


def _solve(name: str) -> torch.Tensor:
    namespace = {"ex": exercises.start(name), "torch": torch}
    exec(exercises.EXERCISES[name].solution, namespace)  # noqa: S102 - the library's own solution text
    return namespace["yours"]


@pytest.mark.parametrize("name", exercises.EXERCISES)
def test_the_solution_passes_the_check(name: str) -> None:
    passed, message = exercises.verdict(name, _solve(name))
    assert passed is True, message
    assert message.startswith("**Correct:**")


@pytest.mark.parametrize("name", exercises.EXERCISES)
def test_a_wrong_answer_fails_and_says_why(name: str) -> None:
    answer = _solve(name)
    passed, message = exercises.verdict(name, answer + 0.1)
    assert passed is False and "largest difference" in message
    passed, message = exercises.verdict(name, answer[:1])
    assert passed is False and "shape" in message and "expected" in message
    assert exercises.verdict(name, 3.0) == (False, "**Not yet:** the answer is a float; expected a tensor.")


@pytest.mark.parametrize("name", exercises.EXERCISES)
def test_an_unfinished_exercise_is_not_an_error(name: str) -> None:
    passed, message = exercises.verdict(name, ...)
    assert passed is None and message.startswith("**Not done yet.**")
    assert exercises.check(name, ...).data == message


def test_inputs_are_the_same_every_time() -> None:
    a, b = exercises.start("stochastic_gain"), exercises.start("stochastic_gain")
    assert torch.equal(a.x, b.x) and torch.equal(a.m, b.m) and a.sigma_m == b.sigma_m


def test_the_stochastic_gain_exercise_checks_the_variance_term() -> None:
    """Leaving out -sigma_m^2 c^2 / 2 (a plausible slip) must fail: the inputs make it matter."""
    ex = exercises.start("stochastic_gain")
    assert exercises.verdict("stochastic_gain", ex.x * torch.exp(ex.c * ex.m[:, None]))[0] is False


def test_the_solution_block_is_collapsed_and_holds_the_code() -> None:
    block = exercises.solution("excitability")
    assert block.startswith("<details><summary>") and block.endswith("</details>")
    code = re.search(r"```python\n(.*)\n```", block, re.S).group(1)
    assert code == exercises.EXERCISES["excitability"].solution


def test_unknown_exercise_is_named() -> None:
    with pytest.raises(ValueError, match="exercise 'gain' is unknown; allowed: deterministic_gain, stoch"):
        exercises.start("gain")


#: the notebook that holds each exercise (issue 12: one short exercise in each of 01, 02, 04 and 06)
IN_NOTEBOOK = {
    "01_gain_modulation": "deterministic_gain",
    "02_stochastic_comodulation": "stochastic_gain",
    "04_rnn_task_packing": "excitability",
    "06_random_weight_continual_learning": "random_weights",
}


@pytest.mark.parametrize("notebook", IN_NOTEBOOK)
def test_each_notebook_exercise_is_unfinished_checked_and_solved_one_click_away(notebook: str) -> None:
    import nbformat

    from neuromod_lib import notebooks

    name = IN_NOTEBOOK[notebook]
    nb = nbformat.read(notebooks.NOTEBOOK_DIR / f"{notebook}.ipynb", as_version=4)
    sources = [c.source for c in nb.cells]
    (i,) = [i for i, s in enumerate(sources) if f'nm.exercises.start("{name}")' in s]
    cell = nb.cells[i]
    assert "yours = ...  # your code" in cell.source
    assert cell.source.rstrip().endswith(f'nm.exercises.check("{name}", yours)')
    assert nb.cells[i + 1].cell_type == "markdown" and nb.cells[i + 1].source == exercises.solution(name)
    shown = [o.get("data", {}).get("text/markdown", "") for o in cell.get("outputs", [])]
    assert shown == [exercises.verdict(name, ...)[1]], "the committed notebook shows the unfinished exercise"
