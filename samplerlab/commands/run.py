"""``samplerlab run``, ``validate`` and ``schema``: the spec's commands."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from samplerlab.cli.options import OverrideOpt, PluginOpt, load_plugins, with_executor_options
from samplerlab.cli.output import err, out
from samplerlab.errors import UserInputError
from samplerlab.results import RunDir


def register(cli: typer.Typer) -> None:
    # --executor and each registered executor's options (--ray-address, ...) come from
    # the executors' own declarations.
    cli.command("run")(with_executor_options(run))
    cli.command()(validate)
    cli.command()(schema)


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
    executor: str = "local",
    executor_options: dict[str, Any] | None = None,
) -> None:
    """Run every sampler configuration of SPEC and write a results directory."""
    from samplerlab.executors import make_executor
    from samplerlab.runner import resume_run, run_spec
    from samplerlab.spec import (
        NAME_PATTERN,
        SWEEP_CONFIRM_THRESHOLD,
        count_generations,
        load_spec,
    )

    load_plugins(plugin)  # an executor may come from a --plugin
    if resume is not None:
        if spec is not None:
            raise UserInputError("give either SPEC or --resume RUN_DIR, not both")
        cell_executor = make_executor(executor, executor_options)
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
        # After the spec is valid: an executor may connect somewhere (Ray) when made.
        cell_executor = make_executor(executor, executor_options)
        holder: dict = {}
        result = _interruptible(lambda: run_spec(loaded, results_root=results_root,
                                                 run_id=run_id, progress=not quiet,
                                                 on_start=holder.__setitem__,
                                                 executor=cell_executor), holder)
    _summary(result)
    if result.failed:
        err.print(f"[red]{len(result.failed)} cell(s) failed:[/] {', '.join(result.failed)} "
                  f"(errors in {RunDir(result.run_dir).manifest_path})", soft_wrap=True,
                  highlight=False)
        raise typer.Exit(1)


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
        from samplerlab.metrics.scoring import summary_table

        out.print(summary_table(result.metrics.to_dict("records")))
    except (ImportError, FileNotFoundError, ValueError) as exc:
        err.print(f"(no metric table: {exc})")


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


def schema() -> None:
    """Print the spec's JSON Schema."""
    from samplerlab.spec import json_schema

    print(json.dumps(json_schema(), indent=2))
