"""Contrastive search over a shared cache chooses KerasHub's tokens, with less work per step."""

from __future__ import annotations

import numpy as np
import pytest

from samplerlab.samplers.contrastive import FastContrastiveSampler

PROMPTS = ["My trip to Yosemite was", "The", "Once upon a time in a land far away there"]


@pytest.fixture(scope="module")
def fast_models(tiny_preset):
    """Fast-decoding models, loaded once: the random tiny preset and the trained embedded
    one (whose peaked distributions make the penalty decide more often)."""
    from samplerlab.models import load_model

    models = {}

    def get(name: str):
        if name not in models:
            preset = str(tiny_preset) if name == "tiny" else "samplerlab:tiny-en"
            models[name] = load_model(preset, sequence_length=64)
            assert models[name].adapter.shared_cache
        return models[name]

    return get


def _inputs(model, max_length: int = 40):
    return model.preprocessor.generate_preprocess(PROMPTS, sequence_length=max_length)


@pytest.mark.parametrize("model,k,alpha,temperature", [
    ("tiny", 4, 0.6, 1.0), ("tiny", 1, 0.5, 1.0), ("embedded", 3, 0.4, 0.7),
    ("embedded", 5, 1.0, 1.0), ("embedded", 2, 0.0, 1.0)])
def test_token_for_token_keras_hubs_contrastive_search(fast_models, engine_tokens,
                                                       keras_hub_tokens, model, k, alpha,
                                                       temperature):
    import keras_hub

    model = fast_models(model)
    theirs = keras_hub.samplers.ContrastiveSampler(k=k, alpha=alpha, temperature=temperature)
    ours = FastContrastiveSampler(k=k, alpha=alpha, temperature=temperature)
    stop = (model.end_token_id,)
    np.testing.assert_array_equal(
        engine_tokens(model.adapter, ours, _inputs(model), stop),
        keras_hub_tokens(model.causal_lm, theirs, _inputs(model), stop))


def test_it_runs_the_shared_cache_path_over_a_shared_cache_adapter(fast_models, engine_tokens,
                                                                   monkeypatch):
    model = fast_models("tiny")
    calls = []
    forward = type(model.adapter).candidate_forward
    monkeypatch.setattr(type(model.adapter), "candidate_forward",
                        lambda *a: (calls.append(1), forward(*a))[1])
    engine_tokens(model.adapter, FastContrastiveSampler(k=3, alpha=0.5), _inputs(model, 24))
    assert calls  # traced once inside the generate loop


def test_over_keras_hubs_cache_it_is_keras_hubs_sampler(tiny_preset, engine_tokens,
                                                        keras_hub_tokens):
    import keras_hub

    from samplerlab.models import load_model

    model = load_model(str(tiny_preset), sequence_length=64, fast_decoding=False)
    assert not model.adapter.shared_cache
    ours = engine_tokens(model.adapter, FastContrastiveSampler(k=4, alpha=0.6), _inputs(model))
    theirs = keras_hub_tokens(model.causal_lm,
                              keras_hub.samplers.ContrastiveSampler(k=4, alpha=0.6),
                              _inputs(model))
    np.testing.assert_array_equal(ours, theirs)


def test_alpha_and_temperature_are_traced_k_is_static():
    from samplerlab.samplers.builtin import contrastive

    assert isinstance(contrastive(), FastContrastiveSampler)
    assert (contrastive(k=4, alpha=0.2).structure_key()
            == contrastive(k=4, alpha=0.9, temperature=0.5).structure_key())
    assert contrastive(k=4).structure_key() != contrastive(k=5).structure_key()
    assert contrastive(k=4, alpha=0.3, temperature=0.7).get_config() == pytest.approx(
        {"k": 4, "alpha": 0.3, "temperature": 0.7}, abs=1e-6)


def test_an_alpha_sweep_compiles_once_and_equals_fresh_compiles(fast_models, engine_tokens):
    from samplerlab.engine.programs import ProgramCache

    model = fast_models("tiny")
    inputs, programs = _inputs(model, 24), ProgramCache(model.adapter, persistent=False)
    swept = [engine_tokens(model.adapter, FastContrastiveSampler(k=4, alpha=alpha), inputs,
                           programs=programs) for alpha in (0.0, 0.3, 0.6, 1.0)]
    assert programs.compiled == 1
    np.testing.assert_array_equal(
        swept[-1], engine_tokens(model.adapter, FastContrastiveSampler(k=4, alpha=1.0), inputs))
    assert not np.array_equal(swept[0], swept[-1])
