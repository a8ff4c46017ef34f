"""The cell engine: one sampler configuration over every prompt, batched, generated, timed.

A cell's work is always the same, wherever it runs (here, or in a Ray worker): build the
sampler through the plugin registry, cut the (prompt, sample) pairs into batches of the
cell's shape (a short last batch is padded, so nothing recompiles), start each batch's
random state from its own seed, run the compiled generate program, split each row into
prompt and continuation with the reason it stopped, and time every call. With
``generation.trace`` the program also records per-token traces
(:mod:`samplerlab.traces`), kept for each continuation's tokens.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from samplerlab.decoding.contract import capabilities
from samplerlab.engine.programs import ProgramCache
from samplerlab.engine.seeds import batch_seed, reset_sampler_seed
from samplerlab.engine.text import detokenize
from samplerlab.errors import SamplerlabError, UserInputError

STOP_END = "end_token"
STOP_MAX = "max_length"


class CellFailed(SamplerlabError):
    """A cell could not produce valid generations; recorded, the run goes on."""


@dataclass
class CellOutput:
    """A cell's generations (one dict per sample, as written to ``samples.jsonl``), timing,
    when traced its per-token traces (a ``pyarrow.Table``,
    :func:`samplerlab.traces.table.schema`), and the metric columns its sampler's loop
    statistics give (:attr:`~samplerlab.decoding.contract.LoopStats.columns`)."""

    samples: list[dict[str, Any]]
    timing: dict[str, Any]
    traces: Any = None
    columns: dict[str, float] = field(default_factory=dict)


def work_items(prompts: list[Any], samples_per_prompt: int) -> list[tuple[Any, int]]:
    """Every ``(prompt, sample index)`` of a cell, prompt by prompt."""
    return [(p, s) for p in prompts for s in range(samples_per_prompt)]


def batches(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def batch_count(prompts: int, generation: Any) -> int:
    """How many generate calls a cell makes (for progress bars)."""
    items = prompts * generation.samples_per_prompt
    return -(-items // max(1, min(generation.batch_size, items)))


def split_continuations(out: dict[str, np.ndarray], prompt_mask: np.ndarray,
                        stop_token_ids: tuple[int, ...] | None) -> list[tuple[list[int], str]]:
    """Per row: generated token ids (cut before the first stop token) and why generation
    stopped."""
    stops = set(stop_token_ids or ())
    results = []
    for ids, mask, pmask in zip(out["token_ids"], out["padding_mask"], prompt_mask, strict=True):
        start = int(pmask.sum())
        gen = [int(t) for t, m in zip(ids[start:], mask[start:], strict=True) if m]
        reason = STOP_MAX
        end = next((i for i, t in enumerate(gen) if t in stops), None)
        if end is not None:
            gen = gen[:end]
            reason = STOP_END
        results.append((gen, reason))
    return results


class CellEngine:
    """Generates every (prompt, sample) of a cell with one compiled program per structure.

    Args:
        model: a :class:`samplerlab.models.LoadedModel`.
        generation: the spec's ``generation`` section.

    Example:

    ```python
    from samplerlab.engine import CellEngine
    from samplerlab.prompts import Prompt
    from samplerlab.spec import Cell, GenerationSpec

    engine = CellEngine(model, GenerationSpec(max_length=24))  # model: a LoadedModel
    cell = Cell(index=0, id="000-greedy", sampler="greedy", params={}, label="greedy")
    output = engine.run(cell, [Prompt("Keras is", 0)], seed=1)
    print(output.samples[0]["text"], output.timing["first_call_s"])
    ```
    """

    def __init__(self, model: Any, generation: Any) -> None:
        self.model = model
        self.generation = generation
        # The model's own stop tokens (its end token, and e.g. Llama 3's <|eot_id|>).
        self.stop_token_ids = (tuple(model.stop_token_ids) if generation.stop_at_end_token
                               else None)
        self.programs = ProgramCache(model.adapter)
        self._texts: Any = None  # token texts for traces, detokenized once per engine
        self.stops = list(getattr(generation, "stop", None) or [])
        self._stop_observers: tuple = ()
        if self.stops:
            from samplerlab.engine.stop_strings import StopStringObserver

            self._stop_observers = (StopStringObserver(model.tokenizer, self.stops,
                                                       model.end_token_id),)
            # A stopped row is steered to the end token, so the loop must stop at it (a
            # sample's text ends at its end token whatever stop_at_end_token says).
            self.stop_token_ids = (model.end_token_id,)

    @property
    def compile_count(self) -> int:
        """Generate programs compiled by this engine (one per sampler structure and shape)."""
        return self.programs.compiled

    def build_sampler(self, cell: Any, seed: int) -> Any:
        """The cell's sampler, built by its registered factory (a plugin's code: isolated)."""
        import keras_hub

        from samplerlab.plugins import get_plugin_manager

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
        from samplerlab.engine.extra_models import attach_extra_models
        from samplerlab.errors import ModelLoadError

        try:
            attach_extra_models(sampler, self.model)  # e.g. a draft model
        except (UserInputError, ModelLoadError) as exc:
            raise CellFailed(f"sampler '{cell.sampler}': {exc}") from exc
        return sampler

    def generate_batch(self, sampler: Any, texts: list[str],
                       observers: tuple = ()) -> tuple[dict, np.ndarray, float]:
        """One compiled generate call; returns outputs, the prompt mask and its wall time
        (the program's lookup included: on a first call, its trace and compile or its
        load from disk, which ``timing`` then reports apart as ``compile_s``)."""
        from keras import tree

        inputs = self.model.preprocessor.generate_preprocess(
            texts, sequence_length=self.generation.max_length)
        prompt_mask = np.asarray(inputs["padding_mask"])
        start = time.perf_counter()
        program = self.programs.get(sampler, inputs, self.stop_token_ids, observers)
        out = program(sampler, inputs)
        out = tree.map_structure(np.asarray, out)  # blocks until the device is done
        return out, prompt_mask, time.perf_counter() - start

    def observers(self, sampler: Any) -> tuple:
        """The step observers of a cell: the trace observer when the spec traces, the
        stop-string observer when it has stop strings."""
        if not self.generation.trace:
            return self._stop_observers
        from samplerlab.traces.observer import TraceObserver
        from samplerlab.traces.table import vocabulary_size

        return (TraceObserver(sampler, vocabulary_size(self.model),
                              self.generation.trace_top), *self._stop_observers)

    def trace_rows(self, cell: Any) -> Any:
        from samplerlab.traces.table import TokenTexts, TraceRows

        if self._texts is None:
            self._texts = TokenTexts(self.model.tokenizer)
        return TraceRows(cell.id, self._texts)

    def run(self, cell: Any, prompts: list[Any], seed: int,
            on_batch: Any = None) -> CellOutput:
        """Generate the cell; ``on_batch()`` is called after each generate call."""
        sampler = self.build_sampler(cell, seed)
        offers = capabilities(sampler)
        observers = self.observers(sampler)
        traces = self.trace_rows(cell) if self.generation.trace else None
        compiled_before = self.programs.compiled
        items = work_items(prompts, self.generation.samples_per_prompt)
        size = min(self.generation.batch_size, len(items))
        samples: list[dict[str, Any]] = []
        calls: list[dict[str, Any]] = []
        for b, batch in enumerate(batches(items, size)):
            # A short last batch is padded to the cell's batch shape: no recompilation.
            texts = [p.text for p, _ in batch] + [batch[-1][0].text] * (size - len(batch))
            seed_b = batch_seed(seed, b)
            reset_sampler_seed(sampler, seed_b)
            out, prompt_mask, seconds = self._call(cell, sampler, texts, observers)
            rows = self._rows(cell, out, prompt_mask, len(batch))
            if traces is not None:
                traces.add(out["trace"], starts=[int(m.sum()) for m in prompt_mask[:len(rows)]],
                           lengths=[len(tokens) for tokens, _ in rows],
                           prompt_indices=[p.index for p, _ in batch],
                           sample_indices=[s for _, s in batch])
            generated = 0
            for (prompt, s), (tokens, reason), pmask in zip(batch, rows, prompt_mask,
                                                            strict=False):
                generated += len(tokens) + (reason == STOP_END)
                samples.append(self._sample(cell, prompt, s, seed_b, tokens, reason,
                                            int(pmask.sum()), b, seconds))
            calls.append({"batch": b, "seconds": seconds, "generated_tokens": generated,
                          "rows": len(batch), **loop_counts(sampler)})
            if on_batch:
                on_batch()
        if len(calls) == 1 and self.generation.steady_timing:
            # One batch only: call it again, same seed, to time it without compilation.
            reset_sampler_seed(sampler, seed)
            _, _, seconds = self._call(cell, sampler, [p.text for p, _ in items[:size]],
                                       observers)
            calls.append({**calls[0], "seconds": seconds, "repeat": True})
        compiled = self.programs.compiled > compiled_before
        extra, columns = self._loop_timing(cell, sampler, offers, items[:size], seed, calls)
        return CellOutput(samples, {**timing(calls), "compiled": compiled, **extra},
                          traces.table() if traces is not None else None, columns)

    def _loop_timing(self, cell: Any, sampler: Any, offers: Any, first: list, seed: int,
                     calls: list[dict[str, Any]]) -> tuple[dict, dict[str, float]]:
        """``({section: the loop statistics summed over the cell's calls, their rates and
        the baseline's timing}, metric columns)``, from what the sampler declares
        (:attr:`~samplerlab.decoding.contract.SamplerCapabilities.loop_stats` and
        ``baseline``); ``({}, {})`` for a sampler that declares neither."""
        stats, section = offers.loop_stats, {}
        if stats is not None:
            counts = {k: sum(c.get(k, 0) for c in calls if not c.get("repeat"))
                      for k in stats.counts}
            section = {**counts, **stats.rates(counts)}
        if offers.baseline is not None:
            section.update(self._baseline_timing(cell, sampler, offers.baseline, first, seed,
                                                 calls))
        if not section:
            return {}, {}
        if stats is None:
            return {"baseline": section}, {}
        columns = {k: section[k] for k in stats.columns if section.get(k) is not None}
        return {stats.section: section}, columns

    def _baseline_timing(self, cell: Any, sampler: Any, base: Any, first: list, seed: int,
                         calls: list[dict[str, Any]]) -> dict[str, Any]:
        """The speed-up over the sampler's baseline (the same distribution without its
        shortcut), both timed here on the cell's first batch, steady (the baseline is
        compiled by a call before the one timed; tokens per second, since a sampled
        baseline stops its rows elsewhere)."""
        texts = [p.text for p, _ in first]
        self._call(cell, base, texts, self._stop_observers)
        reset_sampler_seed(base, seed)
        base_tokens, base_seconds = self._timed_tokens(cell, base, texts, len(first))
        repeat = next((c for c in calls if c.get("repeat")), None)
        if repeat is not None:
            tokens, seconds = repeat["generated_tokens"], repeat["seconds"]
        else:
            reset_sampler_seed(sampler, seed)
            tokens, seconds = self._timed_tokens(cell, sampler, texts, len(first))
        speed, base_speed = tokens / seconds, base_tokens / base_seconds
        return {"tokens_per_s": speed, "base_tokens_per_s": base_speed,
                "speedup": speed / base_speed if base_speed > 0 else None}

    def _timed_tokens(self, cell: Any, sampler: Any, texts: list[str],
                      rows: int) -> tuple[int, float]:
        out, prompt_mask, seconds = self._call(cell, sampler, texts, self._stop_observers)
        generated = sum(len(t) + (r == STOP_END)
                        for t, r in self._rows(cell, out, prompt_mask, rows))
        return generated, seconds


    def _rows(self, cell: Any, out: dict, prompt_mask: np.ndarray,
              n: int) -> list[tuple[list[int], str]]:
        ids = out["token_ids"][:n]
        vocab = self.model.tokenizer.vocabulary_size()
        if not np.issubdtype(ids.dtype, np.integer) or ids.min() < 0 or ids.max() >= vocab:
            raise CellFailed(f"sampler '{cell.sampler}' produced token ids outside "
                             f"[0, {vocab}) (NaN probabilities or a bad get_next_token)")
        return split_continuations(out, prompt_mask, self.model.stop_token_ids)[:n]

    def _sample(self, cell: Any, prompt: Any, sample_index: int, seed: int,
                tokens: list[int], reason: str, prompt_tokens: int, batch: int,
                seconds: float) -> dict[str, Any]:
        text, stop = self._text(tokens), {}
        if self.stops:
            from samplerlab.engine.stop_strings import apply_stop_strings

            text, tokens, reason, stop_string = apply_stop_strings(
                self.stops, self._text, text, tokens, reason)
            stop = {"stop_string": stop_string}
        return {"cell_id": cell.id, "cell_index": cell.index, "sampler": cell.sampler,
                "label": cell.label, "params": cell.params, "prompt_index": prompt.index,
                "sample_index": sample_index, "prompt": prompt.text,
                "reference": prompt.reference, "seed": seed, "text": text,
                "token_ids": tokens, "num_tokens": len(tokens),
                "prompt_tokens": prompt_tokens, "stop_reason": reason, **stop,
                "batch_index": batch, "batch_seconds": round(seconds, 6)}

    def _text(self, tokens: list[int]) -> str:
        # Special tokens are stripped, as KerasHub's generate_postprocess strips them.
        special = set(self.model.special_token_ids)
        return detokenize(self.model.tokenizer, [t for t in tokens if t not in special])

    def _call(self, cell: Any, sampler: Any, texts: list[str], observers: tuple = ()) -> tuple:
        try:
            return self.generate_batch(sampler, texts, observers)
        except CellFailed:
            raise
        except Exception as exc:  # noqa: BLE001 - trace/compile/run errors of plugin code
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise CellFailed(f"sampler '{cell.sampler}' failed during generation: "
                             f"{type(exc).__name__}: {first}") from exc


def loop_counts(sampler: Any) -> dict[str, int]:
    """The last call's loop statistics of a sampler that counts them (empty for others)."""
    return sampler.last_loop_stats() if capabilities(sampler).loop_stats is not None else {}


def timing(calls: list[dict[str, Any]]) -> dict[str, Any]:
    """A cell's timing: the first call (compile included) apart from the steady ones."""
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
