"""Scoring a cell: every metric's columns with seeded 95% bootstrap intervals.

The bootstrap resamples generations (rows of each metric's statistics) with
replacement. Replicate ``b`` draws the same rows for every metric of a cell (the draws
depend only on the seed and the number of rows), so intervals are reproducible and
comparable across metrics. Paired differences apply the same draws to two cells whose
generations are matched by ``(prompt_index, sample_index)``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from samplerlab.errors import UserInputError
from samplerlab.metrics.base import Metric, MetricContext, Samples, as_number

TEXT_METRICS = ["rep_n", "diversity", "distinct_n", "self_bleu", "zipf", "length"]
SUMMARY_COLUMNS = ["rep_4", "diversity", "self_bleu", "perplexity", "mauve", "mean_tokens",
                   "tokens_per_s", "distinct_2", "zipf"]
MAIN_COLUMNS = ["rep_2", "rep_4", "diversity", "distinct_2", "self_bleu", "zipf", "perplexity",
                "mauve", "coherence", "mean_tokens", "end_token_share", "steady_p50_s",
                "tokens_per_s"]
#: Shown for a missing value in every table (report, CLI).
MISSING = "–"


# ------------------------------------------------------------------------- metrics
def build_metrics(metric_specs: list[Any]) -> list[Metric]:
    """Build metrics from specs with ``.name`` and ``.params`` (or bare names / dicts)."""
    from samplerlab.plugins import registry

    reg = registry("metrics")
    metrics = []
    for spec in metric_specs:
        if isinstance(spec, str):
            name, params = spec, {}
        elif isinstance(spec, dict):
            name, params = spec["name"], dict(spec.get("params") or {})
        else:
            name, params = spec.name, dict(spec.params or {})
        metrics.append(reg.get_entry(name).build(**params))
    return metrics


def missing_requirements(metric: Metric, samples: Samples, context: MetricContext) -> list[str]:
    """What a metric needs and the scoring call lacks (``model``, ``timing``, ``references``)."""
    missing = []
    if "model" in metric.requires and context.model is None:
        missing.append("model")
    if "timing" in metric.requires and not context.timing:
        missing.append("timing")
    if "references" in metric.requires and not context.human and \
            not any(s.get("reference") for s in samples):
        missing.append("references")
    return missing


# ----------------------------------------------------------------------- bootstrap
def bootstrap_weights(n_rows: int, n_boot: int, seed: int) -> np.ndarray:
    """``w[b, i]``: how often row ``i`` is drawn in replicate ``b`` (drawn with replacement)."""
    rng = np.random.default_rng([seed, n_rows])
    dtype = np.int32 if n_boot * n_rows < 2**31 else np.int64
    draws = rng.integers(0, n_rows, size=(n_boot, n_rows), dtype=dtype)
    draws += (np.arange(n_boot, dtype=dtype) * n_rows)[:, None]
    counts = np.bincount(draws.ravel(), minlength=n_boot * n_rows)
    return counts.reshape(n_boot, n_rows).astype(float)


def _n_rows(stats: Any) -> int:
    return int(stats.shape[0])


def percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """Two-sided percentile interval of bootstrap replicates (NaN replicates ignored)."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return math.nan, math.nan
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def _replicates(metric: Metric, stats: Any, context: MetricContext) -> dict[str, np.ndarray]:
    n = _n_rows(stats)
    n_boot = context.n_bootstrap
    if metric.max_bootstrap is not None:
        n_boot = min(n_boot, metric.max_bootstrap)
    if not metric.bootstrap or n < 2 or n_boot < 1:
        return {}
    key = ("bootstrap_weights", n, context.n_bootstrap, context.seed)
    if key not in context.cache:
        context.cache[key] = bootstrap_weights(n, context.n_bootstrap, context.seed)
    # A capped metric uses the first replicates of the same draws.
    return metric.aggregate_weighted(stats, context.cache[key][:n_boot])


def _centred(replicates: np.ndarray, point: float, metric: Metric) -> np.ndarray:
    """Shift replicates so their median is the point estimate, for metrics that ask.

    Resampling generations with replacement duplicates some of them, which biases
    statistics of pooled frequencies (a Zipf slope steepens when a generation's tokens
    count twice): the plain percentile interval can then miss the estimate itself.
    """
    if getattr(metric, "interval", "percentile") != "bias_corrected" or math.isnan(point):
        return replicates
    finite = replicates[~np.isnan(replicates)]
    return replicates - (np.median(finite) - point) if len(finite) else replicates


def nan_columns(columns: list[str]) -> dict[str, float]:
    """Each column and its interval as NaN: the values of a metric that could not score."""
    out: dict[str, float] = {}
    for col in columns:
        out.update({col: math.nan, f"{col}_ci_low": math.nan, f"{col}_ci_high": math.nan})
    return out


def score_metric(metric: Metric, samples: Samples, context: MetricContext) -> dict[str, float]:
    """One metric's columns with ``<col>_ci_low`` / ``<col>_ci_high``.

    NaN columns when a requirement is missing; exceptions of the metric propagate
    (:func:`score_cell` isolates them).
    """
    out: dict[str, float] = {}
    if missing_requirements(metric, samples, context):
        return nan_columns(metric.columns())
    stats = metric.stats(samples, context)
    point = metric.aggregate(stats)
    reps = _replicates(metric, stats, context)
    for col in metric.columns():
        value = float(point.get(col, math.nan))
        low, high = (percentile_interval(_centred(reps[col], value, metric),
                                         context.confidence)
                     if col in reps else (math.nan, math.nan))
        out.update({col: value, f"{col}_ci_low": low, f"{col}_ci_high": high})
    return out


@dataclasses.dataclass
class CellScores:
    """What scoring one cell gave.

    Attributes:
        values: every column of every metric with its ``_ci_low``/``_ci_high`` (NaN where
            a metric failed or could not run).
        errors: ``{metric name: "ExceptionType: message"}`` for each metric that raised.
        skipped: ``{metric name: reason}`` for each metric whose requirements were missing
            (no model, no timing, no human text).
    """

    values: dict[str, float]
    errors: dict[str, str]
    skipped: dict[str, str]


def score_cell(samples: Samples, metrics: list[Metric],
               context: MetricContext | None = None) -> CellScores:
    """Score one cell, each metric on its own: a metric that raises costs only its columns.

    Example:

    ```python
    from samplerlab.metrics.scoring import build_metrics, score_cell

    scores = score_cell([{"text": "a b c a b c"}], build_metrics(["rep_n", "perplexity"]))
    assert "rep_2" in scores.values
    assert scores.skipped == {"perplexity": "needs model"}  # no model in the context
    ```
    """
    context = dataclasses.replace(context or MetricContext(), cache={})
    values: dict[str, float] = {}
    errors: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for metric in metrics:
        name = getattr(metric, "name", type(metric).__name__)
        try:
            columns = list(metric.columns())
        except Exception as exc:  # noqa: BLE001 - plugin code: isolate the failure
            errors[name] = f"{type(exc).__name__}: {exc}"
            continue
        missing = missing_requirements(metric, samples, context)
        if missing:
            skipped[name] = "needs " + ", ".join(missing)
        try:
            values.update(score_metric(metric, samples, context))
        except Exception as exc:  # noqa: BLE001 - plugin code: isolate the failure
            errors[name] = f"{type(exc).__name__}: {exc}"
            values.update(nan_columns(columns))
    return CellScores(values, errors, skipped)


def score_samples(samples: Samples, metrics: list[Metric],
                  context: MetricContext | None = None) -> dict[str, float]:
    """Score one cell: each metric column plus its 95% bootstrap interval.

    Metrics whose requirements are missing (no model, no timing, no references) give NaN
    columns, and so do metrics that raise; :func:`score_cell` says which and why.

    Example:

    ```python
    from samplerlab.metrics.scoring import build_metrics, score_samples

    samples = [{"text": "a b c a b c"}, {"text": "x y z x y"}]
    row = score_samples(samples, build_metrics(["rep_n"]))
    assert row["rep_2_ci_low"] <= row["rep_2"] <= row["rep_2_ci_high"]  # a 95% interval
    ```
    """
    return score_cell(samples, metrics, context).values


# ------------------------------------------------------------------ paired difference
def _key(sample: dict[str, Any], position: int) -> tuple:
    if sample.get("prompt_index") is None:
        return (position, 0)
    return (int(sample["prompt_index"]), int(sample.get("sample_index") or 0))


def match_samples(samples_a: Samples, samples_b: Samples) -> tuple[Samples, Samples]:
    """The generations of both cells with the same ``(prompt_index, sample_index)``, aligned."""
    b_by_key = {_key(s, i): s for i, s in enumerate(samples_b)}
    pairs = [(s, b_by_key[_key(s, i)]) for i, s in enumerate(samples_a)
             if _key(s, i) in b_by_key]
    pairs.sort(key=lambda p: _key(p[0], 0))
    return [a for a, _ in pairs], [b for _, b in pairs]


def paired_difference(samples_a: Samples, samples_b: Samples, metric: Metric,
                      context: MetricContext | None = None, *,
                      context_b: MetricContext | None = None) -> dict[str, dict[str, float]]:
    """``metric(A) - metric(B)`` per column with a bootstrap interval.

    For metrics over generations, only generations present in both cells (same prompt
    and sample index) are used, and each replicate resamples the same pairs on both
    sides, so shared prompt difficulty cancels. Latency rows are calls, which do not
    pair, so its sides are resampled independently. ``context_b`` (default: ``context``)
    carries cell B's timing.

    Returns:
        ``{column: {"a", "b", "difference", "ci_low", "ci_high", "n"}}``.
    """
    context = dataclasses.replace(context or MetricContext(), cache={})
    context_b = dataclasses.replace(context_b or context, cache={})
    paired = metric.rows == "generation"
    if paired:
        samples_a, samples_b = match_samples(samples_a, samples_b)
    nan_row = {"a": math.nan, "b": math.nan, "difference": math.nan, "ci_low": math.nan,
               "ci_high": math.nan, "n": len(samples_a)}
    if (missing_requirements(metric, samples_a, context)
            or missing_requirements(metric, samples_b, context_b)
            or (paired and not samples_a)):
        return {col: dict(nan_row) for col in metric.columns()}
    stats_a = metric.stats(samples_a, context)
    stats_b = metric.stats(samples_b, context_b)
    point_a, point_b = metric.aggregate(stats_a), metric.aggregate(stats_b)
    reps_a = _replicates(metric, stats_a, context)
    if paired:
        reps_b = _replicates(metric, stats_b, context) if reps_a else {}
    else:
        reps_b = _replicates(metric, stats_b, dataclasses.replace(context_b,
                                                                  seed=context.seed + 1))
    out = {}
    for col in metric.columns():
        a, b = float(point_a.get(col, math.nan)), float(point_b.get(col, math.nan))
        low = high = math.nan
        if col in reps_a and col in reps_b:
            k = min(len(reps_a[col]), len(reps_b[col]))
            low, high = percentile_interval(reps_a[col][:k] - reps_b[col][:k],
                                            context.confidence)
        out[col] = {"a": a, "b": b, "difference": a - b, "ci_low": low, "ci_high": high,
                    "n": len(samples_a)}
    return out


# ---------------------------------------------------------------------- score a file
def read_jsonl(path: str | Path, text_field: str) -> list[dict[str, Any]]:
    """Records of a JSONL file; each must be an object with a string ``text_field``."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"file '{path}' does not exist")
    records = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise UserInputError(f"not valid JSON: {exc}", file=str(path),
                                     line=number) from None
            if not isinstance(record, dict):
                raise UserInputError("each line must be a JSON object", file=str(path),
                                     line=number)
            if not isinstance(record.get(text_field), str):
                fields = ", ".join(sorted(record)) or "none"
                raise UserInputError(f"no string field '{text_field}' (fields: {fields}); "
                                     "choose one with --text-field", file=str(path),
                                     line=number)
            records.append(record)
    if not records:
        raise UserInputError(f"file '{path}' holds no records; it needs one JSON object per "
                             "line")
    return records


def score_file(path: str | Path, text_field: str = "text", group_field: str | None = None,
               metrics: list[Any] | None = None, *, seed: int = 0, n_bootstrap: int = 1000,
               model: Any = None) -> Any:
    """Score generations made anywhere: one row per group (or one row) of a JSONL file.

    Args:
        path: a JSONL file, one generation per line.
        text_field: the field holding the generated text.
        group_field: score each value of this field separately (e.g. ``sampler``).
        metrics: metric names or specs (default: the text metrics, which need no model).
        seed: bootstrap seed.
        n_bootstrap: bootstrap replicates.
        model: a :class:`samplerlab.models.LoadedModel` for perplexity.

    Returns:
        A pandas DataFrame with ``group``, ``n`` and every metric column with its interval.
    """
    import pandas as pd

    records = read_jsonl(path, text_field)
    built = build_metrics(metrics or TEXT_METRICS)
    groups: dict[str, list[dict[str, Any]]] = {}
    for i, record in enumerate(records):
        if group_field is not None and group_field not in record:
            fields = ", ".join(sorted(record)) or "none"
            raise UserInputError(f"no field '{group_field}' for --group-field; choose one of: "
                                 f"{fields}", file=str(path), line=i + 1)
        group = str(record[group_field]) if group_field is not None else "all"
        sample = dict(record)
        sample["text"] = record[text_field]
        groups.setdefault(group, []).append(sample)
    context = MetricContext(model=model, seed=seed, n_bootstrap=n_bootstrap)
    rows, errors, skipped = [], {}, {}
    for name, items in groups.items():
        scores = score_cell(items, built, context)
        rows.append({"group": name, "n": len(items), **scores.values})
        errors.update({f"{name}: {m}": e for m, e in scores.errors.items()})
        skipped.update(scores.skipped)
    frame = pd.DataFrame(rows)
    # What could not be scored, for the caller to report (the columns are NaN).
    frame.attrs.update(metric_errors=errors, skipped=skipped)
    return frame


# --------------------------------------------------------------------------- tables
def format_value(value: Any, low: Any = None, high: Any = None) -> str:
    """``0.523 [0.501, 0.548]``; three significant decimals, ``–`` for missing values."""
    def fmt(x: Any) -> str:
        if not _is_number(x):
            return MISSING
        x = float(x)
        if math.isinf(x):
            return "∞" if x > 0 else "−∞"
        return plain_number(x) if abs(x) >= 1000 or (x != 0 and abs(x) < 0.001) else f"{x:.3f}"

    text = fmt(value)
    if text != MISSING and fmt(low) != MISSING and fmt(high) != MISSING:
        text += f" [{fmt(low)}, {fmt(high)}]"
    return text


def metric_columns(columns: list[str]) -> list[str]:
    """Metric columns of a metrics table, in table order (``_ci_low``/``_ci_high`` excluded)."""
    skip = {"cell_id", "cell_index", "label", "sampler", "params", "status", "group", "n",
            "error", "source"}
    return [c for c in columns if c not in skip and not c.endswith(("_ci_low", "_ci_high"))]


def plain_number(x: float) -> str:
    """Three significant digits without an exponent (``6490``, ``12.3``, ``0.0000123``):
    tables are read by people and by log greps, and ``6.49e+03`` suits neither."""
    if abs(x) >= 1000:
        return f"{x:.0f}"  # a rate's integer part stays whole
    return np.format_float_positional(x, precision=3, unique=False, fractional=False, trim="-")


def _compact(value: Any) -> str:
    return plain_number(float(value)) if _is_number(value) else MISSING


def _compact_cell(value: Any, low: Any, high: Any) -> str:
    """Value, and below it (dim) ± half the interval's width: narrow enough for 80 columns."""
    text = _compact(value)
    if text != MISSING and _is_number(low) and _is_number(high):
        text += f"\n[dim]±{_compact((float(high) - float(low)) / 2)}[/dim]"
    return text


def summary_table(rows: list[dict[str, Any]], columns: list[str] | None = None,
                  title: str | None = None) -> Any:
    """A rich table of the main metrics per cell (or group): value and ± half its 95% CI.

    Args:
        rows: dicts as in ``metrics.csv`` (``label`` or ``group``, ``status``, metric
            columns with ``_ci_low``/``_ci_high``).
        columns: metric columns to show (default: the main ones present, at most 6, so the
            table fits a terminal; ``metrics.csv`` and ``report.md`` hold every column).
        title: table title.

    Example:

    ```python
    from rich.console import Console
    from samplerlab.metrics.scoring import summary_table

    rows = [{"label": "greedy", "status": "done", "rep_4": 20.0, "rep_4_ci_low": 15.0,
             "rep_4_ci_high": 26.0}]
    console = Console(record=True)
    console.print(summary_table(rows))
    assert "±5.5" in console.export_text()  # 20 ± half the interval, under "rep_4"
    ```
    """
    from rich.table import Table

    present = metric_columns(list(dict.fromkeys(k for r in rows for k in r)))
    if columns is None:
        columns = [c for c in SUMMARY_COLUMNS if c in present and any(
            _is_number(r.get(c)) for r in rows)][:6] or present[:6]
    table = Table(title=title, caption="± half the 95% bootstrap interval", show_lines=True)
    name_key = "label" if any("label" in r for r in rows) else "group"
    table.add_column("cell" if name_key == "label" else "group", style="bold",
                     overflow="fold", min_width=8)
    if name_key == "group" and any("n" in r for r in rows):
        table.add_column("n", justify="right")
    for col in columns:
        table.add_column(col.replace("_", " "), justify="right", overflow="fold")
    for r in rows:
        name = str(r.get(name_key, r.get("cell_id", "")))
        status = str(r.get("status", "") or "")
        if status == "failed":
            table.add_row(f"{name}\n[red]failed[/red]", *([MISSING] * len(columns)))
            continue
        cells = [f"[italic]{name}[/italic]" if status == "human" else name]
        if name_key == "group" and any("n" in x for x in rows):
            cells.append(str(r.get("n", "")))
        cells += [_compact_cell(r.get(c), r.get(f"{c}_ci_low"), r.get(f"{c}_ci_high"))
                  for c in columns]
        table.add_row(*cells)
    return table


def _is_number(value: Any) -> bool:
    return not math.isnan(as_number(value))
