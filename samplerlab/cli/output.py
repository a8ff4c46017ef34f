"""Where the CLI writes, and the one renderer of registry listings.

Results go to standard output, messages to standard error. A listing
(``samplerlab samplers``, ``metrics``, ``processors``, ``plugins``) is a rich table in a
terminal, one JSON array with ``--json``, and never truncates a name: piped into ``grep``,
every name is whole on its line. Where standard output is not a terminal (a log, a pipe),
tables are as wide as their content instead of rich's default 80 columns, so no cell name,
heading or number is folded over two lines.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

#: The width of standard output's console where it is not a terminal: wider than any table,
#: so a table takes its content's width and folds nothing (tables are not expanded to it).
UNWRAPPED_WIDTH = 10_000


def stdout_console() -> Console:
    """The console for results: the terminal's width, or no folding in a log or a pipe."""
    if sys.stdout.isatty():
        return Console(soft_wrap=True)
    return Console(soft_wrap=True, width=UNWRAPPED_WIDTH)


out = stdout_console()
err = Console(stderr=True, soft_wrap=True)


def entry_rows(kind: str) -> list[dict[str, Any]]:
    """One JSON-ready row per registered entry of ``kind``: name, plugin, parameters,
    description."""
    from samplerlab.plugins import registry

    return [{"name": e.name, "plugin": e.plugin, "description": e.description,
             "parameters": [{"name": p.name, "type": p.annotation, "required": p.required,
                             "default": None if p.required else p.default}
                            for p in e.parameters()]}
            for e in registry(kind).values()]


def print_listing(rows: list[dict[str, Any]], columns: dict[str, Any], *, title: str,
                  as_json: bool) -> None:
    """Print ``rows`` as JSON or as a table of ``columns`` (header -> function of a row).

    The first column (the name) is never wrapped or cut; when standard output is not a
    terminal the table is made wide enough for every name and plugin.
    """
    if as_json:
        print(json.dumps(rows, indent=2, default=str))
        return
    table = Table(title=title)
    headers = list(columns)
    texts = [[str(fn(row)) for fn in columns.values()] for row in rows]
    widths = [max([len(h), *(max(map(len, t[i].splitlines() or [""])) for t in texts)])
              for i, h in enumerate(headers)]
    for i, header in enumerate(headers):
        whole = i < 2  # names and plugins are looked up: never folded
        table.add_column(header, no_wrap=whole, min_width=widths[i] if whole else None,
                         overflow="fold")
    for row in texts:
        table.add_row(*(Text(cell) for cell in row))  # text, not markup: "list[int]"
    console = out
    if not sys.stdout.isatty():
        console = Console(width=max(120, sum(widths[:2]) + 80), soft_wrap=True)
    console.print(table, highlight=False)
