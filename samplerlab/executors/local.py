"""The local executor: every cell in this process, one after another, on the loaded model."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from samplerlab.engine import CellEngine
from samplerlab.executors.base import CellOutcome, OnBatch, RunJob, run_cell


class LocalExecutor:
    """Runs cells here, one after another, with the model the runner already loaded (and
    fine-tuned).

    One :class:`~samplerlab.engine.CellEngine` per generation setting serves every cell,
    so cells whose samplers share a structure (a sweep over program parameters) share one
    compiled program.

    Example:

    ```python
    import samplerlab
    from samplerlab.executors import LocalExecutor, RunJob
    from samplerlab.prompts import Prompt

    loaded = samplerlab.load_spec({"name": "doc", "model": {"preset": "samplerlab:tiny-en"},
                                   "prompts": ["Keras is"], "samplers": ["greedy"],
                                   "generation": {"max_length": 16}, "metrics": ["length"]})
    spec = loaded.spec
    job = RunJob(model=spec.model, preset=spec.model.preset, generation=spec.generation,
                 metrics=spec.metrics, prompts=[Prompt("Keras is", 0)], spec_seed=spec.seed)
    for outcome in LocalExecutor().run(job, loaded.cells, model=model):  # a LoadedModel
        print(outcome.cell.id, outcome.record["status"])
    ```
    """

    name = "local"

    def __init__(self) -> None:
        self._engines: dict[str, CellEngine] = {}

    def engine(self, model: Any, generation: Any) -> CellEngine:
        """The engine for ``model`` under one generation setting (kept while the model is
        the same: its compiled programs are reused)."""
        key = generation.model_dump_json()
        engine = self._engines.get(key)
        if engine is None or engine.model is not model:
            engine = self._engines[key] = CellEngine(model, generation)
        return engine

    def run(self, job: RunJob, cells: Sequence[Any], *, model: Any,
            on_batch: OnBatch | None = None) -> Iterator[CellOutcome]:
        from samplerlab.metrics.scoring import build_metrics

        engine = self.engine(model, job.generation)
        metrics = build_metrics(job.metrics)
        for cell in cells:
            yield run_cell(engine, job, cell, metrics,
                           on_batch=(lambda c=cell: on_batch(c)) if on_batch else None)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}

    def close(self) -> None:
        """Nothing to release: the model belongs to the runner."""
