"""``report.md``: a run's spec, metric table, plots and sample generations, for GitHub.

Everything is read from the run directory (:class:`samplerlab.results.RunDir`: the spec,
manifest, metric table, cell records, human row, samples and plots), so a
report can be rewritten at any time (``samplerlab plot RUN_DIR`` redraws the plots and
the report). Each section is a function of its own; a missing value prints as ``–``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from samplerlab.metrics.scoring import MAIN_COLUMNS, MISSING, format_value, metric_columns
from samplerlab.plots import draw_plots, ordered_plots, plot_order
from samplerlab.ratings import ratings_lines
from samplerlab.results import RunDir
from samplerlab.results.tables import markdown_cell, markdown_table
from samplerlab.traces.plots import report_section as traces_section

SAMPLES_PER_SAMPLER = 2
MAX_SAMPLE_CHARS = 600


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


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
    scorer = manifest.get("metrics_model")
    if scorer:
        who = scorer.get("description") or f"`{scorer.get('preset')}`"
        if scorer.get("error"):
            who = f"`{scorer.get('preset')}`, which failed to load ({scorer['error']})"
        lines.append(f"- **Scoring model** (perplexity, MAUVE, coherence): {who}")
        for name, how in (scorer.get("features") or {}).items():
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


def sample_section(run: RunDir, per_sampler: int = SAMPLES_PER_SAMPLER) -> str:
    """The first generations of each sampler, then the first human texts (``human.jsonl``)."""
    shown: dict[str, list[dict[str, Any]]] = {}
    for s in [*run.samples(), *run.human_samples()]:
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
            label = markdown_cell(s.get("label", sampler))
            prompt = markdown_cell(s.get("prompt", ""))
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


def metric_errors_section(run: RunDir) -> str:
    """Every metric that failed on a cell (or on the human row), with its error."""
    lines = []
    for record in [*run.cell_records(), run.human_record() or {}]:
        for name, error in (record.get("metric_errors") or {}).items():
            where = record.get("label") or record.get("id") or "?"
            lines.append(f"- `{name}` on {markdown_cell(where)}: {markdown_cell(str(error)[:300])}")
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
        lines.append(f"- `{c.get('id')}` ({c.get('label', '')}): {markdown_cell(error)}")
    return "\n".join(lines) + "\n"


PAIRED_COLUMNS = (("rep_n", "rep_4"), ("diversity", "diversity"), ("distinct_n", "distinct_2"))


def paired_section(run: RunDir, frame: Any, seed: int = 0) -> str:
    """Each cell minus the first one, paired over the same prompts and sample indices.

    Pairing removes the prompt-to-prompt variation both cells share, so these intervals
    are narrower than comparing the two cells' own intervals.
    """
    from samplerlab.metrics.base import MetricContext
    from samplerlab.metrics.scoring import build_metrics, paired_difference

    done = [r for r in frame.to_dict("records") if r.get("status") == "done"]
    if len(done) < 2 or not run.samples_path.is_file():
        return ""
    by_cell: dict[str, list[dict[str, Any]]] = {}
    for sample in run.samples():
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
    run = RunDir.read(run_dir)
    spec, manifest = run.spec(), run.manifest
    frame = run.read_metrics()
    if not run.plots_dir.is_dir() or not any(run.plots_dir.glob("*.png")):
        draw_plots(run.path)
    title = spec.get("name") or manifest.get("name") or run.path.name
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
                    paired_section(run, frame, seed=run.seed()),
                    metric_errors_section(run), failed_section(frame, manifest)):
        if section:
            parts += [section]
    parts += ratings_lines(run.path)
    pngs = ordered_plots(run.path)
    if pngs:
        parts += ["## Plots", ""]
        shown = [p for p in pngs if plot_order(p)[0] < 3]
        others = [p for p in pngs if plot_order(p)[0] >= 3]
        for png in shown:
            parts += [f"![{png.stem}]({run.relative(png)})", ""]
        if others:
            parts += ["<details><summary>More plots</summary>", ""]
            parts += [f"![{png.stem}]({run.relative(png)})\n" for png in others]
            parts += ["</details>", ""]
    traces = traces_section(run.path)  # per-token traces: a section when the run has them
    if traces:
        parts += [traces]
    parts += ["## Sample generations", "", sample_section(run)]
    return run.write_report("\n".join(parts).rstrip() + "\n")
