"""ProgramParams: the one way samplers and processors keep program parameters (inputs of
the compiled program), the ``samplerlab.traced.TracedParams`` alias, and their KerasHub
serialisation (``keras_hub.samplers.serialize``/``deserialize`` round trips)."""

import numpy as np
import pytest

from samplerlab.decoding.contract import capabilities
from samplerlab.plugins import PluginManager

# Parameters for each built-in sampler's round trip (seeded where the sampler samples).
SAMPLER_PARAMS = {
    "greedy": {},
    "top_k": {"k": 7, "temperature": 0.7, "seed": 3},
    "top_p": {"p": 0.8, "temperature": 1.3, "seed": 3},
    "random": {"temperature": 0.9, "seed": 3},
    "beam": {"num_beams": 3},
    "contrastive": {"k": 3, "alpha": 0.4, "temperature": 0.8},
    "chain": {"processors": [{"repetition_penalty": 1.3},
                             {"dry": {"multiplier": 1.5, "sequence_breakers": [[5], [9, 10]]}},
                             {"no_repeat_ngram_size": 3}, {"top_k": 20},
                             {"temperature": 0.8}], "seed": 3},
    "mirostat": {"tau": 4.0, "eta": 0.2, "seed": 3},
    "xtc": {"threshold": 0.05, "probability": 0.7, "seed": 3},
    "speculative": {"draft": "samplerlab:tiny-en", "num_speculative_tokens": 2,
                    "base": {"name": "top_k", "params": {"k": 5}}, "seed": 3},
}


@pytest.fixture(scope="module")
def builtins():
    """The registries of samplerlab's own plugins (no installed third-party ones)."""
    return PluginManager(entry_points=False).registries()


def test_every_builtin_sampler_has_a_round_trip_case(builtins):
    assert set(SAMPLER_PARAMS) == set(builtins["samplers"])


@pytest.mark.parametrize("name", sorted(SAMPLER_PARAMS))
def test_a_builtin_sampler_round_trips_through_keras_hub_serialization(name, builtins):
    import keras_hub

    from samplerlab.testing import tiny_batch, tiny_causal_lm

    sampler = builtins["samplers"][name].build(**SAMPLER_PARAMS[name])
    config = keras_hub.samplers.serialize(sampler)
    restored = keras_hub.samplers.deserialize(config)

    assert type(restored) is type(sampler)
    assert keras_hub.samplers.serialize(restored) == config
    model, batch = tiny_causal_lm(), tiny_batch(12)
    tokens = []
    for each in (sampler, restored):
        roles = [m.role for m in capabilities(each).extra_models]
        if roles:  # speculative's draft: the engine attaches it
            from samplerlab.models.adapters import adapter_for

            each.attach_models({r: adapter_for(tiny_causal_lm(seed=1)) for r in roles})
        model.compile(sampler=each)
        tokens.append(np.asarray(model.generate(batch, stop_token_ids=None)["token_ids"]))
    np.testing.assert_array_equal(tokens[0], tokens[1])


@pytest.mark.parametrize("name", ["top_k", "dry", "repetition_penalty", "no_repeat_ngram_size",
                                  "typical_p"])
def test_a_builtin_processor_round_trips_through_keras_serialization(name, builtins):
    import keras

    processor = builtins["processors"][name].build()
    config = keras.saving.serialize_keras_object(processor)
    restored = keras.saving.deserialize_keras_object(config)
    assert type(restored) is type(processor)
    assert restored.params() == processor.params()
    assert restored.structure_key() == processor.structure_key()


def test_program_parameters_are_float32_or_int32_state_that_a_sweep_assigns(builtins):
    chain = builtins["samplers"]["chain"]
    a = chain.build(processors=[{"top_k": 4}, {"temperature": 0.7}], seed=1)
    b = chain.build(processors=[{"top_k": 9}, {"temperature": 1.4}], seed=2)
    # Seed state first (KerasHub's order), then each processor's parameters.
    assert [v.dtype for v in a.variables] == ["uint32", "int32", "float32"]
    assert not any(v.trainable for v in a.variables)
    assert a.structure_key() == b.structure_key()
    a.assign_params(b)
    assert [p.params() for p in a.processors] == [{"k": 9}, {"temperature": 1.4}]
    np.testing.assert_array_equal(a.variables[0].numpy(), b.variables[0].numpy())


def test_static_parameters_separate_structures_and_refuse_assignment(builtins):
    samplers = builtins["samplers"]
    top_k = samplers["top_k"].build(k=5, temperature=0.5)
    assert top_k.params() == {"temperature": 0.5, "k": 5}
    assert top_k.structure_key() == samplers["top_k"].build(k=5).structure_key()
    other = samplers["top_k"].build(k=6)
    assert other.structure_key() != top_k.structure_key()
    with pytest.raises(ValueError, match="structure"):
        top_k.assign_params(other)


def test_the_old_import_path_names_the_same_mixin():
    from samplerlab.decoding.params import ProgramParams
    from samplerlab.traced import TracedParams

    assert TracedParams is ProgramParams


def test_renamed_samplers_keep_their_registered_names():
    import keras
    import keras_hub

    from samplerlab.samplers.random import RandomSampler
    from samplerlab.samplers.top_k import TopKSampler
    from samplerlab.samplers.top_p import TopPSampler

    for cls, old in ((TopKSampler, "TracedTopKSampler"), (TopPSampler, "TracedTopPSampler"),
                     (RandomSampler, "TracedRandomSampler")):
        assert keras.saving.get_registered_name(cls) == f"samplerlab>{old}"
        config = keras_hub.samplers.serialize(cls(seed=1))
        assert type(keras_hub.samplers.deserialize(config)) is cls
