"""``samplerlab samplers``, ``metrics``, ``processors``, ``executors`` and ``plugins``: what
is registered."""

from __future__ import annotations

import typer

from samplerlab.cli.options import JsonOpt, PluginOpt, load_plugins
from samplerlab.cli.output import entry_rows, print_listing

ENTRY_COLUMNS = {
    "name": lambda r: r["name"],
    "plugin": lambda r: r["plugin"],
    "parameters": lambda r: "\n".join(_parameter(p) for p in r["parameters"]) or "-",
    "description": lambda r: r["description"],
}
TITLES = {
    "samplers": "samplerlab samplers",
    "metrics": "samplerlab metrics",
    "processors": "samplerlab processors (use in: {name: chain, params: {processors: [...]}})",
    "executors": "samplerlab executors (use with: samplerlab run --executor NAME "
                 "--NAME-PARAMETER VALUE)",
}


def _parameter(p: dict) -> str:
    text = f"{p['name']}: {p['type']}"
    return text if p["required"] else f"{text} = {p['default']!r}"


def register(cli: typer.Typer) -> None:
    for kind in TITLES:
        cli.command(kind)(_listing(kind))
    cli.command()(plugins)


def _listing(kind: str):
    def command(plugin: PluginOpt = None, as_json: JsonOpt = False) -> None:
        load_plugins(plugin)
        print_listing(entry_rows(kind), ENTRY_COLUMNS, title=TITLES[kind], as_json=as_json)

    command.__doc__ = f"List every {kind[:-1]} with its plugin, parameters and description."
    command.__name__ = kind
    return command


def plugins(plugin: PluginOpt = None, as_json: JsonOpt = False) -> None:
    """List the loaded plugins and what each registers (commands included)."""
    from samplerlab.plugins import get_plugin_manager

    load_plugins(plugin)
    columns = {
        "plugin": lambda r: r["name"],
        "source": lambda r: r["source"],
        "provides": lambda r: "; ".join(f"{k}: {', '.join(v)}"
                                        for k, v in r["provides"].items()) or "-",
    }
    print_listing(get_plugin_manager().plugin_rows(), columns, title="samplerlab plugins",
                  as_json=as_json)
