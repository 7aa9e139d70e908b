"""Outputs that travel: a fresh run of the committed notebooks reproduces their committed records.

nbval executes the committed notebooks in this same session (``notebooks/`` is collected after
``tests/``; these tests are ordered after it by ``conftest.py``), on another floating-point path
than the one that made them, and each notebook writes its record into ``$NEUROMOD_RESULTS_DIR``.
Here each fresh record is compared with the committed reference (``results/reference/``):

- exactly: the notebook, profile and parameters, every boolean and string metric (the verdicts
  and the names they pick) that took the same value on every measured seed;
- within a tolerance: every number that varied with the seed, within the 99 % prediction
  interval of one more seed from the sd measured by ``tests/measure_seed_spread.py``
  (``tests/seed_spread.json``; raised to the notebook's median relative spread where it falls
  below it); every number that did not vary, to 0.01 (:func:`neuromod_lib.results.tolerance`);
- verdicts that took different values on different seeds are reported, not required to agree.

The references themselves must belong to the committed notebooks (same parameters) and the
committed ``results/summary.md`` must be the one they give.
"""

import os
from pathlib import Path

import pytest

from neuromod_lib import notebooks, profiles, results
from neuromod_lib.storage import read_json

ROOT = Path(__file__).resolve().parents[1]
READY = [nb.name for nb in notebooks.ready()]
SPREAD = read_json(ROOT / "tests" / "seed_spread.json")
REFERENCES = results.load_reference(ROOT / "results")


def test_every_notebook_has_a_reference_of_its_committed_parameters():
    assert set(REFERENCES) == set(READY)
    for name, ref in REFERENCES.items():
        committed = profiles.resolve(name, profiles.DEFAULT_PROFILE)
        assert ref["profile"] == profiles.DEFAULT_PROFILE and ref["seed"] == committed.seed
        assert ref["key"] == results.run_key(dict(committed)), f"{name}: reference of other parameters"
        assert ref["training"] is None or set(ref["training"]) == {"passed", "check"}


def test_committed_summary_is_the_one_the_references_give():
    text = (ROOT / "results" / "summary.md").read_text()
    source = "the reference records (`reference/<notebook>.json`) of the committed notebooks"
    assert text == results.summary_markdown(list(REFERENCES.values()), source=source)


def test_every_numeric_metric_has_a_measured_spread():
    for name, ref in REFERENCES.items():
        assert name in SPREAD, f"run tests/measure_seed_spread.py {name[:2]}"
        assert len(SPREAD[name]["seeds"]) >= 3 and ref["seed"] in SPREAD[name]["seeds"]
        numeric = {k for k, v in ref["metrics"].items() if type(v) in (int, float)}
        assert numeric <= set(SPREAD[name]["sd"]), f"{name}: metrics without a measured spread"


@pytest.mark.after_notebooks
@pytest.mark.parametrize("name", READY)
def test_fresh_run_reproduces_the_committed_record(name, nbval_notebooks):
    if name not in nbval_notebooks:
        pytest.skip("needs nbval's run of notebooks/ in the same session (the default `make test`)")
    ref = REFERENCES[name]
    where = (ref["notebook"], ref["profile"], ref["seed"], ref["key"])
    fresh_path = results.record_path(os.environ["NEUROMOD_RESULTS_DIR"], *where)
    assert fresh_path.is_file(), f"nbval ran {name} but it left no record at {fresh_path}"
    fresh = results.read_record(fresh_path)
    problems = results.compare(fresh, ref, SPREAD[name])
    assert not problems, f"{name} under {fresh['float_path']} vs {ref['float_path']}:\n" + "\n".join(problems)


@pytest.mark.after_notebooks
def test_the_fresh_runs_took_another_floating_point_path(nbval_notebooks):
    """The comparison above is a portability test only if the fresh runs computed differently."""
    if not nbval_notebooks or os.environ.get("NEUROMOD_TEST_FLOAT_PATH") == "native":
        pytest.skip("no nbval run in this session, or the perturbation was turned off")
    fresh = results.load_runs(os.environ["NEUROMOD_RESULTS_DIR"])
    assert fresh, "nbval left no records"
    made = {r["float_path"]["cpu_capability"] for r in REFERENCES.values()}
    assert all(r["float_path"]["cpu_capability"] not in made for r in fresh)
