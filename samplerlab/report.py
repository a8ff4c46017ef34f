"""``report.md``: a run's spec, metric table, plots and sample generations, for GitHub.

Everything is read from the run directory (``spec.yaml``, ``manifest.json``,
``metrics.csv``, ``cells/*.json``, ``human.json``, ``samples.jsonl``, ``plots/``), so a
report can be rewritten at any time (``samplerlab plot RUN_DIR`` redraws the plots and
the report). Each section is a function of its own; a missing value prints as ``–``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from samplerlab.metrics.scoring import MAIN_COLUMNS, MISSING, format_value, metric_columns
from samplerlab.viewer.report_section import ratings_lines

SAMPLES_PER_SAMPLER = 2
MAX_SAMPLE_CHARS = 600


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _cell(text: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def spec_summary(spec: dict[str, Any], manifest: dict[str, Any]) -> str:
    """The run in a few bullet points: model, fine-tuning, prompts, generation, environment."""
    model = spec.get("model") or {}
    gen = spec.get("generation") or {}
    prompts = spec.get("prompts")
    if isinstance(prompts, list):
        prompt_text = f"{len(prompts)} prompts (" + "; ".join(f"“{p}”" for p in prompts[:3]) + \
            (", …" if len(prompts) > 3 else "") + ")"
    elif isinstance(prompts, dict):
        source = (prompts.get("dataset") or {}).get("source", "?")
        prompt_text = f"{prompts.get('take', '?')} prompts from dataset `{source}`"
    else:
        prompt_text = MISSING
    finetune = spec.get("finetune")
    if finetune:
        ds = finetune.get("dataset") or {}
        ft = (f"on `{ds.get('source', '?')}` " + " ".join(
            f"{k}={v}" for k, v in ds.items() if k != "source") +
            f", batch {finetune.get('batch_size')}, epochs {finetune.get('epochs')}")
    else:
        ft = "none"
    versions = manifest.get("versions") or {}
    metrics = [m["name"] if isinstance(m, dict) else str(m) for m in spec.get("metrics") or []]
    lines = [
        f"- **Model:** `{model.get('preset', '?')}` (sequence length "
        f"{model.get('sequence_length', '?')}, dtype policy "
        f"{model.get('dtype_policy') or 'default'})",
        f"- **Fine-tuning:** {ft}",
        f"- **Prompts:** {prompt_text}",
        f"- **Generation:** max_length {gen.get('max_length', '?')}, "
        f"{gen.get('samples_per_prompt', 1)} sample(s) per prompt, seed "
        f"{spec.get('seed', manifest.get('seed', '?'))}",
        f"- **Cells:** {len(manifest.get('cells') or [])}; metrics: "
        f"{', '.join(metrics) or MISSING}",
        *scoring_lines(manifest),
        f"- **Environment:** backend {manifest.get('backend', '?')}, devices "
        f"{', '.join(manifest.get('devices') or []) or '?'}; "
        + ", ".join(f"{k} {v}" for k, v in versions.items()),
        f"- **Run:** `{manifest.get('run_id', '?')}`, {manifest.get('started', '?')} → "
        f"{manifest.get('finished') or '?'}, status {manifest.get('status', '?')}"
        + (f", git {manifest['git_revision']}" if manifest.get("git_revision") else ""),
    ]
    for note in manifest.get("notes") or []:
        lines.append(f"- **Note:** {note}")
    return "\n".join(lines)


def scoring_lines(manifest: dict[str, Any]) -> list[str]:
    """Which model scored the model metrics, with which features, against which human text."""
    lines = []
    judge = manifest.get("metrics_model")
    if judge:
        who = judge.get("description") or f"`{judge.get('preset')}`"
        if judge.get("error"):
            who = f"`{judge.get('preset')}`, which failed to load ({judge['error']})"
        lines.append(f"- **Scoring model** (perplexity, MAUVE, coherence): {who}")
        for name, how in (judge.get("features") or {}).items():
            lines.append(f"  - `{name}`: {how}")
    human = manifest.get("human")
    if human:
        source = (f"the file `{human['path']}`" if human.get("path")
                  else "the reference continuations of the dataset prompts")
        lines.append(f"- **Human text:** {human.get('num_samples')} texts from {source}, each "
                     "cut to the token budget of a generation (the `human` row)")
    return lines


def metric_table(frame: Any, columns: list[str] | None = None) -> str:
    """Markdown table, one row per cell: value and [95% CI] of each metric column."""
    present = metric_columns(list(frame.columns))
    if columns is None:
        columns = [c for c in present if frame[c].notna().any()]
    rows = []
    for _, r in frame.iterrows():
        rows.append([r.get("label", r.get("cell_id", "")), r.get("status", "")] +
                    [format_value(r.get(c), r.get(f"{c}_ci_low"), r.get(f"{c}_ci_high"))
                     for c in columns])
    return markdown_table(["cell", "status", *columns], rows)


def sample_section(run_dir: Path, per_sampler: int = SAMPLES_PER_SAMPLER) -> str:
    """The first generations of each sampler, then the first human texts (``human.jsonl``)."""
    shown: dict[str, list[dict[str, Any]]] = {}
    for path in (run_dir / "samples.jsonl", run_dir / "human.jsonl"):
        if not path.is_file():
            continue
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                s = json.loads(line)
                group = shown.setdefault(str(s.get("sampler", "?")), [])
                if len(group) < per_sampler:
                    group.append(s)
    parts = []
    for sampler, samples in shown.items():
        parts.append(f"### {sampler}\n")
        for s in samples:
            text = str(s.get("text", ""))
            if len(text) > MAX_SAMPLE_CHARS:
                text = text[:MAX_SAMPLE_CHARS] + " …"
            quoted = "\n".join("> " + line for line in (text.strip() or "(empty)").splitlines())
            label, prompt = _cell(s.get("label", sampler)), _cell(s.get("prompt", ""))
            parts.append(f"**{label}**, prompt “{prompt}” "
                         f"({s.get('num_tokens', '?')} tokens, stopped at "
                         f"{s.get('stop_reason', '?')}):\n\n{quoted}\n")
    return "\n".join(parts) if parts else "_No samples._"


def gap_section(frame: Any) -> str:
    """|cell − human| per cell for the gap columns; the closest cell of each in bold."""
    if "status" not in frame:
        return ""
    gaps = [c for c in metric_columns(list(frame.columns))
            if c.startswith("gap_") and frame[c].notna().any()]
    cells = frame[frame["status"].astype(str) == "done"]
    if not gaps or cells.empty:
        return ""
    best = {c: cells[c].min() for c in gaps}
    rows = []
    for _, r in cells.iterrows():
        row: list[Any] = [r.get("label", r.get("cell_id", ""))]
        for c in gaps:
            text = format_value(r.get(c))
            row.append(f"**{text}**" if text != MISSING and r.get(c) == best[c] else text)
        rows.append(row)
    header = ["cell", *[c.removeprefix("gap_") for c in gaps]]
    return "\n".join([
        "## Gap to human", "",
        "Distance of each cell to the `human` row, |cell − human|, per metric (Holtzman et "
        "al. 2020 judge decoding by closeness to human text); the closest cell in bold.", "",
        markdown_table(header, rows), ""])


def metric_errors_section(run_dir: Path) -> str:
    """Every metric that failed on a cell (or on the human row), with its error."""
    lines = []
    records = sorted((run_dir / "cells").glob("*.json")) + [run_dir / "human.json"]
    for path in records:
        record = _read_json(path) if path.is_file() else {}
        for name, error in (record.get("metric_errors") or {}).items():
            where = record.get("label") or record.get("id") or path.stem
            lines.append(f"- `{name}` on {_cell(where)}: {_cell(str(error)[:300])}")
    if not lines:
        return ""
    return "\n".join(["## Metric errors", "",
                      f"These metrics failed; their columns are empty ({MISSING}) and every "
                      "other metric was scored.", "", *lines, ""])


def failed_section(frame: Any, manifest: dict[str, Any]) -> str:
    failed = [c for c in manifest.get("cells") or [] if c.get("status") == "failed"]
    if not failed and frame is not None and "status" in frame:
        failed = [{"id": r.get("cell_id"), "label": r.get("label"), "error": r.get("error")}
                  for _, r in frame[frame["status"] == "failed"].iterrows()]
    if not failed:
        return ""
    lines = ["## Failed cells", ""]
    for c in failed:
        error = c.get("error")
        error = "unknown error" if _is_missing(error) else str(error).splitlines()[0][:300]
        lines.append(f"- `{c.get('id')}` ({c.get('label', '')}): {_cell(error)}")
    return "\n".join(lines) + "\n"


PAIRED_COLUMNS = (("rep_n", "rep_4"), ("diversity", "diversity"), ("distinct_n", "distinct_2"))


def paired_section(run_dir: Path, frame: Any, seed: int = 0) -> str:
    """Each cell minus the first one, paired over the same prompts and sample indices.

    Pairing removes the prompt-to-prompt variation both cells share, so these intervals
    are narrower than comparing the two cells' own intervals.
    """
    import json

    from samplerlab.metrics.base import MetricContext
    from samplerlab.metrics.scoring import build_metrics, format_value, paired_difference

    done = [r for r in frame.to_dict("records") if r.get("status") == "done"]
    path = run_dir / "samples.jsonl"
    if len(done) < 2 or not path.is_file():
        return ""
    by_cell: dict[str, list[dict[str, Any]]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line:
            sample = json.loads(line)
            by_cell.setdefault(sample["cell_id"], []).append(sample)
    metrics = dict(zip([name for name, _ in PAIRED_COLUMNS],
                       build_metrics([name for name, _ in PAIRED_COLUMNS]), strict=True))
    base = done[0]
    header = ["cell", "pairs"] + [f"Δ {col}" for _, col in PAIRED_COLUMNS]
    rows = []
    for row in done[1:]:
        a, b = by_cell.get(row["cell_id"], []), by_cell.get(base["cell_id"], [])
        cells: list[Any] = [row.get("label", row["cell_id"]), ""]
        for name, col in PAIRED_COLUMNS:
            diff = paired_difference(a, b, metrics[name], MetricContext(seed=seed))[col]
            cells[1] = diff["n"]
            cells.append(format_value(diff["difference"], diff["ci_low"], diff["ci_high"]))
        rows.append(cells)
    label = base.get("label", base["cell_id"])
    return "\n".join([
        f"## Paired differences against {label}", "",
        f"Each cell minus `{label}` over the same prompts and sample indices, with a 95% "
        "paired bootstrap interval; an interval that excludes 0 is a difference the "
        "prompts do not explain.", "", markdown_table(header, rows), ""])


def write_report(run_dir: str | Path) -> Path:
    """Write ``run_dir/report.md`` (drawing the plots first when ``plots/`` is missing)."""
    from samplerlab.plots import draw_plots, read_metrics

    run_dir = Path(run_dir)
    spec = _read_yaml(run_dir / "spec.yaml")
    manifest = _read_json(run_dir / "manifest.json")
    frame = read_metrics(run_dir)
    plots_dir = run_dir / "plots"
    if not plots_dir.is_dir() or not any(plots_dir.glob("*.png")):
        draw_plots(run_dir)
    title = spec.get("name") or manifest.get("name") or run_dir.name
    parts = [f"# {title}: samplerlab report", ""]
    if spec.get("description"):
        parts += [str(spec["description"]), ""]
    parts += ["## Setup", "", spec_summary(spec, manifest), ""]
    main = [c for c in MAIN_COLUMNS if c in frame and frame[c].notna().any()]
    parts += ["## Main metrics", "",
              "Each value is followed by its 95% bootstrap confidence interval over "
              f"generations (latency: over timed calls); {MISSING} marks a missing value."
              + (" The `human` row scores human text with the same metrics."
                 if "status" in frame and (frame["status"] == "human").any() else ""),
              "", metric_table(frame, main), ""]
    # Every other column, values or not: a metric that failed everywhere shows as "–".
    rest = [c for c in metric_columns(list(frame.columns)) if c not in main
            and not c.startswith("gap_")]
    if rest:
        parts += ["<details><summary>All metrics</summary>", "",
                  metric_table(frame, rest), "", "</details>", ""]
    for section in (gap_section(frame),
                    paired_section(run_dir, frame, seed=int(manifest.get("seed") or 0)),
                    metric_errors_section(run_dir), failed_section(frame, manifest)):
        if section:
            parts += [section]
    parts += ratings_lines(run_dir)
    pngs = sorted(plots_dir.glob("*.png"), key=_plot_order)
    if pngs:
        parts += ["## Plots", ""]
        shown = [p for p in pngs if _plot_order(p)[0] < 3]
        others = [p for p in pngs if _plot_order(p)[0] >= 3]
        for png in shown:
            parts += [f"![{png.stem}](plots/{png.name})", ""]
        if others:
            parts += ["<details><summary>More plots</summary>", ""]
            parts += [f"![{png.stem}](plots/{png.name})\n" for png in others]
            parts += ["</details>", ""]
    # -- per-token traces (samplerlab.traces.plots): a section when traces exist --
    from samplerlab.traces.plots import report_section

    traces = report_section(run_dir)
    if traces:
        parts += [traces]
    parts += ["## Sample generations", "", sample_section(run_dir)]
    path = run_dir / "report.md"
    from samplerlab.results import atomic_write

    atomic_write(path, "\n".join(parts).rstrip() + "\n")
    return path


def _plot_order(path: Path) -> tuple[int, str]:
    """The frontier, trade-offs, sweeps and lengths first, then the main metrics in the
    table's order."""
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
