"""What differs between families is read from the model and its configuration files
(``samplerlab.models.family``), and the engine and checks use it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from samplerlab.engine.cell import split_continuations
from samplerlab.models.builders import TINY
from samplerlab.models.family import FAMILIES, stated_context


def test_every_family_has_a_tiny_configuration():
    assert set(TINY) == set(FAMILIES)


def test_a_position_table_in_the_backbone_states_the_context():
    assert stated_context({"max_sequence_length": 1024}) == (1024,
                                                             "backbone max_sequence_length")
    assert stated_context({"max_position_embeddings": 4096}, {"max_position_embeddings": 8}) \
        == (4096, "backbone max_position_embeddings")


def test_a_hugging_face_config_states_the_context_of_a_rotary_model():
    assert stated_context({}, {"max_position_embeddings": 32768}) == (
        32768, "config.json max_position_embeddings")
    assert stated_context({}, {"n_positions": 1024}) == (1024, "config.json n_positions")
    assert stated_context({}, {"text_config": {"max_position_embeddings": 131072}})[0] == 131072


def test_a_rotary_model_without_a_hugging_face_config_states_none():
    assert stated_context({"rope_max_wavelength": 10000}) == (None, "none stated")


def test_generations_end_at_the_first_of_several_stop_tokens():
    out = {"token_ids": np.array([[5, 6, 7, 9, 8, 9], [5, 7, 7, 7, 7, 7]]),
           "padding_mask": np.ones((2, 6), dtype=bool)}
    prompt = np.array([[1, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0]], dtype=bool)
    assert split_continuations(out, prompt, (8, 9)) == [([6, 7], "end_token"),
                                                        ([7, 7, 7, 7], "max_length")]


def test_special_tokens_are_stripped_from_text_but_kept_in_token_ids(tiny_model):
    from samplerlab.engine import CellEngine
    from samplerlab.spec import GenerationSpec

    engine = CellEngine(tiny_model, GenerationSpec(max_length=16))
    hello = [int(t) for t in np.asarray(tiny_model.tokenizer("Hello world"))]
    assert tiny_model.end_token_id in tiny_model.special_token_ids
    assert engine._text([tiny_model.end_token_id, *hello]) == "Hello world"


def test_the_manifest_facts_of_the_embedded_gpt2(tiny_model):
    family = tiny_model.family.describe()
    assert family["family"] == "GPT2CausalLM"
    assert family["context_length"] == 256
    assert family["stop_token_ids"] == [tiny_model.end_token_id]
    assert family["prompt_overhead"] == 1  # GPT-2 prepends <|endoftext|>


def test_a_checkpoints_context_is_checked_without_keras(tmp_path):
    from samplerlab.models import preset_context_length

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gemma",
                                                      "max_position_embeddings": 8192}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    (tmp_path / "tokenizer.model").write_bytes(b"")
    assert preset_context_length(str(tmp_path)) == (8192,
                                                    "config.json max_position_embeddings")


@pytest.mark.parametrize("preset", ["hf://org/name", "kaggle://org/model/keras/v1"])
def test_uris_are_remote_not_local_paths(preset):
    from samplerlab.models import is_local_reference, preset_context_length

    assert not is_local_reference(preset)
    assert preset_context_length(preset) is None


def test_max_sequence_length_caps_only_what_the_model_states(tiny_model):
    from dataclasses import replace

    from samplerlab.models import LoadedModel
    from samplerlab.models.loading import UNSTATED_CONTEXT

    assert tiny_model.max_sequence_length == tiny_model.context_length == 256
    rotary = LoadedModel(tiny_model.causal_lm, "rotary", "", None, [],
                         family=replace(tiny_model.family, context_length=None))
    assert rotary.context_length is None
    assert min(4096, rotary.max_sequence_length) == 4096 < UNSTATED_CONTEXT
