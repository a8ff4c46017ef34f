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
            assert models[name].fast_decoding
        return models[name].causal_lm

    return get


@pytest.fixture
def fast_lm(fast_models):
    return fast_models("tiny")


def _generate(lm, sampler, max_length: int = 40) -> list[str]:
    lm.compile(sampler=sampler)
    return list(lm.generate(PROMPTS, max_length=max_length))


@pytest.mark.parametrize("model,k,alpha,temperature", [
    ("tiny", 4, 0.6, 1.0), ("tiny", 1, 0.5, 1.0), ("embedded", 3, 0.4, 0.7),
    ("embedded", 5, 1.0, 1.0), ("embedded", 2, 0.0, 1.0)])
def test_token_for_token_keras_hubs_contrastive_search(fast_models, model, k, alpha,
                                                       temperature):
    import keras_hub

    lm = fast_models(model)
    theirs = keras_hub.samplers.ContrastiveSampler(k=k, alpha=alpha, temperature=temperature)
    ours = FastContrastiveSampler(k=k, alpha=alpha, temperature=temperature)
    assert _generate(lm, ours) == _generate(lm, theirs)


def test_it_runs_the_shared_cache_path_on_a_fast_model(fast_lm, monkeypatch):
    from samplerlab.samplers import contrastive

    calls = []
    forward = contrastive.candidate_forward
    monkeypatch.setattr(contrastive, "candidate_forward",
                        lambda *a: (calls.append(1), forward(*a))[1])
    _generate(fast_lm, FastContrastiveSampler(k=3, alpha=0.5), max_length=24)
    assert calls  # traced once inside the generate loop


def test_without_fast_decoding_it_is_keras_hubs_sampler(tiny_preset, monkeypatch):
    import keras_hub

    from samplerlab.models import load_model
    from samplerlab.samplers import contrastive

    lm = load_model(str(tiny_preset), sequence_length=64, fast_decoding=False).causal_lm
    monkeypatch.setattr(contrastive, "candidate_forward",
                        lambda *a: pytest.fail("shared-cache path on a KerasHub cache"))
    ours = _generate(lm, FastContrastiveSampler(k=4, alpha=0.6))
    assert ours == _generate(lm, keras_hub.samplers.ContrastiveSampler(k=4, alpha=0.6))


def test_alpha_and_temperature_are_traced_k_is_static():
    from samplerlab.samplers.builtin import contrastive

    assert isinstance(contrastive(), FastContrastiveSampler)
    assert (contrastive(k=4, alpha=0.2).structure_key()
            == contrastive(k=4, alpha=0.9, temperature=0.5).structure_key())
    assert contrastive(k=4).structure_key() != contrastive(k=5).structure_key()
    assert contrastive(k=4, alpha=0.3, temperature=0.7).get_config() == pytest.approx(
        {"k": 4, "alpha": 0.3, "temperature": 0.7}, abs=1e-6)


def test_an_alpha_sweep_traces_once_and_equals_fresh_compiles(tiny_model, trace_counter):
    lm = tiny_model.causal_lm
    traces = trace_counter(lm)
    inputs = tiny_model.preprocessor.generate_preprocess(PROMPTS, sequence_length=24)

    def generate(sampler=None):
        if sampler is not None:
            lm.compile(sampler=sampler)
        return np.asarray(lm.make_generate_function()(inputs, stop_token_ids=None)["token_ids"])

    swept = [generate(FastContrastiveSampler(k=4, alpha=0.0))]
    for alpha in (0.3, 0.6, 1.0):
        lm.sampler = FastContrastiveSampler(k=4, alpha=alpha)  # what the runner does
        swept.append(generate())
    assert len(traces) == 1
    np.testing.assert_array_equal(swept[-1], generate(FastContrastiveSampler(k=4, alpha=1.0)))
    assert len(traces) == 2
    assert not np.array_equal(swept[0], swept[-1])
