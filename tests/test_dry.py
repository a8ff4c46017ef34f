"""DRY against a NumPy reference written from the algorithm's description.

The reference follows the description in p-e-w's text-generation-webui PR #5677 and
llama.cpp's ``--dry-*`` documentation, written the plain way (one row at a time, a brute
force suffix comparison, a dictionary of penalties), independent of the vectorised,
traced implementation under test:

- the window is the last ``penalty_last_n`` tokens (``-1``: all of them, ``0``: DRY off);
- the most recent sequence breaker in the window (its first token found scanning back from
  the end, its remaining tokens following it inside the window) bounds every match to the
  tokens after the breaker;
- for each earlier position, the repeat length is how many tokens ending there equal the
  tokens ending at the last position; the token after that position would extend it;
- a token whose longest such repeat is at least ``allowed_length`` loses
  ``multiplier * base ** (length - allowed_length)`` (exponent capped at
  ``floor(88.7228391 / ln(base))`` so the power stays finite), unless it is a
  single-token breaker.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from samplerlab.plugins import registry
from samplerlab.processors.base import Context


def ref_dry(logits, history, multiplier, base, allowed_length, penalty_last_n, breakers):
    """``logits`` (batch, vocab) after DRY, given each row's history (a list of ids)."""
    out = np.array(logits, dtype="float64")
    if multiplier == 0 or penalty_last_n == 0 or base < 1:
        return out
    singles = {b[0] for b in breakers if len(b) == 1}
    for row, context in enumerate(history):
        window = list(context) if penalty_last_n < 0 else list(context)[-penalty_last_n:]
        size = len(window)
        limit = size
        for head in range(size - 1, -1, -1):
            complete = [len(b) - 1 for b in breakers
                        if tuple(window[head:head + len(b)]) == tuple(b)]
            if complete:
                limit = (size - 1 - head) - max(complete)
                break
        longest: dict[int, int] = {}
        for end in range(size - 1):
            n = 0
            while n <= end and window[end - n] == window[size - 1 - n]:
                n += 1
            n = min(n, limit)
            if n >= allowed_length:
                token = window[end + 1]
                longest[token] = max(longest.get(token, 0), n)
        for token, n in longest.items():
            if token in singles:
                continue
            exponent = n - allowed_length
            if base > 1.000001:
                exponent = min(exponent, int(88.7228391 / math.log(base)))
            out[row, token] -= multiplier * base ** exponent
    return out


def apply_dry(logits, tokens, index, prompt_length=0, **params):
    import keras

    processor = registry("processors")["dry"].build(**params)
    tokens = np.asarray(tokens, "int32")
    prompt_mask = np.arange(tokens.shape[1])[None, :] < prompt_length
    context = Context(tokens, np.int32(index), np.broadcast_to(prompt_mask, tokens.shape))
    out = processor(keras.ops.convert_to_tensor(np.asarray(logits, "float32")), context)
    return keras.ops.convert_to_numpy(out)


def check(tokens, index, vocab=12, prompt_length=0, **params):
    """The processor equals the reference on ``tokens[:, :index]``; returns the penalties."""
    tokens = np.asarray(tokens, "int32")
    # One width for the short crafted histories (positions >= index are never read): the
    # eagerly run ops are then compiled once for all of them.
    tokens = np.pad(tokens, ((0, 0), (0, max(0, 16 - tokens.shape[1]))))
    logits = np.random.default_rng(index).normal(size=(tokens.shape[0], vocab))
    defaults = {"multiplier": 0.8, "base": 1.75, "allowed_length": 2, "penalty_last_n": -1,
                "sequence_breakers": [[vocab - 1]]}
    merged = {**defaults, **params}
    got = apply_dry(logits, tokens, index, prompt_length, **merged)
    expected = ref_dry(logits, [row[:index].tolist() for row in tokens],
                       merged["multiplier"], merged["base"], merged["allowed_length"],
                       merged["penalty_last_n"],
                       [tuple(b) for b in merged["sequence_breakers"]])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    return logits - expected


# ------------------------------------------------------- the reference, by hand
def test_the_reference_penalises_the_token_that_would_extend_a_repeat():
    # a b c d | a b c  -> "d" would make "a b c d" again: repeat length 3.
    penalty = check([[1, 2, 3, 4, 1, 2, 3, 0]], index=7, multiplier=1.0, base=2.0)
    assert penalty[0, 4] == pytest.approx(2.0 ** (3 - 2))
    assert np.count_nonzero(penalty) == 1


def test_the_reference_needs_allowed_length_and_stops_at_breakers():
    # Only "c" repeats (length 1 < allowed 2): nothing is penalised.
    assert not check([[1, 3, 2, 3]], index=4).any()
    # A breaker inside the current repeat bounds the match to the tokens after it.
    tokens = [[1, 2, 3, 4, 5, 1, 2, 3]]
    free = check(tokens, index=8, sequence_breakers=[[9]], multiplier=1.0, base=2.0)
    assert free[0, 4] == pytest.approx(2.0)
    assert not check(tokens, index=8, sequence_breakers=[[2]]).any()  # only "3" is left
    assert not check(tokens, index=8, sequence_breakers=[[3]]).any()  # nothing is left


# ---------------------------------------------- the processor against the reference
@pytest.mark.parametrize("tokens, index, params", [
    # The exponent grows with the repeat length.
    ([[1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 0]], 11, {"allowed_length": 1}),
    # The same token after two different repeats: the longest counts.
    ([[7, 1, 2, 9, 3, 1, 2, 9, 4, 3, 1, 2]], 12, {}),
    # Overlapping runs (a a a a a): each earlier end extends with "a" again.
    ([[6, 6, 6, 6, 6, 6, 0, 0]], 6, {"allowed_length": 1}),
    # A single-token breaker is never penalised, even when it would extend a repeat.
    ([[1, 2, 11, 1, 2, 0]], 5, {"sequence_breakers": [[11]]}),
    # Multi-token breaker (8, 9): complete in the window, it bounds the match ...
    ([[1, 2, 3, 8, 9, 1, 2, 3]], 8, {"sequence_breakers": [[8, 9]], "allowed_length": 1}),
    # ... but 8 alone is no breaker, and a breaker cut off by the window end does not count.
    ([[1, 2, 3, 8, 4, 1, 2, 3]], 8, {"sequence_breakers": [[8, 9]], "allowed_length": 1}),
    ([[1, 2, 1, 2, 8, 0]], 5, {"sequence_breakers": [[8, 9]], "allowed_length": 1}),
    # Several breakers starting with the same token: the longest complete one wins.
    ([[4, 1, 2, 8, 9, 10, 1, 2]], 8,
     {"sequence_breakers": [[8], [8, 9, 10], [8, 9]], "allowed_length": 1}),
    # penalty_last_n: the earlier occurrence outside the window no longer counts.
    ([[1, 2, 3, 4, 5, 6, 7, 1, 2, 3]], 10, {"penalty_last_n": 5}),
    ([[1, 2, 3, 4, 5, 6, 7, 1, 2, 3]], 10, {"penalty_last_n": 8}),
    # Off switches: multiplier 0, penalty_last_n 0.
    ([[1, 2, 3, 1, 2, 3]], 6, {"multiplier": 0.0}),
    ([[1, 2, 3, 1, 2, 3]], 6, {"penalty_last_n": 0}),
    # The exponent cap keeps base ** e finite (base 1e9: e <= 4).
    ([[1, 2, 3, 4, 5, 6, 7, 1, 2, 3, 4, 5, 6]], 13, {"base": 1e9, "allowed_length": 1}),
])
def test_the_processor_matches_the_reference_on_crafted_histories(tokens, index, params):
    check(tokens, index, **params)


def test_prompt_tokens_are_part_of_the_history():
    # The repeat's first occurrence lies in the prompt (positions < 4).
    penalty = check([[1, 2, 3, 4, 1, 2, 3]], index=7, prompt_length=4, multiplier=1.0)
    assert penalty[0, 4] > 0


@pytest.mark.parametrize("seed", range(4))
def test_the_processor_matches_the_reference_on_random_histories(seed):
    rng = np.random.default_rng(seed)
    vocab, length = 9, 48
    # Few distinct tokens and copied stretches: long repeats are frequent.
    tokens = rng.integers(0, vocab, size=(6, length))
    tokens[:, 24:40] = tokens[:, 4:20]
    breakers = [[int(rng.integers(vocab))], [int(t) for t in rng.integers(vocab, size=2)]]
    for index in (3, 17, 30, 41, 48):
        for penalty_last_n in (-1, 0, 7, 25):
            check(tokens, index, vocab=vocab, sequence_breakers=breakers,
                  penalty_last_n=penalty_last_n, allowed_length=int(rng.integers(1, 4)),
                  base=float(rng.uniform(1.0, 3.0)), multiplier=float(rng.uniform(0, 2)))


def test_greedy_decoding_with_dry_matches_the_reference_token_for_token():
    """On a real (tiny) GPT-2, every generated token is the argmax of the reference's
    penalised logits, computed from the model's own logits for that history."""

    from samplerlab.processors.dry import DRY
    from samplerlab.samplers.chain_sampler import ChainSampler
    from samplerlab.testing import tiny_batch, tiny_causal_lm

    params = {"multiplier": 1.5, "base": 1.75, "allowed_length": 2, "penalty_last_n": 12,
              "sequence_breakers": [[5], [7, 9]]}
    model, batch = tiny_causal_lm(), tiny_batch(24)
    model.compile(sampler=ChainSampler([DRY(**params)], pick="greedy"))
    tokens = np.asarray(model.generate(batch, stop_token_ids=None)["token_ids"])

    # The model's logits for every history at once (one compiled forward pass).
    logits = np.asarray(model.predict_on_batch({"token_ids": tokens,
                                                "padding_mask": np.ones_like(tokens, bool)}))
    start = int(batch["padding_mask"].sum(axis=1).min())
    changed = 0
    for index in range(start, tokens.shape[1]):
        generating = ~batch["padding_mask"][:, index]
        raw = logits[:, index - 1]
        expected = ref_dry(raw, [row[:index].tolist() for row in tokens],
                           params["multiplier"], params["base"], params["allowed_length"],
                           params["penalty_last_n"],
                           [tuple(b) for b in params["sequence_breakers"]])
        np.testing.assert_array_equal(tokens[generating, index],
                                      expected.argmax(axis=-1)[generating],
                                      err_msg=f"position {index}")
        changed += int((raw.argmax(axis=-1) != expected.argmax(axis=-1))[generating].sum())
    assert changed  # DRY changed some greedy choices: the comparison is not vacuous


# -------------------------------------------------------- breakers from strings
def test_string_breakers_become_every_token_that_contains_them():
    from samplerlab.models import gpt2_tokenizer
    from samplerlab.processors.dry import breaker_sequences

    tokenizer = gpt2_tokenizer()
    newline = tokenizer("\n").tolist()
    sequences = breaker_sequences(tokenizer, ["\n", '"', [3, 4]])
    heads = {s[0] for s in sequences if len(s) == 1}
    # "\n", "\n\n" and ' "' (GPT-2 spells a quote after a space as one token).
    assert {newline[0], *tokenizer("\n\n").tolist(), *tokenizer(' "').tolist()} <= heads
    assert (3, 4) in sequences
    # A token that ends with the start of a longer breaker heads a multi-token breaker.
    user = tokenizer(" User").tolist()
    assert (user[0], *tokenizer(":").tolist()) in breaker_sequences(tokenizer, ["User:"])


def test_the_chain_binds_string_breakers_to_the_model_tokenizer(tiny_preset):
    from samplerlab.models import load_model
    from samplerlab.processors.dry import DRY
    from samplerlab.samplers.chain_sampler import ChainSampler

    dry = DRY(multiplier=1.0)
    with pytest.raises(ValueError, match="bind"):
        dry.sequences()
    model = load_model(str(tiny_preset), sequence_length=64)  # its own: compile changes it
    lm = model.causal_lm
    lm.compile(sampler=ChainSampler([dry], pick="greedy"))
    assert lm.generate(["I like basketball"], max_length=12)
    assert (model.tokenizer("\n").tolist()[0],) in dry.sequences()


def test_string_breakers_without_a_tokenizer_say_what_to_give_instead():
    from samplerlab.processors.dry import DRY
    from samplerlab.samplers.chain_sampler import ChainSampler
    from samplerlab.testing import tiny_batch, tiny_causal_lm

    model = tiny_causal_lm()
    model.compile(sampler=ChainSampler([DRY()], pick="greedy"))
    with pytest.raises(ValueError, match="list of token ids"):
        model.generate(tiny_batch(12), stop_token_ids=None)


def test_dry_is_listed_with_its_parameters_by_the_cli(capsys, monkeypatch):
    from samplerlab.cli import main

    monkeypatch.setenv("COLUMNS", "300")  # rich would cut the columns at 80
    assert main(["processors"]) == 0
    out = capsys.readouterr().out
    assert "dry" in out and "samplerlab.processors" in out
    for parameter in ("multiplier", "base", "allowed_length", "sequence_breakers",
                      "penalty_last_n"):
        assert parameter in out
    assert "| list[int]]" in out  # shown as text, not eaten as rich markup
