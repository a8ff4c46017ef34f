"""samplerlab's beam search: KerasHub's beams token for token on prompts of equal length,
each row's own beams on prompts of different lengths, and a cache its beams share.

(Under KerasHub's own ``generate`` the conformance kit checks the same batch consistency:
tests/test_testing_kit.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from samplerlab.models.adapters import adapter_for
from samplerlab.samplers.beam import BeamSampler

EQUAL = ["My trip to Yosemite", "The cat sat on", "Once upon a time"]   # 5 tokens each
RAGGED = ["My trip to Yosemite was", "The", "Once upon a time in a land"]
ADAPTERS = pytest.mark.parametrize("fast", [True, False], ids=["gpt2-shared", "keras-hub-copies"])


def _inputs(model, prompts, max_length=28):
    return model.preprocessor.generate_preprocess(prompts, sequence_length=max_length)


def _rows(inputs, row):
    return {k: np.asarray(v)[row: row + 1] for k, v in inputs.items()}


@pytest.mark.parametrize("fast, num_beams, temperature, stop", [
    (True, 4, 1.0, "end"), (True, 2, 0.7, None), (False, 3, 0.7, "end")],
    ids=["gpt2-shared-4", "gpt2-shared-2-t0.7-no-stop", "keras-hub-copies-3-t0.7"])
def test_the_beams_are_keras_hubs_on_prompts_of_equal_length(
        tiny_model, engine_tokens, keras_hub_tokens, fast, num_beams, temperature, stop):
    import keras_hub

    inputs = _inputs(tiny_model, EQUAL)
    assert len(set(np.asarray(inputs["padding_mask"]).sum(axis=1))) == 1
    stop = (tiny_model.end_token_id,) if stop else None
    ours = engine_tokens(adapter_for(tiny_model.causal_lm, fast=fast),
                         BeamSampler(num_beams=num_beams, temperature=temperature), inputs, stop)
    theirs = keras_hub_tokens(tiny_model.causal_lm, keras_hub.samplers.BeamSampler(
        num_beams=num_beams, temperature=temperature), inputs, stop)
    np.testing.assert_array_equal(ours, theirs)


@ADAPTERS
def test_each_row_of_a_ragged_batch_gets_the_beams_it_gets_alone(tiny_model, engine_tokens,
                                                                 fast):
    adapter = adapter_for(tiny_model.causal_lm, fast=fast)
    inputs = _inputs(tiny_model, RAGGED)
    together = engine_tokens(adapter, BeamSampler(num_beams=3), inputs)
    for row in range(len(RAGGED)):
        alone = engine_tokens(adapter, BeamSampler(num_beams=3), _rows(inputs, row))
        np.testing.assert_array_equal(together[row], alone[0])


def test_reordering_beams_moves_a_slot_table_not_the_cache(tiny_model):
    """GPT-2's beams share one cache: the prompt sits once per row (slot 0), and a
    reorder leaves every key and value array as it was."""
    adapter = tiny_model.adapter
    inputs = _inputs(tiny_model, EQUAL)
    _, cache = adapter.start(inputs["token_ids"], inputs["padding_mask"])
    layers, slots = adapter.beam_cache(cache, 4)
    batch, heads, length, dim = cache[0][0].shape
    assert layers[0][0].shape == (batch * heads, 4 * length, dim)
    np.testing.assert_array_equal(layers[0][0][:, :length],
                                  np.reshape(cache[0][0], (batch * heads, length, dim)))
    assert slots.shape == (batch, 4, length) and not np.asarray(slots).any()
    beam_indices = np.array([[1, 1, 0, 3]] * batch, dtype="int32")
    reordered, new_slots = adapter.beam_reorder((layers, slots + np.arange(4)[:, None]),
                                                beam_indices)
    assert reordered is layers
    np.testing.assert_array_equal(new_slots[:, :, 0], beam_indices)


def test_temperature_is_traced_and_num_beams_sets_the_structure():
    assert (BeamSampler(num_beams=3, temperature=0.5).structure_key()
            == BeamSampler(num_beams=3, temperature=2.0).structure_key())
    assert BeamSampler(num_beams=3).structure_key() != BeamSampler(num_beams=4).structure_key()
    assert BeamSampler(num_beams=3, temperature=0.5).get_config() == {
        "temperature": 0.5, "num_beams": 3, "return_all_beams": False}


def test_all_beams_come_back_sorted_when_asked():
    """KerasHub's ``return_all_beams``, on a bigram model small enough to read."""
    import keras_hub
    from keras import ops

    table = np.random.default_rng(0).normal(size=(12, 12)).astype("float32") * 3

    def next(prompt, cache, index):
        return ops.take(table, prompt[:, index - 1], axis=0), None, cache

    prompt = np.array([[1, 2, 0, 0, 0, 0], [3, 4, 0, 0, 0, 0]], dtype="int32")
    mask = prompt > 0
    ours = BeamSampler(num_beams=3, return_all_beams=True)(next, prompt, index=2, mask=mask)
    theirs = keras_hub.samplers.BeamSampler(num_beams=3, return_all_beams=True)(
        next, prompt, index=2, mask=mask)
    np.testing.assert_array_equal(np.asarray(ours[0]), np.asarray(theirs[0]))
    np.testing.assert_allclose(np.asarray(ours[1]), np.asarray(theirs[1]))
    assert np.all(np.diff(np.asarray(ours[1]), axis=1) <= 0)
