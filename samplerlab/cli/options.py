"""Options shared by several commands."""

from __future__ import annotations

from typing import Annotated

import typer

OverrideOpt = Annotated[list[str] | None, typer.Option(
    "-o", "--override", help="dotted.key=value override, validated like the spec (repeatable)")]
PluginOpt = Annotated[list[str] | None, typer.Option(
    "--plugin", help="module or .py file to load as a plugin (runs its code; repeatable)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]


def load_plugins(plugins: list[str] | None) -> None:
    """Load the ``--plugin`` modules and files (each one runs its code)."""
    from samplerlab.plugins import load_plugin

    for target in plugins or []:
        load_plugin(target)
