"""Compiled generate programs: KerasHub's tokens, one per structure, reused by the next
process, never stale."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from samplerlab.engine.programs import ProgramCache, programs_dir, trusted_sampler
from samplerlab.engine.seeds import reset_sampler_seed
from samplerlab.models.adapters import DecodingAdapter

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROMPTS = ["My trip to Yosemite was", "The"]


def _inputs(model, length: int = 24):
    return model.preprocessor.generate_preprocess(PROMPTS, sequence_length=length)


def _build(name: str, **params):
    from samplerlab.plugins import registry

    return registry("samplers")[name].build(**params)


@pytest.mark.parametrize("name,params", [("top_k", {"k": 5, "seed": 1}), ("greedy", {}),
                                         ("top_p", {"p": 0.8, "seed": 1})])
def test_an_exported_program_gives_keras_hubs_tokens_and_seed_state(
        tiny_model, tmp_path, keras_hub_tokens, name, params):
    sampler, inputs = _build(name, **params), _inputs(tiny_model)
    reset_sampler_seed(sampler, 4)
    theirs = keras_hub_tokens(tiny_model.causal_lm, sampler, inputs)
    state_after = [np.asarray(v.value) for v in sampler.variables]
    programs = ProgramCache(tiny_model.adapter, tmp_path)
    reset_sampler_seed(sampler, 4)
    ours = programs.get(sampler, inputs, None)(sampler, inputs)
    np.testing.assert_array_equal(np.asarray(ours["token_ids"]), theirs)
    for variable, expected in zip(sampler.variables, state_after, strict=True):
        np.testing.assert_array_equal(np.asarray(variable.value), expected)
    assert programs.exported == 1 and len(list(tmp_path.iterdir())) == 1


def test_a_four_value_sweep_compiles_once_and_equals_fresh_compiles(tiny_model, tmp_path,
                                                                   engine_tokens):
    """p is an input of the program: one program serves the whole sweep, each with its p."""
    inputs, programs = _inputs(tiny_model), ProgramCache(tiny_model.adapter, tmp_path)
    swept = [engine_tokens(tiny_model.adapter, _build("top_p", p=p, seed=5), inputs,
                           programs=programs) for p in (0.05, 0.5, 0.8, 1.0)]
    assert programs.compiled == programs.exported == 1
    fresh = engine_tokens(tiny_model.adapter, _build("top_p", p=1.0, seed=5), inputs)
    # The program read the new p (not the first value's constant).
    np.testing.assert_array_equal(swept[-1], fresh)
    assert not np.array_equal(swept[0], swept[-1])


def test_keys_change_with_whatever_shapes_the_program(tiny_model):
    programs = ProgramCache(tiny_model.adapter, persistent=False)
    inputs = _inputs(tiny_model)

    def key(sampler, inputs=inputs, stop=None):
        return programs.key(sampler, inputs, stop)

    base = key(_build("top_k", k=5))
    assert base == key(_build("top_k", k=5, temperature=0.3, seed=9))  # traced values only
    assert base != key(_build("top_k", k=6))
    assert base != key(_build("top_p", p=0.5))
    assert base != key(_build("top_k", k=5), stop=(50256,))
    assert base != key(_build("top_k", k=5), inputs=_inputs(tiny_model, 32))
    slow = ProgramCache(DecodingAdapter(tiny_model.causal_lm), persistent=False)
    assert base != slow.key(_build("top_k", k=5), inputs, None)  # another decoding adapter


def test_the_key_covers_the_tokenizer_vocabulary(tiny_model, monkeypatch):
    # DRY bakes its sequence breakers' token ids into the program: a model with the same
    # shapes but another vocabulary must not reuse it.
    from samplerlab.engine.programs import model_digest

    original = model_digest(tiny_model.adapter)
    assert original == model_digest(tiny_model.adapter)
    words = list(tiny_model.tokenizer.get_vocabulary())
    monkeypatch.setattr(tiny_model.tokenizer, "get_vocabulary", lambda: words[::-1])
    assert model_digest(tiny_model.adapter) != original


def test_only_samplerlab_and_keras_hub_code_is_trusted():
    import keras_hub

    class PluginSampler(keras_hub.samplers.GreedySampler):
        pass

    assert trusted_sampler(_build("top_k")) and trusted_sampler(_build("contrastive"))
    assert trusted_sampler(keras_hub.samplers.BeamSampler(num_beams=2))
    assert not trusted_sampler(PluginSampler())


def test_a_plugin_sampler_runs_from_memory_with_a_program_of_its_own(tiny_model, tmp_path,
                                                                    engine_tokens,
                                                                    keras_hub_tokens):
    import keras_hub

    class PluginSampler(keras_hub.samplers.GreedySampler):
        pass

    programs, inputs = ProgramCache(tiny_model.adapter, tmp_path), _inputs(tiny_model)
    first, second = PluginSampler(), PluginSampler()
    ours = engine_tokens(tiny_model.adapter, first, inputs, programs=programs)
    engine_tokens(tiny_model.adapter, first, inputs, programs=programs)
    engine_tokens(tiny_model.adapter, second, inputs, programs=programs)
    np.testing.assert_array_equal(ours, keras_hub_tokens(tiny_model.causal_lm, first, inputs))
    assert programs.compiled == 2 and not list(tmp_path.iterdir())


def test_caches_off_and_moved(monkeypatch, tmp_path):
    monkeypatch.setenv("SAMPLERLAB_COMPILATION_CACHE", "0")
    assert programs_dir() is None
    monkeypatch.setenv("SAMPLERLAB_COMPILATION_CACHE", str(tmp_path / "xla"))
    assert programs_dir() == tmp_path / "xla-programs"


def test_a_damaged_program_file_is_rebuilt(tiny_model, tmp_path):
    sampler, inputs = _build("top_k", k=3, seed=1), _inputs(tiny_model)
    programs = ProgramCache(tiny_model.adapter, tmp_path)
    path = tmp_path / f"{programs.key(sampler, inputs, None)}.jaxexport"
    path.write_bytes(b"not a program")
    programs.get(sampler, inputs, None)(sampler, inputs)
    assert programs.exported == 1 and path.stat().st_size > 100


CHILD = """
import json, sys
from samplerlab.engine import CellEngine
from samplerlab.models import load_model
from samplerlab.prompts import Prompt
from samplerlab.spec import Cell, GenerationSpec
engine = CellEngine(load_model(sys.argv[1], sequence_length=64),
                    GenerationSpec(max_length=20, batch_size=2, steady_timing=False))
cell = Cell(index=0, id="c", sampler="top_k", params={"k": 5}, label="top_k")
out = engine.run(cell, [Prompt("My trip to Yosemite was", 0), Prompt("The", 1)], seed=3)
print(json.dumps({"texts": [s["text"] for s in out.samples],
                  "exported": engine.programs.exported,
                  "loaded": engine.programs.loaded_from_disk}))
"""


def test_a_second_process_loads_the_program_instead_of_tracing_it(tiny_preset, tmp_path):
    env = {**os.environ, "SAMPLERLAB_COMPILATION_CACHE": str(tmp_path / "xla"),
           "PYTHONPATH": REPO, "KERAS_BACKEND": "jax"}

    def child() -> dict:
        out = subprocess.run([sys.executable, "-c", CHILD, str(tiny_preset)], env=env,
                             capture_output=True, text=True, check=True, cwd=tmp_path)
        return json.loads(out.stdout.strip().splitlines()[-1])

    first, second = child(), child()
    assert (first["exported"], first["loaded"]) == (1, 0)
    assert (second["exported"], second["loaded"]) == (0, 1)
    assert second["texts"] == first["texts"]


def test_a_program_that_cannot_be_exported_is_compiled_in_memory(tiny_model, tmp_path,
                                                                 monkeypatch, keras_hub_tokens):
    from jax import export

    def refuse(*args, **kwargs):
        raise NotImplementedError("not exportable")

    monkeypatch.setattr(export, "export", refuse)
    sampler, inputs = _build("top_k", k=3, seed=1), _inputs(tiny_model)
    programs = ProgramCache(tiny_model.adapter, tmp_path)
    reset_sampler_seed(sampler, 1)
    ours = programs.get(sampler, inputs, None)(sampler, inputs)
    reset_sampler_seed(sampler, 1)
    np.testing.assert_array_equal(np.asarray(ours["token_ids"]),
                                  keras_hub_tokens(tiny_model.causal_lm, sampler, inputs))
    assert programs.get(sampler, inputs, None).source == "traced"
    assert programs.compiled == 1 and not list(tmp_path.iterdir())
