"""The ``chain`` sampler: spec validation, the history-aware loop, traced parameters."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from samplerlab.errors import ParameterError, UserInputError
from samplerlab.plugins import registry

VOCAB = 8
# The fake model always predicts these logits: token 3 best, then 5, 1, 0, ...
FIXED = np.array([1.0, 2.0, -1.0, 4.0, -2.0, 3.0, 0.0, -3.0], dtype="float32")
BY_RANK = list(np.argsort(-FIXED))


def fake_next(prompt, cache, index):
    import keras

    batch = keras.ops.shape(prompt)[0]
    logits = keras.ops.broadcast_to(keras.ops.convert_to_tensor(FIXED), (batch, VOCAB))
    return logits, None, cache


def generate(sampler, prompt_rows, length=8):
    """Run the sampler's loop directly with the fake model; prompts are right-padded."""
    import keras

    tokens = np.zeros((len(prompt_rows), length), "int32")
    mask = np.zeros((len(prompt_rows), length), bool)
    for r, row in enumerate(prompt_rows):
        tokens[r, :len(row)] = row
        mask[r, :len(row)] = True
    index = min(len(r) for r in prompt_rows)
    out = sampler(next=fake_next, prompt=keras.ops.convert_to_tensor(tokens), index=index,
                  mask=keras.ops.convert_to_tensor(mask))
    return keras.ops.convert_to_numpy(out)


def chain(processors, **params):
    return registry("samplers")["chain"].build(processors=processors, **params)


# ------------------------------------------------------------------ validation
def check(processors):
    registry("samplers")["chain"].validate({"processors": processors})


@pytest.mark.parametrize("processors, field, words", [
    ([{"top_k": 40}, {"min_p": 0.05}, {"top_p": 1.5}], "processors[2].top_p",
     ["less than or equal to 1", "top_p accepts (p:"]),
    ([{"top_k": 0}], "processors[0].top_k", ["greater than or equal to 1"]),
    ([{"name": "top_p", "p": -1}], "processors[0].p", ["greater than 0"]),
    ([{"repetition_penalty": {"penalty": 1.2, "include_prompt": "maybe"}}],
     "processors[0].repetition_penalty.include_prompt", ["bool"]),
    ([{"top_k": {"kk": 3}}], "processors[0].top_k.kk", ["unknown parameter 'kk'",
                                                       "did you mean k"]),
    (["temperature", {"topp": 0.9}], "processors[1]", ["unknown processor 'topp'",
                                                      "did you mean top_p"]),
    ([{"top_k": 5, "top_p": 0.9}], "processors[0]", ["expected a processor name"]),
    ("top_k", "processors", ["valid list"]),
])
def test_a_bad_processor_entry_is_refused_with_its_location(processors, field, words):
    with pytest.raises(ParameterError) as info:
        check(processors)
    assert info.value.field == field
    for word in words:
        assert word in info.value.problem


@pytest.mark.parametrize("processors", [
    [],
    ["top_k", "temperature"],
    [{"top_k": 40}, {"top_p": {"p": 0.95}}, {"name": "min_p", "p": 0.05},
     {"repetition_penalty": {"penalty": 1.3, "include_prompt": False}},
     {"no_repeat_ngram_size": 3}, {"temperature": 0.8}],
])
def test_the_documented_forms_are_accepted(processors):
    check(processors)


def test_validating_a_chain_does_not_import_keras():
    code = textwrap.dedent("""
        import sys
        from samplerlab.plugins import registry
        registry("samplers")["chain"].validate(
            {"processors": [{"top_k": 4}, {"name": "top_p", "p": 0.9}], "pick": "greedy"})
        try:
            registry("samplers")["chain"].validate({"processors": [{"top_p": 2}]})
        except Exception as exc:
            print(type(exc).__name__)
        print("keras" in sys.modules, "jax" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["ParameterError", "False", "False"]


def test_a_spec_with_a_bad_chain_is_refused_naming_sampler_and_processor():
    from samplerlab.spec import load_spec

    spec = {"name": "t", "prompts": ["a"], "samplers": [
        "greedy", {"name": "chain", "params": {"processors": [{"top_k": 4}, {"top_p": 3}]}}]}
    with pytest.raises(UserInputError) as info:
        load_spec(spec)
    message = str(info.value)
    assert "samplers[1].params.processors[1]" in message
    assert "top_p accepts" in message


def test_pick_is_validated():
    with pytest.raises(ParameterError) as info:
        registry("samplers")["chain"].validate({"processors": [], "pick": "beam"})
    assert info.value.field == "pick"


# ------------------------------------------------------------------ generation
def test_empty_greedy_chain_is_argmax():
    out = generate(chain([], pick="greedy"), [[7, 7]])
    assert out[0, 2:].tolist() == [BY_RANK[0]] * 6


def test_no_repeat_1gram_sees_the_prompt_and_the_generated_tokens():
    # With unigrams banned, greedy walks down the ranking skipping everything seen,
    # including the prompt (HF semantics).
    out = generate(chain([{"no_repeat_ngram_size": 1}], pick="greedy"), [[3, 6]], length=7)
    expected = [t for t in BY_RANK if t not in (3, 6)][:5]
    assert out[0].tolist() == [3, 6] + expected


def ref_greedy_repetition(prompt, length, penalty, include_prompt):
    """Greedy decoding of FIXED under the CTRL repetition penalty, the obvious way."""
    tokens = list(prompt)
    while len(tokens) < length:
        history = tokens if include_prompt else tokens[len(prompt):]
        logits = [(x / penalty if x > 0 else x * penalty) if t in history else x
                  for t, x in enumerate(FIXED.tolist())]
        tokens.append(int(np.argmax(logits)))
    return tokens


@pytest.mark.parametrize("include_prompt", [True, False])
def test_repetition_penalty_sees_the_history_inside_the_loop(include_prompt):
    sampler = chain([{"repetition_penalty": {"penalty": 1.6,
                                             "include_prompt": include_prompt}}], pick="greedy")
    out = generate(sampler, [[3, 2]], length=8)
    expected = ref_greedy_repetition([3, 2], 8, 1.6, include_prompt)
    assert out[0].tolist() == expected
    # The two settings really differ here: the prompt's 3 is the argmax.
    assert expected[2] == (5 if include_prompt else 3)


def test_rows_with_longer_prompts_keep_them_and_have_their_own_history():
    out = generate(chain([{"no_repeat_ngram_size": 1}], pick="greedy"), [[3], [5, 3, 1]],
                   length=5)
    assert out[0].tolist() == [3, 5, 1, 0, 6]
    assert out[1].tolist() == [5, 3, 1, 0, 6]


def test_sampling_stays_inside_the_truncated_set_and_is_seeded():
    sampler = chain([{"top_k": 2}], pick="sample", seed=3)
    out = generate(sampler, [[0]] * 4, length=30)[:, 1:]
    assert set(out.ravel().tolist()) == {BY_RANK[0], BY_RANK[1]}
    again = generate(chain([{"top_k": 2}], pick="sample", seed=3), [[0]] * 4, length=30)[:, 1:]
    other = generate(chain([{"top_k": 2}], pick="sample", seed=4), [[0]] * 4, length=30)[:, 1:]
    np.testing.assert_array_equal(out, again)
    assert not np.array_equal(out, other)


def test_order_is_the_users():
    # temperature then top_p keeps one token; top_p then temperature keeps three.
    sharp_first = chain([{"temperature": 0.1}, {"top_p": 0.9}], seed=0)
    flat_first = chain([{"top_p": 0.9}, {"temperature": 0.1}], seed=0)
    assert set(generate(sharp_first, [[0]] * 8, 20)[:, 1:].ravel().tolist()) == {3}
    import keras

    from samplerlab.processors.base import Context

    tokens = np.zeros((1, 4), "int32")
    ctx = Context(tokens, np.int32(1), tokens > 0)
    kept = keras.ops.convert_to_numpy(flat_first.process(FIXED[None, :], ctx))
    assert np.isfinite(kept).sum() == 3


# --------------------------------------------------- traced params, one compile
def test_assign_params_reuses_the_compiled_generate_function(monkeypatch):
    from samplerlab.samplers.chain_sampler import ChainSampler
    from samplerlab.testing import tiny_batch, tiny_causal_lm

    traces = []
    original = ChainSampler.process
    monkeypatch.setattr(ChainSampler, "process",
                        lambda self, logits, ctx: traces.append(1) or original(self, logits, ctx))
    model, batch = tiny_causal_lm(), tiny_batch()
    spec_a = [{"repetition_penalty": 1.1}, {"top_k": 40}, {"top_p": 0.95}, {"temperature": 1.0}]
    spec_b = [{"repetition_penalty": 1.8}, {"top_k": 3}, {"top_p": 0.5}, {"temperature": 0.6}]
    compiled = chain(spec_a, seed=1)
    model.compile(sampler=compiled)
    first = np.asarray(model.generate(batch, stop_token_ids=None)["token_ids"])
    traced_once = len(traces)

    fresh_b = chain(spec_b, seed=2)
    assert compiled.structure_key() == fresh_b.structure_key()
    compiled.assign_params(fresh_b)
    reused = np.asarray(model.generate(batch, stop_token_ids=None)["token_ids"])
    assert len(traces) == traced_once  # no retrace: the values were traced state

    model.compile(sampler=chain(spec_b, seed=2))
    expected = np.asarray(model.generate(batch, stop_token_ids=None)["token_ids"])
    assert len(traces) > traced_once
    np.testing.assert_array_equal(reused, expected)
    assert not np.array_equal(first, expected)


def test_structure_key_separates_what_needs_a_new_program():
    base = chain([{"top_k": 4}, {"no_repeat_ngram_size": 2}])
    assert base.structure_key() == chain([{"top_k": 9}, {"no_repeat_ngram_size": 2}],
                                         seed=5).structure_key()
    for other in (chain([{"no_repeat_ngram_size": 2}, {"top_k": 4}]),
                  chain([{"top_k": 4}, {"no_repeat_ngram_size": 3}]),
                  chain([{"top_k": 4}, {"no_repeat_ngram_size": 2}], pick="greedy")):
        assert other.structure_key() != base.structure_key()
        with pytest.raises(ValueError, match="structure"):
            base.assign_params(other)


def test_sweeps_inside_processor_entries_expand_to_concrete_chains():
    from samplerlab.processors.chain_spec import expand_sweeps

    chains = expand_sweeps([{"repetition_penalty": 1.2}, {"top_k": [10, 40]},
                            {"name": "temperature", "temperature": [0.7, 1.0]}])
    assert chains == [
        [{"name": "repetition_penalty", "penalty": 1.2}, {"name": "top_k", "k": k},
         {"name": "temperature", "temperature": t}]
        for k in (10, 40) for t in (0.7, 1.0)]
    for processors in chains:
        check(processors)
    assert expand_sweeps(["top_k"]) == [[{"name": "top_k"}]]
