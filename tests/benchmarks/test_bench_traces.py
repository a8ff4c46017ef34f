"""What per-token traces cost: generation with tracing against without, and loading them.

Targets (issue 14): tracing adds at most 10% to a generate call of GPT-2 124M at batch 8
(top_p and greedy; both in the same test, rounds alternating as ``Baseline`` does), and
the traces of a 1,000-sample, 256-token run load in under a second.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from bench_utils import (
    MAX_LENGTH,
    Baseline,
    build_sampler,
    inputs_for,
    load_note,
    loaded_model,
    record,
)

BATCH = 8
ROUNDS = 3  # alternating pairs of 124M calls: a ratio needs more than one
SAMPLES, TOKENS, TOP = 1000, 256, 5


def _call(model, sampler, observers=()):
    from samplerlab.engine.programs import ProgramCache

    inputs = inputs_for(model, BATCH)
    programs = ProgramCache(model.adapter, persistent=False)

    def call():
        out = programs.get(sampler, inputs, None, observers)(sampler, inputs)
        return out["token_ids"].block_until_ready()

    start = time.perf_counter()
    call()
    return call, time.perf_counter() - start


@pytest.mark.parametrize("sampler", ["top_p", "greedy"])
def test_tracing_overhead_gpt2_124m_batch_8(benchmark, sampler):
    from samplerlab.traces.observer import TraceObserver
    from samplerlab.traces.table import vocabulary_size

    model = loaded_model("gpt2_124m")
    plain = build_sampler(sampler)
    plain_call, plain_first = _call(model, plain)
    traced = build_sampler(sampler)
    observer = TraceObserver(traced, vocabulary_size(model))
    traced_call, traced_first = _call(model, traced, (observer,))
    reference = Baseline(plain_call)
    benchmark.pedantic(traced_call, setup=reference.setup, rounds=ROUNDS, iterations=1)
    ratio = benchmark.stats.stats.median / reference.median
    record(benchmark, traced_s=benchmark.stats.stats.median, untraced_s=reference.median,
           ratio=ratio, traced_first_call_s=traced_first, untraced_first_call_s=plain_first,
           max_length=MAX_LENGTH, load=load_note())


def _synthetic_run(directory):
    """A run directory whose traces.parquet holds 1,000 generations of 256 tokens with
    the top 5 alternatives (random values of the right types)."""
    from samplerlab.results import RunDir
    from samplerlab.traces.table import arrays_to_table, parquet_bytes

    class Texts:
        def __call__(self, ids):
            return np.asarray([f" tok{i}" for i in range(50257)], dtype=object)[ids]

    rng = np.random.default_rng(0)
    n = SAMPLES * TOKENS
    columns = {
        "prompt_index": np.repeat(np.arange(SAMPLES) // 4, TOKENS).astype(np.int32),
        "sample_index": np.repeat(np.arange(SAMPLES) % 4, TOKENS).astype(np.int32),
        "position": np.tile(np.arange(TOKENS), SAMPLES).astype(np.int32),
        "token_id": rng.integers(0, 50257, n).astype(np.int32),
        "model_logp": np.log(rng.random(n, dtype=np.float32)),
        "model_rank": rng.integers(0, 100, n).astype(np.int32),
        "model_entropy": (rng.random(n, dtype=np.float32) * 8),
        "sampler_logp": np.log(rng.random(n, dtype=np.float32)),
        "kept_size": rng.integers(1, 5000, n).astype(np.int32),
        "top_ids": rng.integers(0, 50257, (n, TOP)).astype(np.int32),
        "top_logp": np.log(rng.random((n, TOP), dtype=np.float32)),
    }
    RunDir(directory).write_traces(parquet_bytes(arrays_to_table("000-top_p", columns,
                                                                 Texts())))
    return directory


def test_load_traces_of_1000_samples_of_256_tokens(benchmark, tmp_path):
    import samplerlab

    run_dir = _synthetic_run(tmp_path)
    frame = benchmark.pedantic(samplerlab.load_traces, args=(run_dir,), rounds=5,
                               iterations=1)
    assert len(frame) == SAMPLES * TOKENS
    record(benchmark, rows=len(frame), load_s=benchmark.stats.stats.median,
           file_mb=(run_dir / "traces.parquet").stat().st_size / 1e6, load=load_note())
