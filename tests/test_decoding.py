"""samplerlab's copy-free cached forward pass gives what KerasHub's own gives, token for token."""

from __future__ import annotations

import numpy as np
import pytest

from samplerlab.decoding import (
    install_fast_decoding,
    supports_fast_decoding,
    uninstall_fast_decoding,
)

PROMPTS = ["My trip to Yosemite was", "The", "Once upon a time in a land far away there"]


@pytest.fixture(scope="module")
def fresh_lm(tiny_preset):
    """The tiny preset loaded without the fast path (the test switches it on and off)."""
    from samplerlab.models import load_model

    lm = load_model(str(tiny_preset), sequence_length=64, fast_decoding=False).causal_lm
    yield lm
    uninstall_fast_decoding(lm)


def _samplers():
    import keras_hub

    return {
        "greedy": lambda: keras_hub.samplers.GreedySampler(),
        "top_k": lambda: keras_hub.samplers.TopKSampler(k=5, seed=3),
        "beam": lambda: keras_hub.samplers.BeamSampler(num_beams=3),
        "contrastive": lambda: keras_hub.samplers.ContrastiveSampler(k=4, alpha=0.6),
    }


def _generate(lm, make_sampler, fast: bool) -> list[str]:
    (install_fast_decoding if fast else uninstall_fast_decoding)(lm)
    lm.compile(sampler=make_sampler())
    return list(lm.generate(PROMPTS, max_length=40, strip_prompt=False))


@pytest.mark.parametrize("sampler", ["greedy", "top_k", "beam", "contrastive"])
def test_generate_is_token_for_token_keras_hubs(fresh_lm, sampler):
    """Ragged prompts, KerasHub's own samplers (beam and contrastive copy the cache)."""
    make = _samplers()[sampler]
    assert _generate(fresh_lm, make, fast=True) == _generate(fresh_lm, make, fast=False)


def test_logits_hidden_states_and_cache_match_keras_hubs(fresh_lm):
    x = fresh_lm.preprocessor.generate_preprocess(PROMPTS, sequence_length=64)["token_ids"]
    results = []
    for fast in (False, True):
        (install_fast_decoding if fast else uninstall_fast_decoding)(fresh_lm)
        hidden, cache = fresh_lm._build_cache(x)
        logits, step_hidden, cache = fresh_lm.call_with_cache(x[:, 10:11], cache, 10)
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


def test_install_is_idempotent_and_uninstall_restores_keras_hubs_method(fresh_lm):
    import keras_hub

    assert install_fast_decoding(fresh_lm) and install_fast_decoding(fresh_lm)
    assert fresh_lm.call_with_cache.__func__ is not keras_hub.models.GPT2CausalLM.call_with_cache
    uninstall_fast_decoding(fresh_lm)
    assert fresh_lm.call_with_cache.__func__ is keras_hub.models.GPT2CausalLM.call_with_cache


def test_models_it_does_not_know_are_left_alone():
    class NotGPT2:
        pass

    model = NotGPT2()
    assert not supports_fast_decoding(model)
    assert not install_fast_decoding(model)
    assert not hasattr(model, "call_with_cache")


def test_load_model_installs_it_by_default_and_the_spec_can_turn_it_off(tiny_preset):
    from samplerlab.models import load_model

    assert load_model(str(tiny_preset), sequence_length=64).fast_decoding
    assert not load_model(str(tiny_preset), sequence_length=64,
                          fast_decoding=False).fast_decoding


def test_the_manifest_records_the_setting(base_spec, write_spec, tmp_path):
    import json

    from samplerlab import run

    spec = {**base_spec, "model": {**base_spec["model"], "fast_decoding": False}}
    run_dir = run(write_spec(spec), results_root=tmp_path / "results", progress=False).run_dir
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["model"]["fast_decoding"] is False


def test_bfloat16_generate_is_keras_hubs_too(tiny_preset):
    """Half-precision compute: attention logits and softmax in float32, as KerasHub does."""
    from samplerlab.models import load_model

    lm = load_model(str(tiny_preset), sequence_length=64, dtype_policy="bfloat16",
                    fast_decoding=False).causal_lm
    make = _samplers()["greedy"]
    assert _generate(lm, make, fast=True) == _generate(lm, make, fast=False)
