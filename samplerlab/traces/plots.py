"""Plots and the report section of a run's per-token traces (``traces.parquet``).

Per cell (the human reference, when traced, as one more line), drawn with seaborn into
``plots/traces/``:

- ``entropy_by_position``: the entropy of the model's distribution against position;
- ``model_prob_by_position``: the model's probability of the chosen token against position;
- ``rank``: how often the chosen token was the model's first, second, ... choice;
- ``kept_size``: the distribution of the sampler's kept-set size (where known);
- ``repetition``: the model's probability of a token that continues an n-gram against how
  often that n-gram already occurred in the continuation (the self-reinforcement of
  Xu et al. 2022, seen in the generations themselves).

Intervals are 95% normal intervals (mean ± 1.96 standard errors) over generations: of
per-generation means (within a window of positions, a rank bin, a repetition count),
since the tokens of one generation are not independent; a point resting on fewer than
three generations is not drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from samplerlab.results import RunDir
from samplerlab.results.tables import markdown_table
from samplerlab.traces.table import REFERENCE_CELL

Z95 = 1.959964
NGRAM = 3
REPEAT_BINS = 5  # 0, 1, ..., 4, and "5+"
POSITION_BINS = 32  # at most this many points along the position axis
MIN_GENERATIONS = 3  # a point of a line plot rests on at least this many generations
RANK_BINS = [(0, 0, "1st"), (1, 1, "2nd"), (2, 4, "3rd-5th"), (5, 9, "6th-10th"),
             (10, 99, "11th-100th"), (100, None, "beyond 100th")]
REFERENCE_LABEL = "reference (human)"
COLUMNS = ["cell_id", "prompt_index", "sample_index", "position", "token_id", "model_prob",
           "model_rank", "model_entropy", "sampler_prob", "kept_size"]


def pyplot() -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")  # files only
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    return plt, sns


def save(fig: Any, path: Path, plt: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def mean_interval(frame: Any, by: list[str], column: str) -> Any:
    """Per group of ``by``: ``mean``, ``low``, ``high`` (mean ± 1.96 SE) and ``count`` of
    ``column`` (missing values left out; one value: no interval)."""
    grouped = frame.dropna(subset=[column]).groupby(by, sort=True, observed=True)[column]
    stats = grouped.agg(["mean", "sem", "count"]).reset_index()
    half = Z95 * stats["sem"].fillna(np.nan)
    stats["low"], stats["high"] = stats["mean"] - half, stats["mean"] + half
    return stats.drop(columns="sem")


def band_lines(ax: Any, frame: Any, x: str, y: str, hue: str,
               bounds: tuple[float, float] | None = None, min_count: int = 1) -> None:
    """One line per ``hue`` of the mean of ``y`` against ``x``, with its 95% band
    (clipped to ``bounds``, the range ``y`` can take); points resting on fewer than
    ``min_count`` rows are left out."""
    import pandas as pd
    import seaborn as sns

    stats = mean_interval(frame, [hue, x], y)
    stats = stats[stats["count"] >= min_count]
    if bounds is not None:
        stats[["low", "high"]] = stats[["low", "high"]].clip(*bounds)
    column = frame[hue]
    present = set(column)
    names = ([c for c in column.cat.categories if c in present]
             if isinstance(column.dtype, pd.CategoricalDtype)
             else list(dict.fromkeys(column)))
    palette = dict(zip(names, sns.color_palette("tab10", n_colors=max(len(names), 1)),
                       strict=False))
    for name in names:
        rows = stats[stats[hue] == name]
        if rows.empty:
            continue
        ax.plot(rows[x], rows["mean"], label=str(name), color=palette[name], lw=1.6,
                marker="o", markersize=2.5)  # a one-point line still shows
        ax.fill_between(rows[x], rows["low"], rows["high"], color=palette[name], alpha=0.2,
                        lw=0)
    outside_legend(ax)


def outside_legend(ax: Any) -> None:
    """The legend right of the axes: with many cells it would hide the lines."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1),
                  frameon=False)


# ------------------------------------------------------------------------ reading
def read_traces(run_dir: Path) -> Any:
    """The trace columns the plots use, with a ``label`` per cell in the run's order
    (None when the run has no traces)."""
    import pandas as pd
    import pyarrow.parquet as pq

    run = RunDir.read(run_dir)
    if not run.traces_path.is_file():
        return None
    frame = pq.read_table(run.traces_path, columns=COLUMNS).to_pandas()
    labels = {**run.cell_labels(), REFERENCE_CELL: REFERENCE_LABEL}
    present = list(dict.fromkeys(frame["cell_id"]))
    order = [c for c in labels if c in present] + [c for c in present if c not in labels]
    names = frame["cell_id"].map(lambda c: labels.get(c, c))
    frame["label"] = pd.Categorical(names, categories=list(dict.fromkeys(
        labels.get(c, c) for c in order)))
    frame["generation"] = (frame["cell_id"].astype(str) + "/" + frame["prompt_index"].astype(str)
                           + "/" + frame["sample_index"].astype(str))
    return frame


# ------------------------------------------------------------------------ derived
def rank_shares(frame: Any) -> Any:
    """Per generation and rank bin: the share of its tokens whose rank falls in the bin."""
    import pandas as pd

    names = [name for _, _, name in RANK_BINS]
    edges = [low for low, _, _ in RANK_BINS]
    codes = np.searchsorted(edges, frame["model_rank"].to_numpy(), side="right") - 1
    bins = pd.Series(pd.Categorical.from_codes(codes, names), index=frame.index, name="rank")
    shares = pd.crosstab([frame["label"].astype(str), frame["generation"]], bins,
                         normalize="index")
    shares = shares.reindex(columns=names, fill_value=0.0)
    shares.columns = pd.Index(names, name="rank")
    return shares.stack().rename("share").reset_index()


def repeat_counts(frame: Any, n: int = NGRAM) -> Any:
    """Per token: how often the n-gram it completes occurred earlier in its continuation
    (tokens before position ``n - 1`` complete none: -1)."""
    ordered = frame.sort_values(["generation", "position"])
    counts = np.full(len(ordered), -1, dtype=np.int64)
    ids = ordered["token_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, ordered["generation"].to_numpy()[1:]
                                  != ordered["generation"].to_numpy()[:-1]])
    ends = np.r_[starts[1:], len(ordered)]
    for start, end in zip(starts, ends, strict=True):
        seen: dict[tuple[int, ...], int] = {}
        for t in range(start + n - 1, end):
            gram = tuple(ids[t - n + 1:t + 1])
            counts[t] = seen.get(gram, 0)
            seen[gram] = counts[t] + 1
    return ordered.assign(repeats=counts)


# ------------------------------------------------------------------------ plots
def draw_trace_plots(run_dir: str | Path) -> list[Path]:
    """Every trace plot of a run into ``plots/traces/`` (none without ``traces.parquet``)."""
    frame = read_traces(run_dir)
    if frame is None or frame.empty:
        return []
    out_dir = RunDir(run_dir).trace_plots_dir
    paths = [plot_by_position(frame, "model_entropy", "entropy of the model (nats)",
                              out_dir / "entropy_by_position.png"),
             plot_by_position(frame, "model_prob", "model probability of the chosen token",
                              out_dir / "model_prob_by_position.png", bounds=(0.0, 1.0)),
             plot_ranks(frame, out_dir / "rank.png")]
    kept = plot_kept(frame, out_dir / "kept_size.png")
    if kept is not None:
        paths.append(kept)
    paths.append(plot_repetition(frame, out_dir / "repetition.png"))
    return paths


def plot_by_position(frame: Any, column: str, ylabel: str, path: Path,
                     bounds: tuple[float, float] | None = None) -> Path:
    """``column`` against position: each generation's mean over windows of ``width``
    positions (1 for continuations up to 32 tokens), then mean and band over generations."""
    plt, _ = pyplot()
    width = max(1, -(-int(frame["position"].max() + 1) // POSITION_BINS))
    windows = frame.assign(position=frame["position"] // width * width)
    per_generation = windows.groupby(["label", "generation", "position"], observed=True)[
        column].mean().reset_index()
    fig, ax = plt.subplots(figsize=(9.5, 4))
    band_lines(ax, per_generation, "position", column, "label", bounds, MIN_GENERATIONS)
    window = "" if width == 1 else f", windows of {width} tokens"
    ax.set(xlabel=f"position in the continuation (tokens{window})", ylabel=ylabel,
           title=f"{ylabel} by position (95% bands over generations)")
    return save(fig, path, plt)


def plot_ranks(frame: Any, path: Path) -> Path:
    plt, sns = pyplot()
    shares = rank_shares(frame)
    stats = mean_interval(shares, ["label", "rank"], "share")
    stats[["low", "high"]] = stats[["low", "high"]].clip(0.0, 1.0)
    stats["rank"] = stats["rank"].astype(str)
    names = [name for _, _, name in RANK_BINS]
    labels = [str(c) for c in frame["label"].cat.categories if c in set(stats["label"])]
    fig, ax = plt.subplots(figsize=(10, 4))
    sns.barplot(data=stats, x="rank", y="mean", hue="label", order=names, hue_order=labels,
                ax=ax)
    for bars, label in zip(ax.containers, labels, strict=False):
        rows = stats[stats["label"] == label].set_index("rank").reindex(names)
        centres = [b.get_x() + b.get_width() / 2 for b in bars]
        ax.errorbar(centres, rows["mean"], yerr=[rows["mean"] - rows["low"],
                                                 rows["high"] - rows["mean"]],
                    fmt="none", ecolor="black", lw=0.8, capsize=2)
    ax.set(xlabel="rank of the chosen token in the model's distribution",
           ylabel="share of tokens", title="rank of chosen tokens (95% intervals)")
    outside_legend(ax)
    return save(fig, path, plt)


def plot_kept(frame: Any, path: Path) -> Path | None:
    data = frame.dropna(subset=["kept_size"])
    if data.empty:
        return None
    plt, sns = pyplot()
    fig, ax = plt.subplots(figsize=(9.5, 4))
    labels = [str(c) for c in frame["label"].cat.categories
              if c in set(data["label"].astype(str))]
    sns.ecdfplot(data=data.assign(label=data["label"].astype(str)), x="kept_size",
                 hue="label", hue_order=labels, log_scale=True, ax=ax)
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1), frameon=False,
                    fontsize="small", title=None)
    ax.set(xlabel="kept-set size of the sampler's final distribution (log scale)",
           ylabel="share of tokens at or below", title="kept-set size")
    return save(fig, path, plt)


def plot_repetition(frame: Any, path: Path, n: int = NGRAM) -> Path:
    plt, _ = pyplot()
    counted = repeat_counts(frame, n)
    counted = counted[counted["repeats"] >= 0]
    counted = counted.assign(repeats=counted["repeats"].clip(upper=REPEAT_BINS))
    per_generation = counted.groupby(["label", "generation", "repeats"], observed=True)[
        "model_prob"].mean().reset_index()
    fig, ax = plt.subplots(figsize=(9.5, 4))
    band_lines(ax, per_generation, "repeats", "model_prob", "label", (0.0, 1.0),
               MIN_GENERATIONS)
    ticks = list(range(REPEAT_BINS + 1))
    ax.set_xticks(ticks, [str(t) for t in ticks[:-1]] + [f"{REPEAT_BINS}+"])
    ax.set(xlabel=f"earlier occurrences of the {n}-gram the token completes",
           ylabel="model probability of the token",
           title="repetition feeding itself (95% bands over generations)")
    return save(fig, path, plt)


def plot_text(frame: Any, path: Path, title: str = "") -> Path:
    """One scored text (:func:`samplerlab.score_text`): the model's probability of each
    token (bars, log scale) and the entropy of its distribution there (line)."""
    plt, _ = pyplot()
    width = min(max(6.0, 0.28 * len(frame) + 2.0), 40.0)
    fig, ax = plt.subplots(figsize=(width, 4.2))
    ax.bar(frame["position"], frame["model_prob"], color="tab:blue", alpha=0.8,
           label="model probability")
    ax.set_yscale("log")
    ax.set_ylabel("model probability of the token (log)")
    twin = ax.twinx()
    twin.plot(frame["position"], frame["model_entropy"], color="tab:red", marker=".",
              label="entropy (nats)")
    twin.set_ylabel("entropy of the model's distribution (nats)")
    twin.grid(False)
    if len(frame) <= 80:
        ax.set_xticks(frame["position"], [repr(t)[1:-1] for t in frame["token_text"]],
                      rotation=90, fontsize="small")
    else:
        ax.set_xlabel("token position")
    ax.set_title(title or "tokens under the model (teacher-forced)")
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="lower left", fontsize="small", framealpha=0.9)
    return save(fig, path, plt)


# ------------------------------------------------------------------------ report
def summary_rows(frame: Any) -> list[dict[str, Any]]:
    """Per cell: tokens, and per-generation means of the model probability, entropy,
    top-1 share and sampler probability as ``(mean, low, high)`` (95%; None where
    unknown); the median kept size (None where unknown)."""
    per_generation = frame.assign(top1=(frame["model_rank"] == 0).astype(float)).groupby(
        ["label", "generation"], observed=True)[
        ["model_prob", "model_entropy", "top1", "sampler_prob"]].mean().reset_index()
    rows = []
    for label, group in per_generation.groupby("label", observed=True, sort=True):
        tokens = frame[frame["label"] == label]
        row: dict[str, Any] = {"cell": str(label), "tokens": len(tokens)}
        for column in ("model_prob", "model_entropy", "top1", "sampler_prob"):
            values = group[column].dropna()
            half = Z95 * values.sem() if len(values) > 1 else np.nan
            row[column] = ((values.mean(), values.mean() - half, values.mean() + half)
                           if len(values) else None)
        kept = tokens["kept_size"].dropna()
        row["kept_size"] = float(kept.median()) if len(kept) else None
        rows.append(row)
    return rows


def report_section(run_dir: str | Path) -> str:
    """The report's "Per-token traces" section (empty without traces)."""
    run = RunDir(run_dir)
    frame = read_traces(run_dir)
    if frame is None or frame.empty:
        return ""

    def fmt(value: Any, digits: int = 3, share: bool = True) -> str:
        if value is None or np.isnan(value[0]):
            return "-"
        mean, low, high = value
        if np.isnan(low):
            return f"{mean:.{digits}f}"
        if share:  # a mean of values in [0, 1]: so is its interval
            low, high = max(low, 0.0), min(high, 1.0)
        return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"

    rows = [[r["cell"], r["tokens"], fmt(r["model_prob"]),
             fmt(r["model_entropy"], 2, share=False), fmt(r["top1"]), fmt(r["sampler_prob"]),
             "-" if r["kept_size"] is None else f"{r['kept_size']:g}"]
            for r in summary_rows(frame)]
    parts = ["## Per-token traces", "",
             f"Every generated token, from `{RunDir.TRACES}`: the model's probability of it "
             "(temperature 1), the entropy of the model's distribution, whether it was the "
             "model's top choice, the probability the sampler's final distribution gave "
             "it, and that distribution's kept-set size. Means over generations with 95% "
             "intervals.", "",
             markdown_table(["cell", "tokens", "model prob", "entropy (nats)",
                             "top-1 share", "sampler prob", "median kept"], rows), ""]
    plots = sorted(run.trace_plots_dir.glob("*.png"))
    order = ["model_prob_by_position", "entropy_by_position", "rank", "kept_size",
             "repetition"]
    plots.sort(key=lambda p: order.index(p.stem) if p.stem in order else len(order))
    for png in plots:
        parts += [f"![{png.stem}]({run.relative(png)})", ""]
    return "\n".join(parts)
