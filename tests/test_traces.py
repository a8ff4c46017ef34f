"""Per-token traces inside the compiled generate loop: same tokens, the right numbers.

Every built-in is traced on the trained embedded model with ``top`` = the vocabulary, so
each position's whole model distribution is logged; the sampler-side columns are then
checked against NumPy references of each sampler's definition on that distribution.
"""

from __future__ import annotations

import keras_hub
import numpy as np
import pytest

from samplerlab.decoding.observers import returned_rows
from samplerlab.engine.programs import ProgramCache
from samplerlab.plugins import registry
from samplerlab.traces.observer import TraceObserver
from samplerlab.traces.table import vocabulary_size
from samplerlab.traces.teacher import Scorer

PROMPTS = ["The cat", "Once upon a time there was"]
MAX_LENGTH = 20
CLOSE = {"rtol": 2e-4, "atol": 1e-7}


@pytest.fixture(scope="module")
def inputs(embedded_model):
    return embedded_model.preprocessor.generate_preprocess(PROMPTS, sequence_length=MAX_LENGTH)


def _generate(model, sampler_factory, inputs, observers=()):
    sampler = sampler_factory()
    programs = ProgramCache(model.adapter, persistent=False)
    observers = tuple(o(sampler) for o in observers)
    out = programs.get(sampler, inputs, (model.end_token_id,), observers)(sampler, inputs)
    return {k: (np.asarray(v) if k != "trace" else {n: np.asarray(a) for n, a in v.items()})
            for k, v in out.items()}


def traced(model, inputs, factory):
    """Untraced tokens, traced outputs, and the positions a sample keeps."""
    vocab = vocabulary_size(model)
    plain = _generate(model, factory, inputs)
    out = _generate(model, factory, inputs, (lambda s: TraceObserver(s, vocab, top=vocab),))
    generated = ~np.asarray(inputs["padding_mask"]) & out["padding_mask"]
    return plain["token_ids"], out, generated


# ---------------------------------------------------------------- NumPy references
def greedy(t, p):
    np.testing.assert_array_equal(t["model_rank"], 0)
    np.testing.assert_allclose(t["model_prob"], p["sorted"][:, 0], **CLOSE)  # the row max
    np.testing.assert_allclose(t["sampler_prob"], 1.0)
    np.testing.assert_array_equal(t["kept_size"], 1)


def top_k(t, p):
    np.testing.assert_array_equal(t["kept_size"], 5)
    assert (t["model_rank"] < 5).all()
    np.testing.assert_allclose(t["sampler_prob"], t["model_prob"] / p["sorted"][:, :5].sum(-1),
                               **CLOSE)


def nucleus_size(sorted_probs, top_p, k=None):
    """KerasHub's TopPSampler: keep sorted token i while the mass before it is <= p."""
    rows = sorted_probs[:, :k] if k else sorted_probs
    before = np.cumsum(rows, axis=-1) - rows
    return (before <= top_p).sum(-1), np.abs(before - top_p).min(-1)


def top_p(t, p, k=None):
    size, margin = nucleus_size(p["sorted"], 0.7, k)
    clear = margin > 1e-4  # rows whose nucleus edge is not within float noise of p
    assert clear.sum() >= len(clear) // 2
    np.testing.assert_array_equal(t["kept_size"][clear], size[clear])
    assert (t["model_rank"] < t["kept_size"]).all()
    mass = np.array([row[:m].sum() for row, m in zip(p["sorted"], size, strict=True)])
    np.testing.assert_allclose(t["sampler_prob"][clear], (t["model_prob"] / mass)[clear],
                               **CLOSE)


def top_p_with_k(t, p):
    top_p(t, p, k=10)
    assert (t["kept_size"] <= 10).all()


def full_softmax(kept):
    def check(t, p):
        np.testing.assert_allclose(t["sampler_prob"], t["model_prob"], **CLOSE)  # T = 1
        np.testing.assert_array_equal(t["kept_size"], kept(p))
    return check


def chain(t, p):
    np.testing.assert_array_equal(t["kept_size"], 20)
    tempered = p["sorted"][:, :20] ** (1 / 0.8)
    rank = t["model_rank"]
    assert (rank < 20).all()
    expected = tempered[np.arange(len(rank)), rank] / tempered.sum(-1)
    np.testing.assert_allclose(t["sampler_prob"], expected, **CLOSE)


def truncated_to_the_most_probable(t, p):
    """mirostat: its kept set is the ``kept`` most probable tokens, renormalised."""
    assert (t["model_rank"] < t["kept_size"]).all()
    mass = np.array([row[:m].sum() for row, m in zip(p["sorted"], t["kept_size"],
                                                      strict=True)])
    np.testing.assert_allclose(t["sampler_prob"], t["model_prob"] / mass, **CLOSE)


def xtc(t, p):
    """Probability 1: with >= 2 tokens at or above the threshold, all but the least
    probable of them are removed."""
    tops = (p["sorted"] >= 0.05).sum(-1)
    removed = np.where(tops >= 2, tops - 1, 0)
    np.testing.assert_array_equal(t["kept_size"], p["vocab"] - removed)
    mass = 1 - np.array([row[:r].sum() for row, r in zip(p["sorted"], removed, strict=True)])
    np.testing.assert_allclose(t["sampler_prob"], t["model_prob"] / mass, rtol=1e-3)
    assert (removed > 0).any()


BUILTINS = [
    ("greedy", {}, greedy),
    ("top_k", {"k": 5, "seed": 1}, top_k),
    ("top_p", {"p": 0.7, "seed": 2}, top_p),
    ("top_p", {"p": 0.7, "k": 10, "seed": 2}, top_p_with_k),
    ("random", {"seed": 3}, full_softmax(lambda p: p["vocab"])),
    ("beam", {"num_beams": 2}, full_softmax(lambda p: 2)),
    ("contrastive", {"k": 3, "alpha": 0.4}, full_softmax(lambda p: 3)),
    ("chain", {"processors": [{"top_k": 20}, {"temperature": 0.8}], "seed": 4}, chain),
    ("mirostat", {"tau": 4.0, "seed": 5}, truncated_to_the_most_probable),
    ("xtc", {"threshold": 0.05, "probability": 1.0, "seed": 6}, xtc),
]


@pytest.mark.parametrize("name,params,check", BUILTINS,
                         ids=[f"{n}-{'-'.join(map(str, p.values()))}" for n, p, _ in BUILTINS])
def test_tracing_keeps_the_tokens_and_logs_each_samplers_distribution(
        embedded_model, inputs, name, params, check):
    plain, out, kept = traced(embedded_model, inputs,
                              lambda: registry("samplers")[name].build(**params))
    np.testing.assert_array_equal(out["token_ids"], plain)  # tracing never steers
    trace = out["trace"]
    np.testing.assert_array_equal(trace["token_id"][kept], out["token_ids"][kept])
    rows = {"model_prob": np.exp(trace["model_logp"][kept]),
            "model_rank": trace["model_rank"][kept],
            "sampler_prob": np.exp(trace["sampler_logp"][kept]),
            "kept_size": trace["kept_size"][kept]}
    sorted_probs = np.exp(trace["top_logp"][kept])
    vocab = vocabulary_size(embedded_model)
    # The logged distribution is the model's: sorted, summing to 1, holding the token.
    np.testing.assert_allclose(sorted_probs.sum(-1), 1.0, rtol=1e-4)
    assert (np.diff(sorted_probs, axis=-1) <= 0).all()
    at_rank = sorted_probs[np.arange(len(sorted_probs)), rows["model_rank"]]
    np.testing.assert_allclose(at_rank, rows["model_prob"], **CLOSE)  # what rank means
    entropy = -(sorted_probs * np.log(np.where(sorted_probs > 0, sorted_probs, 1))).sum(-1)
    np.testing.assert_allclose(trace["model_entropy"][kept], entropy, rtol=1e-4)
    check(rows, {"sorted": sorted_probs, "vocab": vocab})


def test_the_loop_and_teacher_forced_scoring_give_the_same_numbers(embedded_model, inputs):
    _, out, kept = traced(embedded_model, inputs,
                          lambda: registry("samplers")["top_k"].build(k=40, seed=9))
    rows = [list(r[m]) for r, m in zip(out["token_ids"], out["padding_mask"], strict=True)]
    scored = Scorer(embedded_model).score(rows)
    for i, columns in enumerate(scored):
        positions = np.flatnonzero(kept[i])
        for name in ("model_logp", "model_entropy"):
            np.testing.assert_allclose(columns[name][positions],
                                       out["trace"][name][i, positions], atol=2e-5)
        np.testing.assert_array_equal(columns["model_rank"][positions],
                                      out["trace"]["model_rank"][i, positions])


class OwnLoopGreedy(keras_hub.samplers.GreedySampler):
    """A plugin sampler with a loop of its own (it does not hand its cache back)."""

    def __call__(self, *args, **kwargs):
        return super().__call__(*args, **kwargs)


def test_a_plugin_with_its_own_loop_gets_model_columns_and_empty_sampler_ones(
        embedded_model, inputs):
    plain, out, kept = traced(embedded_model, inputs, OwnLoopGreedy)
    np.testing.assert_array_equal(out["token_ids"], plain)
    trace = out["trace"]
    np.testing.assert_array_equal(trace["model_rank"][kept], 0)
    np.testing.assert_allclose(trace["model_logp"][kept], trace["top_logp"][kept][:, 0],
                               atol=1e-5)
    assert np.isnan(trace["sampler_logp"][kept]).all()
    assert (trace["kept_size"][kept] == -1).all()


class TopASampler(keras_hub.samplers.Sampler):
    """docs/writing-plugins.md's plugin sampler, declaring its final distribution."""

    def __init__(self, a=0.2, seed=None):
        import keras

        super().__init__()
        self.a = a
        self.seed_generator = keras.random.SeedGenerator(seed)

    def get_next_token(self, probabilities):
        import keras
        from keras import ops

        top = ops.max(probabilities, axis=-1, keepdims=True)
        kept = ops.where(probabilities >= self.a * top**2, probabilities, 0.0)
        drawn = keras.random.categorical(ops.log(kept), 1, seed=self.seed_generator,
                                         dtype="int32")
        return ops.squeeze(drawn, axis=-1)

    def decoding_capabilities(self):
        from samplerlab.decoding.contract import default_capabilities

        return default_capabilities(self, distribution=self.final_distribution)

    def final_distribution(self, logits):
        from keras import ops

        probabilities = ops.softmax(ops.cast(logits, "float32") / self.temperature)
        top = ops.max(probabilities, axis=-1, keepdims=True)
        keep = probabilities >= self.a * top**2
        kept = ops.where(keep, probabilities, 0.0)
        log_probs = ops.log(kept) - ops.log(ops.sum(kept, axis=-1, keepdims=True))
        return log_probs, ops.sum(ops.cast(keep, "int32"), axis=-1)


def test_a_plugin_that_says_what_it_draws_from_gets_sampler_columns(embedded_model, inputs):
    plain, out, kept = traced(embedded_model, inputs, lambda: TopASampler(a=0.2, seed=3))
    np.testing.assert_array_equal(out["token_ids"], plain)
    trace = out["trace"]
    sorted_probs = np.exp(trace["top_logp"][kept])
    size = (sorted_probs >= 0.2 * sorted_probs[:, :1] ** 2).sum(-1)  # top-a's kept set
    np.testing.assert_array_equal(trace["kept_size"][kept], size)
    mass = np.array([row[:m].sum() for row, m in zip(sorted_probs, size, strict=True)])
    np.testing.assert_allclose(np.exp(trace["sampler_logp"][kept]),
                               np.exp(trace["model_logp"][kept]) / mass, **CLOSE)


def test_a_search_with_more_rows_hands_back_the_returned_hypothesis():
    hypotheses = np.array([[1, 2, 3], [1, 2, 4], [5, 6, 7], [5, 6, 7], [8, 8, 8], [9, 9, 9]])
    returned = np.array([[1, 2, 4], [5, 6, 7], [8, 8, 8]])
    np.testing.assert_array_equal(np.asarray(returned_rows(hypotheses, returned)), [1, 2, 4])


# ------------------------------------------------------------- untraced = today's program
def _lowered(model, sampler, inputs, body):
    import itertools

    import jax
    import keras

    from samplerlab.engine.programs import _tensors, state

    lm = model.causal_lm

    def program(inputs, values):
        sampler_values, trainable, non_trainable, _ = values  # no sampler models (drafts)
        mapping = itertools.chain(zip(sampler.variables, sampler_values, strict=True),
                                  zip(lm.trainable_variables, trainable, strict=True),
                                  zip(lm.non_trainable_variables, non_trainable, strict=True))
        with keras.StatelessScope(state_mapping=mapping):
            return body(inputs)

    return jax.jit(program).lower(_tensors(inputs), state(model.adapter, sampler)).as_text()


def _keras_hub_loop(model, sampler, stop):
    """The generate step without observers, as it was before traces: KerasHub's loop
    over the adapter, the adapter handed only to samplers that score candidates on it."""
    from keras import ops

    from samplerlab.decoding.generate import output_padding_mask
    from samplerlab.samplers.contrastive import FastContrastiveSampler

    adapter = model.adapter

    def body(inputs):
        token_ids, padding_mask = inputs["token_ids"], inputs["padding_mask"]
        hidden_states, cache = adapter.start(token_ids, padding_mask)
        index = ops.min(ops.sum(ops.cast(padding_mask, "int32"), axis=-1))
        extra = {"decoding": adapter} if isinstance(sampler, FastContrastiveSampler) else {}
        tokens = sampler(next=lambda p, c, i: adapter.step(p, c, i, padding_mask),
                         prompt=token_ids, cache=cache, index=index, mask=padding_mask,
                         stop_token_ids=stop, hidden_states=hidden_states,
                         model=adapter.causal_lm, **extra)
        return {"token_ids": tokens,
                "padding_mask": output_padding_mask(tokens, padding_mask, stop)}

    return body


@pytest.mark.parametrize("name,params", [("greedy", {}), ("xtc", {"seed": 1}),
                                         ("chain", {"processors": ["top_k"], "seed": 1}),
                                         ("contrastive", {"k": 2})])
def test_without_tracing_the_program_is_the_one_compiled_before_traces(
        embedded_model, inputs, name, params):
    from samplerlab.decoding.generate import generate_step

    sampler = registry("samplers")[name].build(**params)
    stop = (embedded_model.end_token_id,)
    engine = _lowered(embedded_model, sampler, inputs,
                      lambda i: generate_step(embedded_model.adapter, sampler, i, stop))
    before = _lowered(embedded_model, sampler, inputs,
                      _keras_hub_loop(embedded_model, sampler, stop))
    assert engine == before
