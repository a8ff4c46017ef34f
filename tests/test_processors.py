"""Each processor against a small NumPy reference written from its published definition.

The references follow Hugging Face ``transformers`` logits warpers/processors (which cite
the papers) and llama.cpp; they are deliberately written the "obvious" way (loops,
argsort), independent of the vectorised, traced implementations under test.
"""

import math

import numpy as np
import pytest

from samplerlab.plugins import registry
from samplerlab.processors.base import Context

# Fixed logits: distinct values, one row peaked, one flat-ish, one with negatives.
LOGITS = np.array([
    [4.0, 3.1, 2.5, 1.2, 0.3, -0.5, -1.0, -2.2],
    [0.9, 1.1, 0.7, 1.0, 0.8, 0.2, 0.5, 0.4],
    [-0.3, -2.0, 1.7, -0.8, 2.9, -1.5, 0.1, -3.0],
], dtype="float32")


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def run(name, logits=LOGITS, context=None, **params):
    import keras

    processor = registry("processors")[name].build(**params)
    if context is None:
        tokens = np.zeros((logits.shape[0], 4), "int32")
        context = Context(tokens, np.int32(0), tokens > 0)
    return keras.ops.convert_to_numpy(processor(keras.ops.convert_to_tensor(logits), context))


def kept(out):
    return np.isfinite(out)


# ----------------------------------------------------------------- references
def ref_top_k(x, k):
    # HF TopKLogitsWarper: remove scores < the k-th largest score.
    kth = np.sort(x, axis=-1)[:, ::-1][:, k - 1:k]
    return x >= kth


def ref_top_p(x, p):
    # HF TopPLogitsWarper: sort ascending, remove tokens whose cumulative prob <= 1 - p,
    # always keep the most probable.
    keep = np.zeros_like(x, dtype=bool)
    for r in range(x.shape[0]):
        order = np.argsort(x[r])
        cum = np.cumsum(softmax(x[r][order]))
        remove = cum <= 1 - p
        remove[-1] = False
        keep[r, order[~remove]] = True
    return keep


def ref_min_p(x, p):
    probs = softmax(x)
    return probs >= p * probs.max(axis=-1, keepdims=True)


def ref_typical(x, mass):
    # Meister et al. 2023 / HF TypicalLogitsWarper.
    keep = np.zeros_like(x, dtype=bool)
    for r in range(x.shape[0]):
        row = x[r].astype("float64")
        logp = row - row.max() - np.log(np.exp(row - row.max()).sum())
        ent = -(np.exp(logp) * logp).sum()
        shifted = np.abs(-logp - ent)
        order = np.argsort(shifted)
        cum = np.cumsum(np.exp(logp)[order])
        last = min(int((cum < mass).sum()), len(order) - 1)
        keep[r] = shifted <= shifted[order][last]
    return keep


def ref_epsilon(x, eps):
    probs = softmax(x)
    return (probs >= eps) | (x == x.max(axis=-1, keepdims=True))


def ref_eta(x, eta):
    # Hewitt et al. 2022: eta = min(epsilon, sqrt(epsilon) * exp(-entropy)).
    probs = softmax(x)
    ent = -(probs * np.log(probs)).sum(axis=-1, keepdims=True)
    cut = np.minimum(eta, np.sqrt(eta) * np.exp(-ent))
    return (probs >= cut) | (x == x.max(axis=-1, keepdims=True))


def ref_top_n_sigma(x, n):
    # Tang et al. 2024: keep logits >= max - n * std(logits).
    return x >= x.max(axis=-1, keepdims=True) - n * x.std(axis=-1, keepdims=True)


@pytest.mark.parametrize("name, params, reference", [
    ("top_k", {"k": 1}, lambda x: ref_top_k(x, 1)),
    ("top_k", {"k": 3}, lambda x: ref_top_k(x, 3)),
    ("top_k", {"k": 8}, lambda x: ref_top_k(x, 8)),
    ("top_p", {"p": 0.5}, lambda x: ref_top_p(x, 0.5)),
    ("top_p", {"p": 0.9}, lambda x: ref_top_p(x, 0.9)),
    ("top_p", {"p": 1.0}, lambda x: ref_top_p(x, 1.0)),
    ("min_p", {"p": 0.1}, lambda x: ref_min_p(x, 0.1)),
    ("min_p", {"p": 0.5}, lambda x: ref_min_p(x, 0.5)),
    ("typical_p", {"p": 0.5}, lambda x: ref_typical(x, 0.5)),
    ("typical_p", {"p": 0.95}, lambda x: ref_typical(x, 0.95)),
    ("epsilon_cutoff", {"epsilon": 0.05}, lambda x: ref_epsilon(x, 0.05)),
    ("epsilon_cutoff", {"epsilon": 0.5}, lambda x: ref_epsilon(x, 0.5)),
    ("eta_cutoff", {"eta": 0.02}, lambda x: ref_eta(x, 0.02)),
    ("eta_cutoff", {"eta": 0.3}, lambda x: ref_eta(x, 0.3)),
    ("top_n_sigma", {"n": 0.5}, lambda x: ref_top_n_sigma(x, 0.5)),
    ("top_n_sigma", {"n": 1.5}, lambda x: ref_top_n_sigma(x, 1.5)),
])
def test_truncation_keeps_the_reference_set_and_leaves_kept_logits_unchanged(
        name, params, reference):
    out = run(name, **params)
    expected = reference(LOGITS)
    np.testing.assert_array_equal(kept(out), expected)
    np.testing.assert_allclose(out[expected], LOGITS[expected])
    assert np.all(out[~expected] == -np.inf)


def test_reference_sets_are_not_trivial():
    # Guards the table above: the chosen parameters truncate something but not all,
    # except the boundary cases, which keep everything.
    for keep in (ref_top_p(LOGITS, 0.9), ref_typical(LOGITS, 0.5), ref_eta(LOGITS, 0.3),
                 ref_min_p(LOGITS, 0.1), ref_epsilon(LOGITS, 0.05),
                 ref_top_n_sigma(LOGITS, 0.5)):
        assert LOGITS.shape[0] < keep.sum() < LOGITS.size
    assert ref_top_k(LOGITS, 8).all() and ref_top_p(LOGITS, 1.0).all()


def test_truncations_compose_with_already_removed_tokens():
    # After top_k removed tokens (-inf), min_p and typical_p still follow the reference
    # on the remaining distribution (no NaN from 0 * log 0).
    after_k = run("top_k", k=4)
    finite = np.isfinite(after_k)
    for name, ref in (("min_p", ref_min_p), ("typical_p", ref_typical)):
        out = run(name, logits=after_k, p=0.3)
        assert not np.isnan(out).any()
        for row in range(LOGITS.shape[0]):  # the reference on the 4 survivors only
            survivors = LOGITS[row][finite[row]][None, :]
            expected = np.zeros(LOGITS.shape[1], dtype=bool)
            expected[finite[row]] = ref(survivors, 0.3)[0]
            np.testing.assert_array_equal(np.isfinite(out[row]), expected)


def test_temperature_divides_logits():
    np.testing.assert_allclose(run("temperature", temperature=0.5), LOGITS / 0.5, rtol=1e-6)


# ------------------------------------------------------------------ penalties
HISTORY = np.array([
    [0, 0, 2, 5, 7, 7],   # prompt 0 0 2 | generated 5 ; positions 4-5 not yet reached
    [1, 3, 3, 3, 6, 6],
    [4, 4, 4, 4, 4, 4],
], dtype="int32")
PROMPT = np.array([[1, 1, 1, 0, 0, 0]] * 3, dtype=bool)
INDEX = 4  # generating position 4: history = positions 0..3


def ref_counts(include_prompt=True):
    counts = np.zeros_like(LOGITS)
    for r in range(3):
        for i in range(INDEX):
            if include_prompt or not PROMPT[r, i]:
                counts[r, HISTORY[r, i]] += 1
    return counts


def penalised(name, **params):
    return run(name, context=Context(HISTORY, np.int32(INDEX), PROMPT), **params)


@pytest.mark.parametrize("include_prompt", [True, False])
def test_repetition_penalty_follows_ctrl(include_prompt):
    # Keskar et al. 2019 / HF: seen tokens' logits divided by penalty if > 0, else multiplied.
    seen = ref_counts(include_prompt) > 0
    expected = np.where(seen, np.where(LOGITS < 0, LOGITS * 1.5, LOGITS / 1.5), LOGITS)
    out = penalised("repetition_penalty", penalty=1.5, include_prompt=include_prompt)
    np.testing.assert_allclose(out, expected, rtol=1e-6)


@pytest.mark.parametrize("include_prompt", [True, False])
def test_presence_and_frequency_penalties_follow_llama_cpp(include_prompt):
    counts = ref_counts(include_prompt)
    np.testing.assert_allclose(
        penalised("presence_penalty", penalty=0.7, include_prompt=include_prompt),
        LOGITS - 0.7 * (counts > 0), rtol=1e-6)
    np.testing.assert_allclose(
        penalised("frequency_penalty", penalty=0.7, include_prompt=include_prompt),
        LOGITS - 0.7 * counts, rtol=1e-6)


def test_penalty_history_stops_at_the_current_index():
    # Row 0 has token 7 at positions 4-5, which are not generated yet: not penalised.
    assert ref_counts()[0, 7] == 0
    out = penalised("frequency_penalty", penalty=1.0)
    assert out[0, 7] == LOGITS[0, 7]
    assert out[2, 4] == pytest.approx(LOGITS[2, 4] - 4.0)


def ref_no_repeat(tokens, index, n, vocab):
    # HF NoRepeatNGramLogitsProcessor on input_ids = tokens[:index].
    banned = np.zeros((tokens.shape[0], vocab), dtype=bool)
    for r in range(tokens.shape[0]):
        seq = tokens[r, :index].tolist()
        if len(seq) + 1 < n:
            continue
        prefix = tuple(seq[len(seq) - n + 1:]) if n > 1 else ()
        for j in range(len(seq) - n + 1):
            if tuple(seq[j:j + n - 1]) == prefix:
                banned[r, seq[j + n - 1]] = True
    return banned


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("index", [1, 3, 6])
def test_no_repeat_ngram_bans_the_reference_tokens(n, index):
    tokens = np.array([[1, 2, 1, 2, 1, 0, 0, 0],
                       [3, 3, 3, 3, 3, 3, 0, 0],
                       [0, 1, 2, 3, 0, 1, 2, 0]], dtype="int32")
    out = run("no_repeat_ngram_size", context=Context(tokens, np.int32(index), tokens < 0), n=n)
    expected = ref_no_repeat(tokens, index, n, LOGITS.shape[1])
    np.testing.assert_array_equal(out == -np.inf, expected)
    np.testing.assert_allclose(out[~expected], LOGITS[~expected])


def test_no_repeat_ngram_reference_bans_something():
    tokens = np.array([[1, 2, 1, 2, 1, 0, 0, 0]], dtype="int32")
    assert ref_no_repeat(tokens, 5, 3, 8)[0].tolist() == [False, False, True] + [False] * 5


# --------------------------------------------------------------- registration
def test_every_processor_named_in_issue_6_is_registered_with_a_citation():
    names = {"temperature", "top_k", "top_p", "min_p", "typical_p", "epsilon_cutoff",
             "eta_cutoff", "top_n_sigma", "repetition_penalty", "presence_penalty",
             "frequency_penalty", "no_repeat_ngram_size"}
    processors = registry("processors")
    assert names <= set(processors)
    for name in names:
        assert processors[name].plugin == "samplerlab.processors"
        assert processors[name].description


def test_traced_parameters_are_variables_and_static_ones_are_in_the_structure_key():
    processors = registry("processors")
    top_k = processors["top_k"].build(k=7)
    assert [v.dtype for v in top_k.variables] == ["int32"]
    assert top_k.params() == {"k": 7}
    assert top_k.structure_key() == processors["top_k"].build(k=3).structure_key()
    ngram = processors["no_repeat_ngram_size"].build(n=2)
    assert ngram.variables == []
    assert ngram.structure_key() != processors["no_repeat_ngram_size"].build(n=3).structure_key()
    rep = processors["repetition_penalty"]
    assert rep.build(include_prompt=False).structure_key() != rep.build().structure_key()


def test_eta_reference_matches_hewitt_formula_by_hand():
    # One row, two tokens: entropy of (0.9, 0.1), eta = 0.3.
    x = np.log(np.array([[0.9, 0.1]], dtype="float32"))
    h = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))
    cut = min(0.3, math.sqrt(0.3) * math.exp(-h))
    assert cut == pytest.approx(0.3)  # sqrt(.3) e^-0.325 = 0.396 > 0.3
    assert ref_eta(x, 0.3).tolist() == [[True, False]]
    np.testing.assert_array_equal(kept(run("eta_cutoff", logits=x, eta=0.3)), [[True, False]])


@pytest.mark.parametrize("name, param, values, reference", [
    ("top_k", "k", [1, 2, 7, 50, 199, 500], ref_top_k),
    ("top_p", "p", [0.05, 0.3, 0.9, 0.99], ref_top_p),
    ("typical_p", "p", [0.05, 0.3, 0.9, 0.99], ref_typical),
])
def test_bisection_thresholds_match_the_sorting_references_on_random_rows(
        name, param, values, reference):
    # Wide (vocab 200, heavy tails) random rows: the set found by bisection equals the
    # set found by sorting, for every row and parameter value.
    rng = np.random.default_rng(3)
    logits = (rng.standard_t(3, size=(64, 200)) * 2).astype("float32")
    for value in values:
        expected = reference(logits, min(value, 200) if name == "top_k" else value)
        np.testing.assert_array_equal(kept(run(name, logits=logits, **{param: value})),
                                      expected, err_msg=f"{name} {param}={value}")
