"""The embedded default model ``samplerlab:tiny-en``: what it is, and that it is trained.

It is a real KerasHub GPT-2 (backbone, byte-level BPE tokenizer, preprocessor, task)
saved with ``save_to_preset``; it is small enough to ship; and it has learnt its corpus
well enough to show the classic decoding result: greedy search falls into loops, while
top-k and top-p sampling do not.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from samplerlab.models import embedded_presets, load_model

PRESET = "samplerlab:tiny-en"
MAX_PRESET_BYTES = 20 * 1024 * 1024
PROMPTS = ["When I was a kid, my father", "The trouble with computers is that",
           "I went to the office this morning and", "My wife told me that"]
MAX_LENGTH = 96


@pytest.fixture(scope="module")
def tiny_en():
    return load_model(PRESET, sequence_length=128)


def rep_4(texts: list[str]) -> float:
    """SimCTG rep-4 (percent of repeated 4-grams) pooled over the texts."""
    from samplerlab.metrics.rep_n import RepN

    metric = RepN()
    return float(metric.aggregate(metric.stats([{"text": t} for t in texts], None))["rep_4"])


def continuations(model, sampler) -> list[str]:
    """The generated part only (the prompt is cut off), stopping at <|endoftext|>."""
    model.causal_lm.compile(sampler=sampler)
    outputs = model.causal_lm.generate(PROMPTS, max_length=MAX_LENGTH)
    return [out[len(prompt):] for prompt, out in zip(PROMPTS, outputs, strict=True)]


def test_is_shipped_small_enough():
    path = embedded_presets()["tiny-en"]
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    assert size <= MAX_PRESET_BYTES
    for name in ("config.json", "model.weights.h5", "tokenizer.json", "task.json",
                 "preprocessor.json", "metrics.json"):
        assert (path / name).is_file(), name


def test_is_a_real_kerashub_gpt2(tiny_en):
    import keras_hub

    lm = tiny_en.causal_lm
    assert isinstance(lm, keras_hub.models.GPT2CausalLM)
    assert isinstance(lm.backbone, keras_hub.models.GPT2Backbone)
    assert isinstance(lm.preprocessor, keras_hub.models.GPT2CausalLMPreprocessor)
    assert isinstance(tiny_en.tokenizer, keras_hub.models.GPT2Tokenizer)
    # <|endoftext|> starts and ends texts and is the last id, as in GPT-2. It must not be
    # the pad id 0: KerasHub's samplers would see the padding as "already stopped".
    vocab_size = tiny_en.tokenizer.vocabulary_size()
    assert tiny_en.tokenizer.id_to_token(tiny_en.end_token_id) == "<|endoftext|>"
    assert tiny_en.end_token_id == tiny_en.tokenizer.start_token_id == vocab_size - 1
    assert tiny_en.tokenizer.pad_token_id == 0 != tiny_en.end_token_id
    assert lm.backbone.token_embedding.input_dim == tiny_en.tokenizer.vocabulary_size()


@pytest.mark.parametrize("text", [
    "I told my boss the server was down because of solar flares.",
    "床前明月光，疑是地上霜。",      # Li Bai
    "naïve café ☃ 🙂 𠀀",             # bytes never seen in training still round-trip
])
def test_tokenizer_round_trips_any_text(tiny_en, text):
    tokenizer = tiny_en.tokenizer
    ids = tokenizer(text)
    assert tokenizer.detokenize(ids) == text
    # ordinary text never becomes <|endoftext|>
    assert tiny_en.end_token_id not in np.asarray(ids).tolist()


def test_bpe_learnt_the_corpus_vocabulary(tiny_en):
    """Frequent English words and common Tang characters are single tokens."""
    tokenizer = tiny_en.tokenizer
    for word in [" the", " computer", " never", "山", "月", "人"]:
        assert len(np.asarray(tokenizer(word)).tolist()) == 1, word


def held_out_documents() -> dict[str, list[str]]:
    """Every 20th document of each corpus file: what the training script never trained on."""
    from samplerlab.models import ASSETS

    corpus = ASSETS / "corpus"
    fortunes = (corpus / "fortunes.txt").read_text(encoding="utf-8").split("\n%\n")
    tang = (corpus / "tang.txt").read_text(encoding="utf-8").splitlines()
    return {"english": fortunes[19::20], "tang": tang[19::20]}


def unigram_perplexity(token_ids: list[int]) -> float:
    """Perplexity of the text under its own token frequencies: no unigram model does better."""
    counts = np.bincount(np.asarray(token_ids))
    p = counts[counts > 0] / len(token_ids)
    return float(np.exp(-(p * np.log(p)).sum()))


def test_heldout_perplexity_beats_every_unigram_model(tiny_en):
    """The reported held-out perplexity shows the model uses context, not just frequencies."""
    metrics = json.loads((embedded_presets()["tiny-en"] / "metrics.json").read_text())
    for lang, docs in held_out_documents().items():
        held = metrics["heldout"][lang]
        assert held["tokens"] > 10_000
        ids = [i for doc in docs for i in np.asarray(tiny_en.tokenizer(doc)).tolist()]
        assert 1.0 < held["perplexity"] < 0.8 * unigram_perplexity(ids), (lang, held)


def test_prefers_real_text_to_the_same_words_shuffled(tiny_en):
    """Word order is learnt: held-out fortunes score better than their words shuffled."""
    held_out = [d for d in held_out_documents()["english"] if 12 <= len(d.split()) <= 40][:16]
    rng = random.Random(0)
    shuffled = [" ".join(rng.sample(d.split(), len(d.split()))) for d in held_out]
    assert mean_nll(tiny_en, held_out) < mean_nll(tiny_en, shuffled) - 0.5


def mean_nll(model, texts: list[str]) -> float:
    import keras

    x, y, w = model.preprocessor(texts)
    logits = model.causal_lm(x, training=False)
    nll = keras.ops.sparse_categorical_crossentropy(y, logits, from_logits=True)
    w = np.asarray(w, dtype=np.float64)
    return float((np.asarray(nll, dtype=np.float64) * w).sum() / w.sum())


def test_greedy_degenerates_while_sampling_does_not(tiny_en):
    """Holtzman et al. 2020 / Su et al. 2022 on this model: rep-4 of greedy vs sampling."""
    import keras_hub

    greedy = continuations(tiny_en, keras_hub.samplers.GreedySampler())
    top_k = continuations(tiny_en, keras_hub.samplers.TopKSampler(k=40, seed=1))
    top_p = continuations(tiny_en, keras_hub.samplers.TopPSampler(p=0.9, seed=1))

    for texts in (greedy, top_k, top_p):
        # Real continuations, not an immediate <|endoftext|> (fortunes are short texts).
        assert sum(len(t.split()) for t in texts) >= 10 * len(PROMPTS)
    assert rep_4(greedy) > 25.0
    assert rep_4(top_k) < 10.0
    assert rep_4(top_p) < 10.0
