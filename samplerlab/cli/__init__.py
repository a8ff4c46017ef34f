"""The ``samplerlab`` command line.

Every command, the built-in ones included, is added through the ``register_commands``
hook (:mod:`samplerlab.commands` is the built-in plugin), so an installed plugin adds its
own commands the same way. Bad input is reported as one line on stderr with exit status
2, without a traceback unless ``--debug`` is given. A failed cell makes ``run`` exit 1;
Ctrl-C exits 130.
"""

from __future__ import annotations

import sys
import warnings
from typing import Annotated

import typer
from rich.markup import escape

from samplerlab import __version__
from samplerlab.cli.output import err, out
from samplerlab.errors import PluginWarning, SamplerlabError

HELP = "Compare text-generation decoding methods on KerasHub causal LMs."


def _print_version(value: bool) -> None:
    if value:
        out.print(f"samplerlab {__version__}")
        raise typer.Exit()


def _root(
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False,
    version: Annotated[bool, typer.Option("--version", help="print the version", is_eager=True,
                                          callback=_print_version)] = False,
) -> None:
    """Compare text-generation decoding methods on KerasHub causal LMs."""


def build_app() -> typer.Typer:
    """A Typer app with every command the loaded plugins register (built-ins first)."""
    from samplerlab.plugins import get_plugin_manager

    cli = typer.Typer(add_completion=False, no_args_is_help=True,
                      pretty_exceptions_enable=False, help=HELP)
    cli.callback()(_root)
    get_plugin_manager().register_commands(cli)
    return cli


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    if issubclass(category, PluginWarning):
        err.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False,
                  soft_wrap=True)
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


_default_showwarning = warnings.showwarning


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    warnings.showwarning = _show_warning
    try:
        code = build_app()(args=argv, prog_name="samplerlab", standalone_mode=False)
    except SamplerlabError as exc:
        if debug:
            raise
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        err.print("aborted")
        return 130
    except KeyboardInterrupt:
        return 130
    except typer.TyperException as exc:  # usage errors: click's own message, exit 2
        if hasattr(exc, "show"):
            exc.show()
        return getattr(exc, "exit_code", 2)
    return code if isinstance(code, int) else 0


def __getattr__(name: str) -> typer.Typer:
    """``samplerlab.cli.app``: the app as the loaded plugins define it when it is asked for
    (``CliRunner().invoke(app)``).

    Built on access, not at import: importing a command module imports this package, and
    a module-level app built while the plugin manager is still importing the built-in
    commands (a registry first asked for outside the CLI) would have none of them.
    """
    if name == "app":
        return build_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

if __name__ == "__main__":
    sys.exit(main())
