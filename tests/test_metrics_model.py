"""Metrics that need a model (perplexity, MAUVE features) on a tiny random KerasHub GPT-2."""

from __future__ import annotations

import math
import sys
import types

import numpy as np
import pytest

from samplerlab.metrics.base import MetricContext
from samplerlab.metrics.perplexity import Perplexity, prompt_ids
from samplerlab.metrics.scoring import build_metrics, score_samples
from samplerlab.models import LoadedModel


@pytest.fixture(scope="module")
def tiny():
    from samplerlab.models import build_tiny_causal_lm

    lm = build_tiny_causal_lm(seed=1, sequence_length=16, max_sequence_length=32)
    return LoadedModel(lm, "tiny", "", None, [])


def samples_for(model: LoadedModel) -> list[dict]:
    tok = model.tokenizer
    out = []
    for i, (prompt, text) in enumerate([("Hello there", " my old friend"),
                                        ("The cat", " sat on the mat and looked around"),
                                        ("A", " b")]):
        ids = [int(t) for t in np.asarray(tok(text))]
        out.append({"prompt": prompt, "text": text, "token_ids": ids, "prompt_index": i,
                    "sample_index": 0})
    return out


def test_uniform_model_has_perplexity_equal_to_the_vocabulary_size(tiny):
    # GPT-2 ties its output layer to the token embedding: zero embeddings -> zero logits
    # -> every token has probability 1 / 50257.
    import keras

    from samplerlab.models import build_tiny_causal_lm

    lm = build_tiny_causal_lm(seed=0, num_layers=1, sequence_length=16,
                              max_sequence_length=32)
    emb = lm.backbone.token_embedding
    emb.embeddings.assign(keras.ops.zeros(emb.embeddings.shape))
    model = LoadedModel(lm, "uniform", "", None, [])
    metric = Perplexity()
    got = metric.aggregate(metric.stats(samples_for(model), MetricContext(model=model)))
    assert got["perplexity"] == pytest.approx(50257, rel=1e-4)


def test_perplexity_equals_unbatched_log_softmax_of_the_logits(tiny):
    samples = samples_for(tiny)
    metric = Perplexity()  # batches of unequal lengths, right-padded
    context = MetricContext(model=tiny, tokenized_by_model=True, batch_size=2)
    got = metric.aggregate(metric.stats(samples, context))["perplexity"]
    total, count = 0.0, 0
    for s in samples:  # one unpadded sequence at a time, log-softmax in float64 NumPy
        ctx = prompt_ids(tiny.preprocessor, s["prompt"])
        seq = np.array([ctx + s["token_ids"]], dtype="int32")
        # Right-padded to the model's 32 positions (one shape, one compilation).
        ids = np.zeros((1, 32), "int32")
        ids[0, : seq.shape[1]] = seq[0]
        logits = np.asarray(tiny.causal_lm({"token_ids": ids, "padding_mask": ids != -1}),
                            dtype=np.float64)[0]
        log_probs = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1,
                                    keepdims=True)) - logits.max(-1, keepdims=True)
        for p in range(len(ctx) - 1, seq.shape[1] - 1):
            total -= log_probs[p, seq[0, p + 1]]
        count += len(s["token_ids"])
    assert got == pytest.approx(math.exp(total / count), rel=1e-4)


def test_prompt_is_tokenised_with_the_start_token_as_generate_does(tiny):
    ids = prompt_ids(tiny.preprocessor, "Hello")
    assert ids[0] == tiny.tokenizer.start_token_id
    assert ids[1:] == [int(t) for t in np.asarray(tiny.tokenizer("Hello"))]


def test_perplexity_without_a_model_is_nan_and_with_one_has_an_interval(tiny):
    samples = samples_for(tiny)
    metrics = build_metrics(["perplexity"])
    assert math.isnan(score_samples(samples, metrics)["perplexity"])
    row = score_samples(samples, metrics, MetricContext(model=tiny, n_bootstrap=100))
    assert row["perplexity_ci_low"] <= row["perplexity"] <= row["perplexity_ci_high"]


# ----------------------------------------------------------------------------- mauve
def test_mauve_without_the_optional_package_is_a_clear_user_error(monkeypatch):
    from samplerlab.errors import UserInputError

    monkeypatch.setitem(sys.modules, "mauve", None)  # makes `import mauve` fail
    with pytest.raises(UserInputError, match=r"pip install 'samplerlab\[mauve\]'"):
        build_metrics(["mauve"])


def test_mauve_hands_the_features_and_its_settings_to_mauve_text(tiny, monkeypatch):
    calls = {}

    def compute_mauve(p_features, q_features, **kwargs):
        calls.update(p=p_features, q=q_features, **kwargs)
        return types.SimpleNamespace(mauve=0.25)

    monkeypatch.setitem(sys.modules, "mauve", types.SimpleNamespace(compute_mauve=compute_mauve))
    samples = [{"text": f" text {i}", "reference": f" human {i}", "prompt_index": i}
               for i in range(3)]
    samples.append({"text": " no reference", "reference": None, "prompt_index": 3})
    metric = build_metrics([{"name": "mauve", "params": {
        "num_buckets": 2, "scaling_factor": 3.0, "bootstrap_samples": 0}}])[0]
    row = score_samples(samples, [metric], MetricContext(model=tiny))
    assert row["mauve"] == 0.25 and math.isnan(row["mauve_ci_low"])
    # every generation of the cell against each prompt's reference once
    assert calls["p"].shape == (4, 32) and calls["q"].shape == (3, 32)
    assert (calls["num_buckets"], calls["mauve_scaling_factor"], calls["seed"]) == (2, 3.0, 25)


def test_mauve_without_references_is_nan(tiny, monkeypatch):
    monkeypatch.setitem(sys.modules, "mauve", types.SimpleNamespace(compute_mauve=None))
    row = score_samples([{"text": "a"}, {"text": "b"}], build_metrics(["mauve"]),
                        MetricContext(model=tiny))
    assert math.isnan(row["mauve"])
