"""``samplerlab plot``, ``samplerlab compare`` and ``samplerlab score``."""

from __future__ import annotations

import json
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

    _require_run(run_dir)
    paths = draw_plots(run_dir)
    report = write_report(run_dir)
    out.print(f"{len(paths)} plots in {run_dir / 'plots'}; report: {report}")


def _require_run(run_dir: Path) -> None:
    from samplerlab.results import require_run_dir

    require_run_dir(run_dir, finished=True)


# ------------------------------------------------------------------------- compare
def _read_samples(run_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Samples of a run grouped by cell id."""
    path = run_dir / "samples.jsonl"
    by_cell: dict[str, list[dict[str, Any]]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                s = json.loads(line)
                by_cell.setdefault(str(s.get("cell_id")), []).append(s)
    return by_cell


def _timings(run_dir: Path) -> dict[str, dict[str, Any]]:
    try:
        manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(c.get("id")): c.get("timing") or {} for c in manifest.get("cells") or []}


def _spec_metrics(run_dir: Path) -> list[Any]:
    import yaml

    from samplerlab.metrics.scoring import TEXT_METRICS

    try:
        spec = yaml.safe_load((run_dir / "spec.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        spec = {}
    metrics = spec.get("metrics") or TEXT_METRICS + ["latency"]
    return [{"name": m} if isinstance(m, str) else m for m in metrics]


def match_cells(frame_a: Any, frame_b: Any) -> list[tuple[dict, dict]]:
    """Pairs of metrics.csv rows: same cell id, else same label (in run A's order)."""
    rows_b = frame_b.to_dict("records")
    by_id = {str(r.get("cell_id")): r for r in rows_b}
    by_label = {str(r.get("label")): r for r in rows_b}
    pairs = []
    for a in frame_a.to_dict("records"):
        b = by_id.get(str(a.get("cell_id"))) or by_label.get(str(a.get("label")))
        if b is not None:
            pairs.append((a, b))
    return pairs


def compare_runs(run_a: Path, run_b: Path, columns: list[str] | None = None,
                 seed: int = 0, n_bootstrap: int = 1000) -> list[dict[str, Any]]:
    """One row per matched cell and metric column: A, B, B - A and its 95% interval.

    Generation metrics get a paired bootstrap over generations with the same prompt and
    sample index; latency resamples each run's timed calls; metrics that need the model
    (perplexity, mauve) are compared without an interval.
    """
    from samplerlab.metrics.base import MetricContext
    from samplerlab.metrics.scoring import MAIN_COLUMNS, build_metrics, paired_difference
    from samplerlab.plots import read_metrics

    frame_a, frame_b = read_metrics(run_a), read_metrics(run_b)
    pairs = match_cells(frame_a, frame_b)
    if not pairs:
        raise UserInputError(f"no cell of '{run_a}' matches a cell of '{run_b}' by id or "
                             "label; compare runs whose specs share samplers and parameters")
    if columns is None:
        columns = [c for c in MAIN_COLUMNS if c in frame_a and c in frame_b]
    metrics = []
    for spec in _spec_metrics(run_a):
        try:
            metric = build_metrics([spec])[0]
        except UserInputError:
            continue  # e.g. mauve without its package: compared from metrics.csv only
        if "model" not in metric.requires and set(metric.columns()) & set(columns):
            metrics.append(metric)
    samples_a, samples_b = _read_samples(run_a), _read_samples(run_b)
    timing_a, timing_b = _timings(run_a), _timings(run_b)
    rows = []
    for a, b in pairs:
        cell_a, cell_b = str(a.get("cell_id")), str(b.get("cell_id"))
        diffs: dict[str, dict[str, float]] = {}
        ctx_b = MetricContext(timing=timing_b.get(cell_b), seed=seed, n_bootstrap=n_bootstrap)
        ctx_a = MetricContext(timing=timing_a.get(cell_a), seed=seed, n_bootstrap=n_bootstrap)
        for metric in metrics:
            if metric.rows == "generation" and not (samples_a.get(cell_a)
                                                    and samples_b.get(cell_b)):
                continue
            diffs.update(paired_difference(samples_b.get(cell_b, []), samples_a.get(cell_a, []),
                                           metric, ctx_b, context_b=ctx_a))
        for col in columns:
            va, vb = _num(a.get(col)), _num(b.get(col))
            d = diffs.get(col, {})
            rows.append({"label": a.get("label"), "cell_id": cell_a, "metric": col, "a": va,
                         "b": vb, "difference": vb - va,
                         "ci_low": d.get("ci_low", math.nan), "ci_high": d.get("ci_high", math.nan),
                         "pairs": d.get("n")})
    return rows


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


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
