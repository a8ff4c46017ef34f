"""Exported generate programs: KerasHub's tokens, reused by the next process, never stale."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from samplerlab.programs import ProgramCache, cacheable, program_key, programs_dir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROMPTS = ["My trip to Yosemite was", "The"]


def _inputs(model, length: int = 24):
    return model.preprocessor.generate_preprocess(PROMPTS, sequence_length=length)


def _reset(sampler, seed: int = 4) -> None:
    from samplerlab.runner import reset_sampler_seed

    reset_sampler_seed(sampler, seed)


@pytest.mark.parametrize("name,params", [("top_k", {"k": 5, "seed": 1}), ("greedy", {}),
                                         ("top_p", {"p": 0.8, "seed": 1})])
def test_an_exported_program_gives_keras_hubs_tokens_and_seed_state(tiny_model, tmp_path,
                                                                    name, params):
    from samplerlab.plugins import get_plugin_manager

    lm = tiny_model.causal_lm
    sampler = get_plugin_manager().registry("samplers")[name].build(**params)
    lm.compile(sampler=sampler)
    inputs = _inputs(tiny_model)
    _reset(sampler)
    theirs = np.asarray(lm.make_generate_function()(inputs, stop_token_ids=None)["token_ids"])
    state_after = [np.asarray(v.value) for v in sampler.variables]
    programs = ProgramCache(tmp_path)
    _reset(sampler)
    ours = programs.generate_function(lm, inputs, None)(inputs)
    np.testing.assert_array_equal(np.asarray(ours["token_ids"]), theirs)
    for variable, expected in zip(sampler.variables, state_after, strict=True):
        np.testing.assert_array_equal(np.asarray(variable.value), expected)
    assert programs.exported == 1 and len(list(tmp_path.iterdir())) == 1


def test_a_swept_value_reaches_the_same_program(tiny_model, tmp_path):
    """p is an input of the program: one export serves the whole sweep, each with its p."""
    from samplerlab.samplers.builtin import top_p

    lm = tiny_model.causal_lm
    inputs, programs = _inputs(tiny_model), ProgramCache(tmp_path)
    outputs = {}
    for p in (0.05, 1.0):
        lm.compile(sampler=top_p(p=p, seed=2))
        _reset(lm.sampler)
        outputs[p] = np.asarray(programs.generate_function(lm, inputs, None)(inputs)["token_ids"])
        _reset(lm.sampler)
        direct = np.asarray(lm.make_generate_function()(inputs, stop_token_ids=None)["token_ids"])
        np.testing.assert_array_equal(outputs[p], direct)
    assert programs.exported == 1
    assert not np.array_equal(outputs[0.05], outputs[1.0])


def test_keys_change_with_whatever_shapes_the_program(tiny_model):
    from samplerlab.samplers.builtin import top_k, top_p

    lm = tiny_model.causal_lm
    inputs = _inputs(tiny_model)

    def key(sampler, inputs=inputs, stop=None):
        lm.compile(sampler=sampler)
        return program_key(lm, inputs, stop)

    base = key(top_k(k=5))
    assert base == key(top_k(k=5, temperature=0.3, seed=9))  # traced values only
    assert base != key(top_k(k=6))
    assert base != key(top_p(p=0.5))
    assert base != key(top_k(k=5), stop=(50256,))
    assert base != key(top_k(k=5), inputs=_inputs(tiny_model, 32))


def test_the_key_covers_the_tokenizer_vocabulary(tiny_model, monkeypatch):
    # DRY bakes its sequence breakers' token ids into the program: a model with the same
    # shapes but another vocabulary must not reuse it.
    from samplerlab.programs import _vocabulary_digest

    lm = tiny_model.causal_lm
    original = _vocabulary_digest(lm)
    assert original == _vocabulary_digest(lm)
    words = list(lm.preprocessor.tokenizer.get_vocabulary())
    monkeypatch.setattr(lm.preprocessor.tokenizer, "get_vocabulary", lambda: words[::-1])
    assert _vocabulary_digest(lm) != original


def test_only_samplerlab_and_keras_hub_code_is_kept():
    import keras_hub

    from samplerlab.samplers.builtin import contrastive, top_k

    class PluginSampler(keras_hub.samplers.GreedySampler):
        pass

    assert cacheable(top_k()) and cacheable(contrastive())
    assert cacheable(keras_hub.samplers.BeamSampler(num_beams=2))
    assert not cacheable(PluginSampler())


def test_untrusted_samplers_and_caches_off_use_keras_hubs_function(tiny_model, tmp_path,
                                                                   monkeypatch):
    import keras_hub

    class PluginSampler(keras_hub.samplers.GreedySampler):
        pass

    lm = tiny_model.causal_lm
    lm.compile(sampler=PluginSampler())
    assert ProgramCache(tmp_path).generate_function(lm, _inputs(tiny_model), None) is None
    monkeypatch.setenv("SAMPLERLAB_COMPILATION_CACHE", "0")
    assert programs_dir() is None
    monkeypatch.setenv("SAMPLERLAB_COMPILATION_CACHE", str(tmp_path / "xla"))
    assert programs_dir() == tmp_path / "xla-programs"


def test_a_damaged_program_file_is_rebuilt(tiny_model, tmp_path):
    from samplerlab.samplers.builtin import top_k

    lm = tiny_model.causal_lm
    lm.compile(sampler=top_k(k=3, seed=1))
    inputs = _inputs(tiny_model)
    path = tmp_path / f"{program_key(lm, inputs, None)}.jaxexport"
    path.write_bytes(b"not a program")
    programs = ProgramCache(tmp_path)
    programs.generate_function(lm, inputs, None)(inputs)
    assert programs.exported == 1 and path.stat().st_size > 100


CHILD = """
import json, sys
from samplerlab.data import Prompt
from samplerlab.models import load_model
from samplerlab.runner import CellRunner
from samplerlab.spec import Cell, GenerationSpec
runner = CellRunner(load_model(sys.argv[1], sequence_length=64),
                    GenerationSpec(max_length=20, batch_size=2, steady_timing=False))
cell = Cell(index=0, id="c", sampler="top_k", params={"k": 5}, label="top_k")
out = runner.run(cell, [Prompt("My trip to Yosemite was", 0), Prompt("The", 1)], seed=3)
print(json.dumps({"texts": [s["text"] for s in out.samples],
                  "exported": runner.programs.exported,
                  "loaded": runner.programs.loaded_from_disk}))
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


def test_a_program_that_cannot_be_exported_falls_back_to_keras_hub(tiny_model, tmp_path,
                                                                  monkeypatch):
    from jax import export

    from samplerlab.samplers.builtin import top_k

    def refuse(*args, **kwargs):
        raise NotImplementedError("not exportable")

    monkeypatch.setattr(export, "export", refuse)
    lm = tiny_model.causal_lm
    lm.compile(sampler=top_k(k=3, seed=1))
    programs = ProgramCache(tmp_path)
    assert programs.generate_function(lm, _inputs(tiny_model), None) is None
    assert programs.generate_function(lm, _inputs(tiny_model), None) is None  # remembered
    assert not list(tmp_path.iterdir())
