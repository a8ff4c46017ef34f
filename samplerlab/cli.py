"""The ``samplerlab`` command line.

Bad input is reported as one line on stderr with exit status 2, without a traceback
unless ``--debug`` is given. A failed cell makes ``run`` exit 1; Ctrl-C exits 130.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from samplerlab import __version__
from samplerlab.errors import PluginWarning, SamplerlabError, UserInputError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Compare text-generation decoding methods on KerasHub GPT-2.")
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

OverrideOpt = Annotated[list[str] | None, typer.Option(
    "-o", "--override", help="dotted.key=value override, validated like the spec (repeatable)")]
PluginOpt = Annotated[list[str] | None, typer.Option(
    "--plugin", help="module or .py file to load as a plugin (runs its code; repeatable)")]


def _load_plugins(plugins: list[str] | None) -> None:
    from samplerlab.plugins import load_plugin

    for target in plugins or []:
        load_plugin(target)


def _print_version(value: bool) -> None:
    if value:
        out.print(f"samplerlab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False,
    version: Annotated[bool, typer.Option("--version", help="print the version", is_eager=True,
                                          callback=_print_version)] = False,
) -> None:
    """Compare text-generation decoding methods on KerasHub GPT-2."""


@app.command()
def run(
    spec: Annotated[Path | None, typer.Argument(help="experiment spec (YAML)")] = None,
    override: OverrideOpt = None,
    plugin: PluginOpt = None,
    resume: Annotated[Path | None, typer.Option(
        "--resume", help="finish an interrupted run directory")] = None,
    results_root: Annotated[Path | None, typer.Option(
        "--results-root", help="where results/<name>/<run-id>/ goes (default: output.root)"),
    ] = None,
    run_id: Annotated[str | None, typer.Option("--run-id", help="run directory name")] = None,
    yes: Annotated[bool, typer.Option(
        "--yes", "-y", help="run a very large sweep without asking")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
    executor: Annotated[str, typer.Option(
        "--executor", help="where cells run: local (one after another, here) or ray (one Ray "
        "task per cell; pip install 'samplerlab[ray]')")] = "local",
    ray_address: Annotated[str | None, typer.Option(
        "--ray-address", help="with --executor ray: local (start a local cluster; default), "
        "auto (join this machine's cluster) or an address such as ray://head:10001")] = None,
    ray_gpus_per_cell: Annotated[float | None, typer.Option(
        "--ray-gpus-per-cell", min=0, help="with --executor ray: GPUs per cell's task "
        "(default: 1 when the cluster has GPUs, else 0; 0.5 packs two cells per GPU)")] = None,
) -> None:
    """Run every sampler configuration of SPEC and write a results directory."""
    from samplerlab.runner import resume_run, run_spec
    from samplerlab.spec import (
        NAME_PATTERN,
        SWEEP_CONFIRM_THRESHOLD,
        count_generations,
        load_spec,
    )

    cell_executor = _make_executor(executor, ray_address, ray_gpus_per_cell)
    if resume is not None:
        if spec is not None:
            raise UserInputError("give either SPEC or --resume RUN_DIR, not both")
        result = _interruptible(lambda: resume_run(resume, progress=not quiet, plugins=plugin,
                                                   executor=cell_executor), resume)
    else:
        if spec is None:
            raise UserInputError("missing SPEC: give a spec file (samplerlab run "
                                 "experiments/quickstart.yaml) or --resume RUN_DIR")
        loaded = load_spec(spec, overrides=override, plugins=plugin)
        if run_id is not None and not re.match(NAME_PATTERN, run_id):
            raise UserInputError("must be letters, digits, '.', '_' or '-' (no path "
                                 "separators)", field="--run-id")
        n = count_generations(loaded)
        if len(loaded.cells) > SWEEP_CONFIRM_THRESHOLD and not yes:
            message = (f"the sweep has {len(loaded.cells)} cells ({n} generations), above the "
                       f"confirmation threshold of {SWEEP_CONFIRM_THRESHOLD} cells")
            if not sys.stdin.isatty():
                raise UserInputError(f"{message}; pass --yes to run it", file=str(spec),
                                     field="samplers")
            if not typer.confirm(f"{message}. Run it?"):
                raise typer.Exit(1)
        holder: dict = {}
        result = _interruptible(lambda: run_spec(loaded, results_root=results_root,
                                                 run_id=run_id, progress=not quiet,
                                                 on_start=holder.__setitem__,
                                                 executor=cell_executor), holder)
    _summary(result)
    if result.failed:
        err.print(f"[red]{len(result.failed)} cell(s) failed:[/] {', '.join(result.failed)} "
                  f"(errors in {result.run_dir / 'manifest.json'})", soft_wrap=True,
                  highlight=False)
        raise typer.Exit(1)


def _make_executor(name: str, address: str | None, gpus: float | None):
    """``None`` for the local loop, or a :class:`~samplerlab.distributed.RayExecutor`."""
    if name not in ("local", "ray"):
        raise UserInputError(f"unknown executor '{name}' (known: local, ray)", field="--executor")
    if name == "local":
        if address is not None or gpus is not None:
            raise UserInputError("--ray-address and --ray-gpus-per-cell need --executor ray",
                                 field="--executor")
        return None
    from samplerlab.distributed import RayExecutor

    ray_executor = RayExecutor(address or "local", gpus_per_cell=gpus)
    ray_executor.connect()  # before any model loads: a wrong address fails fast
    return ray_executor


def _interruptible(fn, where):
    try:
        return fn()
    except KeyboardInterrupt:
        run_dir = where if isinstance(where, Path) else where.get("run_dir")
        if run_dir is not None:
            err.print(f"\n[yellow]interrupted.[/] Finished cells are saved; resume with:\n"
                      f"  samplerlab run --resume {run_dir}", soft_wrap=True, highlight=False)
        else:
            err.print("\n[yellow]interrupted[/] before any cell ran; nothing to resume.")
        raise typer.Exit(130) from None


def _summary(result) -> None:
    out.print(f"[bold]results:[/] {result.run_dir}  ({result.status})")
    try:
        import pandas as pd

        from samplerlab.metrics.scoring import summary_table

        out.print(summary_table(pd.read_csv(result.run_dir / "metrics.csv")
                                .to_dict("records")))
    except (ImportError, FileNotFoundError, ValueError) as exc:
        err.print(f"(no metric table: {exc})")


@app.command()
def validate(
    spec: Annotated[Path, typer.Argument(help="experiment spec (YAML)")],
    override: OverrideOpt = None,
    plugin: PluginOpt = None,
) -> None:
    """Check SPEC (schema, plugins, parameters, files) without loading a model."""
    from samplerlab.spec import count_generations, load_spec

    loaded = load_spec(spec, overrides=override, plugins=plugin)
    out.print(f"{spec}: ok — {len(loaded.cells)} cells, {count_generations(loaded)} "
              "generations")
    for cell in loaded.cells:
        out.print(f"  {cell.id}")


@app.command()
def schema() -> None:
    """Print the spec's JSON Schema."""
    from samplerlab.spec import json_schema

    print(json.dumps(json_schema(), indent=2))


@app.command()
def samplers(plugin: PluginOpt = None) -> None:
    """List every sampler with its plugin, parameters and description."""
    _entries_table("samplers", plugin)


@app.command()
def plugins(plugin: PluginOpt = None) -> None:
    """List the loaded plugins and what each registers."""
    from samplerlab.plugins import get_plugin_manager

    _load_plugins(plugin)
    table = Table("plugin", "source", "provides", title="samplerlab plugins")
    for row in get_plugin_manager().plugin_rows():
        provides = "; ".join(f"{k}: {', '.join(v)}" for k, v in row["provides"].items())
        table.add_row(row["name"], row["source"], provides or "-")
    out.print(table)


def _entries_table(kind: str, plugin: list[str] | None) -> None:
    from samplerlab.plugins import registry

    _load_plugins(plugin)
    table = Table("name", "plugin", "parameters", "description", title=f"samplerlab {kind}")
    for entry in registry(kind).values():
        params = "\n".join(str(p) for p in entry.parameters()) or "-"
        # Text, not markup: "list[int]" is no style tag.
        table.add_row(entry.name, entry.plugin, Text(params), Text(entry.description))
    out.print(table)


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="the prompt")],
    preset: Annotated[str, typer.Option("--preset", help="preset name, directory or "
                                        "samplerlab:NAME")] = "samplerlab:tiny-en",
    sampler: Annotated[str, typer.Option("--sampler", help="sampler name")] = "top_k",
    param: Annotated[list[str] | None, typer.Option(
        "-p", "--param", help="sampler parameter KEY=VALUE (repeatable)")] = None,
    max_length: Annotated[int, typer.Option("--max-length", min=2)] = 200,
    sequence_length: Annotated[int, typer.Option("--sequence-length", min=2)] = 128,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    plugin: PluginOpt = None,
) -> None:
    """Generate from one prompt with one sampler (the tutorial's one-liner)."""
    import yaml

    from samplerlab.models import check_preset_reference, load_model
    from samplerlab.plugins import registry

    _load_plugins(plugin)
    entry = registry("samplers").get_entry(sampler)
    params = {}
    for item in param or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserInputError(f"expected KEY=VALUE, got '{item}' (e.g. -p k=10)",
                                 field="--param")
        params[key.strip()] = yaml.safe_load(value)
    if seed is not None and entry.accepts("seed"):
        params["seed"] = seed
    entry.validate(params)
    try:
        check_preset_reference(preset)
    except UserInputError as exc:
        raise UserInputError(exc.problem, field="--preset") from None
    model = load_model(preset, sequence_length)
    model.causal_lm.compile(sampler=entry.build(**params))
    text = model.causal_lm.generate(prompt, max_length=max_length)
    out.print(text if isinstance(text, str) else str(text), markup=False, highlight=False)


def _register_command_modules() -> None:
    import samplerlab.commands as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"samplerlab.commands.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_command_modules()


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
        code = app(args=argv, prog_name="samplerlab", standalone_mode=False)
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


if __name__ == "__main__":
    sys.exit(main())
