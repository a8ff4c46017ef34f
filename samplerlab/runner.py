"""Running a spec: one cell per sampler configuration, batched prompts, timed, saved as it goes."""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from samplerlab.data import Prompt, resolve_prompts
from samplerlab.errors import SamplerlabError, UserInputError
from samplerlab.plugins import get_plugin_manager
from samplerlab.programs import ProgramCache
from samplerlab.results import RunDir, default_run_id, git_revision, now, safe_run_dir, versions
from samplerlab.spec import Cell, LoadedSpec

STOP_END = "end_token"
STOP_MAX = "max_length"


def derive_seed(*parts: Any) -> int:
    """A stable 31-bit seed from any parts (spec seed, sampler, params, ...)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF


def cell_seed(spec_seed: int, cell: Cell) -> int:
    # Keyed by the configuration, not the position, so adding a cell leaves others unchanged.
    if "seed" in cell.params and cell.params["seed"] is not None:
        return int(cell.params["seed"])
    return derive_seed(spec_seed, cell.sampler, cell.params)


@dataclass
class CellOutput:
    samples: list[dict[str, Any]]
    timing: dict[str, Any]


@dataclass
class RunResult:
    run_dir: Path
    status: str
    failed: list[str] = field(default_factory=list)

    @property
    def samples(self):
        from samplerlab.results import load_samples

        return load_samples(self.run_dir)

    @property
    def metrics(self):
        import pandas as pd

        return pd.read_csv(self.run_dir / "metrics.csv")


class CellFailed(SamplerlabError):
    """A cell could not produce valid generations; recorded, the run goes on."""


def _work_items(prompts: list[Prompt], samples_per_prompt: int) -> list[tuple[Prompt, int]]:
    return [(p, s) for p in prompts for s in range(samples_per_prompt)]


def _batches(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def reset_sampler_seed(sampler: Any, seed: int) -> None:
    """Put each KerasHub SeedGenerator of ``sampler`` in the state ``SeedGenerator(seed)`` has."""
    for gen in getattr(sampler, "_seed_generators", []):
        gen.state.assign(np.array([seed, 0], dtype=gen.state.dtype))


def split_continuations(out: dict[str, np.ndarray], prompt_mask: np.ndarray,
                        end_token_id: int | None) -> list[tuple[list[int], str]]:
    """Per row: generated token ids (end token dropped) and why generation stopped."""
    results = []
    for ids, mask, pmask in zip(out["token_ids"], out["padding_mask"], prompt_mask, strict=True):
        start = int(pmask.sum())
        gen = [int(t) for t, m in zip(ids[start:], mask[start:], strict=True) if m]
        reason = STOP_MAX
        if end_token_id is not None and end_token_id in gen:
            gen = gen[: gen.index(end_token_id)]
            reason = STOP_END
        results.append((gen, reason))
    return results


class CellRunner:
    """Generates every (prompt, sample) of one cell with one compiled sampler."""

    def __init__(self, model: Any, generation: Any) -> None:
        self.model = model
        self.generation = generation
        self.stop_token_ids = ((model.end_token_id,) if generation.stop_at_end_token else None)
        self.compile_count = 0
        self._structure: Any = None
        self.programs = ProgramCache()
        self._program_ready = False

    def install(self, sampler: Any) -> bool:
        """Put ``sampler`` on the model; return True when that needs a fresh compile.

        A sampler whose ``structure_key()`` equals the previous one's differs only in
        values that KerasHub passes to the jitted generate function as state (its
        ``variables``), so the compiled function is kept: a sweep over such values
        compiles once.
        """
        lm = self.model.causal_lm
        key_fn = getattr(sampler, "structure_key", None)
        key = key_fn() if callable(key_fn) else None
        ready = lm.generate_function is not None or self._program_ready
        if key is not None and key == self._structure and ready:
            lm.sampler = sampler
            return False
        lm.compile(sampler=sampler)
        self._structure, self._program_ready = key, False
        self.compile_count += 1
        return True

    def build_sampler(self, cell: Cell, seed: int) -> Any:
        import keras_hub

        entry = get_plugin_manager().registry("samplers")[cell.sampler]
        try:
            sampler = entry.build(**cell.factory_params(seed, entry))
        except UserInputError:
            raise
        except Exception as exc:  # noqa: BLE001 - plugin code: isolate the failure
            raise CellFailed(f"sampler '{cell.sampler}' failed at construction: "
                             f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(sampler, keras_hub.samplers.Sampler):
            raise CellFailed(f"sampler '{cell.sampler}' factory returned "
                             f"{type(sampler).__name__}, not a keras_hub.samplers.Sampler")
        return sampler

    def generate_batch(self, texts: list[str]) -> tuple[dict[str, np.ndarray], np.ndarray, float]:
        """One compiled generate call; returns outputs, the prompt mask and its wall time."""
        lm = self.model.causal_lm
        inputs = self.model.preprocessor.generate_preprocess(
            texts, sequence_length=self.generation.max_length)
        prompt_mask = np.asarray(inputs["padding_mask"])
        # An exported program (kept on disk for the next process) where the sampler's
        # code allows it, else KerasHub's own compiled function.
        fn = self.programs.generate_function(lm, inputs, self.stop_token_ids)
        self._program_ready = fn is not None
        fn = fn or lm.make_generate_function()
        start = time.perf_counter()
        out = fn(inputs, stop_token_ids=self.stop_token_ids)
        out = {k: np.asarray(v) for k, v in out.items()}  # blocks until the device is done
        return out, prompt_mask, time.perf_counter() - start

    def run(self, cell: Cell, prompts: list[Prompt], seed: int,
            on_batch: Any = None) -> CellOutput:
        sampler = self.build_sampler(cell, seed)
        compiled = self.install(sampler)
        items = _work_items(prompts, self.generation.samples_per_prompt)
        size = min(self.generation.batch_size, len(items))
        vocab = self.model.tokenizer.vocabulary_size()
        samples: list[dict[str, Any]] = []
        calls: list[dict[str, Any]] = []
        for b, batch in enumerate(_batches(items, size)):
            # A short last batch is padded to the cell's batch shape: no recompilation.
            texts = [p.text for p, _ in batch] + [batch[-1][0].text] * (size - len(batch))
            batch_seed = (seed + b) & 0x7FFFFFFF
            reset_sampler_seed(sampler, batch_seed)
            out, prompt_mask, seconds = self._call(cell, texts)
            ids = out["token_ids"][: len(batch)]
            if not np.issubdtype(ids.dtype, np.integer) or ids.min() < 0 or ids.max() >= vocab:
                raise CellFailed(f"sampler '{cell.sampler}' produced token ids outside "
                                 f"[0, {vocab}) (NaN probabilities or a bad get_next_token)")
            pieces = split_continuations(out, prompt_mask, self.model.end_token_id)[: len(batch)]
            generated = 0
            for (prompt, s), (tokens, reason), pmask in zip(batch, pieces, prompt_mask,
                                                            strict=False):
                generated += len(tokens) + (reason == STOP_END)
                samples.append({
                    "cell_id": cell.id, "cell_index": cell.index, "sampler": cell.sampler,
                    "label": cell.label, "params": cell.params, "prompt_index": prompt.index,
                    "sample_index": s, "prompt": prompt.text, "reference": prompt.reference,
                    "seed": batch_seed, "text": self._text(tokens), "token_ids": tokens,
                    "num_tokens": len(tokens),
                    "prompt_tokens": int(pmask.sum()), "stop_reason": reason,
                    "batch_index": b, "batch_seconds": round(seconds, 6)})
            calls.append({"batch": b, "seconds": seconds, "generated_tokens": generated,
                          "rows": len(batch)})
            if on_batch:
                on_batch()
        if len(calls) == 1 and self.generation.steady_timing:
            # One batch only: call it again, same seed, to time it without compilation.
            reset_sampler_seed(sampler, seed)
            texts = [p.text for p, _ in items[:size]]
            _, _, seconds = self._call(cell, texts)
            calls.append({"batch": 0, "seconds": seconds, "generated_tokens":
                          calls[0]["generated_tokens"], "rows": calls[0]["rows"],
                          "repeat": True})
        return CellOutput(samples, {**_timing(calls), "compiled": compiled})

    def _text(self, tokens: list[int]) -> str:
        # Tokenizers detokenize to str, bytes or a scalar tensor depending on their workflow.
        return _to_str(self.model.tokenizer.detokenize(tokens)) if tokens else ""

    def _call(self, cell: Cell, texts: list[str]):
        try:
            return self.generate_batch(texts)
        except CellFailed:
            raise
        except Exception as exc:  # noqa: BLE001 - trace/compile/run errors of plugin code
            self._structure = None  # never reuse a function whose trace failed
            raise CellFailed(f"sampler '{cell.sampler}' failed during generation: "
                             f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                             ) from exc


def _to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if hasattr(value, "numpy"):
        value = value.numpy()
    if isinstance(value, np.ndarray):
        value = value.item()
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _timing(calls: list[dict[str, Any]]) -> dict[str, Any]:
    first = calls[0]["seconds"]
    steady = [c["seconds"] for c in calls[1:]]
    steady_tokens = sum(c["generated_tokens"] for c in calls[1:])
    median = statistics.median(steady) if steady else None
    return {
        "first_call_s": first,
        "steady_call_s": steady,
        "compile_s": max(first - median, 0.0) if median is not None else None,
        "generated_tokens": sum(c["generated_tokens"] for c in calls if not c.get("repeat")),
        "steady_generated_tokens": steady_tokens,
        "tokens_per_s": steady_tokens / sum(steady) if steady and sum(steady) > 0 else None,
        "calls": calls,
    }


def check_prompts(loaded: LoadedSpec, model: Any, prompts: list[Prompt]) -> None:
    """Prompts must fit the preprocessor and leave room to generate (needs the tokenizer)."""
    max_length = loaded.spec.generation.max_length
    seq_len = loaded.spec.model.sequence_length
    for p in prompts:
        n = len(np.asarray(model.tokenizer(p.text))) + 1  # + the start token
        loc = ("prompts", p.index) if isinstance(loaded.spec.prompts, list) else ("prompts",)
        if n > seq_len:
            raise loaded.error(f"prompt {p.index} is {n} tokens, longer than "
                               f"model.sequence_length ({seq_len}); raise model.sequence_length "
                               "or shorten the prompt", loc)
        if n >= max_length:
            raise loaded.error(f"prompt {p.index} is {n} tokens; generation.max_length "
                               f"({max_length}) must be above the prompt length", loc)
    if max_length > model.max_sequence_length:
        raise loaded.error(f"{max_length} is beyond the model's max_sequence_length "
                           f"({model.max_sequence_length}); lower it to "
                           f"{model.max_sequence_length} or less", ("generation", "max_length"))


def run_cell(cell_runner: CellRunner, cell: Cell, prompts: list[Prompt], metrics: list,
             spec_seed: int, on_batch: Any = None, *,
             model: Any = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Generate and score one cell; return its samples and the record ``write_cell`` takes.

    Shared by the local loop and the Ray tasks (:mod:`samplerlab.distributed`), so a cell
    gives the same samples wherever it runs. A :class:`CellFailed` becomes a record with
    ``status: failed`` (and no samples) instead of an exception: one cell's failure never
    stops the others.
    """
    from samplerlab.metrics.base import MetricContext
    from samplerlab.metrics.scoring import score_samples

    seed = cell_seed(spec_seed, cell)
    record: dict[str, Any] = {"id": cell.id, "label": cell.label, "sampler": cell.sampler,
                              "params": cell.params, "seed": seed, "started": now()}
    try:
        output = cell_runner.run(cell, prompts, seed, on_batch)
    except CellFailed as exc:
        record.update(status="failed", error=str(exc), timing=None, num_samples=0,
                      metrics={}, finished=now())
        return [], record
    context = MetricContext(model=model if model is not None else cell_runner.model,
                            timing=output.timing, seed=seed)
    try:
        scores, metrics_error = score_samples(output.samples, metrics, context), None
    except Exception as exc:  # noqa: BLE001 - a broken metric plugin must not cost the samples
        scores, metrics_error = {}, f"scoring failed: {type(exc).__name__}: {exc}"
    record.update(status="done", error=None, timing=output.timing,
                  num_samples=len(output.samples), metrics=scores, finished=now())
    if metrics_error:
        record["metrics_error"] = metrics_error
    return output.samples, record


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
                  "dtype_policy": model.dtype_policy, "fast_decoding": model.fast_decoding},
        "notes": list(model.notes), "started": now(), "finished": None, "status": "running",
        "cells": [{"id": c.id, "index": c.index, "label": c.label, "sampler": c.sampler,
                   "params": c.params, "status": "pending", "error": None, "timing": None,
                   "num_samples": 0} for c in loaded.cells],
    }


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
        self._cell_runner: CellRunner | None = None  # the last run_cells' (compile count)

    def start(self, run_id: str | None = None) -> tuple[RunDir, Any, list[Prompt], list]:
        from samplerlab.models import load_model

        prompts = resolve_prompts(self.loaded)
        metrics = self._metrics()
        run_id = run_id or self.spec.output.run_id or default_run_id()
        target = safe_run_dir(self.results_root, self.spec.name, run_id)
        model = load_model(self.spec.model.preset, self.spec.model.sequence_length,
                           self.spec.model.dtype_policy, self.spec.model.fast_decoding)
        check_prompts(self.loaded, model, prompts)
        for note in model.notes:
            self.console.print(f"[yellow]note:[/] {note}")
        run = RunDir.create(target, spec_yaml=self.loaded.resolved_yaml(),
                            manifest=new_manifest(self.loaded, model, run_id))
        model = self._finetune(model, run)
        return run, model, prompts, metrics

    def resume(self, run: RunDir) -> tuple[Any, list[Prompt], list]:
        from samplerlab.models import load_model

        prompts = resolve_prompts(self.loaded)
        metrics = self._metrics()
        model = load_model(self.spec.model.preset, self.spec.model.sequence_length,
                           self.spec.model.dtype_policy, self.spec.model.fast_decoding)
        check_prompts(self.loaded, model, prompts)
        model = self._finetune(model, run)
        run.sync_from_records()
        run.manifest.setdefault("resumed", []).append(now())
        run.set_status("running", finished=None)
        return model, prompts, metrics

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

    def run_cells(self, run: RunDir, model: Any, prompts: list[Prompt],
                  metrics: list) -> RunResult:
        done = run.finished_cells()
        todo = [c for c in self.loaded.cells if c.id not in done]
        cell_runner = CellRunner(model, self.spec.generation)
        per_cell = -(-len(_work_items(prompts, self.spec.generation.samples_per_prompt))
                     // max(1, min(self.spec.generation.batch_size, len(prompts) *
                                   self.spec.generation.samples_per_prompt)))
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn()]
        progress = Progress(*columns, console=self.console, disable=not self.progress,
                            transient=False)
        try:
            self._cell_runner = cell_runner
            with progress:
                cells_task = progress.add_task("cells", total=len(self.loaded.cells),
                                               completed=len(self.loaded.cells) - len(todo))
                batch_task = progress.add_task("batches", total=per_cell)
                for cell in todo:
                    progress.update(batch_task, completed=0,
                                    description=f"[cyan]{cell.label}[/]")
                    self._run_cell(run, cell_runner, cell, prompts, metrics, model,
                                   lambda: progress.advance(batch_task))
                    progress.advance(cells_task)
        except KeyboardInterrupt:
            run.mark_interrupted()
            raise
        return self.finish(run)

    def _run_cell(self, run: RunDir, cell_runner: CellRunner, cell: Cell,
                  prompts: list[Prompt], metrics: list, model: Any, on_batch: Any) -> None:
        samples, record = run_cell(cell_runner, cell, prompts, metrics, self.spec.seed,
                                   on_batch, model=model)
        run.write_cell(cell.id, samples, record)
        if record["status"] == "failed":
            self.console.print(f"[red]cell {cell.id} failed:[/] {escape(record['error'])}",
                               soft_wrap=True, highlight=False)
        elif record.get("metrics_error"):
            self.console.print(f"[yellow]warning:[/] cell {cell.id} kept its samples but "
                               f"{escape(record['metrics_error'])}", soft_wrap=True,
                               highlight=False)

    def finish(self, run: RunDir) -> RunResult:
        write_tables(run, self.loaded.cells)
        failed = [c["id"] for c in run.manifest["cells"] if c.get("status") == "failed"]
        status = "failed" if failed else "complete"
        runner = self._cell_runner
        if runner is not None:
            run.manifest["compile_count"] = (run.manifest.get("compile_count") or 0) + \
                runner.compile_count
        run.set_status(status, finished=now())
        self._draw(run)
        return RunResult(run.path, status, failed)

    def _draw(self, run: RunDir) -> None:
        """Plots and report; a failure here is reported but never costs the samples."""
        from samplerlab.plots import draw_plots
        from samplerlab.report import write_report

        for step in (draw_plots, write_report):
            try:
                step(run.path)
            except Exception as exc:  # noqa: BLE001 - the data is already safe on disk
                message = f"{step.__name__} failed: {type(exc).__name__}: {exc}"
                run.manifest.setdefault("notes", []).append(message)
                run.save_manifest()
                self.console.print(f"[yellow]warning:[/] {escape(message)} (redo it with "
                                   f"samplerlab plot {run.path})", soft_wrap=True,
                                   highlight=False)


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
    from samplerlab.results import atomic_write

    frame = pd.DataFrame(rows)
    atomic_write(run.path / "metrics.csv", frame.to_csv(index=False))
    atomic_write(run.path / "latency.csv", pd.DataFrame(latency).to_csv(index=False))
    try:
        buf = frame.to_parquet(index=False)
        atomic_write(run.path / "metrics.parquet", buf)
    except (ImportError, ValueError):
        pass


def run_spec(loaded: LoadedSpec, *, results_root: str | Path | None = None,
             run_id: str | None = None, console: Console | None = None,
             progress: bool = True, on_start: Any = None, executor: Any = None) -> RunResult:
    """Run every cell of ``loaded`` into a new results directory.

    ``on_start("run_dir", path)`` is called once the directory exists (the CLI uses it to
    say how to resume after Ctrl-C). ``executor`` runs the cells elsewhere (e.g.
    :class:`samplerlab.distributed.RayExecutor`); ``None`` runs them here, one by one.
    """
    runner = Runner(loaded, results_root=results_root, console=console, progress=progress)
    run, model, prompts, metrics = runner.start(run_id)
    if on_start is not None:
        on_start("run_dir", run.path)
    return _execute(runner, executor, run, model, prompts, metrics)


def _execute(runner: Runner, executor: Any, run: RunDir, model: Any, prompts: list[Prompt],
             metrics: list) -> RunResult:
    if executor is None:
        return runner.run_cells(run, model, prompts, metrics)
    return executor.run_cells(runner, run, model, prompts, metrics)


def resume_run(run_dir: str | Path, *, console: Console | None = None,
               progress: bool = True, plugins: list[str] | None = None,
               executor: Any = None) -> RunResult:
    """Finish the cells of an interrupted run that have no record yet (``executor``: as
    :func:`run_spec`)."""
    from samplerlab.spec import load_spec

    run = RunDir.open(run_dir)
    loaded = load_spec(run.path / "spec.yaml", plugins=plugins)
    runner = Runner(loaded, results_root=run.path.parent.parent, console=console,
                    progress=progress)
    model, prompts, metrics = runner.resume(run)
    return _execute(runner, executor, run, model, prompts, metrics)
