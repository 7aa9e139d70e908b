"""Tables that notebooks, the report and the CLI show: one way to format a cell, two renderings.

A notebook ends a cell with a :class:`Table` and Jupyter renders it as Markdown (``text/markdown``);
a terminal, a log or a test reads the same table as aligned plain text (``str(table)``). No
notebook formats a table by hand: the library computes the rows, :func:`table` lays them out.

Cells: booleans read ``yes``/``no``, ``None`` reads ``—``, numbers take the column's format (a
format spec such as ``".1f"`` or a function), strings are escaped for Markdown.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Format = str | Callable[[Any], str] | None


def format_value(value: Any, fmt: Format = None) -> str:
    """One table cell: ``yes``/``no`` for booleans, ``—`` for None, numbers with ``fmt`` (a format spec
    or a function; default: thousands separated), anything else as text on one line."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "—"
    if callable(fmt):
        return fmt(value)
    if isinstance(value, (int, float)):
        return format(value, fmt) if fmt else f"{value:,}"
    return str(value).replace("\n", " ")


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


@dataclass(frozen=True)
class Table:
    """A header and rows of already formatted cells; rendered as Markdown in Jupyter, text elsewhere."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""

    def markdown(self) -> str:
        """GitHub-flavoured Markdown: the caption (if any) as a paragraph, then the table."""
        lines = [f"{self.caption}\n"] if self.caption else []
        lines.append("| " + " | ".join(map(_escape, self.header)) + " |")
        lines.append("|" + "---|" * len(self.header))
        lines += ["| " + " | ".join(map(_escape, row)) + " |" for row in self.rows]
        return "\n".join(lines)

    def text(self) -> str:
        """Aligned plain text (the CLI's tables and the text/plain fallback of a notebook cell)."""
        widths = [max(len(r[i]) for r in (self.header, *self.rows)) for i in range(len(self.header))]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        lines = [self.caption] if self.caption else []
        lines += [fmt.format(*self.header), fmt.format(*("-" * w for w in widths))]
        lines += [fmt.format(*row) for row in self.rows]
        return "\n".join(line.rstrip() for line in lines)

    def column(self, name: str) -> list[str]:
        """The cells of column ``name`` (``ValueError`` naming the columns there are)."""
        if name not in self.header:
            raise ValueError(f"column {name!r} is not in the table; columns: {', '.join(self.header)}")
        i = self.header.index(name)
        return [row[i] for row in self.rows]

    def __str__(self) -> str:
        return self.text()

    def _repr_markdown_(self) -> str:
        return self.markdown()

    def __repr__(self) -> str:
        return self.text()


def table(
    rows: Sequence[Mapping[str, Any]] | Sequence[Sequence[Any]],
    columns: Mapping[str, str] | Sequence[str],
    *,
    formats: Mapping[str, Format] | None = None,
    caption: str = "",
) -> Table:
    """Lay out ``rows`` as a :class:`Table`.

    ``rows``: mappings (cells picked by the keys of ``columns``; a missing key gives ``—``) or
    sequences (cells in column order). ``columns``: ``{key: header}``, or the headers themselves
    (then also the keys). ``formats``: ``{key: format}`` for the cells of that column.
    Raises ``ValueError`` naming ``rows`` if a sequence row has another length than ``columns``.
    """
    columns = dict(columns) if isinstance(columns, Mapping) else {c: c for c in columns}
    formats = dict(formats or {})
    unknown = sorted(set(formats) - set(columns))
    if unknown:
        raise ValueError(f"formats name columns that are not shown: {unknown}; columns: {list(columns)}")
    cells: list[tuple[str, ...]] = []
    for i, row in enumerate(rows):
        if isinstance(row, Mapping):
            values = [row.get(key) for key in columns]
        else:
            values = list(row)
            if len(values) != len(columns):
                raise ValueError(f"rows[{i}] has {len(values)} cells; the table has {len(columns)} columns")
        cells.append(tuple(format_value(v, formats.get(k)) for k, v in zip(columns, values, strict=True)))
    return Table(tuple(columns.values()), tuple(cells), caption)
