"""Seaborn plots of a run directory, written as PNGs under ``RUN_DIR/plots/``.

Drawn from ``metrics.csv`` (one row per cell, each metric with ``_ci_low``/``_ci_high``),
``samples.jsonl`` and ``manifest.json``: every metric by cell with its 95% interval; for
each sweep axis (cells of one sampler that differ in one numeric parameter) the main
metrics against that parameter; the quality trade-offs (diversity against rep-4 and
against tokens/s, one point per cell); and the distribution of generation lengths.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from samplerlab.errors import UserInputError

SWEEP_METRICS = ["rep_4", "diversity", "distinct_2", "self_bleu", "perplexity", "mean_tokens",
                 "tokens_per_s"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, safe in threads and CI
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    return plt, sns


def read_metrics(run_dir: Path) -> Any:
    """``metrics.csv`` of a run as a DataFrame with ``params`` parsed into dicts."""
    import pandas as pd

    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        raise UserInputError(f"no metrics.csv in '{run_dir}' (is it a finished samplerlab run?)")
    frame = pd.read_csv(path)
    if "params" in frame:
        frame["params"] = [json.loads(p) if isinstance(p, str) and p else {}
                           for p in frame["params"]]
    else:
        frame["params"] = [{} for _ in range(len(frame))]
    if "label" not in frame:
        frame["label"] = frame.get("cell_id", frame.index.astype(str))
    return frame


def _numeric_metric_columns(frame: Any) -> list[str]:
    from samplerlab.metrics.scoring import metric_columns

    cols = []
    for col in metric_columns(list(frame.columns)):
        values = frame[col]
        if values.dtype.kind in "fiu" and values.notna().any():
            cols.append(col)
    return cols


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", str(text)).strip("_")[:60] or "x"


def _errors(frame: Any, col: Any) -> Any:
    """Asymmetric error bar lengths from the interval columns (0 where absent)."""
    import numpy as np

    value = frame[col].to_numpy(dtype=float)
    low = frame.get(f"{col}_ci_low")
    high = frame.get(f"{col}_ci_high")
    low = value if low is None else low.to_numpy(dtype=float)
    high = value if high is None else high.to_numpy(dtype=float)
    return np.nan_to_num(np.vstack([value - low, high - value]).clip(min=0))


def _save(fig: Any, path: Path, plt: Any) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_metric_by_cell(frame: Any, col: str, out_dir: Path) -> Path:
    """One metric per cell, coloured by sampler, with 95% interval bars."""
    plt, sns = _pyplot()
    data = frame[frame[col].notna()]
    height = max(2.2, 0.38 * len(data) + 1.2)
    fig, ax = plt.subplots(figsize=(7.5, height))
    names = sorted(data["sampler"].astype(str).unique())
    palette = dict(zip(names, sns.color_palette("tab10", n_colors=max(len(names), 1)),
                       strict=False))
    y = range(len(data))
    colors = [palette[str(s)] for s in data["sampler"]]
    ax.barh(list(y), data[col], color=colors, alpha=0.85)
    ax.errorbar(data[col], list(y), xerr=_errors(data, col), fmt="none", ecolor="black",
                capsize=3, lw=1)
    ax.set_yticks(list(y), [str(v) for v in data["label"]])
    ax.invert_yaxis()
    ax.set_xlabel(f"{col} (bars: 95% bootstrap CI)")
    ax.set_title(col)
    return _save(fig, out_dir / f"metric_{_slug(col)}.png", plt)


def sweep_axes(frame: Any) -> list[tuple[str, str, Any]]:
    """``(sampler, parameter, rows)`` per sweep axis: one sampler, one numeric parameter varies."""
    axes = []
    for sampler, rows in frame.groupby("sampler", sort=False):
        if len(rows) < 2:
            continue
        keys = sorted({k for p in rows["params"] for k in p})
        for key in keys:
            values = [p.get(key) for p in rows["params"]]
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                continue
            others = [json.dumps({k: v for k, v in p.items() if k != key}, sort_keys=True)
                      for p in rows["params"]]
            if len(set(values)) < 2:
                continue
            # Hold every other parameter fixed: one line per combination of the others.
            sub = rows.assign(_value=values, _others=others)
            if sub.groupby("_others")["_value"].nunique().max() >= 2:
                axes.append((str(sampler), key, sub))
    return axes


def plot_sweep(sampler: str, param: str, rows: Any, columns: list[str], out_dir: Path) -> Path:
    """The main metrics against one swept parameter of one sampler."""
    plt, sns = _pyplot()
    cols = [c for c in columns if c in rows and rows[c].notna().any()]
    ncols = min(3, len(cols))
    nrows = math.ceil(len(cols) / ncols)
    fig, axs = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False)
    for ax, col in zip(axs.flat, cols, strict=False):  # axs may have spare cells
        for others, group in rows.sort_values("_value").groupby("_others", sort=False):
            label = None if others == "{}" else others
            ax.errorbar(group["_value"], group[col], yerr=_errors(group, col), marker="o",
                        capsize=3, label=label)
        ax.set_xlabel(param)
        ax.set_title(col)
        values = rows["_value"].astype(float)
        if values.min() > 0 and values.max() / values.min() >= 20:
            ax.set_xscale("log")  # k = 5 ... 500 and similar sweeps read better in log
        if rows["_others"].nunique() > 1:
            ax.legend(fontsize="x-small")
    for ax in list(axs.flat)[len(cols):]:
        ax.set_visible(False)
    fig.suptitle(f"{sampler}: metrics against {param} (95% CI)")
    return _save(fig, out_dir / f"sweep_{_slug(sampler)}_{_slug(param)}.png", plt)


def plot_tradeoff(frame: Any, x: str, y: str, out_dir: Path) -> Path:
    """One point per cell, ``y`` against ``x``, with both intervals, labelled by cell."""
    plt, sns = _pyplot()
    data = frame[frame[x].notna() & frame[y].notna()]
    fig, ax = plt.subplots(figsize=(8, 4.8))
    sns.scatterplot(data=data, x=x, y=y, hue="sampler", s=70, ax=ax)
    ax.errorbar(data[x], data[y], xerr=_errors(data, x), yerr=_errors(data, y), fmt="none",
                ecolor="grey", alpha=0.6, lw=1)
    for _, row in data.iterrows():
        ax.annotate(str(row["label"]), (row[x], row[y]), fontsize=7, alpha=0.8,
                    xytext=(3, 3), textcoords="offset points")
    positive = data[x][data[x] > 0]
    if len(positive) == len(data) and len(data) and positive.max() / positive.min() >= 20:
        ax.set_xscale("log")  # throughput spans orders of magnitude across samplers
    if ax.get_legend() is not None:
        sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    ax.set_title(f"{y} against {x} (one point per cell)")
    return _save(fig, out_dir / f"{_slug(y)}_vs_{_slug(x)}.png", plt)


def plot_lengths(run_dir: Path, out_dir: Path) -> Path | None:
    """Distribution of generated tokens per sample, one box per cell."""
    import pandas as pd

    path = Path(run_dir) / "samples.jsonl"
    if not path.is_file():
        return None
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    frame = pd.DataFrame(rows)
    if frame.empty or "num_tokens" not in frame or "label" not in frame:
        return None
    plt, sns = _pyplot()
    height = max(2.2, 0.38 * frame["label"].nunique() + 1.2)
    fig, ax = plt.subplots(figsize=(7.5, height))
    sns.boxplot(data=frame, x="num_tokens", y="label", hue="sampler", dodge=False,
                legend=False, ax=ax)
    ax.set_xlabel("generated tokens per sample")
    ax.set_title("generation length")
    return _save(fig, out_dir / "lengths.png", plt)


def draw_plots(run_dir: str | Path) -> list[Path]:
    """Draw every plot of a run into ``run_dir/plots/`` and return their paths."""
    run_dir = Path(run_dir)
    frame = read_metrics(run_dir)
    if "status" in frame:
        frame = frame[frame["status"].astype(str) != "failed"]
    out_dir = run_dir / "plots"
    out_dir.mkdir(parents=True, exist_ok=True)
    if frame.empty:
        return []
    frame = frame.reset_index(drop=True)
    if "sampler" not in frame:
        frame["sampler"] = frame["label"]
    columns = _numeric_metric_columns(frame)
    paths = [plot_metric_by_cell(frame, col, out_dir) for col in columns]
    for sampler, param, rows in sweep_axes(frame):
        paths.append(plot_sweep(sampler, param, rows, [c for c in SWEEP_METRICS
                                                        if c in columns], out_dir))
    for x in ("rep_4", "tokens_per_s"):
        if "diversity" in columns and x in columns:
            paths.append(plot_tradeoff(frame, x, "diversity", out_dir))
    lengths = plot_lengths(run_dir, out_dir)
    if lengths is not None:
        paths.append(lengths)
    # -- per-token traces (samplerlab.traces.plots): plots/traces/, when traced --
    from samplerlab.traces.plots import draw_trace_plots

    paths += draw_trace_plots(run_dir)
    return paths
