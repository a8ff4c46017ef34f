"""Seaborn plots of a run directory, written as PNGs under ``RUN_DIR/plots/``.

Drawn from ``metrics.csv`` (one row per cell, each metric with ``_ci_low``/``_ci_high``,
and the ``human`` row when the run has human text), ``samples.jsonl`` and
``manifest.json``: the quality–diversity frontier (MAUVE, else perplexity, against
diversity, with the Pareto front, the human point and each sweep's path); every metric by
cell with its 95% interval; for each sweep axis (cells of one sampler that differ in one
numeric parameter) the main metrics against that parameter; the trade-offs (diversity
against rep-4 and against tokens/s); and the distribution of generation lengths.

Point labels never overlap: :func:`label_points` sets them in a column beside the axes,
each as near its point's height as the others allow, with a leader line to its point.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from samplerlab.results import RunDir

SWEEP_METRICS = ["rep_4", "diversity", "distinct_2", "self_bleu", "perplexity", "mauve",
                 "coherence", "mean_tokens", "tokens_per_s"]
HUMAN = "human"
HUMAN_COLOR = "0.35"
LABEL_FONTSIZE = 8
LABEL_SPACING = 1.4  # line height of point labels, in font sizes


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, safe in threads and CI
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    return plt, sns


def _numeric_metric_columns(frame: Any) -> list[str]:
    """Metric columns with at least one value (the ``gap_*`` columns are the report's)."""
    from samplerlab.metrics.scoring import metric_columns

    cols = []
    for col in metric_columns(list(frame.columns)):
        if col.startswith("gap_"):
            continue
        values = frame[col]
        if values.dtype.kind in "fiu" and values.notna().any():
            cols.append(col)
    return cols


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", str(text)).strip("_")[:60] or "x"


def _errors(frame: Any, col: Any) -> Any:
    """Asymmetric error bar lengths from the interval columns (0 where absent)."""
    value = frame[col].to_numpy(dtype=float)
    low = frame.get(f"{col}_ci_low")
    high = frame.get(f"{col}_ci_high")
    low = value if low is None else low.to_numpy(dtype=float)
    high = value if high is None else high.to_numpy(dtype=float)
    return np.nan_to_num(np.vstack([value - low, high - value]).clip(min=0))


def _save(fig: Any, path: Path, plt: Any, *, layout: bool = True) -> Path:
    """Write a PNG; ``layout=False`` keeps the figure's geometry (set for placed labels)
    and only grows the canvas to fit what lies outside the axes."""
    if layout:
        fig.tight_layout()
        fig.savefig(path, dpi=DPI)
    else:
        fig.savefig(path, dpi=DPI, bbox_inches="tight", pad_inches=0.15)
    plt.close(fig)
    return path


DPI = 110


def _palette(names: list[str], sns: Any) -> dict[str, Any]:
    """One colour per sampler (the human row is grey)."""
    names = sorted({str(n) for n in names} - {HUMAN})
    colors = dict(zip(names, sns.color_palette("tab10", n_colors=max(len(names), 1)),
                      strict=False))
    colors[HUMAN] = HUMAN_COLOR
    return colors


# ------------------------------------------------------------------ point labels
def spread(targets: np.ndarray, gap: float, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    """Positions as near ``targets`` as possible, in the same order, ``gap`` apart, in
    ``[low, high]``.

    Minimises the squared displacement subject to ``y[i+1] - y[i] >= gap`` (for targets
    sorted ascending): with ``z[i] = y[i] - i * gap`` that is an isotonic regression of
    ``targets[i] - i * gap``, solved exactly by pooling adjacent violators, and the
    bounds clip ``z``.

    Example:

    ```python
    import numpy as np
    from samplerlab.plots import spread

    np.testing.assert_allclose(spread(np.array([0.5, 0.5, 0.5]), 0.1), [0.4, 0.5, 0.6])
    ```
    """
    targets = np.asarray(targets, dtype=float)
    n = len(targets)
    if n == 0:
        return targets
    shifted = targets - gap * np.arange(n)
    blocks: list[list[float]] = []  # [sum, count] of pooled runs
    for value in shifted:
        blocks.append([value, 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            total, count = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += count
    z = np.concatenate([np.full(int(c), t / c) for t, c in blocks])
    top = max(high - gap * (n - 1), low)
    return np.clip(z, low, top) + gap * np.arange(n)


def label_points(ax: Any, xs: Any, ys: Any, labels: list[str],
                 fontsize: float = LABEL_FONTSIZE) -> list[Any]:
    """Label points in a column right of the axes, never overlapping, each joined to its
    point by a thin line; returns the text artists.

    Call it after everything else is drawn (it freezes the axis limits) and save the
    figure without ``tight_layout`` (which would move the axes away from the labels).
    """
    if not labels:
        return []
    fig = ax.figure
    ax.set_xlim(ax.get_xlim())
    ax.set_ylim(ax.get_ylim())
    points = np.column_stack([np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)])
    fractions = ax.transAxes.inverted().transform(ax.transData.transform(points))
    height_px = ax.get_window_extent().height or 1.0
    gap = fontsize * LABEL_SPACING * fig.dpi / 72.0 / height_px
    order = sorted(range(len(labels)), key=lambda i: (fractions[i, 1], str(labels[i])))
    placed = spread(np.clip(fractions[order, 1], 0.0, 1.0), gap)
    texts = [None] * len(labels)
    for rank, i in enumerate(order):
        texts[i] = ax.annotate(
            str(labels[i]), xy=tuple(points[i]), xycoords="data", xytext=(1.03, placed[rank]),
            textcoords="axes fraction", ha="left", va="center", fontsize=fontsize,
            annotation_clip=False,
            arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.6, "shrinkA": 0,
                        "shrinkB": 3})
    return texts


def _labelled_figure(plt: Any, n_labels: int, width: float = 7.0) -> tuple[Any, Any]:
    """A figure tall enough for ``n_labels`` labels beside its axes (fixed geometry)."""
    line_in = LABEL_FONTSIZE * LABEL_SPACING / 72.0
    axes_in = max(3.6, (n_labels + 1) * line_in)
    fig = plt.figure(figsize=(width, axes_in + 1.4))
    ax = fig.add_axes((0.9 / width, 1.0 / (axes_in + 1.4), 1 - 1.2 / width,
                       axes_in / (axes_in + 1.4)))
    return fig, ax


def plot_metric_by_cell(frame: Any, col: str, out_dir: Path) -> Path:
    """One metric per cell, coloured by sampler, with 95% interval bars."""
    plt, sns = _pyplot()
    data = frame[frame[col].notna()]
    height = max(2.2, 0.38 * len(data) + 1.2)
    fig, ax = plt.subplots(figsize=(7.5, height))
    palette = _palette(list(data["sampler"].astype(str)), sns)
    y = range(len(data))
    colors = [palette[str(s)] for s in data["sampler"]]
    bars = ax.barh(list(y), data[col], color=colors, alpha=0.85)
    for bar, sampler in zip(bars, data["sampler"], strict=True):
        if str(sampler) == HUMAN:
            bar.set_hatch("//")
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


def plot_sweep(sampler: str, param: str, rows: Any, columns: list[str], out_dir: Path,
               human: dict[str, Any] | None = None) -> Path | None:
    """The main metrics against one swept parameter of one sampler (dashed: human text);
    ``None`` when none of them has a value on these cells."""
    cols = [c for c in columns if c in rows and rows[c].notna().any()]
    if not cols:
        return None
    plt, sns = _pyplot()
    ncols = min(3, len(cols))
    nrows = math.ceil(len(cols) / ncols)
    fig, axs = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False)
    for ax, col in zip(axs.flat, cols, strict=False):  # axs may have spare cells
        for others, group in rows.sort_values("_value").groupby("_others", sort=False):
            label = None if others == "{}" else others
            ax.errorbar(group["_value"], group[col], yerr=_errors(group, col), marker="o",
                        capsize=3, label=label)
        if human is not None and _finite(human.get(col)):
            ax.axhline(float(human[col]), color=HUMAN_COLOR, ls="--", lw=1, label="human")
        ax.set_xlabel(param)
        ax.set_title(col)
        values = rows["_value"].astype(float)
        if values.min() > 0 and values.max() / values.min() >= 20:
            ax.set_xscale("log")  # k = 5 ... 500 and similar sweeps read better in log
        if rows["_others"].nunique() > 1 or (human is not None and _finite(human.get(col))):
            ax.legend(fontsize="x-small")
    for ax in list(axs.flat)[len(cols):]:
        ax.set_visible(False)
    fig.suptitle(f"{sampler}: metrics against {param} (95% CI)")
    return _save(fig, out_dir / f"sweep_{_slug(sampler)}_{_slug(param)}.png", plt)


def plot_tradeoff(frame: Any, x: str, y: str, out_dir: Path,
                  human: dict[str, Any] | None = None) -> Path:
    """One point per cell, ``y`` against ``x``, with both intervals, labelled by cell."""
    plt, sns = _pyplot()
    data = frame[frame[x].notna() & frame[y].notna()]
    with_human = human is not None and _finite(human.get(x)) and _finite(human.get(y))
    fig, ax = _labelled_figure(plt, len(data) + with_human)
    palette = _palette(list(data["sampler"].astype(str)), sns)
    ax.errorbar(data[x], data[y], xerr=_errors(data, x), yerr=_errors(data, y), fmt="none",
                ecolor="grey", alpha=0.6, lw=1)
    for sampler, group in data.groupby("sampler", sort=True):
        ax.scatter(group[x], group[y], s=60, color=palette[str(sampler)], label=str(sampler),
                   zorder=3)
    xs, ys, labels = list(data[x]), list(data[y]), [str(v) for v in data["label"]]
    if with_human:
        _human_point(ax, human, x, y)
        xs, ys, labels = xs + [float(human[x])], ys + [float(human[y])], labels + [HUMAN]
    positive = data[x][data[x] > 0]
    if len(positive) == len(data) and len(data) and positive.max() / positive.min() >= 20:
        ax.set_xscale("log")  # throughput spans orders of magnitude across samplers
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(f"{y} against {x} (one point per cell, 95% CI)")
    _legend_below(ax)
    label_points(ax, xs, ys, labels)
    return _save(fig, out_dir / f"{_slug(y)}_vs_{_slug(x)}.png", plt, layout=False)


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _human_point(ax: Any, human: dict[str, Any], x: str, y: str) -> None:
    def err(col: str) -> list[list[float]]:
        value = float(human[col])
        low, high = human.get(f"{col}_ci_low"), human.get(f"{col}_ci_high")
        if not (_finite(low) and _finite(high)):
            return [[0.0], [0.0]]
        return [[max(value - float(low), 0.0)], [max(float(high) - value, 0.0)]]

    ax.errorbar([float(human[x])], [float(human[y])], xerr=err(x), yerr=err(y), fmt="*",
                color="black", ecolor=HUMAN_COLOR, markersize=14, lw=1, capsize=3,
                label="human", zorder=4)


def _legend_below(ax: Any) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.14),
                  ncol=min(4, len(handles)), fontsize="small", frameon=False)


# ------------------------------------------------------------------------ frontier
def pareto_front(x: np.ndarray, y: np.ndarray, *, maximize_y: bool = True) -> np.ndarray:
    """Indices of the points no other point beats on both axes (x is maximised), by x.

    Example:

    ```python
    import numpy as np
    from samplerlab.plots import pareto_front

    front = pareto_front(np.array([0.1, 0.5, 0.9, 0.4]), np.array([0.9, 0.6, 0.2, 0.5]))
    assert front.tolist() == [0, 1, 2]  # (0.4, 0.5) is beaten by (0.5, 0.6)
    ```
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    y = y if maximize_y else -y
    keep = []
    for i in range(len(x)):
        beaten = (x >= x[i]) & (y >= y[i]) & ((x > x[i]) | (y > y[i]))
        if not beaten.any():
            keep.append(i)
    return np.array(sorted(keep, key=lambda i: (x[i], -y[i])), dtype=int)


def frontier_axes(frame: Any) -> tuple[str, str] | None:
    """``(diversity column, quality column)`` of the frontier plot, or ``None``.

    Quality is MAUVE where any cell has it, else perplexity (under the run's
    ``metrics_model``); diversity is SimCTG's diversity, else distinct-2.
    """
    def has(col: str) -> bool:
        return col in frame and frame[col].notna().any()

    quality = next((c for c in ("mauve", "perplexity") if has(c)), None)
    diversity = next((c for c in ("diversity", "distinct_2") if has(c)), None)
    return (diversity, quality) if quality and diversity else None


def plot_frontier(frame: Any, out_dir: Path, human: dict[str, Any] | None = None,
                  metrics_model: str | None = None) -> Path | None:
    """The quality–diversity frontier: one point per cell with both 95% intervals, the
    human point, the Pareto front, and each sweep's path in parameter order."""
    axes = frontier_axes(frame)
    if axes is None:
        return None
    x, y = axes
    data = frame[frame[x].notna() & frame[y].notna()].reset_index(drop=True)
    if data.empty:
        return None
    plt, sns = _pyplot()
    maximize = y != "perplexity"
    if human is not None and y == "mauve" and not _finite(human.get(y)):
        # MAUVE compares a cell with the human text; the human text with itself is 1.
        human = {**human, "mauve": 1.0, "mauve_ci_low": None, "mauve_ci_high": None}
    with_human = human is not None and _finite(human.get(x)) and _finite(human.get(y))
    fig, ax = _labelled_figure(plt, len(data) + with_human, width=7.5)
    palette = _palette(list(data["sampler"].astype(str)), sns)
    ax.errorbar(data[x], data[y], xerr=_errors(data, x), yerr=_errors(data, y), fmt="none",
                ecolor="grey", alpha=0.5, lw=1, zorder=1)
    for sampler, path in _sweep_paths(data):
        ax.plot(path[x], path[y], color=palette[sampler], lw=1.2, alpha=0.7, zorder=2)
        for (x0, y0), (x1, y1) in zip(path[[x, y]].to_numpy()[:-1],
                                      path[[x, y]].to_numpy()[1:], strict=True):
            ax.annotate("", xy=(x1, y1), xytext=(x0, y0), zorder=2,
                        arrowprops={"arrowstyle": "-|>", "color": palette[sampler],
                                    "lw": 1.2, "alpha": 0.7, "shrinkA": 6, "shrinkB": 6})
    front = pareto_front(data[x].to_numpy(), data[y].to_numpy(), maximize_y=maximize)
    ax.plot(data[x].to_numpy()[front], data[y].to_numpy()[front], color="black", ls="--",
            lw=1, marker="o", mfc="none", ms=11, label="Pareto front", zorder=2)
    for sampler, group in data.groupby("sampler", sort=True):
        ax.scatter(group[x], group[y], s=60, color=palette[str(sampler)], label=str(sampler),
                   edgecolor="white", zorder=3)
    xs, ys, labels = list(data[x]), list(data[y]), [str(v) for v in data["label"]]
    if with_human:
        _human_point(ax, human, x, y)
        xs, ys, labels = xs + [float(human[x])], ys + [float(human[y])], labels + [HUMAN]
    if not maximize:
        values = np.r_[data[y].to_numpy(dtype=float), [float(human[y])] if with_human else []]
        if values.min() > 0 and values.max() / values.min() >= 20:
            ax.set_yscale("log")
        ax.invert_yaxis()  # up is better on both plots
    quality = ("MAUVE (human: 1 by definition)" if y == "mauve"
               else "perplexity, lower is better (axis inverted)")
    by = f" under {metrics_model}" if metrics_model else ""
    ax.set_xlabel(f"{x} (higher: more diverse)")
    ax.set_ylabel(f"{quality}{by}" if y == "perplexity" else quality)
    ax.set_title("quality–diversity frontier (one point per cell, 95% CI; arrows: sweeps)")
    _legend_below(ax)
    label_points(ax, xs, ys, labels)
    return _save(fig, out_dir / "frontier.png", plt, layout=False)


def _sweep_paths(data: Any) -> list[tuple[str, Any]]:
    """``(sampler, rows in parameter order)`` for each line of each sweep axis."""
    paths = []
    for sampler, _param, rows in sweep_axes(data):
        for _others, line in rows.groupby("_others", sort=False):
            if len(line) >= 2:
                paths.append((sampler, line.sort_values("_value")))
    return paths


def plot_lengths(run_dir: Path, out_dir: Path) -> Path | None:
    """Distribution of generated tokens per sample, one box per cell."""
    import pandas as pd

    frame = pd.DataFrame(RunDir(run_dir).samples())
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


def split_human(frame: Any) -> tuple[Any, dict[str, Any] | None]:
    """The cells of a metrics table and its human row (``None`` when it has none)."""
    if "status" not in frame:
        return frame, None
    is_human = frame["status"].astype(str) == HUMAN
    human = frame[is_human].to_dict("records")
    return frame[~is_human], (human[0] if human else None)


def _metrics_model_name(run: RunDir) -> str | None:
    """The preset that scored the model metrics (the manifest's ``metrics_model``)."""
    entry = run.manifest.get("metrics_model")
    return entry.get("preset") if isinstance(entry, dict) else None


def plot_order(path: Path) -> tuple[int, str]:
    """Where a plot of ``plots/`` goes: the frontier, trade-offs, sweeps and lengths first,
    then the main metrics in the table's order, then the rest (``(group, key)``; the
    report shows groups 0-2 and folds away group 3)."""
    from samplerlab.metrics.scoring import MAIN_COLUMNS

    name = path.stem
    if name == "frontier":
        return (0, "")
    if "_vs_" in name:
        return (0, name)
    if name.startswith("sweep_") or name == "lengths":
        return (1, name)
    metric = name.removeprefix("metric_")
    if metric in MAIN_COLUMNS:
        return (2, f"{MAIN_COLUMNS.index(metric):03d}")
    return (3, name)


def ordered_plots(run_dir: str | Path) -> list[Path]:
    """The PNG files directly under ``plots/`` (symlinks left out), in :func:`plot_order`."""
    plots_dir = RunDir(run_dir).plots_dir
    if not plots_dir.is_dir() or plots_dir.is_symlink():
        return []
    found = [p for p in plots_dir.iterdir()
             if p.suffix.lower() == ".png" and not p.is_symlink() and p.is_file()]
    return sorted(found, key=plot_order)


def draw_plots(run_dir: str | Path) -> list[Path]:
    """Draw every plot of a run into ``run_dir/plots/`` and return their paths."""
    run = RunDir.read(run_dir)
    frame = run.read_metrics()
    if "status" in frame:
        frame = frame[frame["status"].astype(str) != "failed"]
    out_dir = run.plots_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    if frame.empty:
        return []
    frame = frame.reset_index(drop=True)
    if "sampler" not in frame:
        frame["sampler"] = frame["label"]
    cells, human = split_human(frame)
    cells = cells.reset_index(drop=True)
    columns = _numeric_metric_columns(frame)
    paths = []
    if not cells.empty:
        frontier = plot_frontier(cells, out_dir, human,
                                 metrics_model=_metrics_model_name(run))
        if frontier is not None:
            paths.append(frontier)
    paths += [plot_metric_by_cell(frame, col, out_dir) for col in columns]
    sweep_columns = [c for c in SWEEP_METRICS if c in columns]
    for sampler, param, rows in sweep_axes(cells):
        sweep = plot_sweep(sampler, param, rows, sweep_columns, out_dir, human)
        if sweep is not None:
            paths.append(sweep)
    for x in ("rep_4", "tokens_per_s"):
        if "diversity" in columns and x in columns and cells[[x, "diversity"]].notna().all(
                axis=1).any():
            paths.append(plot_tradeoff(cells, x, "diversity", out_dir,
                                       human if x != "tokens_per_s" else None))
    lengths = plot_lengths(run.path, out_dir)
    if lengths is not None:
        paths.append(lengths)
    # -- per-token traces (samplerlab.traces.plots): plots/traces/, when traced --
    from samplerlab.traces.plots import draw_trace_plots

    paths += draw_trace_plots(run.path)
    return paths
