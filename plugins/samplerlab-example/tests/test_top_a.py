"""Tests of the example plugin, using samplerlab's conformance kit."""

import numpy as np
from samplerlab_example import top_a, top_a_processor


def test_top_a_is_a_conforming_sampler(sampler_conformance):
    sampler_conformance(top_a, {"a": 0.2})


def test_top_a_is_a_conforming_processor(processor_conformance):
    processor_conformance(top_a_processor, {"a": 0.5})


def test_top_a_keeps_tokens_above_a_times_the_squared_top_probability():
    import keras

    from samplerlab.processors.base import Context

    probs = np.array([[0.6, 0.2, 0.1, 0.07, 0.03]], dtype="float32")
    logits = np.log(probs)
    tokens = np.zeros((1, 2), "int32")
    out = keras.ops.convert_to_numpy(
        top_a_processor(a=0.5)(logits, Context(tokens, np.int32(1), tokens > 0)))
    # 0.5 * 0.6^2 = 0.18: tokens 0 and 1 stay.
    assert np.isfinite(out).tolist() == [[True, True, False, False, False]]


def test_top_a_round_trips_through_keras_hub_serialization():
    import keras_hub

    sampler = top_a(a=0.3, temperature=0.7, seed=4)
    restored = keras_hub.samplers.deserialize(keras_hub.samplers.serialize(sampler))
    assert type(restored) is type(sampler)
    assert restored.get_config() == sampler.get_config()
    assert restored.params() == {"a": 0.3, "temperature": 0.7}
