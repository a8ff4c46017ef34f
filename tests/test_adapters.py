"""Decoding adapters: the engine's generate loop over any adapter gives KerasHub's tokens.

The base adapter runs KerasHub's own ``call_with_cache``; GPT-2's fast adapter keeps a
copy-free cache of its own. Both must give what ``GPT2CausalLM.generate`` gives, token for
token, on ragged prompts, with KerasHub's samplers (beam and contrastive reorder and copy
the cache, so they see it as an opaque structure).
"""

from __future__ import annotations

import numpy as np
import pytest

from samplerlab.models.adapters import DecodingAdapter, adapter_for
from samplerlab.models.adapters.gpt2 import GPT2Adapter

PROMPTS = ["My trip to Yosemite was", "The", "Once upon a time in a land far away there"]


def _samplers():
    import keras_hub

    return {
        "greedy": lambda: keras_hub.samplers.GreedySampler(),
        "top_k": lambda: keras_hub.samplers.TopKSampler(k=5, seed=3),
        "beam": lambda: keras_hub.samplers.BeamSampler(num_beams=3),
        "contrastive": lambda: keras_hub.samplers.ContrastiveSampler(k=4, alpha=0.6),
    }


@pytest.fixture(scope="module")
def inputs(tiny_model):
    return tiny_model.preprocessor.generate_preprocess(PROMPTS, sequence_length=40)


@pytest.mark.parametrize("fast", [True, False], ids=["gpt2-adapter", "keras-hub-adapter"])
@pytest.mark.parametrize("sampler", ["greedy", "top_k", "beam", "contrastive"])
def test_the_engine_gives_keras_hubs_tokens(tiny_model, inputs, engine_tokens,
                                            keras_hub_tokens, sampler, fast):
    make = _samplers()[sampler]
    ours = engine_tokens(adapter_for(tiny_model.causal_lm, fast=fast), make(), inputs,
                         stop=(tiny_model.end_token_id,))
    theirs = keras_hub_tokens(tiny_model.causal_lm, make(), inputs,
                              stop=(tiny_model.end_token_id,))
    np.testing.assert_array_equal(ours, theirs)


def test_logits_hidden_states_and_cache_match_keras_hubs(tiny_model, inputs):
    x = inputs["token_ids"]
    results = []
    for adapter in (DecodingAdapter(tiny_model.causal_lm), GPT2Adapter(tiny_model.causal_lm)):
        hidden, cache = adapter.start(x, inputs["padding_mask"])
        logits, step_hidden, cache = adapter.call_with_cache(x[:, 10:11], cache, 10)
        results.append((np.asarray(hidden), np.asarray(logits), np.asarray(step_hidden), cache))
    (h0, l0, s0, c0), (h1, l1, s1, c1) = results
    np.testing.assert_allclose(h1, h0, atol=1e-6)
    np.testing.assert_allclose(l1, l0, atol=1e-5)
    np.testing.assert_allclose(s1, s0, atol=1e-6)
    # KerasHub: (batch, layers, 2, length, heads, dim); ours: per layer (key, value) with
    # (batch, heads, length, dim).
    for layer, (key, value) in enumerate(c1):
        np.testing.assert_allclose(np.transpose(key, (0, 2, 1, 3)), c0[:, layer, 0], atol=1e-6)
        np.testing.assert_allclose(np.transpose(value, (0, 2, 1, 3)), c0[:, layer, 1],
                                   atol=1e-6)


def test_a_model_the_fast_adapters_do_not_know_runs_keras_hubs_path():
    class NotGPT2:
        pass

    model = NotGPT2()
    adapter = adapter_for(model)
    assert type(adapter) is DecodingAdapter and not adapter.fast and not adapter.shared_cache
    assert adapter.describe() == {"adapter": "keras_hub", "family": "NotGPT2", "fast": False,
                                  "shared_cache": False}


def test_loading_leaves_the_keras_hub_model_untouched(tiny_model):
    import keras_hub

    lm = tiny_model.causal_lm
    assert type(lm) is keras_hub.models.GPT2CausalLM
    assert "call_with_cache" not in vars(lm) and "_build_cache" not in vars(lm)
    assert isinstance(tiny_model.adapter, GPT2Adapter)


def test_load_model_picks_the_fast_adapter_and_the_spec_can_turn_it_off(tiny_preset):
    from samplerlab.models import load_model

    assert load_model(str(tiny_preset), sequence_length=64).fast_decoding
    slow = load_model(str(tiny_preset), sequence_length=64, fast_decoding=False)
    assert not slow.fast_decoding and slow.adapter.name == "keras_hub"


def test_the_manifest_records_the_decoding_path(base_spec, write_spec, tmp_path):
    import json

    from samplerlab import run

    spec = {**base_spec, "model": {**base_spec["model"], "fast_decoding": False}}
    run_dir = run(write_spec(spec), results_root=tmp_path / "results", progress=False).run_dir
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["model"]["fast_decoding"] is False
    assert manifest["model"]["decoding"]["adapter"] == "keras_hub"


def test_bfloat16_generate_is_keras_hubs_too(tiny_preset, engine_tokens, keras_hub_tokens):
    """Half-precision compute: attention logits and softmax in float32, as KerasHub does."""
    from samplerlab.models import load_model

    model = load_model(str(tiny_preset), sequence_length=64, dtype_policy="bfloat16")
    inputs = model.preprocessor.generate_preprocess(PROMPTS, sequence_length=40)
    make = _samplers()["greedy"]
    np.testing.assert_array_equal(engine_tokens(model.adapter, make(), inputs),
                                  keras_hub_tokens(model.causal_lm, make(), inputs))


LONG_PROMPT = " ".join(["the river ran past the old mill and into the valley"] * 8)  # ~90 tokens


def _ours(name):
    from samplerlab.plugins import get_plugin_manager

    return get_plugin_manager().registry("samplers")[name].build(k=4, alpha=0.6)


@pytest.mark.parametrize(("sampler", "prompts"), [
    ("greedy", [LONG_PROMPT, *PROMPTS[:1]]), ("greedy", [LONG_PROMPT]),
    ("samplerlab-contrastive", [LONG_PROMPT, *PROMPTS[:1]])],
    ids=["greedy-ragged", "greedy-long", "samplerlab-contrastive-ragged"])
def test_attention_over_used_buckets_gives_keras_hubs_tokens(tiny_model, engine_tokens,
                                                             keras_hub_tokens, sampler, prompts):
    """max_length 160: steps attend over 64, 128 and 160 keys, and the seed pass covers the
    shortest prompt's bucket only (64 or 128 positions): KerasHub's tokens all the same
    (samplerlab's contrastive search, over the shared cache, against KerasHub's)."""
    from samplerlab.decoding.generate import prefill_length

    theirs_sampler = _samplers()[sampler.removeprefix("samplerlab-")]()
    ours_sampler = _ours("contrastive") if sampler.startswith("samplerlab") else (
        _samplers()[sampler]())
    inputs = tiny_model.preprocessor.generate_preprocess(prompts, sequence_length=160)
    assert prefill_length(inputs["padding_mask"]) == (64 if len(prompts) > 1 else 128)
    ours = engine_tokens(adapter_for(tiny_model.causal_lm), ours_sampler, inputs)
    theirs = keras_hub_tokens(tiny_model.causal_lm, theirs_sampler, inputs)
    np.testing.assert_array_equal(ours, theirs)


def test_a_program_refuses_a_batch_longer_than_its_seed_pass(tiny_model):
    import keras_hub

    from samplerlab.engine.programs import ProgramCache

    programs = ProgramCache(adapter_for(tiny_model.causal_lm), persistent=False)
    short = tiny_model.preprocessor.generate_preprocess(PROMPTS[:1], sequence_length=160)
    long = tiny_model.preprocessor.generate_preprocess([LONG_PROMPT], sequence_length=160)
    sampler = keras_hub.samplers.GreedySampler()
    program = programs.get(sampler, short, None)
    with pytest.raises(ValueError, match="seeds the cache over 64 positions"):
        program(sampler, long)
    assert (programs.prefill(short), programs.prefill(long)) == (64, 128)
    assert programs.key(sampler, long, None) != programs.key(sampler, short, None)
