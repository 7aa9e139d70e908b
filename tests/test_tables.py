"""Tables: one cell format, rendered as Markdown in notebooks and as aligned text elsewhere."""

from __future__ import annotations

import pytest

from neuromod_lib import tables


def test_cells_format_booleans_none_numbers_and_text() -> None:
    cells = [tables.format_value(v) for v in (True, False, None, 192040, 0.5, "a\nb")]
    assert cells == ["yes", "no", "—", "192,040", "0.5", "a b"]
    assert tables.format_value(0.12345, ".2f") == "0.12"
    assert tables.format_value(0.25, lambda v: f"{100 * v:.0f} %") == "25 %"
    assert tables.format_value(None, ".2f") == "—"


def test_rows_of_mappings_pick_columns_and_formats() -> None:
    rows = [{"name": "gain", "error": 24.617, "ok": True}, {"name": "film", "error": 23.9}]
    t = tables.table(rows, {"name": "condition", "error": "test error %", "ok": "trained"},
                     formats={"error": ".1f"}, caption="**Errors.**")
    assert t.header == ("condition", "test error %", "trained")
    assert t.rows == (("gain", "24.6", "yes"), ("film", "23.9", "—"))
    assert t.markdown() == (
        "**Errors.**\n\n| condition | test error % | trained |\n|---|---|---|\n"
        "| gain | 24.6 | yes |\n| film | 23.9 | — |"
    )
    assert t._repr_markdown_() == t.markdown()
    assert t.column("test error %") == ["24.6", "23.9"]


def test_text_rendering_aligns_columns() -> None:
    t = tables.table([["a", "1"], ["long name", "22"]], ["name", "n"])
    assert str(t).splitlines() == ["name       n", "---------  --", "a          1", "long name  22"]


def test_markdown_escapes_pipes() -> None:
    assert "a\\|b" in tables.table([["a|b"]], ["x"]).markdown()


def test_bad_rows_and_formats_are_named() -> None:
    with pytest.raises(ValueError, match=r"rows\[1\] has 1 cells; the table has 2 columns"):
        tables.table([["a", "b"], ["c"]], ["x", "y"])
    with pytest.raises(ValueError, match="formats name columns that are not shown: \\['z'\\]"):
        tables.table([], ["x"], formats={"z": ".1f"})
    with pytest.raises(ValueError, match="column 'q' is not in the table; columns: x"):
        tables.table([], ["x"]).column("q")
