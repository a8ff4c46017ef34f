"""Decoding methods of issue 16: beam search over a shared cache, speculative decoding and
stop strings, each against its baseline in the same test (alternating rounds).

- Beam search (4 beams) against greedy, and against KerasHub's BeamSampler on KerasHub as
  shipped. Targets on GPT-2 124M: beam <= 1.3x greedy at batch 1, <= 2.5x at batch 8.
- Speculative decoding on the GPT-2 124M architecture with greedy acceptance, against
  greedy decoding on the same model: draft = a 2-layer model of GPT-2 base's width
  (random weights, so it rarely agrees with the target), and draft = the target itself
  (every draft token accepted: the upper bound of acceptance, at a draft as costly as
  the target). Acceptance rate and accepted tokens per target pass in ``extra_info``.
- Stop strings: greedy with ``generation.stop`` strings that never occur against greedy
  without them: the cost of watching for them inside the loop.
"""

from __future__ import annotations

import time

import pytest
from bench_utils import (
    MAX_LENGTH,
    MODELS,
    Baseline,
    compiled_call,
    inputs_for,
    load_note,
    loaded_model,
    record,
)

_DRAFTS: dict[str, object] = {}
# Alternating rounds per pair: ratios are what these tests report, so three on 124M.
ROUNDS = {"tiny": 5, "gpt2_124m": 3}


def _versus(benchmark, model, ours, baseline, batch, baseline_model=None) -> dict:
    base_call, base_first = compiled_call(baseline_model or model, baseline, batch)
    ours_call, ours_first = compiled_call(model, ours, batch)
    reference = Baseline(base_call)
    benchmark.pedantic(ours_call, setup=reference.setup, rounds=ROUNDS[model.preset],
                       iterations=1)
    steady = benchmark.stats.stats.median
    info = {"ours_s": steady, "baseline_s": reference.median,
            "ratio": steady / reference.median, "ours_first_call_s": ours_first,
            "baseline_first_call_s": base_first, "load": load_note()}
    record(benchmark, **info)
    return info


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("model_name", MODELS)
def test_beam_vs_greedy(benchmark, model_name, batch):
    """Target: beam search (4 beams) <= 1.3x greedy at batch 1, <= 2.5x at batch 8 (124M)."""
    import keras_hub

    from samplerlab.samplers.beam import BeamSampler

    _versus(benchmark, loaded_model(model_name), BeamSampler(num_beams=4),
            keras_hub.samplers.GreedySampler(), batch)


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("model_name", MODELS)
def test_keras_hub_beam_vs_ours(benchmark, model_name, batch):
    """KerasHub's BeamSampler (4 beams) on KerasHub as shipped next to samplerlab's."""
    import keras_hub

    from samplerlab.samplers.beam import BeamSampler

    _versus(benchmark, loaded_model(model_name), BeamSampler(num_beams=4),
            keras_hub.samplers.BeamSampler(num_beams=4), batch,
            baseline_model=loaded_model(model_name, fast=False))


def _draft(name: str):
    """The draft's decoding adapter: ``two_layer`` (GPT-2 base's width, 2 layers, random
    weights, the same tokenizer) or ``target`` (the target model itself)."""
    if name == "target":
        return loaded_model("gpt2_124m").adapter
    if name not in _DRAFTS:
        from samplerlab.models import build_tiny_causal_lm
        from samplerlab.models.adapters import adapter_for

        lm = build_tiny_causal_lm(num_layers=2, num_heads=12, hidden_dim=768,
                                  intermediate_dim=3072, max_sequence_length=1024,
                                  sequence_length=MAX_LENGTH, seed=1)
        _DRAFTS[name] = adapter_for(lm)
    return _DRAFTS[name]


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("draft", ["two_layer", "target"])
def test_speculative_vs_greedy(benchmark, draft, batch):
    """Speculative decoding (4 draft tokens, greedy acceptance) on GPT-2 124M against
    greedy decoding: same tokens, tokens/s ratio = speed-up."""
    import keras_hub

    from samplerlab.samplers.speculative_sampler import SpeculativeSampler

    model = loaded_model("gpt2_124m")
    sampler = SpeculativeSampler(4)
    sampler.attach_models({"draft": _draft(draft)})
    info = _versus(benchmark, model, sampler, keras_hub.samplers.GreedySampler(), batch)
    stats = sampler.last_loop_stats()
    prompt_tokens = int(inputs_for(model, 1)["padding_mask"].sum())
    new_tokens = batch * (MAX_LENGTH - prompt_tokens)
    record(benchmark, speedup=1 / info["ratio"], tokens_per_s=new_tokens / info["ours_s"],
           greedy_tokens_per_s=new_tokens / info["baseline_s"],
           acceptance_rate=stats["accepted"] / max(stats["proposed"], 1),
           accepted_per_pass=stats["kept"] / max(stats["row_passes"], 1),
           target_passes=stats["target_passes"])


@pytest.mark.parametrize("batch", [8])
@pytest.mark.parametrize("model_name", MODELS)
def test_stop_strings_vs_none(benchmark, model_name, batch):
    """Greedy watching for 16 stop strings that never occur, against greedy alone."""
    import keras_hub

    from samplerlab.engine.programs import ProgramCache
    from samplerlab.engine.stop_strings import StopStringObserver

    model = loaded_model(model_name)
    stops = [f"\u2603never{i}\u2603" for i in range(16)]
    observer = StopStringObserver(model.tokenizer, stops, model.end_token_id)
    sampler = keras_hub.samplers.GreedySampler()
    inputs = inputs_for(model, batch)
    programs = ProgramCache(model.adapter, persistent=False)
    stop = (model.end_token_id,)

    def run(observers):
        def call():
            out = programs.get(sampler, inputs, stop, observers)(sampler, inputs)
            return out["token_ids"].block_until_ready()
        return call

    ours, plain = run((observer,)), run(())
    start = time.perf_counter()
    ours()
    first = time.perf_counter() - start
    plain()
    reference = Baseline(plain)
    benchmark.pedantic(ours, setup=reference.setup, rounds=ROUNDS[model_name], iterations=1)
    record(benchmark, stop_strings_s=benchmark.stats.stats.median, greedy_s=reference.median,
           ratio=benchmark.stats.stats.median / reference.median, first_call_s=first,
           load=load_note())
