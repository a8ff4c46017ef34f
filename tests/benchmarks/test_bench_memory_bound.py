"""Decoding at the memory limit (issue 18): batch-1 decoding against the bandwidth bound,
and step cost against the padded cache length.

**The bound.** At batch 1 every new token reads every weight once, so no decoder can
beat one pass over the weight bytes per token. ``weight_pass`` measures that pass on this
machine: a jitted matrix-vector product over each of the model's weight arrays, as they
lie, same dtype, repeated inside one compiled loop (each pass's vector depends on the
previous pass, so XLA cannot hoist it), so dispatch costs nothing. Bound tokens/s =
1 / seconds per pass. The generate call is timed in the same test, its rounds alternating
with the bound's; the figure is decoded tokens/s over bound tokens/s (target >= 0.85).

**Cache length.** 64 new tokens generated with ``max_length`` 1024 against the same 64
tokens with ``max_length`` 128 (target <= 1.2x): ``random`` sampling with a fixed seed (the
random-weight model's distributions are near uniform, so the token drawn at new position
64 occurs there first) and that token as the stop token, so both calls stop after 64 new
tokens; the test checks that they did.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from bench_utils import (
    PROMPT,
    Baseline,
    build_sampler,
    compiled_call,
    load_note,
    loaded_model,
    record,
)

PASSES = 16  # weight passes per timed bound call


def weight_pass(causal_lm, passes: int = PASSES):
    """A blocking call that reads every weight of ``causal_lm`` ``passes`` times (a
    matrix-vector product per array), and the bytes one pass reads."""
    import jax
    import jax.numpy as jnp

    weights = [v.value for v in causal_lm.weights]
    matrices = [w.reshape(-1, w.shape[-1]) if w.ndim > 1 else w[None] for w in weights]
    size = sum(int(np.prod(w.shape)) * w.dtype.itemsize for w in weights)

    @jax.jit
    def run(matrices, scale):
        def body(_, scale):
            # One product per array (rows times a vector: XLA:CPU's fastest read of a
            # matrix, ~1.4x the vector-times-matrix form here), the vector scaled by the
            # previous pass's result.
            total = sum(jnp.sum(m @ (jnp.ones(m.shape[1], m.dtype) * scale.astype(m.dtype)))
                        for m in matrices)
            return scale + total.astype(scale.dtype) * 1e-30
        return jax.lax.fori_loop(0, passes, body, scale)

    scale = jnp.float32(1.0)
    run(matrices, scale).block_until_ready()
    return (lambda: run(matrices, scale).block_until_ready()), size


def _prompt_tokens(model) -> int:
    return int(np.asarray(model.preprocessor.generate_preprocess(
        [PROMPT], sequence_length=128)["padding_mask"]).sum())


@pytest.mark.parametrize("sampler", ["greedy", "top_p"])
def test_batch_1_against_bandwidth_bound(benchmark, sampler):
    """Target 1: batch-1 tokens/s >= 0.85 of the weight-bandwidth bound, GPT-2 124M."""
    model = loaded_model("gpt2_124m")
    bound_call, size = weight_pass(model.causal_lm)
    call, first = compiled_call(model, build_sampler(sampler), 1)
    bound = Baseline(bound_call)
    benchmark.pedantic(call, setup=bound.setup, rounds=5, iterations=1)
    steady = benchmark.stats.stats.median
    new = 128 - _prompt_tokens(model)
    pass_s = bound.median / PASSES
    ratio = (new / steady) * pass_s
    record(benchmark, tokens_per_s=new / steady, bound_tokens_per_s=1 / pass_s,
           bandwidth_gb_s=size / pass_s / 1e9, weight_mb=size / 1e6, ratio=ratio,
           first_call_s=first, steady_s=steady, load=load_note())


def _replaying_call(model, sampler, max_length: int, stop_token_ids):
    """A generate call at ``max_length`` that draws the same random numbers every time."""
    from samplerlab.engine.programs import ProgramCache

    inputs = model.preprocessor.generate_preprocess([PROMPT], sequence_length=max_length)
    programs = ProgramCache(model.adapter, persistent=False)
    state = [v.value for v in sampler.variables]

    def call():
        for variable, value in zip(sampler.variables, state, strict=True):
            variable.assign(value)
        out = programs.get(sampler, inputs, stop_token_ids)(sampler, inputs)
        return np.asarray(out["token_ids"])[0], np.asarray(out["padding_mask"])[0]

    return call


def _stop_after(model, new: int) -> tuple[int, int]:
    """A seed whose ``random`` draw at new position ``new`` is a token that occurs nowhere
    before it, and that token."""
    prompt = _prompt_tokens(model)
    for seed in range(1, 20):
        tokens, _ = _replaying_call(model, build_sampler("random", seed=seed), 128, None)()
        stop = int(tokens[prompt + new - 1])
        if stop not in tokens[:prompt + new - 1]:
            return seed, stop
    raise AssertionError("no seed gives a fresh token at that position")


def test_cache_length_1024_vs_128(benchmark):
    """Target 2: 64 new tokens with max_length 1024 <= 1.2x the same with max_length 128."""
    model = loaded_model("gpt2_124m")
    seed, stop = _stop_after(model, 64)
    prompt = _prompt_tokens(model)
    calls, outputs = {}, {}
    for length in (128, 1024):
        calls[length] = _replaying_call(model, build_sampler("random", seed=seed), length,
                                        (stop,))
        start = time.perf_counter()
        outputs[length] = calls[length]()
        first = time.perf_counter() - start
        record(benchmark, **{f"first_call_{length}_s": first})
    for length, (tokens, mask) in outputs.items():
        assert int(mask.sum()) == prompt + 64, length  # stopped after 64 new tokens
        assert (tokens[:prompt + 64] == outputs[128][0][:prompt + 64]).all(), length
    short = Baseline(calls[128])
    benchmark.pedantic(calls[1024], setup=short.setup, rounds=5, iterations=1)
    ratio = benchmark.stats.stats.median / short.median
    record(benchmark, long_s=benchmark.stats.stats.median, short_s=short.median,
           ratio=ratio, new_tokens=64, load=load_note())


def _precision_models() -> dict:
    """GPT-2 124M (random weights, same seed) as float32, bfloat16 and int8."""
    import keras

    from samplerlab.models import LoadedModel, build_gpt2_124m
    from samplerlab.models.adapters import adapter_for
    from samplerlab.models.loading import _quantize

    models = {}
    for name in ("float32", "bfloat16", "int8"):
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy("bfloat16" if name == "bfloat16" else "float32")
        try:
            lm = build_gpt2_124m(128)
        finally:
            keras.config.set_dtype_policy(previous)
        if name == "int8":
            _quantize(lm, "int8", "gpt2_124m")
        models[name] = LoadedModel(lm, preset=name, path="", dtype_policy=None, notes=[],
                                   adapter=adapter_for(lm))
    return models


@pytest.mark.parametrize("batch", [1, 8])
def test_bfloat16_and_int8_against_float32(benchmark, batch):
    """Target 3: tokens/s of bfloat16 and int8 weights next to float32, same run."""
    models = _precision_models()
    calls, firsts = {}, {}
    for name, model in models.items():
        calls[name], firsts[name] = compiled_call(model, build_sampler("greedy"), batch)
    others = {name: Baseline(calls[name]) for name in ("bfloat16", "int8")}

    def setup() -> None:
        for baseline in others.values():
            baseline.setup()

    benchmark.pedantic(calls["float32"], setup=setup, rounds=3, iterations=1)
    new = batch * (128 - _prompt_tokens(models["float32"]))
    seconds = {"float32": benchmark.stats.stats.median,
               **{name: b.median for name, b in others.items()}}
    record(benchmark, **{f"{name}_tokens_per_s": new / s for name, s in seconds.items()},
           **{f"{name}_vs_float32": seconds["float32"] / s for name, s in seconds.items()},
           **{f"{name}_first_call_s": f for name, f in firsts.items()}, load=load_note())
