"""Scoring after generation: the judge model's metrics, the human row and the gaps to it.

A cell is scored in two steps. Right after it generates (locally or in a Ray worker),
:func:`score_generated_cell` scores the metrics that need no model (rep-n, diversity,
self-BLEU, ...); the metrics that need one (``requires`` holds ``"model"``: perplexity,
MAUVE, coherence) are listed in the record's ``metrics_pending``. Once every cell has
generated, :func:`score_after_generation` loads the spec's ``metrics_model`` once (by
default it is the generating model, already loaded), scores the pending metrics of every
cell in batches with a progress bar, scores the human row, adds the ``gap_*`` columns and
rewrites each cell record atomically. A run killed in between resumes there: the records
still list what is pending.

Every metric is isolated: one that raises leaves its columns empty (NaN) and its message
in the record's ``metric_errors``; a judge that cannot load costs the model metrics only.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from samplerlab.metrics.base import Metric, MetricContext, Samples
from samplerlab.metrics.human import (
    HUMAN_RECORD,
    HUMAN_SAMPLES,
    gap_columns,
    human_metrics,
    human_samples,
    read_human_record,
)
from samplerlab.metrics.scoring import _nan_columns, build_metrics, score_cell

FEATURES = {
    "perplexity": "token log-likelihoods of the continuation given the prompt",
    "mauve": "final hidden state at each text's last token (Pillutla et al. 2021 used "
             "GPT-2 large)",
    "coherence": "mean of the final hidden states over each text's tokens (Su and Collier "
                 "2022 used SimCSE)",
}


def needs_model(metric: Metric) -> bool:
    """Scored after generation by the run's ``metrics_model``."""
    return "model" in metric.requires


def score_generated_cell(samples: Samples, metrics: list[Metric],
                         context: MetricContext) -> dict[str, Any]:
    """Score a cell that has just generated: the fields its record takes.

    Returns ``{"metrics": ..., "metric_errors": ..., "metrics_pending": [...]}``: every
    metric that needs no model, each failure isolated, and the names of those left to
    :func:`score_after_generation`.
    """
    now = [m for m in metrics if not needs_model(m)]
    scores = score_cell(samples, now, context)
    return {"metrics": scores.values, "metric_errors": scores.errors,
            "metrics_pending": [m.name for m in metrics if needs_model(m)]}


def metric_warnings(cell_id: str, record: dict[str, Any]) -> list[str]:
    """One line per metric that failed on a cell."""
    return [f"cell {cell_id}: metric '{name}' failed, its columns are empty: {error}"
            for name, error in (record.get("metric_errors") or {}).items()]


@dataclass
class Judge:
    """The model that scores the model metrics, and how to describe it."""

    model: Any
    description: str
    is_generator: bool


def load_judge(spec: Any, generator: Any) -> Judge:
    """``spec.metrics_model`` loaded (once), or the generating model when it names none."""
    judge = spec.metrics_model
    if judge.preset is None:
        return Judge(generator, f"the generating model `{spec.model.preset}`"
                     + (" (fine-tuned)" if spec.finetune is not None else ""), True)
    from samplerlab.models import load_model

    model = load_model(judge.preset, judge.sequence_length or spec.model.sequence_length,
                       judge.dtype_policy, fast_decoding=False)
    return Judge(model, f"`{judge.preset}` (metrics_model)", False)


def _write_json(path: Any, data: Any) -> None:
    from samplerlab.results import atomic_write

    atomic_write(path, json.dumps(data, ensure_ascii=False, default=str))


class _Bar:
    """A rich progress bar over the samples the judge scores (a no-op when disabled)."""

    def __init__(self, console: Any, enabled: bool, total: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                                 disable=not enabled or total == 0)
        self.task = self.progress.add_task("model metrics", total=total)
        self.done = 0

    def advance(self, n: int) -> None:
        self.progress.advance(self.task, n)

    def settle(self, n: int, description: str) -> None:
        """Mark ``n`` more samples done, whatever the metrics reported themselves."""
        self.done += n
        self.progress.update(self.task, completed=self.done, description=description)


def score_after_generation(run: Any, loaded: Any, generator: Any, prompts: list[Any], *,
                           console: Any = None, progress: bool = True) -> None:
    """Score what waits for generation to end, and write it into the run directory.

    Args:
        run: the :class:`samplerlab.results.RunDir`.
        loaded: the :class:`samplerlab.spec.LoadedSpec` (metrics, ``metrics_model``,
            ``human``, cells).
        generator: the generating model (after fine-tuning): the default judge, and the
            tokenizer of the human row's token budget.
        prompts: the run's prompts (their reference continuations make the human row).
        console: a rich console for the progress bar and warnings.
        progress: show the progress bar.
    """
    from rich.console import Console

    spec = loaded.spec
    console = console or Console(stderr=True)
    metrics = build_metrics(spec.metrics)
    later = [m for m in metrics if needs_model(m)]
    records = {c.id: run.cell_record(c.id) for c in loaded.cells}
    done = {cid: r for cid, r in records.items() if r and r.get("status") == "done"}
    pending = {cid: r for cid, r in done.items() if r.get("metrics_pending")}
    human = human_samples(spec, prompts, generator)
    human_record = read_human_record(run.path)
    need_human = human is not None and human_record is None
    notes: list[str] = []

    judge, judge_error = None, None
    if later and (pending or need_human):
        try:
            judge = load_judge(spec, generator)
        except Exception as exc:  # noqa: BLE001 - a late failure costs the model metrics only
            judge_error = (f"metrics_model '{spec.metrics_model.preset}' could not load: "
                           f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            notes.append(judge_error + "; the model metrics are empty")
    context = MetricContext(
        model=judge.model if judge else None, tokenized_by_model=bool(judge and judge.is_generator),
        human=human, batch_size=spec.metrics_model.batch_size,
        max_tokens=spec.metrics_model.sequence_length)
    total = 0
    if judge is not None:
        total = len(later) * sum(r.get("num_samples") or 0 for r in pending.values())
        total += len(human_metrics(later)) * len(human) if need_human else 0
    bar = _Bar(console, progress, total)
    context.progress = bar.advance
    skipped: dict[str, str] = {}
    with bar.progress:
        if need_human:
            human_record = _score_human(run, spec, human, metrics, context, judge_error, bar,
                                        skipped)
        for cell_id, record in pending.items():
            _score_pending(run, cell_id, record, later, context, judge_error, bar, skipped,
                           console)
    if human_record is not None:
        _write_gaps(run, done, human_record)
    later_names = {m.name for m in later}
    notes += [f"{name} skipped: no human text to compare with"
              for name, reason in sorted(skipped.items())
              if name in later_names and "references" in reason]
    _record_in_manifest(run, spec, judge, judge_error, later, human_record, notes, console)


def _score_pending(run: Any, cell_id: str, record: dict[str, Any], later: list[Metric],
                   context: MetricContext, judge_error: str | None, bar: _Bar,
                   skipped: dict[str, str], console: Any) -> None:
    """Score a cell's pending model metrics (or record why they cannot be); write it."""
    from rich.markup import escape

    names = set(record.pop("metrics_pending"))
    chosen = [m for m in later if m.name in names]
    errors = record.setdefault("metric_errors", {})
    if context.model is None:  # the judge failed to load: said once, in the notes
        for m in chosen:
            record["metrics"].update(_nan_columns(m.columns()))
            errors[m.name] = judge_error
    else:
        samples = run.cell_samples(cell_id)
        scores = score_cell(samples, chosen,
                            dataclasses.replace(context, seed=record.get("seed") or 0))
        record["metrics"].update(scores.values)
        errors.update(scores.errors)
        skipped.update(scores.skipped)
        bar.settle(len(chosen) * len(samples), f"model metrics: {record['label']}")
        for line in metric_warnings(cell_id, {"metric_errors": scores.errors}):
            console.print(f"[yellow]warning:[/] {escape(line)}", soft_wrap=True,
                          highlight=False)
    _write_json(run.path / "cells" / f"{cell_id}.json", record)


def _write_gaps(run: Any, done: dict[str, dict[str, Any]], human: dict[str, Any]) -> None:
    """Add ``gap_*`` columns to each done cell's record, rewriting only those that change."""
    for cell_id, record in done.items():
        gaps = gap_columns(record.get("metrics") or {}, human.get("metrics") or {})
        old = {k: (record.get("metrics") or {}).get(k) for k in gaps}
        if json.dumps(gaps, sort_keys=True) != json.dumps(old, sort_keys=True):
            record["metrics"].update(gaps)
            _write_json(run.path / "cells" / f"{cell_id}.json", record)


def _score_human(run: Any, spec: Any, human: Samples, metrics: list[Metric],
                 context: MetricContext, judge_error: str | None, bar: _Bar,
                 skipped: dict[str, str]) -> dict[str, Any]:
    """Score the human row with every metric that applies to it; write its files."""
    from samplerlab.results import atomic_write

    chosen = human_metrics(metrics)
    now = [m for m in chosen if not needs_model(m)]
    model_metrics = [m for m in chosen if needs_model(m)]
    errors: dict[str, str] = {}
    ctx = dataclasses.replace(context, seed=spec.seed)
    scores = score_cell(human, now if context.model is None else chosen, ctx)
    values = scores.values
    errors.update(scores.errors)
    if context.model is None:
        for m in model_metrics:
            values.update(_nan_columns(m.columns()))
            if judge_error:
                errors[m.name] = judge_error
    else:
        skipped.update(scores.skipped)
        bar.settle(len(model_metrics) * len(human), "model metrics: human")
    record = {"id": "human", "label": "human", "source": human[0].get("source"),
              "path": spec.human.path if spec.human is not None else None,
              "num_samples": len(human), "metrics": values, "metric_errors": errors,
              "not_scored": sorted(m.name for m in metrics if m not in chosen)}
    atomic_write(run.path / HUMAN_SAMPLES,
                 "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in human))
    _write_json(run.path / HUMAN_RECORD, record)
    return record


def _record_in_manifest(run: Any, spec: Any, judge: Judge | None, judge_error: str | None,
                        later: list[Metric], human_record: dict[str, Any] | None,
                        notes: list[str], console: Any) -> None:
    from rich.markup import escape

    manifest = run.manifest
    if later:
        entry = manifest.setdefault("metrics_model", {})
        entry.update({"preset": spec.metrics_model.preset or spec.model.preset,
                      "is_generator": spec.metrics_model.preset is None,
                      "batch_size": spec.metrics_model.batch_size,
                      "sequence_length": spec.metrics_model.sequence_length,
                      "features": {m.name: FEATURES[m.name] for m in later
                                   if m.name in FEATURES}})
        if judge is not None:
            entry["description"] = judge.description
        if judge_error:
            entry["error"] = judge_error
    if human_record is not None:
        manifest["human"] = {"source": human_record.get("source"),
                             "path": human_record.get("path"),
                             "num_samples": human_record.get("num_samples")}
    for note in notes:
        if note not in manifest.setdefault("notes", []):
            manifest["notes"].append(note)
            console.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True, highlight=False)
    run.save_manifest()
