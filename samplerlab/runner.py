"""A run: prompts and cells through an executor into a results directory.

The runner is the only writer of a run's state (through :class:`samplerlab.results.RunDir`,
which names every file): it loads (and fine-tunes) the model, creates the directory, hands
the cells without a record to an executor (:mod:`samplerlab.executors`; local by default),
writes each finished cell as it comes back, draws the progress, counts the compiled
programs, writes what the model metrics step returns, and the tables, plots and report at
the end. Data flows one way: spec → runner → executor → engine → results.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from samplerlab.engine.cell import batch_count
from samplerlab.executors.base import CellOutcome, RunJob
from samplerlab.prompts import Prompt, resolve_prompts
from samplerlab.results import (
    RunDir,
    default_run_id,
    git_revision,
    load_samples,
    now,
    safe_run_dir,
    versions,
)
from samplerlab.spec import Cell, LoadedSpec
from samplerlab.spec.checks import check_lengths_fit, check_trace_top
from samplerlab.traces.table import REFERENCE_CELL, merged_traces, parquet_bytes, vocabulary_size


@dataclass
class RunResult:
    """Where a run was written, how it ended, and which cells failed."""

    run_dir: Path
    status: str
    failed: list[str] = field(default_factory=list)

    @property
    def samples(self) -> Any:
        """``samples.jsonl`` as a DataFrame, one row per generation."""
        return load_samples(self.run_dir)

    @property
    def metrics(self) -> Any:
        """``metrics.csv`` as a DataFrame, one row per cell (and the human row)."""
        import pandas as pd

        return pd.read_csv(RunDir(self.run_dir).metrics_path)


def check_prompts(loaded: LoadedSpec, model: Any, prompts: list[Prompt]) -> None:
    """Prompts must fit the preprocessor and leave room to generate, and the lengths must
    fit the model's context (needs the tokenizer and the model's family)."""
    max_length = loaded.spec.generation.max_length
    seq_len = loaded.spec.model.sequence_length
    overhead = model.family.prompt_overhead  # a start token, for families that prepend one
    for p in prompts:
        n = len(np.asarray(model.tokenizer(p.text))) + overhead
        loc = ("prompts", p.index) if isinstance(loaded.spec.prompts, list) else ("prompts",)
        if n > seq_len:
            raise loaded.error(f"prompt {p.index} is {n} tokens, longer than "
                               f"model.sequence_length ({seq_len}); raise model.sequence_length "
                               "or shorten the prompt", loc)
        if n >= max_length:
            raise loaded.error(f"prompt {p.index} is {n} tokens; generation.max_length "
                               f"({max_length}) must be above the prompt length: raise it",
                               loc)
    check_lengths_fit(loaded, model.context_length, model.family.context_source)


def _device_names() -> list[str]:
    import jax

    return [f"{d.platform}:{d.id} {getattr(d, 'device_kind', '')}".strip() for d in jax.devices()]


def new_manifest(loaded: LoadedSpec, model: Any, run_id: str) -> dict[str, Any]:
    import keras

    return {
        "name": loaded.spec.name, "run_id": run_id, "spec_file": loaded.path,
        "versions": versions(), "backend": keras.config.backend(), "devices": _device_names(),
        "git_revision": git_revision(), "seed": loaded.spec.seed,
        "model": {"preset": model.preset, "path": model.path,
                  "dtype_policy": model.dtype_policy, "quantize": model.quantize,
                  "fast_decoding": model.fast_decoding,
                  "decoding": model.adapter.describe(), **model.family.describe()},
        "notes": list(model.notes), "started": now(), "finished": None, "status": "running",
        "cells": [{"id": c.id, "index": c.index, "label": c.label, "sampler": c.sampler,
                   "params": c.params, "status": "pending", "error": None, "timing": None,
                   "num_samples": 0} for c in loaded.cells],
    }


def extra_plugin_targets() -> tuple[str, ...]:
    """Plugins loaded from files or modules (``--plugin``, spec ``plugins:``), for workers."""
    from samplerlab.plugins import get_plugin_manager

    targets = []
    for source in get_plugin_manager().sources.values():
        kind, _, where = source.partition(" ")
        if kind == "file":
            targets.append(str(Path(where).resolve()))
        elif kind == "module":
            targets.append(where)
    return tuple(targets)


class Runner:
    """Runs a loaded spec into a results directory."""

    def __init__(self, loaded: LoadedSpec, *, results_root: str | Path | None = None,
                 console: Console | None = None, progress: bool = True) -> None:
        self.loaded = loaded
        self.spec = loaded.spec
        self.results_root = Path(results_root if results_root is not None
                                 else self.spec.output.root)
        self.console = console or Console(stderr=True)
        self.progress = progress
        self._model: Any = None  # the generating model and prompts, for the model metrics
        self._prompts: list[Prompt] = []

    # -- setting up ------------------------------------------------------------------
    def start(self, run_id: str | None = None) -> tuple[RunDir, Any, list[Prompt]]:
        """Load the model, check the prompts, create the run directory, fine-tune."""
        prompts = resolve_prompts(self.loaded)
        self._metrics()  # a metric that cannot be built fails before the model loads
        run_id = run_id or self.spec.output.run_id or default_run_id()
        target = safe_run_dir(self.results_root, self.spec.name, run_id)
        model = self._load_model(prompts)
        for note in model.notes:
            self.console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
        run = RunDir.create(target, spec_yaml=self.loaded.resolved_yaml(),
                            manifest=new_manifest(self.loaded, model, run_id))
        self._model, self._prompts = self._finetune(model, run), prompts
        return run, self._model, prompts

    def resume(self, run: RunDir) -> tuple[Any, list[Prompt]]:
        """Load (and re-use the fine-tuned) model for a run that has started before."""
        prompts = resolve_prompts(self.loaded)
        self._metrics()
        model = self._finetune(self._load_model(prompts), run)
        self._model, self._prompts = model, prompts
        run.sync_from_records()
        run.manifest.setdefault("resumed", []).append(now())
        run.set_status("running", finished=None)
        return model, prompts

    def _load_model(self, prompts: list[Prompt]) -> Any:
        from samplerlab.engine.extra_models import load_spec_extra_models
        from samplerlab.models import load_spec_model

        model = load_spec_model(self.spec.model)
        check_prompts(self.loaded, model, prompts)
        check_trace_top(self.loaded, vocabulary_size(model))
        load_spec_extra_models(self.loaded, model)  # samplers' extra models: checked now
        return model

    def _metrics(self) -> list:
        from samplerlab.metrics.scoring import build_metrics

        return build_metrics(self.spec.metrics)

    def _finetune(self, model: Any, run: RunDir) -> Any:
        if self.spec.finetune is None:
            return model
        from samplerlab.finetune import maybe_finetune

        tuned = maybe_finetune(self.loaded, model, results_root=self.results_root,
                               run_dir=run.path, console=self.console)
        run.manifest["model"]["finetuned"] = {"path": tuned.path}
        run.save_manifest()
        return tuned

    def job(self, run: RunDir, prompts: list[Prompt]) -> RunJob:
        """What every cell needs, as plain values an executor can ship anywhere."""
        spec = self.spec
        return RunJob(model=spec.model, preset=self.model_reference(run),
                      generation=spec.generation, metrics=list(spec.metrics),
                      prompts=list(prompts), spec_seed=spec.seed,
                      plugins=extra_plugin_targets())

    def model_reference(self, run: RunDir) -> str:
        """The fine-tuned preset if any, else the spec's preset, made absolute when local."""
        from samplerlab.models import EMBEDDED_PREFIX, is_local_reference

        finetuned = (run.manifest.get("model") or {}).get("finetuned")
        if finetuned:
            return str(Path(finetuned["path"]).resolve())
        preset = self.spec.model.preset
        if preset.startswith(EMBEDDED_PREFIX) or not is_local_reference(preset):
            return preset  # each worker resolves it in its own installation / download cache
        return str(Path(preset).expanduser().resolve())

    # -- running ---------------------------------------------------------------------
    def execute(self, run: RunDir, model: Any, prompts: list[Prompt],
                executor: Any = None) -> RunResult:
        """Run every cell without a record through ``executor`` (default: local), write
        each as it finishes, then the tables, plots and report."""
        from samplerlab.executors import LocalExecutor

        executor = executor if executor is not None else LocalExecutor()
        self._reference_traces(run, model, prompts)
        done = run.finished_cells()
        todo = [c for c in self.loaded.cells if c.id not in done]
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn()]
        progress = Progress(*columns, console=self.console, disable=not self.progress)
        compiled = 0
        try:
            with progress:
                cells_bar = progress.add_task(f"cells ({executor.name})",
                                              total=len(self.loaded.cells),
                                              completed=len(self.loaded.cells) - len(todo))
                batches_bar = progress.add_task(
                    "batches", total=batch_count(len(prompts), self.spec.generation),
                    visible=executor.name == "local")

                def on_batch(cell: Cell) -> None:
                    progress.update(batches_bar, description=f"[cyan]{escape(cell.label)}[/]")
                    progress.advance(batches_bar)

                for outcome in executor.run(self.job(run, prompts), todo, model=model,
                                            on_batch=on_batch):
                    compiled += bool((outcome.record.get("timing") or {}).get("compiled"))
                    self._write(run, outcome)
                    progress.advance(cells_bar)
                    progress.reset(batches_bar)
        except KeyboardInterrupt:
            run.mark_interrupted()
            rebuild_run_traces(run)
            raise
        finally:
            run.manifest["executor"] = executor.describe()
            run.manifest["compile_count"] = (run.manifest.get("compile_count") or 0) + compiled
            run.save_manifest()
            executor.close()
        return self.finish(run)

    def _reference_traces(self, run: RunDir, model: Any, prompts: list[Prompt]) -> None:
        """Score the prompts' human continuations once per run (``trace_reference``)."""
        generation = self.spec.generation
        if not generation.trace_reference or run.cell_traces_path(REFERENCE_CELL).is_file():
            return
        from samplerlab.traces.reference import reference_traces

        table = reference_traces(model, prompts, generation.max_length, generation.trace_top,
                                 generation.batch_size)
        run.write_cell_traces(REFERENCE_CELL, parquet_bytes(table))
        rebuild_run_traces(run)

    def _write(self, run: RunDir, outcome: CellOutcome) -> None:
        record = outcome.record
        if outcome.traces is not None:  # before the record, which marks the cell done
            run.write_cell_traces(outcome.cell.id, parquet_bytes(outcome.traces))
        run.write_cell(outcome.cell.id, outcome.samples, record)
        if outcome.traces is not None:
            rebuild_run_traces(run)
        if outcome.failed:
            self._warn(f"[red]cell {outcome.cell.id} failed:[/] {escape(record['error'])}")
            return
        from samplerlab.metrics.model_metrics import metric_warnings

        for line in metric_warnings(outcome.cell.id, record):
            self._warn(f"[yellow]warning:[/] {escape(line)}")

    def _warn(self, markup: str) -> None:
        self.console.print(markup, soft_wrap=True, highlight=False)

    def finish(self, run: RunDir) -> RunResult:
        """The model metrics, tables, status, plots and report from the cell records."""
        self._score_after_generation(run)
        write_tables(run, self.loaded.cells)
        rebuild_run_traces(run)
        failed = [c["id"] for c in run.manifest["cells"] if c.get("status") == "failed"]
        status = "failed" if failed else "complete"
        run.set_status(status, finished=now())
        self._draw(run)
        return RunResult(run.path, status, failed)

    def _score_after_generation(self, run: RunDir) -> None:
        """The model metrics of every cell, the human row and the gaps to it
        (:mod:`samplerlab.metrics.model_metrics`), each written as it comes; a failure
        here never costs the samples."""
        from samplerlab.metrics.model_metrics import score_after_generation

        try:
            for result in score_after_generation(run, self.loaded, self._model, self._prompts,
                                                 console=self.console, progress=self.progress):
                self._write_model_metrics(run, result)
        except KeyboardInterrupt:
            run.mark_interrupted()
            raise
        except Exception as exc:  # noqa: BLE001 - the samples are already safe on disk
            message = f"scoring after generation failed: {type(exc).__name__}: {exc}"
            run.add_notes([message])
            self._warn(f"[yellow]warning:[/] {escape(message)}")

    def _write_model_metrics(self, run: RunDir, result: Any) -> None:
        """Write one result of the model metrics step (a record, the human row, or the
        manifest's account of the step)."""
        from samplerlab.metrics.model_metrics import ScoredCell, ScoredHuman

        if isinstance(result, ScoredCell):
            run.write_cell_record(result.cell_id, result.record)
        elif isinstance(result, ScoredHuman):
            run.write_human(result.samples, result.record)
        else:
            if result.metrics_model is not None:
                run.manifest.setdefault("metrics_model", {}).update(result.metrics_model)
            if result.human is not None:
                run.manifest["human"] = result.human
            for note in run.add_notes(result.notes):
                self._warn(f"[yellow]note:[/] {escape(note)}")

    def _draw(self, run: RunDir) -> None:
        """Plots and report; a failure here is reported but never costs the samples."""
        from samplerlab.plots import draw_plots
        from samplerlab.report import write_report

        for step in (draw_plots, write_report):
            try:
                step(run.path)
            except Exception as exc:  # noqa: BLE001 - the data is already safe on disk
                message = f"{step.__name__} failed: {type(exc).__name__}: {exc}"
                run.add_notes([message])
                self._warn(f"[yellow]warning:[/] {escape(message)} (redo it with "
                           f"samplerlab plot {escape(str(run.path))})")


def rebuild_run_traces(run: RunDir) -> None:
    """``traces.parquet`` from the trace files of the done cells, in order, and the
    reference traces (as ``samples.jsonl``); none when nothing is traced."""
    cells = [*run.done_cells(), REFERENCE_CELL]
    run.write_traces(merged_traces([run.cell_traces_path(c) for c in cells]))


def write_tables(run: RunDir, cells: list[Cell]) -> None:
    """``metrics.csv``/``.parquet`` (one row per cell) and ``latency.csv`` from the cell records."""
    import pandas as pd

    rows, latency = [], []
    for cell in cells:
        record = run.cell_record(cell.id)
        if record is None:
            continue
        base = {"cell_id": cell.id, "cell_index": cell.index, "label": cell.label,
                "sampler": cell.sampler, "params": json.dumps(cell.params, sort_keys=True),
                "status": record["status"]}
        rows.append({**base, **(record.get("metrics") or {})})
        timing = record.get("timing") or {}
        steady = timing.get("steady_call_s") or []
        latency.append({**base, "num_samples": record.get("num_samples", 0),
                        "first_call_s": timing.get("first_call_s"),
                        "compile_s": timing.get("compile_s"),
                        "steady_p50_s": float(np.percentile(steady, 50)) if steady else None,
                        "steady_p95_s": float(np.percentile(steady, 95)) if steady else None,
                        "generated_tokens": timing.get("generated_tokens"),
                        "tokens_per_s": timing.get("tokens_per_s")})
    from samplerlab.metrics.human import human_table_row

    human = human_table_row(run.human_record())  # the human row, if the run has one
    if human is not None:
        rows.append(human)
    run.write_tables(pd.DataFrame(rows), pd.DataFrame(latency))


def run_spec(loaded: LoadedSpec, *, results_root: str | Path | None = None,
             run_id: str | None = None, console: Console | None = None,
             progress: bool = True, on_start: Any = None, executor: Any = None) -> RunResult:
    """Run every cell of ``loaded`` into a new results directory.

    ``on_start("run_dir", path)`` is called once the directory exists (the CLI uses it to
    say how to resume after Ctrl-C). ``executor`` runs the cells elsewhere (e.g.
    :class:`samplerlab.executors.RayExecutor`); ``None`` runs them here, one by one.
    """
    runner = Runner(loaded, results_root=results_root, console=console, progress=progress)
    run, model, prompts = runner.start(run_id)
    if on_start is not None:
        on_start("run_dir", run.path)
    return runner.execute(run, model, prompts, executor)


def resume_run(run_dir: str | Path, *, console: Console | None = None,
               progress: bool = True, plugins: list[str] | None = None,
               executor: Any = None) -> RunResult:
    """Finish the cells of an interrupted run that have no record yet (``executor``: as
    :func:`run_spec`)."""
    from samplerlab.spec import load_spec

    run = RunDir.open(run_dir)
    loaded = load_spec(run.spec_path, plugins=plugins)
    runner = Runner(loaded, results_root=run.path.parent.parent, console=console,
                    progress=progress)
    model, prompts = runner.resume(run)
    return runner.execute(run, model, prompts, executor)
