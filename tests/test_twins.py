"""Every notebook has a py:percent twin beside it, and the two hold the same cells.

The twin (``notebooks/NN_name.py``) is what a review reads; the executed ``.ipynb`` is what nbval,
papermill and the report read. ``make twins`` (jupytext --sync) or ``make notebooks`` brings a pair
back in sync after either side was edited.
"""

from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat
import pytest

from neuromod_lib import notebooks

NOTEBOOKS = sorted(notebooks.NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))


def test_every_notebook_is_found() -> None:
    assert [p.stem for p in NOTEBOOKS] == [nb.name for nb in notebooks.ready()]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_twin_is_in_sync(path: Path) -> None:
    twin = notebooks.twin_path(path)
    assert twin.is_file(), f"{twin.name} is missing: run `make twins`"
    expected = notebooks.twin_text(nbformat.read(path, as_version=4))
    assert twin.read_text(encoding="utf-8") == expected, (
        f"{twin.name} and {path.name} hold different cells: run `make twins` (jupytext --sync keeps the "
        "newer side) and commit both"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_twin_round_trips_to_the_same_cells(path: Path) -> None:
    """Reading the twin back gives the notebook's cells: sources, kinds and tags."""
    nb = nbformat.read(path, as_version=4)
    back = jupytext.read(notebooks.twin_path(path))
    cells = [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in nb.cells]
    assert [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in back.cells] == cells


def test_write_twin_replaces_a_stale_twin(tmp_path: Path) -> None:
    cells = [
        nbformat.v4.new_markdown_cell("# Title"),
        nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    path = tmp_path / "99_demo.ipynb"
    nbformat.write(nb, path)
    notebooks.twin_path(path).write_text("stale\n")
    twin = notebooks.write_twin(path)
    text = twin.read_text()
    assert text.startswith("# %% [markdown]\n# # Title\n")
    assert '# %% tags=["parameters"]\nx = 1' in text
    assert "stale" not in text
