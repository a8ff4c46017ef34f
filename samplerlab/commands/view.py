"""``samplerlab view``, ``samplerlab report`` and ``samplerlab ratings export``."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from samplerlab.errors import UserInputError

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
DEFAULT_RESULTS_ROOT = Path("results")



def register(cli: typer.Typer) -> None:
    cli.command("view")(view)
    cli.command("report")(report)
    ratings = typer.Typer(no_args_is_help=True, help="Blind pairwise ratings of a run.")
    ratings.command("export")(export)
    cli.add_typer(ratings, name="ratings")


def _require_run(run_dir: Path, finished: bool = False) -> None:
    from samplerlab.results import require_run_dir

    require_run_dir(run_dir, finished=finished)


# ---------------------------------------------------------------------------- view
def view(
    run_dirs: Annotated[list[Path] | None, typer.Argument(
        help="run directories, or folders of runs (default: every run under --results-root)",
        show_default=False)] = None,
    results_root: Annotated[Path, typer.Option(
        "--results-root", help="where to look for runs when no RUN_DIR is given")
    ] = DEFAULT_RESULTS_ROOT,
    host: Annotated[str, typer.Option(
        "--host", help="address to listen on; anything but loopback exposes the runs and "
        "the rating form to the network")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535,
                                      help="port (0: a free one)")] = 0,
    no_browser: Annotated[bool, typer.Option("--no-browser",
                                             help="do not open a browser")] = False,
    export: Annotated[Path | None, typer.Option(
        "--export", help="write one self-contained HTML file of RUN_DIR instead of serving")
    ] = None,
) -> None:
    """Browse runs in a local web app: metrics, plots, samples side by side, tokens, and
    blind pairwise rating (or --export one run as a single HTML file)."""
    from samplerlab.viewer.runs import Catalog

    run_dirs = list(run_dirs or [])
    if export is not None:
        _export(run_dirs, export)
        return
    catalog = Catalog.from_arguments(run_dirs, results_root)
    for problem in catalog.problems:
        err.print(f"[yellow]warning:[/] {escape(str(problem))} (not served)", highlight=False)
    _serve(catalog, host, port, open_browser=not no_browser)


def _export(run_dirs: list[Path], target: Path) -> None:
    from samplerlab.viewer.export import export_html
    from samplerlab.viewer.runs import Catalog

    if len(run_dirs) != 1:
        raise UserInputError("--export writes one run: give exactly one RUN_DIR",
                             field="--export")
    _require_run(run_dirs[0])
    run = Catalog(run_dirs).sorted_runs()[0]
    path = export_html(run, target)
    out.print(f"exported {escape(str(run.path))} to {escape(str(path))}", highlight=False)


def _serve(catalog, host: str, port: int, open_browser: bool) -> None:
    from samplerlab.viewer.app import create_app
    from samplerlab.viewer.serve import bind, is_loopback, serve, url_of

    loopback = is_loopback(host)
    if not loopback:
        err.print(f"[yellow]warning:[/] listening on {escape(host)}, not 127.0.0.1: anyone "
                  "who can reach this address can read these runs and add ratings (the "
                  "viewer has no login)", highlight=False)
    try:
        sock = bind(host, port)
    except OSError as exc:
        raise UserInputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                             field="--host/--port") from None
    # On loopback, refuse requests naming another host (DNS rebinding).
    allowed = ["127.0.0.1", "localhost", "[::1]", "::1", host] if loopback else None
    app = create_app(catalog, allowed_hosts=allowed)
    url = url_of(sock)
    out.print(f"samplerlab viewer: {url}  ({len(catalog.runs)} run(s); Ctrl-C stops it)",
              highlight=False)
    if open_browser:
        threading.Timer(0.5, _open_browser, args=(url,)).start()
    try:
        serve(app, sock)
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()


def _open_browser(url: str) -> None:
    import webbrowser

    try:
        webbrowser.open(url)
    except Exception:  # noqa: BLE001 - no browser is fine: the URL is printed
        print(f"open {url} in a browser", file=sys.stderr)


# -------------------------------------------------------------------------- report
def report(run_dir: Annotated[Path, typer.Argument(help="a run directory")]) -> None:
    """Rewrite RUN_DIR/report.md (metrics, plots, samples, and the human ratings)."""
    from samplerlab.report import write_report

    _require_run(run_dir, finished=True)
    path = write_report(run_dir)
    _print_ratings(run_dir)
    out.print(f"report: {escape(str(path))}", highlight=False)


def _print_ratings(run_dir: Path) -> None:
    from rich.table import Table

    from samplerlab.metrics.scoring import format_value
    from samplerlab.ratings import RatingsStore, format_score, rate_cells, run_labels_and_seed
    from samplerlab.results import RunDir

    store = RatingsStore(RunDir(run_dir).ratings_path)
    judgements = store.judgements() if store.exists() else []
    if not judgements:
        return
    labels, seed = run_labels_and_seed(run_dir)
    table = Table("cell", "judgements", "win rate [95% CI]", "Bradley–Terry [95% CI]",
                  title=f"human ratings ({len(judgements)} judgements)")
    for r in rate_cells(judgements, labels, seed=seed):
        table.add_row(escape(r.label), str(r.games),
                      format_value(r.win_rate, r.win_rate_low, r.win_rate_high),
                      format_score(r.score, r.score_low, r.score_high))
    out.print(table)


# ------------------------------------------------------------------ ratings export
def export(
    run_dir: Annotated[Path, typer.Argument(help="a run directory")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="CSV file to write (default: standard output)")] = None,
) -> None:
    """Write RUN_DIR's pairwise judgements as CSV (one row per judgement)."""
    from samplerlab.ratings import RatingsStore, ratings_csv_text, run_labels_and_seed
    from samplerlab.results import RunDir, atomic_write

    _require_run(run_dir)
    store = RatingsStore(RunDir(run_dir).ratings_path)
    if not store.exists():
        raise UserInputError(f"'{run_dir}' has no {RunDir.RATINGS} yet (rate pairs with "
                             f"samplerlab view {run_dir})")
    judgements = store.judgements()
    text = ratings_csv_text(judgements, run_labels_and_seed(run_dir)[0])
    if output is None:
        sys.stdout.write(text)
        return
    atomic_write(output, text)
    err.print(f"{len(judgements)} judgements written to {escape(str(output))}",
              highlight=False)
