"""``samplerlab processors``: the logits processors usable in a ``chain`` sampler."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text


def register(app: typer.Typer) -> None:
    @app.command()
    def processors(plugin: Annotated[list[str] | None, typer.Option(
            "--plugin", help="module or .py file to load as a plugin (runs its code; "
            "repeatable)")] = None) -> None:
        """List every chain processor with its plugin, parameters and description."""
        from samplerlab.plugins import load_plugin, registry

        for target in plugin or []:
            load_plugin(target)
        table = Table("name", "plugin", "parameters", "description",
                      title="samplerlab processors (use in: {name: chain, params: "
                      "{processors: [...]}})")
        for entry in registry("processors").values():
            params = "\n".join(str(p) for p in entry.parameters()) or "-"
            # Text, not markup: "list[int]" is no style tag.
            table.add_row(entry.name, entry.plugin, Text(params), Text(entry.description))
        Console().print(table)
