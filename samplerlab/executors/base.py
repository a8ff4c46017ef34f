"""The executor contract: run cells somewhere, hand each finished cell back to the runner.

An executor never writes results, draws progress or prints: the
:class:`~samplerlab.runner.Runner` does all three from the :class:`CellOutcome` s it
receives. Every executor runs a cell the same way, through :func:`run_cell`: the cell
engine generates, the metrics score, and a failure becomes a record with
``status: failed`` instead of an exception, so one cell's failure never stops another.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from samplerlab.engine import CellFailed, cell_seed
from samplerlab.results import now


@dataclass(frozen=True)
class RunJob:
    """What every cell of a run needs, as plain picklable values (no Keras objects).

    Attributes:
        model: the spec's ``model`` section, whole (:class:`~samplerlab.spec.ModelSpec`):
            a worker elsewhere loads its model with every setting of it
            (``load_spec_model(job.model, preset=job.preset)``).
        preset: the preset the cells decode with, as a worker elsewhere loads it: an
            absolute directory (the fine-tuned preset, or a local one), ``samplerlab:NAME``
            or a KerasHub preset name.
        generation: the spec's ``generation`` section.
        metrics: the spec's ``metrics`` list.
        prompts: the prompts, already resolved.
        spec_seed: the spec's seed (each cell's seed derives from it).
        plugins: plugin files (absolute) and modules loaded beyond the built-ins and the
            installed entry points, for workers to load too.
    """

    model: Any
    preset: str
    generation: Any
    metrics: list[Any]
    prompts: list[Any]
    spec_seed: int
    plugins: tuple[str, ...] = ()


@dataclass
class CellOutcome:
    """A finished cell: its samples, the record ``RunDir.write_cell`` takes and, when the
    spec traces, its per-token traces (a ``pyarrow.Table``; the runner writes them)."""

    cell: Any
    samples: list[dict[str, Any]]
    record: dict[str, Any]
    traces: Any = None

    @property
    def failed(self) -> bool:
        return self.record.get("status") == "failed"


OnBatch = Callable[[Any], None]


class Executor(Protocol):
    """Runs the cells of a run and yields each one as it finishes."""

    #: ``local``, ``ray``, ...: recorded in the manifest.
    name: str

    def run(self, job: RunJob, cells: Sequence[Any], *, model: Any,
            on_batch: OnBatch | None = None) -> Iterator[CellOutcome]:
        """Run ``cells``; yield one outcome per cell, in the order they finish.

        ``model`` is the :class:`~samplerlab.models.LoadedModel` the runner loaded (and
        fine-tuned): an executor that decodes in this process uses it, one that decodes
        elsewhere loads its own from ``job``. ``on_batch(cell)`` is called after each
        generate call where the executor can see it (the local one); Ctrl-C stops the
        iteration with ``KeyboardInterrupt``.
        """
        ...

    def describe(self) -> dict[str, Any]:
        """What the manifest records about where the cells ran."""
        ...

    def close(self) -> None:
        """Release what :meth:`run` started (workers, connections); idempotent."""
        ...


def new_record(cell: Any, spec_seed: int) -> dict[str, Any]:
    """A cell's record as it starts."""
    return {"id": cell.id, "label": cell.label, "sampler": cell.sampler,
            "params": cell.params, "seed": cell_seed(spec_seed, cell), "started": now()}


def failed_outcome(cell: Any, spec_seed: int, error: str,
                   record: dict[str, Any] | None = None) -> CellOutcome:
    """The outcome of a cell that produced nothing: no samples, ``status: failed``."""
    record = dict(record) if record is not None else {**new_record(cell, spec_seed),
                                                      "started": None}
    record.update(status="failed", error=error, timing=None, num_samples=0, metrics={},
                  finished=now())
    return CellOutcome(cell, [], record)


def run_cell(engine: Any, job: RunJob, cell: Any, metrics: list, *,
             on_batch: Callable[[], None] | None = None,
             metric_model: Any = None) -> CellOutcome:
    """Generate and score one cell with ``engine`` (a :class:`~samplerlab.engine.CellEngine`).

    Every executor runs its cells through here, so a cell gives the same samples wherever
    it runs. ``metric_model`` scores the model metrics (default: the engine's model).
    """
    from samplerlab.metrics.base import MetricContext
    from samplerlab.metrics.model_metrics import score_generated_cell

    record = new_record(cell, job.spec_seed)
    try:
        output = engine.run(cell, job.prompts, record["seed"], on_batch)
    except CellFailed as exc:
        return failed_outcome(cell, job.spec_seed, str(exc), record)
    context = MetricContext(model=metric_model if metric_model is not None else engine.model,
                            timing=output.timing, seed=record["seed"])
    # Text metrics now, each failure isolated (metric_errors); the metrics that need a
    # model wait in metrics_pending for the runner's model metrics step
    # (samplerlab.metrics.model_metrics).
    scored = score_generated_cell(output.samples, metrics, context)
    scored["metrics"].update(output.columns)  # the sampler's loop statistics' columns
    record.update(status="done", error=None, timing=output.timing,
                  num_samples=len(output.samples), finished=now(), **scored)
    return CellOutcome(cell, output.samples, record, output.traces)
