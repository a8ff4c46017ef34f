"""``samplerlab finetune SPEC`` and ``samplerlab data fetch chinese-poetry [DIR]``."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from samplerlab.errors import SamplerlabError, UserInputError

CHINESE_POETRY_REPO = "https://github.com/chinese-poetry/chinese-poetry.git"
FETCHABLE = {"chinese-poetry": CHINESE_POETRY_REPO}


class FetchError(SamplerlabError):
    """A dataset could not be cloned or updated (no network, no git, ...): exit status 1."""


def fetch_git(url: str, target: Path, *, runner=subprocess.run) -> str:
    """Clone ``url`` into ``target`` (shallow), or fast-forward an existing clone.

    Returns ``"cloned"`` or ``"updated"``; raises :class:`FetchError` with git's reason.
    """
    if shutil.which("git") is None:
        raise FetchError("git is not installed; install git, or download the repository "
                         f"by hand from {url} and pass its directory as the dataset's dir")
    if (target / ".git").is_dir():
        cmd, action = ["git", "-C", str(target), "pull", "--ff-only"], "updated"
    elif target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UserInputError(f"'{target}' exists and is not a git clone; choose another "
                             "directory", field="DIR")
    else:
        cmd, action = ["git", "clone", "--depth", "1", url, str(target)], "cloned"
    # No credential prompt: a public clone that asks for one has failed anyway.
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    proc = runner(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        lines = [x.strip() for x in (proc.stderr or proc.stdout or "").splitlines() if x.strip()]
        reason = lines[-1] if lines else f"git exited with status {proc.returncode}"
        raise FetchError(f"could not {'update' if action == 'updated' else 'clone'} {url} "
                         f"into {target}: {reason}; without network, copy the repository from "
                         "another machine into that directory")
    return action


def register(cli: typer.Typer) -> None:
    data_app = typer.Typer(no_args_is_help=True, help="Get and inspect datasets.")
    cli.add_typer(data_app, name="data")

    @data_app.command("fetch")
    def fetch(
        name: Annotated[str, typer.Argument(help="dataset to fetch: chinese-poetry")],
        directory: Annotated[Path | None, typer.Argument(
            metavar="DIR", help="where to clone it (default: ./<name>)")] = None,
    ) -> None:
        """Clone (or update) a dataset's git repository; needs network access."""
        if name not in FETCHABLE:
            raise UserInputError(f"unknown dataset '{name}' (fetchable: "
                                 f"{', '.join(FETCHABLE)})", field="NAME")
        target = directory or Path(name)
        action = fetch_git(FETCHABLE[name], target)
        Console().print(f"{action} {name} in {target}; use it with "
                        f"finetune.dataset: {{source: chinese_poetry, dir: {target}}}")

    @data_app.command("show")
    def show(
        spec: Annotated[Path, typer.Argument(help="experiment spec (YAML)")],
        override: Annotated[list[str] | None, typer.Option(
            "-o", "--override", help="dotted.key=value override (repeatable)")] = None,
        count: Annotated[int, typer.Option("-n", help="texts to show")] = 3,
    ) -> None:
        """Show the first texts of the spec's fine-tuning dataset and its prompts."""
        from samplerlab.datasets.build import build_source
        from samplerlab.prompts import resolve_prompts
        from samplerlab.spec import load_spec

        loaded = load_spec(spec, overrides=override)
        console = Console()
        if loaded.spec.finetune is not None:
            source = build_source(loaded, loaded.spec.finetune.dataset, ("finetune", "dataset"))
            for i, text in enumerate(source.take(count)):
                console.print(f"[bold]finetune[{i}][/] {text[:300]}", markup=True,
                              highlight=False)
        for p in resolve_prompts(loaded)[:count]:
            ref = f"  [dim]→ {p.reference[:200]}[/]" if p.reference else ""
            console.print(f"[bold]prompt[{p.index}][/] {p.text}{ref}", highlight=False)

    @cli.command("finetune")
    def finetune(
        spec: Annotated[Path, typer.Argument(help="spec (YAML) with a finetune: section")],
        override: Annotated[list[str] | None, typer.Option(
            "-o", "--override", help="dotted.key=value override (repeatable)")] = None,
        results_root: Annotated[Path | None, typer.Option(
            "--results-root", help="results root (default: the spec's output.root)")] = None,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
    ) -> None:
        """Fine-tune the spec's model on its dataset (or reuse the cached result)."""
        from samplerlab.finetune import finetune_from_spec
        from samplerlab.spec import load_spec

        loaded = load_spec(spec, overrides=override)
        if loaded.spec.finetune is None:
            raise UserInputError("the spec has no finetune: section; add one (see "
                                 "docs/spec.md) or sample with samplerlab run", file=str(spec),
                                 field="finetune")
        console = Console(stderr=True, quiet=quiet)
        result = finetune_from_spec(loaded,
                                    results_root=results_root or loaded.spec.output.root,
                                    console=console)
        if result.history:
            last = result.history[-1]
            console.print(f"steps {len(result.history)}, loss {result.history[0]['batch_loss']:.4f}"
                          f" → {last['batch_loss']:.4f}, accuracy {last['accuracy']:.4f}")
        Console().print(str(result.preset_dir), highlight=False)
