"""The sampler contract (samplerlab.decoding.contract): defaults for a plain KerasHub
sampler, every built-in's declaration, extra models attached, and no engine special case."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from samplerlab.decoding.contract import (
    ExtraModel,
    SamplerCapabilities,
    capabilities,
    default_capabilities,
)

PACKAGE = Path(__file__).resolve().parents[1] / "samplerlab"
PROMPTS = ["the cat", "a dog sat on"]


def _plain_sampler():
    import keras_hub
    from keras import ops

    class Argmax(keras_hub.samplers.Sampler):
        """A third-party sampler that implements only KerasHub's get_next_token."""

        def get_next_token(self, probabilities):
            return ops.argmax(probabilities, axis=-1)

    return Argmax()


def test_a_plain_keras_hub_sampler_gets_the_defaults():
    caps = capabilities(_plain_sampler())
    assert caps == SamplerCapabilities(loop="base")
    assert caps.distribution is None and caps.structure is None
    assert caps.extra_models == () and caps.loop_stats is None and caps.baseline is None


def test_a_plain_sampler_generates_keras_hubs_tokens(tiny_model, engine_tokens,
                                                      keras_hub_tokens):
    inputs = tiny_model.preprocessor.generate_preprocess(PROMPTS, sequence_length=12)
    ours = engine_tokens(tiny_model.adapter, _plain_sampler(), inputs)
    theirs = keras_hub_tokens(tiny_model.causal_lm, _plain_sampler(), inputs)
    np.testing.assert_array_equal(ours, theirs)


def test_keras_hubs_own_classes_get_their_distribution_and_config():
    import keras_hub

    greedy = keras_hub.samplers.GreedySampler()
    caps = capabilities(greedy)
    assert caps.loop == "base" and caps.distribution is not None
    assert caps.structure == greedy.get_config()
    assert capabilities(keras_hub.samplers.BeamSampler(num_beams=2)).loop == "own"


def test_capabilities_are_read_once():
    from samplerlab.samplers.builtin import top_k

    sampler = top_k(k=3)
    assert capabilities(sampler) is capabilities(sampler)


BUILT_INS = {
    # name: (params, loop, distribution declared, reports from its loop, candidates)
    "greedy": ({}, "base", True, False, 1),
    "top_k": ({"k": 5}, "base", True, False, 1),
    "top_p": ({"p": 0.5}, "base", True, False, 1),
    "random": ({}, "base", True, False, 1),
    "beam": ({"num_beams": 3}, "adapter", True, False, 3),
    "contrastive": ({"k": 4}, "adapter", True, False, 4),
    "chain": ({"processors": [{"top_k": 5}]}, "adapter", False, True, 1),
    "mirostat": ({}, "adapter", False, True, 1),
    "xtc": ({}, "adapter", False, True, 1),
    "speculative": ({"draft": "samplerlab:tiny-en"}, "adapter", True, False, 1),
}


@pytest.mark.parametrize("name", sorted(BUILT_INS))
def test_every_built_in_declares_what_it_offers(name):
    from samplerlab.decoding.contract import DecodingSampler
    from samplerlab.plugins import registry

    params, loop, distribution, reports, candidates = BUILT_INS[name]
    sampler = registry("samplers")[name].build(**params)
    caps = capabilities(sampler)
    assert isinstance(sampler, DecodingSampler) or name == "greedy"  # KerasHub's own
    assert caps.loop == loop
    assert (caps.distribution is not None) == distribution
    assert caps.reports_distribution == reports
    assert caps.candidates == candidates
    assert caps.beams == (name == "beam")
    assert caps.structure is not None
    assert caps.observed_steps == (name != "speculative")
    if name == "speculative":
        assert caps.extra_models == (ExtraModel("draft", "samplerlab:tiny-en"),)
        assert caps.loop_stats.section == "speculative"
        assert set(caps.loop_stats.columns) == {"acceptance_rate", "accepted_per_pass",
                                                "speedup"}
        assert caps.baseline is not None
    else:
        assert caps.extra_models == () and caps.loop_stats is None and caps.baseline is None


def _guided_sampler():
    """A sampler that declares an extra model (as a guidance model would)."""
    import keras_hub

    class Guided(keras_hub.samplers.GreedySampler):
        def __init__(self):
            super().__init__()
            self.models = {}

        def decoding_capabilities(self):
            return default_capabilities(self, extra_models=(
                ExtraModel("guide", "samplerlab:tiny-en"),))

        def attach_models(self, adapters):
            self.models = dict(adapters)

        def attached_models(self):
            return tuple(self.models.values())

    return Guided()


def test_a_declared_extra_model_is_attached(embedded_model):
    from samplerlab.engine.extra_models import attach_extra_models

    sampler = _guided_sampler()
    attach_extra_models(sampler, embedded_model)
    assert set(sampler.models) == {"guide"}
    assert sampler.models["guide"].causal_lm is not None


def test_extra_models_without_the_methods_are_refused():
    import keras_hub

    class Broken(keras_hub.samplers.GreedySampler):
        def decoding_capabilities(self):
            return default_capabilities(self, extra_models=(ExtraModel("draft", "x"),))

    with pytest.raises(TypeError, match="attach_models"):
        capabilities(Broken())


@pytest.mark.parametrize("folder", ["engine", "executors", "commands"])
def test_no_engine_module_special_cases_a_sampler(folder):
    """The engine, executors, runner and commands know samplers only through the contract."""
    files = [*sorted((PACKAGE / folder).glob("*.py")), PACKAGE / "runner.py"]
    for path in files:
        text = path.read_text()
        assert not re.search(r"speculative", text, re.IGNORECASE), path
        assert "getattr(sampler" not in text, path


def test_decoding_imports_no_higher_layer():
    higher = ("engine", "samplers", "processors", "traces", "metrics", "runner")
    pattern = re.compile(r"^\s*(?:from|import) samplerlab\.(" + "|".join(higher) + r")\b",
                         re.MULTILINE)
    for path in sorted((PACKAGE / "decoding").glob("*.py")):
        assert not pattern.search(path.read_text()), path


def test_adapters_offer_their_parts_through_the_small_protocols(tiny_model):
    from samplerlab.decoding.observers import ObservedAdapter
    from samplerlab.models.adapters import DecodingAdapter
    from samplerlab.models.adapters.base import (
        BeamCache,
        CachedForward,
        MultiTokenVerify,
        shared_cache_candidates,
    )

    fast, plain = tiny_model.adapter, DecodingAdapter(tiny_model.causal_lm)
    for adapter in (fast, plain):
        assert isinstance(adapter, CachedForward) and isinstance(adapter, BeamCache)
        assert isinstance(adapter, MultiTokenVerify)
    assert shared_cache_candidates(fast) is fast  # GPT-2's copy-free cache
    assert shared_cache_candidates(plain) is None  # KerasHub's call_with_cache
    observed = ObservedAdapter(fast, ())
    assert isinstance(observed, BeamCache) and shared_cache_candidates(observed) is observed
    assert shared_cache_candidates(None) is None
