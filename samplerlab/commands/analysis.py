"""``samplerlab plot``, ``samplerlab compare`` and ``samplerlab score``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from samplerlab.cli.output import out
from samplerlab.errors import UserInputError


def register(cli: typer.Typer) -> None:
    cli.command("plot")(plot)
    cli.command("compare")(compare)
    cli.command("score")(score)


# ---------------------------------------------------------------------------- plot
def plot(run_dir: Annotated[Path, typer.Argument(help="a run directory")]) -> None:
    """Redraw the plots of RUN_DIR and rewrite its report.md."""
    from samplerlab.plots import draw_plots
    from samplerlab.report import write_report
    from samplerlab.results import RunDir

    _require_run(run_dir)
    paths = draw_plots(run_dir)
    report = write_report(run_dir)
    out.print(f"{len(paths)} plots in {RunDir(run_dir).plots_dir}; report: {report}")


def _require_run(run_dir: Path) -> None:
    from samplerlab.results import require_run_dir

    require_run_dir(run_dir, finished=True)


# ------------------------------------------------------------------------- compare
def compare(
    run_a: Annotated[Path, typer.Argument(help="first run directory (A)")],
    run_b: Annotated[Path, typer.Argument(help="second run directory (B)")],
    metric: Annotated[list[str] | None, typer.Option(
        "--metric", "-m", help="metric column to compare, e.g. rep_4 (repeatable)")] = None,
    seed: Annotated[int, typer.Option("--seed", help="bootstrap seed")] = 0,
    output: Annotated[Path | None, typer.Option("--output", help="also write a CSV")] = None,
) -> None:
    """Compare matching cells of two runs: A, B, and B - A with a 95% bootstrap interval."""
    import pandas as pd

    from samplerlab.metrics.scoring import format_value

    for run in (run_a, run_b):
        _require_run(run)
    from samplerlab.comparison import compare_runs

    rows = compare_runs(run_a, run_b, list(metric) if metric else None, seed=seed)
    table = Table(title=f"B - A   (A = {run_a}, B = {run_b})")
    for name, justify in (("cell", "left"), ("metric", "left"), ("A", "right"), ("B", "right"),
                          ("B - A [95% CI]", "right")):
        table.add_column(name, justify=justify)
    for r in rows:
        significant = not math.isnan(r["ci_low"]) and (r["ci_low"] > 0 or r["ci_high"] < 0)
        diff = format_value(r["difference"], r["ci_low"], r["ci_high"])
        table.add_row(str(r["label"]), r["metric"], format_value(r["a"]), format_value(r["b"]),
                      f"[bold]{diff}[/bold]" if significant else diff)
    out.print(table)
    out.print("bold: the interval excludes 0. Intervals pair generations by prompt and "
              "sample index; latency resamples timed calls.")
    if output is not None:
        pd.DataFrame(rows).to_csv(output, index=False)


# --------------------------------------------------------------------------- score
def scores_table(frame: Any, title: str | None = None) -> Table:
    """One row per metric column, one column per group: value [95% CI]."""
    from samplerlab.metrics.scoring import format_value, metric_columns

    table = Table(title=title, caption="value [95% bootstrap interval]")
    table.add_column("metric", style="bold")
    records = frame.to_dict("records")
    for r in records:
        table.add_column(f"{r['group']} (n={r['n']})", justify="right")
    for col in metric_columns(list(frame.columns)):
        if frame[col].notna().any():
            table.add_row(col, *(format_value(r.get(col), r.get(f"{col}_ci_low"),
                                              r.get(f"{col}_ci_high")) for r in records))
    return table


def score(
    file: Annotated[Path, typer.Argument(help="JSONL file, one generation per line")],
    text_field: Annotated[str, typer.Option("--text-field", help="field with the text")] = "text",
    group_field: Annotated[str | None, typer.Option(
        "--group-field", help="score each value of this field separately")] = None,
    metric: Annotated[list[str] | None, typer.Option(
        "--metric", "-m", help="metric name (repeatable; default: the text metrics)")] = None,
    model: Annotated[str | None, typer.Option(
        "--model", help="preset for perplexity/mauve (name, directory or samplerlab:NAME)")] = None,
    seed: Annotated[int, typer.Option("--seed", help="bootstrap seed")] = 0,
    n_bootstrap: Annotated[int, typer.Option("--bootstrap", min=0,
                                             help="bootstrap replicates")] = 1000,
    output: Annotated[Path | None, typer.Option("--output", help="write the scores as CSV")] = None,
) -> None:
    """Score generations made anywhere (another library, a paper's outputs) with the metrics."""
    from samplerlab.metrics.scoring import build_metrics, score_file

    names = list(metric) if metric else None
    loaded = None
    if names:
        built = build_metrics(names)
        needs_model = [m.name for m in built if "model" in m.requires]
        needs_timing = [m.name for m in built if "timing" in m.requires]
        if needs_timing:
            raise UserInputError(f"{', '.join(needs_timing)} needs the timing of a run; a JSONL "
                                 "file of generations has none", field="--metric")
        if needs_model and model is None:
            raise UserInputError(f"{', '.join(needs_model)} needs a model: pass --model PRESET",
                                 field="--metric")
    if model is not None:
        from samplerlab.models import load_model

        loaded = load_model(model)
    frame = score_file(file, text_field=text_field, group_field=group_field, metrics=names,
                       seed=seed, n_bootstrap=n_bootstrap, model=loaded)
    out.print(scores_table(frame, title=str(file)))
    if output is not None:
        frame.to_csv(output, index=False)
        out.print(f"written: {output}")
