"""Markdown tables, shared by the report and the sections other packages add to it."""

from __future__ import annotations

from typing import Any


def markdown_cell(text: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    """A GitHub Markdown table: ``header``, then one line per row (cells escaped).

    Example:

    ```python
    from samplerlab.results.tables import markdown_table

    table = markdown_table(["cell", "n"], [["greedy", 2], ["top_k", 3]])
    assert table.splitlines() == ["| cell | n |", "|---|---|", "| greedy | 2 |", "| top_k | 3 |"]
    ```
    """
    lines = ["| " + " | ".join(markdown_cell(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(markdown_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
