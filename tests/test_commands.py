"""Commands are plugins: built-ins and third-party commands register through one hook, and
every listing reads whole in a pipe or as JSON."""

from __future__ import annotations

import json
import textwrap
import warnings

import pytest

from samplerlab.cli import build_app, main
from samplerlab.errors import PluginWarning
from samplerlab.plugins import get_plugin_manager, reset_plugin_manager

LONG_NAME = "a_sampler_with_a_name_much_longer_than_any_table_column_would_like"

LONG_NAME_PLUGIN = f'''
import samplerlab


def make(level: int = 1):
    """A sampler whose name is long."""
    import keras_hub
    return keras_hub.samplers.GreedySampler()


@samplerlab.hookimpl
def register_samplers(register):
    register("{LONG_NAME}", make)
'''

COMMAND_PLUGIN = '''
import samplerlab


def hello(name: str = "world") -> None:
    """Say hello."""
    import typer
    typer.echo(f"hello {name}")


def shadow() -> None:
    """Would replace samplerlab run."""


@samplerlab.hookimpl
def register_commands(cli):
    cli.command("hello")(hello)
    cli.command("run")(shadow)
'''

BROKEN_COMMAND_PLUGIN = '''
import samplerlab


@samplerlab.hookimpl
def register_commands(cli):
    raise RuntimeError("no commands today")
'''


def _load(tmp_path, source: str, name: str) -> None:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    get_plugin_manager().load(str(path))


def _names(app) -> set[str]:
    commands = {c.name or c.callback.__name__ for c in app.registered_commands}
    return commands | {g.name for g in app.registered_groups}


def test_every_built_in_command_comes_from_the_built_in_plugin():
    added = get_plugin_manager().command_names()
    assert {"run", "validate", "schema", "samplers", "metrics", "processors", "plugins",
            "generate", "plot", "compare", "score", "finetune", "data"} <= set(
        added["samplerlab.commands"])


def test_an_installed_plugin_adds_a_command(installed_example, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(installed_example))
    reset_plugin_manager()
    assert main(["top-a", "0.6", "0.2", "0.1", "--a", "0.5"]) == 0
    assert "keeps 2 of 3" in capsys.readouterr().out
    assert main(["plugins", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["example"]["provides"]["commands"] == ["top-a"]


def test_a_plugin_command_runs_and_a_taken_name_keeps_the_built_in(tmp_path, capsys):
    _load(tmp_path, COMMAND_PLUGIN, "greeter")
    with pytest.warns(PluginWarning, match="plugin 'greeter' registered command 'run'"):
        app = build_app()
    assert "hello" in _names(app)
    run = next(c for c in app.registered_commands if (c.name or c.callback.__name__) == "run")
    assert run.callback.__module__ == "samplerlab.commands.run"


def test_a_plugin_whose_command_hook_raises_costs_only_its_commands(tmp_path):
    _load(tmp_path, BROKEN_COMMAND_PLUGIN, "broken_commands")
    with pytest.warns(PluginWarning, match="'broken_commands' failed in register_commands"):
        app = build_app()
    assert {"run", "samplers", "validate"} <= _names(app)


@pytest.mark.parametrize("kind", ["samplers", "metrics", "processors"])
def test_listings_as_json_carry_names_plugins_and_parameters(kind, capsys):
    assert main([kind, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all({"name", "plugin", "parameters", "description"} <= set(r)
                        for r in rows)
    if kind == "samplers":
        top_k = next(r for r in rows if r["name"] == "top_k")
        assert {"name": "k", "type": "int >= 1", "required": False, "default": 5} in \
            top_k["parameters"]


def test_a_piped_listing_never_cuts_a_long_name(tmp_path, capsys):
    _load(tmp_path, LONG_NAME_PLUGIN, "long_names")
    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginWarning)
        assert main(["samplers"]) == 0  # captured: not a terminal, as in `| grep`
    lines = [line for line in capsys.readouterr().out.splitlines() if LONG_NAME in line]
    assert len(lines) == 1 and "long_names" in lines[0]
