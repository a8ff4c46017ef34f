"""Each sampler at batch 1 and 8 on the tiny model and the GPT-2 124M architecture.

The benchmarked value is the steady (compiled) generate call of 128 tokens; the first
call (trace + XLA compile + run) and tokens/s are in ``extra_info``. Also: top-p against
top-k (target: <= 1.5x) and contrastive search against greedy (target: <= 1.5x at k=4),
each pair measured in the same test; and DRY against repetition_penalty in the same chain.
"""

from __future__ import annotations

import pytest
from bench_utils import (
    MAX_LENGTH,
    MODELS,
    ROUNDS,
    SAMPLER_PARAMS,
    Baseline,
    build_sampler,
    compiled_call,
    inputs_for,
    load_note,
    loaded_model,
    record,
    sampler_names,
)


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("sampler", sampler_names())
@pytest.mark.parametrize("model_name", MODELS)
def test_sampler(benchmark, model_name, sampler, batch):
    model = loaded_model(model_name)
    prompt_tokens = int(inputs_for(model, 1)["padding_mask"].sum())
    call, first = compiled_call(model, build_sampler(sampler), batch)
    benchmark.pedantic(call, rounds=ROUNDS[model_name], iterations=1)
    steady = benchmark.stats.stats.median
    new_tokens = batch * (MAX_LENGTH - prompt_tokens)
    record(benchmark, first_call_s=first, steady_s=steady, tokens_per_s=new_tokens / steady,
           params=SAMPLER_PARAMS[sampler], load=load_note())


def _versus(benchmark, model_name: str, batch: int, ours: str, baseline: str,
            baseline_sampler=None, baseline_as_shipped: bool = False,
            ours_sampler=None) -> float:
    """``ours`` on what ``samplerlab run`` loads against ``baseline`` on the same model, or
    (``baseline_as_shipped``) on KerasHub as shipped."""
    model = loaded_model(model_name)
    base_call, base_first = compiled_call(
        loaded_model(model_name, fast=not baseline_as_shipped),
        baseline_sampler or build_sampler(baseline), batch)
    # Each compile replaces the model's generate function: keep the first one's closure.
    ours_call, ours_first = compiled_call(model, ours_sampler or build_sampler(ours), batch)
    reference = Baseline(base_call)
    benchmark.pedantic(ours_call, setup=reference.setup, rounds=ROUNDS[model_name],
                       iterations=1)
    ratio = benchmark.stats.stats.median / reference.median
    record(benchmark, **{f"{ours}_s": benchmark.stats.stats.median,
                         f"{baseline}_s": reference.median, "ratio": ratio,
                         f"{ours}_first_call_s": ours_first,
                         f"{baseline}_first_call_s": base_first, "load": load_note()})
    return ratio


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("model_name", MODELS)
def test_top_p_vs_top_k(benchmark, model_name, batch):
    """Target 2: top_p <= 1.5x top_k (KerasHub's sorting top_p: ~20x greedy on tiny)."""
    _versus(benchmark, model_name, batch, "top_p", "top_k")


@pytest.mark.parametrize("batch", [1, 8])
def test_keras_hub_top_p_vs_ours(benchmark, batch):
    """KerasHub's TopPSampler (full sort) next to samplerlab's top_p, tiny model."""
    import keras_hub

    _versus(benchmark, "tiny", batch, "top_p", "keras_hub_top_p",
            baseline_sampler=keras_hub.samplers.TopPSampler(p=0.9, seed=1),
            baseline_as_shipped=True)


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("model_name", MODELS)
def test_contrastive_vs_greedy(benchmark, model_name, batch):
    """Target 6: contrastive search (k=4, alpha=0.6) <= 1.5x greedy."""
    _versus(benchmark, model_name, batch, "contrastive", "greedy")


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("model_name", MODELS)
def test_keras_hub_contrastive_vs_ours(benchmark, model_name, batch):
    """KerasHub's ContrastiveSampler on KerasHub as shipped next to samplerlab's."""
    import keras_hub

    _versus(benchmark, model_name, batch, "contrastive", "keras_hub_contrastive",
            baseline_sampler=keras_hub.samplers.ContrastiveSampler(k=4, alpha=0.6),
            baseline_as_shipped=True)


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("model_name", MODELS)
def test_dry_vs_repetition_penalty(benchmark, model_name, batch):
    """DRY (multiplier 0.8, llama.cpp's other defaults, whole context) in a chain next to the
    same chain with repetition_penalty: what DRY's suffix matching costs per call."""
    def chain(first: dict):
        return build_sampler("chain", processors=[first, {"top_k": 40}, {"temperature": 0.8}])

    _versus(benchmark, model_name, batch, "dry", "repetition_penalty",
            ours_sampler=chain({"dry": 0.8}),
            baseline_sampler=chain({"repetition_penalty": 1.2}))
