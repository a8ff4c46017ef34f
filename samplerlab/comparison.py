"""Comparing two runs: matching cells, A, B and B - A with a paired 95% bootstrap interval.

``samplerlab compare`` prints it and the viewer's compare page shows it.

Example:

```python
from samplerlab.comparison import compare_runs

rows = compare_runs(run_dir, run_dir)  # run_dir: a finished run, compared with itself
assert rows and all(r["difference"] == 0 or r["difference"] != r["difference"] for r in rows)
```
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from samplerlab.errors import UserInputError
from samplerlab.metrics.base import as_number
from samplerlab.results import RunDir


def _samples_by_cell(run: RunDir) -> dict[str, list[dict[str, Any]]]:
    """Samples of a run grouped by cell id."""
    by_cell: dict[str, list[dict[str, Any]]] = {}
    for s in run.samples():
        by_cell.setdefault(str(s.get("cell_id")), []).append(s)
    return by_cell


def _timings(run: RunDir) -> dict[str, dict[str, Any]]:
    return {str(c.get("id")): c.get("timing") or {} for c in run.cells}


def _spec_metrics(run: RunDir) -> list[Any]:
    from samplerlab.metrics.scoring import TEXT_METRICS

    metrics = run.spec().get("metrics") or TEXT_METRICS + ["latency"]
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

    dir_a, dir_b = RunDir.read(run_a), RunDir.read(run_b)
    frame_a, frame_b = dir_a.read_metrics(), dir_b.read_metrics()
    pairs = match_cells(frame_a, frame_b)
    if not pairs:
        raise UserInputError(f"no cell of '{run_a}' matches a cell of '{run_b}' by id or "
                             "label; compare runs whose specs share samplers and parameters")
    if columns is None:
        columns = [c for c in MAIN_COLUMNS if c in frame_a and c in frame_b]
    metrics = []
    for spec in _spec_metrics(dir_a):
        try:
            metric = build_metrics([spec])[0]
        except UserInputError:
            continue  # e.g. mauve without its package: compared from metrics.csv only
        if "model" not in metric.requires and set(metric.columns()) & set(columns):
            metrics.append(metric)
    samples_a, samples_b = _samples_by_cell(dir_a), _samples_by_cell(dir_b)
    timing_a, timing_b = _timings(dir_a), _timings(dir_b)
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
            va, vb = as_number(a.get(col)), as_number(b.get(col))
            d = diffs.get(col, {})
            rows.append({"label": a.get("label"), "cell_id": cell_a, "metric": col, "a": va,
                         "b": vb, "difference": vb - va,
                         "ci_low": d.get("ci_low", math.nan), "ci_high": d.get("ci_high", math.nan),
                         "pairs": d.get("n")})
    return rows
