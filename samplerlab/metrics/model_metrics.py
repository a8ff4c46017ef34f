"""The model metrics: perplexity, MAUVE and coherence scored after generation by the
``metrics_model``, with the human row and the gaps to it.

A cell is scored in two steps. Right after it generates (locally or in a Ray worker),
:func:`score_generated_cell` scores the metrics that need no model (rep-n, diversity,
self-BLEU, ...); the metrics that need one (``requires`` holds ``"model"``: perplexity,
MAUVE, coherence) are listed in the record's ``metrics_pending``. Once every cell has
generated, :func:`score_after_generation` loads the spec's ``metrics_model`` once (by
default it is the generating model, already loaded), scores the pending metrics of every
cell in batches with a progress bar, scores the human row and adds the ``gap_*`` columns.

It writes nothing: it yields each result as it is ready (:class:`ScoredCell`,
:class:`ScoredHuman`, then one :class:`ModelMetricsSummary`) and the runner, the only
writer of the run directory, writes each one at once. A run killed in between resumes
there: the records not yet rewritten still list what is pending.

Every metric is isolated: one that raises leaves its columns empty (NaN) and its message
in the record's ``metric_errors``; a metrics model that cannot load costs the model
metrics only.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from samplerlab.metrics.base import Metric, MetricContext, Samples
from samplerlab.metrics.human import gap_columns, human_metrics, human_samples
from samplerlab.metrics.scoring import build_metrics, nan_columns, score_cell

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


@dataclass(frozen=True)
class ScoredCell:
    """A cell's record with its model metrics (or gaps) added: to be rewritten."""

    cell_id: str
    record: dict[str, Any]


@dataclass(frozen=True)
class ScoredHuman:
    """The human row: its texts and its record (metrics, errors, source)."""

    samples: list[dict[str, Any]]
    record: dict[str, Any]


@dataclass(frozen=True)
class ModelMetricsSummary:
    """What the manifest records of this step: the metrics model (merged into the
    manifest's ``metrics_model``), the human text (``human``) and notes."""

    metrics_model: dict[str, Any] | None
    human: dict[str, Any] | None
    notes: list[str] = field(default_factory=list)


ModelMetricsResult = ScoredCell | ScoredHuman | ModelMetricsSummary


@dataclass
class MetricsModel:
    """The model that scores the model metrics, and how to describe it."""

    model: Any
    description: str
    is_generator: bool


def load_metrics_model(spec: Any, generator: Any) -> MetricsModel:
    """``spec.metrics_model`` loaded (once), or the generating model when it names none."""
    chosen = spec.metrics_model
    if chosen.preset is None:
        return MetricsModel(generator, f"the generating model `{spec.model.preset}`"
                            + (" (fine-tuned)" if spec.finetune is not None else ""), True)
    from samplerlab.models import load_model

    model = load_model(chosen.preset, chosen.sequence_length or spec.model.sequence_length,
                       chosen.dtype_policy, fast_decoding=False)
    return MetricsModel(model, f"`{chosen.preset}` (metrics_model)", False)


class _Bar:
    """A rich progress bar over the samples the metrics model scores (a no-op when disabled)."""

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


@dataclass
class _Step:
    """What every part of one scoring pass shares."""

    context: MetricContext
    later: list[Metric]
    model_error: str | None
    bar: _Bar
    console: Any
    skipped: dict[str, str] = field(default_factory=dict)


def score_after_generation(run: Any, loaded: Any, generator: Any, prompts: list[Any], *,
                           console: Any = None,
                           progress: bool = True) -> Iterator[ModelMetricsResult]:
    """Score what waits for generation to end; yield each result as it is ready.

    Reads the run (records, samples, the human row) and writes nothing: the caller writes
    each :class:`ScoredHuman` and :class:`ScoredCell` as it comes, and records the
    closing :class:`ModelMetricsSummary` in the manifest.

    Args:
        run: the :class:`samplerlab.results.RunDir`.
        loaded: the :class:`samplerlab.spec.LoadedSpec` (metrics, ``metrics_model``,
            ``human``, cells).
        generator: the generating model (after fine-tuning): the default metrics model,
            and the tokenizer of the human row's token budget.
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
    human_record = run.human_record()
    need_human = human is not None and human_record is None
    notes: list[str] = []

    scorer, model_error = None, None
    if later and (pending or need_human):
        try:
            scorer = load_metrics_model(spec, generator)
        except Exception as exc:  # noqa: BLE001 - a late failure costs the model metrics only
            model_error = (f"metrics_model '{spec.metrics_model.preset}' could not load: "
                           f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            notes.append(model_error + "; the model metrics are empty")
    context = MetricContext(
        model=scorer.model if scorer else None,
        tokenized_by_model=bool(scorer and scorer.is_generator), human=human,
        batch_size=spec.metrics_model.batch_size, max_tokens=spec.metrics_model.sequence_length)
    total = 0
    if scorer is not None:
        total = len(later) * sum(r.get("num_samples") or 0 for r in pending.values())
        total += len(human_metrics(later)) * len(human) if need_human else 0
    step = _Step(context, later, model_error, _Bar(console, progress, total), console)
    context.progress = step.bar.advance
    with step.bar.progress:
        if need_human:
            human_record = _score_human(spec, human, metrics, step)
            yield ScoredHuman(human, human_record)
        for cell_id, record in pending.items():
            yield ScoredCell(cell_id, _score_pending(run, cell_id, record, step))
    if human_record is not None:
        yield from _gaps(done, human_record)
    later_names = {m.name for m in later}
    notes += [f"{name} skipped: no human text to compare with"
              for name, reason in sorted(step.skipped.items())
              if name in later_names and "references" in reason]
    yield _summary(spec, scorer, model_error, later, human_record, notes)


def _score_pending(run: Any, cell_id: str, record: dict[str, Any],
                   step: _Step) -> dict[str, Any]:
    """A cell's record with its pending model metrics scored (or why they cannot be)."""
    from rich.markup import escape

    names = set(record.pop("metrics_pending"))
    chosen = [m for m in step.later if m.name in names]
    errors = record.setdefault("metric_errors", {})
    if step.context.model is None:  # the metrics model failed to load: said once, in the notes
        for m in chosen:
            record["metrics"].update(nan_columns(m.columns()))
            errors[m.name] = step.model_error
        return record
    samples = run.cell_samples(cell_id)
    scores = score_cell(samples, chosen,
                        dataclasses.replace(step.context, seed=record.get("seed") or 0))
    record["metrics"].update(scores.values)
    errors.update(scores.errors)
    step.skipped.update(scores.skipped)
    step.bar.settle(len(chosen) * len(samples), f"model metrics: {record['label']}")
    for line in metric_warnings(cell_id, {"metric_errors": scores.errors}):
        step.console.print(f"[yellow]warning:[/] {escape(line)}", soft_wrap=True,
                           highlight=False)
    return record


def _gaps(done: dict[str, dict[str, Any]], human: dict[str, Any]) -> Iterator[ScoredCell]:
    """Each done cell's record with its ``gap_*`` columns, where they change."""
    for cell_id, record in done.items():
        gaps = gap_columns(record.get("metrics") or {}, human.get("metrics") or {})
        old = {k: (record.get("metrics") or {}).get(k) for k in gaps}
        if json.dumps(gaps, sort_keys=True) != json.dumps(old, sort_keys=True):
            record["metrics"].update(gaps)
            yield ScoredCell(cell_id, record)


def _score_human(spec: Any, human: Samples, metrics: list[Metric],
                 step: _Step) -> dict[str, Any]:
    """The human row's record: every metric that applies to it."""
    chosen = human_metrics(metrics)
    now = [m for m in chosen if not needs_model(m)]
    model_metrics = [m for m in chosen if needs_model(m)]
    errors: dict[str, str] = {}
    ctx = dataclasses.replace(step.context, seed=spec.seed)
    scores = score_cell(human, now if step.context.model is None else chosen, ctx)
    values = scores.values
    errors.update(scores.errors)
    if step.context.model is None:
        for m in model_metrics:
            values.update(nan_columns(m.columns()))
            if step.model_error:
                errors[m.name] = step.model_error
    else:
        step.skipped.update(scores.skipped)
        step.bar.settle(len(model_metrics) * len(human), "model metrics: human")
    return {"id": "human", "label": "human", "source": human[0].get("source"),
            "path": spec.human.path if spec.human is not None else None,
            "num_samples": len(human), "metrics": values, "metric_errors": errors,
            "not_scored": sorted(m.name for m in metrics if m not in chosen)}


def _summary(spec: Any, scorer: MetricsModel | None, model_error: str | None,
             later: list[Metric], human_record: dict[str, Any] | None,
             notes: list[str]) -> ModelMetricsSummary:
    entry = None
    if later:
        entry = {"preset": spec.metrics_model.preset or spec.model.preset,
                 "is_generator": spec.metrics_model.preset is None,
                 "batch_size": spec.metrics_model.batch_size,
                 "sequence_length": spec.metrics_model.sequence_length,
                 "features": {m.name: FEATURES[m.name] for m in later if m.name in FEATURES}}
        if scorer is not None:
            entry["description"] = scorer.description
        if model_error:
            entry["error"] = model_error
    human = None
    if human_record is not None:
        human = {"source": human_record.get("source"), "path": human_record.get("path"),
                 "num_samples": human_record.get("num_samples")}
    return ModelMetricsSummary(entry, human, notes)
