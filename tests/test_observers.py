"""Step observers see every decided token and every position's logits, for every sampler."""

from __future__ import annotations

import numpy as np
import pytest
from keras import ops

from samplerlab.decoding.observers import StepObserver
from samplerlab.engine.programs import ProgramCache

PROMPTS = ["My trip to Yosemite was", "The", "Once upon a time"]
FIRST = 7


class Count(StepObserver):
    """Forces the tokens FIRST, FIRST + 1, ... on every row's generated positions: each
    forced token depends on the token the observer last saw decided on that row."""

    def init(self, token_ids, padding_mask):
        return ops.full((ops.shape(token_ids)[0],), FIRST - 1, "int32")

    def on_token(self, state, prompt, index, generated):
        decided = ops.cast(ops.take(prompt, index, axis=1), "int32")
        return ops.where(generated, decided, state)

    def on_logits(self, state, prompt, index, logits):
        wanted = ops.one_hot(state + 1, ops.shape(logits)[-1]) > 0
        return state, ops.where(wanted, 0.0, -1e9)


def _sampler(name: str):
    import keras_hub

    from samplerlab.plugins import registry

    if name == "keras_hub_beam":
        return keras_hub.samplers.BeamSampler(num_beams=2)
    params = {"contrastive": {"k": 3, "alpha": 0.2}, "top_k": {"k": 5, "seed": 1},
              "beam": {"num_beams": 2},
              "chain": {"processors": [{"top_k": 10}], "seed": 1}}.get(name, {})
    return registry("samplers")[name].build(**params)


@pytest.mark.parametrize("name", ["greedy", "top_k", "keras_hub_beam", "beam", "contrastive",
                                  "chain"])
def test_an_observer_sees_each_decided_token_and_steers_the_next(tiny_model, name):
    inputs = tiny_model.preprocessor.generate_preprocess(PROMPTS, sequence_length=20)
    programs = ProgramCache(tiny_model.adapter, persistent=False)
    sampler = _sampler(name)
    out = programs.get(sampler, inputs, None, observers=(Count(),))(sampler, inputs)
    tokens, prompt_mask = np.asarray(out["token_ids"]), np.asarray(inputs["padding_mask"])
    for row, mask in zip(tokens, prompt_mask, strict=True):
        generated = row[~mask]
        np.testing.assert_array_equal(generated, FIRST + np.arange(len(generated)))


def test_observers_are_part_of_the_program_key(tiny_model):
    inputs = tiny_model.preprocessor.generate_preprocess(PROMPTS, sequence_length=20)
    programs = ProgramCache(tiny_model.adapter, persistent=False)
    sampler = _sampler("greedy")
    assert programs.key(sampler, inputs, None) != programs.key(sampler, inputs, None,
                                                               (Count(),))
