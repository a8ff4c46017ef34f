"""Traced-parameter samplers: exact top-p semantics without a sort, one compile per sweep."""

from __future__ import annotations

import numpy as np
import pytest

PROMPTS = ["I like basketball", "My trip to Yosemite was"]


def holtzman_keep(row: np.ndarray, p: float) -> np.ndarray:
    """Holtzman et al. (2020): the smallest set of most probable tokens with mass >= p."""
    order = np.argsort(-row, kind="stable")
    cumulative = np.cumsum(row[order].astype(np.float64))
    size = int(np.searchsorted(cumulative, p)) + 1  # first prefix whose mass reaches p
    keep = np.zeros(row.shape, bool)
    keep[order[:size]] = True
    return keep


def peaked_rows(rows: int, vocab: int, scale: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(rows, vocab)) * scale
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    return (probs / probs.sum(-1, keepdims=True)).astype(np.float32)


def frequencies(tokens, vocab: int) -> np.ndarray:
    tokens = np.asarray(tokens).reshape(-1)
    return np.bincount(tokens, minlength=vocab) / tokens.size


def assert_matches(freq: np.ndarray, expected: np.ndarray, draws: int) -> None:
    # 5 standard errors per token: a fixed seed makes this exact, the margin keeps it honest.
    tolerance = 5 * np.sqrt(expected * (1 - expected) / draws) + 1e-12
    assert np.all(np.abs(freq - expected) <= tolerance), (freq, expected)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9, 0.95])
@pytest.mark.parametrize("scale", [0.5, 3.0])
def test_nucleus_threshold_keeps_exactly_holtzmans_set(p, scale):
    from samplerlab.decoding.distributions import nucleus_threshold

    probs = peaked_rows(rows=4, vocab=5000, scale=scale, seed=int(p * 100))
    for row in probs:  # precondition: no prefix mass within rounding of p
        cumulative = np.cumsum(np.sort(row)[::-1].astype(np.float64))
        assert np.min(np.abs(cumulative - p)) > 3e-6
    keep = probs >= np.asarray(nucleus_threshold(probs, p))
    expected = np.stack([holtzman_keep(row, p) for row in probs])
    np.testing.assert_array_equal(keep, expected)
    assert 1 <= keep.sum(-1).min()


def test_nucleus_threshold_edges():
    from samplerlab.decoding.distributions import nucleus_threshold

    probs = np.array([[0.6, 0.3, 0.1, 0.0],  # p below the top token: only the top one
                      [0.25, 0.25, 0.25, 0.25]], dtype=np.float32)  # ties: all or none
    keep = probs >= np.asarray(nucleus_threshold(probs, 0.2))
    np.testing.assert_array_equal(keep, [[1, 0, 0, 0], [1, 1, 1, 1]])
    keep_all = probs >= np.asarray(nucleus_threshold(probs, 1.0))
    # p = 1 keeps every token of positive probability; a zero can never be drawn.
    np.testing.assert_array_equal(keep_all[0, :3], [1, 1, 1])


def test_top_p_samples_the_renormalised_nucleus_like_keras_hub():
    import keras_hub

    from samplerlab.samplers.top_p import TopPSampler

    row = np.array([0.4, 0.25, 0.15, 0.1, 0.05, 0.03, 0.01, 0.01], dtype=np.float32)
    draws = 10000
    probs = np.tile(row, (draws, 1))
    keep = holtzman_keep(row, 0.7)
    np.testing.assert_array_equal(keep, [1, 1, 1, 0, 0, 0, 0, 0])  # 0.4 + 0.25 < 0.7
    expected = np.where(keep, row, 0) / row[keep].sum()
    ours = frequencies(TopPSampler(p=0.7, seed=1).get_next_token(probs), 8)
    theirs = frequencies(keras_hub.samplers.TopPSampler(p=0.7, seed=1).get_next_token(probs), 8)
    assert ours[~keep].sum() == 0 and theirs[~keep].sum() == 0
    assert_matches(ours, expected, draws)
    assert_matches(theirs, expected, draws)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("scale", [0.5, 3.0])
def test_in_nucleus_is_the_threshold_test_for_every_token(p, scale):
    """Rejection's acceptance test keeps exactly the tokens the bisection keeps."""
    from samplerlab.decoding.distributions import nucleus_threshold
    from samplerlab.samplers.fast_ops import in_nucleus

    probs = peaked_rows(3, 300, scale, seed=5)
    tokens = np.tile(np.arange(300, dtype=np.int32), (3, 1))
    accepted = np.stack([np.asarray(in_nucleus(probs, tokens[:, i:i + 1], p))[:, 0]
                         for i in range(300)], axis=1)
    np.testing.assert_array_equal(accepted, probs >= np.asarray(nucleus_threshold(probs, p)))
    for row, keep in zip(probs, accepted, strict=True):
        np.testing.assert_array_equal(keep, holtzman_keep(row, p))


@pytest.mark.parametrize("tries", [0, 1, 8])
@pytest.mark.parametrize("p", [0.3, 0.9])
def test_sample_nucleus_draws_the_renormalised_nucleus(tries, p):
    """Rejection, the bisection fallback (tries=0) and a mix of both give one distribution."""
    import keras

    from samplerlab.samplers.fast_ops import sample_nucleus

    row = peaked_rows(1, 12, 1.0, seed=9)[0]
    keep = holtzman_keep(row, p)
    draws = 20000
    tokens = sample_nucleus(np.tile(row, (draws, 1)), p, keras.random.SeedGenerator(3),
                            tries=tries)
    freq = frequencies(tokens, 12)
    assert freq[~keep].sum() == 0
    assert_matches(freq, np.where(keep, row, 0) / row[keep].sum(), draws)


def test_sample_from_weights_across_blocks_never_draws_a_zero_weight():
    import keras

    from samplerlab.samplers.fast_ops import sample_from_weights

    draws, vocab = 20000, 300  # three blocks of 128, the last one partial
    weights = np.zeros((draws, vocab), np.float32)
    weights[:, [5, 130, 257, 299]] = [1.0, 2.0, 3.0, 4.0]
    freq = frequencies(sample_from_weights(weights, keras.random.SeedGenerator(2)), vocab)
    expected = np.zeros(vocab)
    expected[[5, 130, 257, 299]] = [0.1, 0.2, 0.3, 0.4]
    assert freq[expected == 0].sum() == 0
    assert_matches(freq, expected, draws)


def test_random_sampler_draws_from_the_tempered_softmax():
    import keras

    from samplerlab.samplers.random import RandomSampler

    logits = np.log(np.array([0.5, 0.3, 0.2], dtype=np.float32))
    draws = 20000
    sampler = RandomSampler(temperature=0.5, seed=4)
    probs = sampler.compute_probabilities(np.tile(logits, (draws, 1)))
    expected = keras.ops.convert_to_numpy(keras.ops.softmax(logits / 0.5))
    assert_matches(frequencies(sampler.get_next_token(probs), 3), expected, draws)


def test_structure_key_covers_static_params_only():
    from samplerlab.samplers.builtin import random, top_k, top_p

    assert top_p(p=0.5, seed=1).structure_key() == top_p(p=0.9, temperature=2.0).structure_key()
    assert top_p(p=0.5).structure_key() != top_p(p=0.5, k=10).structure_key()
    assert top_k(k=5, temperature=0.5).structure_key() == top_k(k=5).structure_key()
    assert top_k(k=5).structure_key() != top_k(k=6).structure_key()
    assert random(temperature=0.5).structure_key() != top_p().structure_key()
    sampler = top_p(p=0.9, k=20, temperature=0.7, seed=3)
    assert len(sampler.variables) == 3  # seed state, p, temperature
    assert sampler.get_config() == pytest.approx(
        {"p": 0.9, "k": 20, "seed": 3, "temperature": 0.7})


@pytest.mark.parametrize("ours,theirs", [
    (("top_k", {"k": 7, "temperature": 0.7}), ("TopKSampler", {"k": 7, "temperature": 0.7})),
    (("top_p", {"p": 0.5, "k": 10}), ("TopPSampler", {"p": 0.5, "k": 10})),
])
def test_token_for_token_parity_with_keras_hub(tiny_model, engine_tokens, keras_hub_tokens,
                                               ours, theirs):
    import keras_hub

    from samplerlab.samplers import builtin

    inputs = tiny_model.preprocessor.generate_preprocess(PROMPTS, sequence_length=12)
    name, params = ours
    ours_out = engine_tokens(tiny_model.adapter, getattr(builtin, name)(seed=11, **params),
                             inputs)
    cls, params = theirs
    theirs_out = keras_hub_tokens(tiny_model.causal_lm,
                                  getattr(keras_hub.samplers, cls)(seed=11, **params), inputs)
    np.testing.assert_array_equal(ours_out, theirs_out)
