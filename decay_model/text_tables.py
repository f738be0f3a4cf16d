"""Tables of text cells, as Markdown for a run folder and as rich tables for the terminal.

Every report lays its numbers out as a header and rows of strings once, then writes them both
ways through these two functions, so the file and the screen show the same cells.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

Section = tuple[Sequence[str], Sequence[Sequence[str]]]
"""A table: its header and its rows of cells."""


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """The lines of a Markdown table."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(row) + " |" for row in rows
    ]


def print_tables(sections: Mapping[str, Section], lines: Sequence[str] = (), width: int = 160) -> None:
    """One rich table per titled section (first column left, the rest right), then ``lines``, on stdout.

    ``lines`` are printed without wrapping, so a long verdict stays one line to copy.
    """
    from rich.console import Console
    from rich.table import Table

    out = Console(width=width)
    for title, (header, rows) in sections.items():
        table = Table(title=title)
        for j, col in enumerate(header):
            table.add_column(col, justify="left" if j == 0 else "right")
        for row in rows:
            table.add_row(*row)
        out.print(table)
    for line in lines:
        out.print(line, soft_wrap=True)
