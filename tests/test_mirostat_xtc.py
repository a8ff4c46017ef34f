"""Mirostat v2 and XTC against NumPy references of their published definitions."""

import math

import numpy as np
import pytest

from samplerlab.plugins import registry

VOCAB = 8
FIXED = np.array([1.0, 2.0, -1.0, 4.0, -2.0, 3.0, 0.0, -3.0], dtype="float32")
# A long-tailed (Zipf) distribution for the mirostat control loop.
ZIPF = np.log(1.0 / np.arange(1, 65)).astype("float32")


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def run_fixed(sampler, logits, rows, length):
    import keras

    def next(prompt, cache, index):
        return keras.ops.broadcast_to(keras.ops.convert_to_tensor(logits),
                                      (rows, logits.shape[0])), None, cache

    prompt = np.zeros((rows, length), "int32")
    mask = np.zeros((rows, length), bool)
    mask[:, 0] = True
    return keras.ops.convert_to_numpy(sampler(next=next, prompt=prompt, index=1, mask=mask))


def build(name, **params):
    return registry("samplers")[name].build(**params)


# --------------------------------------------------------------------- mirostat
def ref_mirostat_truncate(logits, mu):
    """llama.cpp mirostat_v2: drop tokens with -log2 p > mu, keep at least the top one."""
    surprise = -np.log2(softmax(logits))
    keep = (surprise <= mu[:, None]) | (logits == logits.max(axis=-1, keepdims=True))
    return keep


def test_mirostat_truncation_and_mu_update_match_the_reference():
    import keras

    sampler = build("mirostat", tau=3.0, eta=0.25)
    logits = np.stack([FIXED, FIXED[::-1], ZIPF[:8]])
    mu = np.array([6.0, 1.0, 0.1], dtype="float32")  # generous, tight, below the top token
    out = keras.ops.convert_to_numpy(sampler.truncate(logits, mu))
    keep = ref_mirostat_truncate(logits, mu)
    np.testing.assert_array_equal(np.isfinite(out), keep)
    assert keep.sum(axis=1).tolist()[2] == 1  # mu below every surprise: the top token stays
    assert keep[0].sum() > keep[1].sum()

    token = np.array([5, 4, 0], dtype="int32")  # kept tokens (row 0: not the top one)
    new_mu = keras.ops.convert_to_numpy(sampler.update_mu(out, token, mu))
    renormalised = np.where(keep, softmax(np.where(keep, logits, -np.inf)), 0.0)
    observed = -np.log2(renormalised[np.arange(3), token])
    np.testing.assert_allclose(new_mu, mu - 0.25 * (observed - 3.0), rtol=1e-5)


def test_mirostat_drives_the_observed_surprise_to_tau():
    tau, eta = 3.0, 0.2
    tokens = run_fixed(build("mirostat", tau=tau, eta=eta, seed=7), ZIPF, rows=4, length=161)
    probs = softmax(ZIPF[None, :])[0]
    surprises = []
    for row in tokens[:, 1:]:
        mu = 2 * tau
        for t in row:  # replay the algorithm on the chosen tokens
            keep = ref_mirostat_truncate(ZIPF[None, :], np.array([mu]))[0]
            assert keep[t], "a token above the surprise bound was sampled"
            observed = -math.log2(probs[t] / probs[keep].sum())
            surprises.append(observed)
            mu -= eta * (observed - tau)
    late = np.array(surprises).reshape(4, -1)[:, 40:]
    assert abs(late.mean() - tau) < 0.35
    # Without control, the mean surprise of this distribution is far from tau.
    assert -(probs * np.log2(probs)).sum() > tau + 1


# -------------------------------------------------------------------------- XTC
def ref_xtc_exclude(probs, threshold):
    """text-generation-webui / llama.cpp XTC: if >= 2 tokens reach the threshold, drop all
    of them but the least probable one."""
    out = probs.copy()
    for r in range(probs.shape[0]):
        top = [i for i in np.argsort(-probs[r]) if probs[r, i] >= threshold]
        if len(top) >= 2:
            out[r, top[:-1]] = 0.0
    return out


@pytest.mark.parametrize("threshold", [0.02, 0.05, 0.2, 0.5])
def test_xtc_exclusion_matches_the_reference(threshold):
    import keras

    probs = softmax(np.stack([FIXED, FIXED[::-1] * 0.3, ZIPF[:8]]))
    sampler = build("xtc", threshold=threshold)
    applied = keras.ops.convert_to_numpy(sampler.exclude(probs, np.array([True] * 3)))
    np.testing.assert_allclose(applied, ref_xtc_exclude(probs, threshold))
    skipped = keras.ops.convert_to_numpy(sampler.exclude(probs, np.array([False] * 3)))
    np.testing.assert_allclose(skipped, probs)


def test_xtc_reference_changes_something_at_low_thresholds():
    probs = softmax(FIXED[None, :])
    assert (ref_xtc_exclude(probs, 0.05) == 0).sum() == 2   # tokens 3 and 5 go, 1 stays
    assert (ref_xtc_exclude(probs, 0.5) == 0).sum() == 0    # only one top choice


def test_xtc_probability_controls_how_often_top_choices_are_excluded():
    always = run_fixed(build("xtc", threshold=0.05, probability=1.0, seed=1), FIXED, 8, 25)
    never = run_fixed(build("xtc", threshold=0.05, probability=0.0, seed=1), FIXED, 8, 25)
    assert not set(always[:, 1:].ravel().tolist()) & {3, 5}
    assert 1 in always[:, 1:]
    assert (never[:, 1:] == 3).mean() > 0.4  # plain sampling: p(3) = 0.63


def test_mirostat_and_xtc_parameters_are_traced_and_assignable():
    a, b = build("xtc", threshold=0.05, seed=1), build("xtc", threshold=0.3, seed=2)
    a.assign_params(b)
    assert [float(v.numpy()) for v in a.variables[1:]] == pytest.approx([0.3, 0.5, 1.0])
    m = build("mirostat", tau=2.0)
    assert m.structure_key() == build("mirostat", tau=8.0).structure_key()
    with pytest.raises(ValueError):
        m.assign_params(a)
