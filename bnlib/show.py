"""Library source shown in the book as highlighted code.

``show_source(obj)`` returns an :class:`IPython.display.Code` of
``inspect.getsource(obj)``. A notebook that ends a cell with it gets a
highlighted block on the page (``text/html``) and the plain source as the
``text/plain`` output, which nbval compares with the committed notebook
(cell tag ``nbval-check-output``): change the library and CI fails until the
notebooks that show it are re-executed, so page and library cannot drift.
"""

from __future__ import annotations

import inspect
import textwrap

from IPython.display import Code


def show_source(obj) -> Code:
    """The source of a function, class or method as highlighted Python.

    Methods are dedented so that they read as they would at module level.
    """
    return Code(textwrap.dedent(inspect.getsource(obj)), language="python")


class Table:
    """A small result table: an HTML table on the page, aligned text as
    ``text/plain`` (what nbval compares when the cell is checked).

    ``rows`` are sequences of already formatted cells (anything ``str()``
    accepts); ``columns`` the header. Long cells wrap inside the text column
    instead of widening the page.
    """

    def __init__(self, rows, columns, caption: str | None = None):
        self.columns = [str(c) for c in columns]
        self.rows = [[str(cell) for cell in row] for row in rows]
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ValueError(f"row {row} has {len(row)} cells, "
                                 f"the header {len(self.columns)}")
        self.caption = caption

    def __repr__(self) -> str:
        widths = [max(len(c), *(len(r[i]) for r in self.rows)) if self.rows else len(c)
                  for i, c in enumerate(self.columns)]
        lines = [self.caption] if self.caption else []
        lines.append("  ".join(c.ljust(w) for c, w in zip(self.columns, widths)).rstrip())
        lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
                  for row in self.rows]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from html import escape

        head = "".join(f"<th>{escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row)
                       + "</tr>" for row in self.rows)
        caption = f"<caption>{escape(self.caption)}</caption>" if self.caption else ""
        return (f'<table class="bnlib-table">{caption}<thead><tr>{head}</tr></thead>'
                f"<tbody>{body}</tbody></table>")
