"""pytest's environment for every test path (tests/ and the nbval runs of notebooks/).

nbval's kernels inherit this process's environment, so what is set here holds for them too:

- no progress bars (a bar would be an output that the committed notebooks do not have);
- ``NEUROMOD_RESULTS_DIR``: the notebooks record their runs into a temporary folder, never into
  your ``results/`` (``tests/test_portability.py`` compares those fresh records with the
  committed references in ``results/reference/``);
- another floating-point path than the one that produced the committed notebooks: torch's
  vectorised kernels are switched to another instruction set (``ATEN_CPU_CAPABILITY``, and
  oneDNN's with ``ONEDNN_MAX_CPU_ISA``), as on a user's machine with another CPU. Trained
  numbers then differ in their last digits, and the suite must still pass: this is how it proves
  that it passes on any CPU. ``NEUROMOD_TEST_FLOAT_PATH=native`` turns the perturbation off.
"""

import json
import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
os.environ["NEUROMOD_PROGRESS"] = "0"
os.environ["NEUROMOD_RESULTS_DIR"] = tempfile.mkdtemp(prefix="neuromod-test-records-")

#: the instruction set the tests switch to, by the one the committed notebooks were made with
_OTHER_PATH = {"AVX512": ("avx2", "AVX2"), "AVX2": ("default", "SSE41"), "DEFAULT": ("avx2", "AVX2")}


def _reference_capability() -> str | None:
    for path in sorted((ROOT / "results" / "reference").glob("*.json")):
        return json.loads(path.read_text()).get("float_path", {}).get("cpu_capability")
    return None


def _perturb_float_path() -> str:
    if os.environ.get("NEUROMOD_TEST_FLOAT_PATH") == "native" or "ATEN_CPU_CAPABILITY" in os.environ:
        return "native (not perturbed)"
    made_with = _reference_capability()
    aten, onednn = _OTHER_PATH.get(made_with or "", ("avx2", "AVX2"))
    os.environ["ATEN_CPU_CAPABILITY"] = aten
    os.environ["ONEDNN_MAX_CPU_ISA"] = onednn
    return f"committed notebooks made with {made_with}; tests run with ATEN_CPU_CAPABILITY={aten}"


FLOAT_PATH = _perturb_float_path()


def pytest_report_header(config):
    return [f"floating-point path: {FLOAT_PATH}", f"notebook records: {os.environ['NEUROMOD_RESULTS_DIR']}"]


def pytest_collection_modifyitems(config, items):
    """Tests marked ``after_notebooks`` run last, after nbval has executed the committed notebooks;
    remember which notebooks nbval runs in this session."""
    config.nbval_notebooks = {item.path.stem for item in items if item.path.suffix == ".ipynb"}
    late = [item for item in items if item.get_closest_marker("after_notebooks")]
    items[:] = [item for item in items if not item.get_closest_marker("after_notebooks")] + late


@pytest.fixture
def nbval_notebooks(request):
    """Names of the notebooks nbval executes in this session (empty when notebooks/ is not collected)."""
    return getattr(request.config, "nbval_notebooks", set())
