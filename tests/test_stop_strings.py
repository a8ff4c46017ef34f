"""Stop strings: found inside the generate loop over any token boundaries, the text cut
before them, the batch ended once every row has stopped."""

from __future__ import annotations

import io

import numpy as np
import pytest

from samplerlab.engine.stop_strings import (
    STOP_STRING,
    StopAutomaton,
    StopStringObserver,
    cut_at_stop,
    token_bytes,
)

PROMPTS = ["My trip to Yosemite was", "The", "Once upon a time"]


@pytest.fixture(scope="module")
def gpt2_tokenizer():
    from samplerlab.models import gpt2_tokenizer

    return gpt2_tokenizer()


@pytest.fixture(scope="module")
def sentence_piece_tokenizer():
    """A 400-piece unigram SentencePiece model with byte fallback (Llama's kind), trained
    here on the shipped corpus."""
    import keras_hub
    import sentencepiece

    from samplerlab.models import ASSETS

    lines = (ASSETS / "corpus" / "fortunes.txt").read_text(encoding="utf-8").splitlines()
    proto = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines[:2000]), model_writer=proto, vocab_size=400,
        byte_fallback=True, model_type="unigram", minloglevel=3)
    return keras_hub.tokenizers.SentencePieceTokenizer(proto=proto.getvalue())


@pytest.fixture(params=["gpt2", "sentence_piece"])
def tokenizer(request):
    return request.getfixturevalue(f"{request.param}_tokenizer")


def _text(tokenizer, ids):
    from samplerlab.engine.text import detokenize

    return detokenize(tokenizer, ids)


# ----------------------------------------------------------------- the automaton
def test_the_automaton_finds_exactly_what_str_find_finds():
    rng = np.random.default_rng(0)
    stops = ["aab", "bca", "cc", "abcabc"]
    automaton = StopAutomaton(stops)
    for _ in range(300):
        text = "".join(rng.choice(list("abc"), size=rng.integers(0, 12)))
        assert automaton.run(text.encode())[1] == any(s in text for s in stops), text
        # Read in tokens of any length, from the state a previous token left.
        cuts = sorted(rng.integers(0, len(text) + 1, size=3))
        pieces = [text[:cuts[0]], text[cuts[0]:cuts[1]], text[cuts[1]:cuts[2]], text[cuts[2]:]]
        following, hit = automaton.over_tokens([p.encode() for p in pieces])
        state, found = 0, False
        for i in range(len(pieces)):
            found |= bool(hit[i, state])
            state = int(following[i, state])
        assert found == automaton.run(text.encode())[1]


def test_the_stop_string_that_ends_first_cuts_the_text():
    assert cut_at_stop("one\n\ntwo THE END", ["THE END", "\n\n"]) == ("one", "\n\n")
    assert cut_at_stop("xABCD", ["ABCD", "BC"]) == ("xA", "BC")        # BC ends first
    assert cut_at_stop("x\n\n", ["\n", "\n\n"]) == ("x", "\n")         # same end: earlier start
    assert cut_at_stop("nothing here", ["\n"]) == ("nothing here", None)


# ------------------------------------------------------------------ tokenizers
def test_token_bytes_spell_what_detokenize_writes(tokenizer):
    pieces, strip_leading_space = token_bytes(tokenizer)
    rng = np.random.default_rng(1)
    checked = 0
    while checked < 100:
        ids = rng.integers(3, tokenizer.vocabulary_size(), size=8).tolist()
        data = b"".join(pieces[i] for i in ids)
        if strip_leading_space and data.startswith(b" "):
            data = data[1:]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue  # lone bytes: the detokenizer writes replacement characters
        assert text == _text(tokenizer, ids), ids
        checked += 1


def test_the_observer_stops_a_row_at_the_token_that_completes_a_stop_string(tokenizer):
    """Property over texts that contain the stop strings at random places: the observer
    stops a row on exactly the first token whose text completes one."""
    from keras import ops

    stops = ["\n\n", "THE END", "ss s"]
    observer = StopStringObserver(tokenizer, stops, end_token_id=2)
    rng = np.random.default_rng(2)
    words = ["kiss", "snake", "THE", "END", "\n", "mess", "sun", " ", "é", "the"]
    for _ in range(40):
        text = "".join(rng.choice(words, size=10))
        ids = np.asarray(tokenizer(text)).tolist()
        prompt = np.array([[1] + ids], dtype="int32")
        generated = np.array([True])
        state = observer.init(prompt, None)
        stopped_at = None
        for i in range(1, prompt.shape[1]):
            state = observer.on_token(state, prompt, i, generated)
            if stopped_at is None and bool(np.asarray(state[1])[0]):
                stopped_at = i - 1
        first = next((n for n in range(len(ids))
                      if cut_at_stop(_text(tokenizer, ids[:n + 1]), stops)[1] is not None),
                     None)
        assert stopped_at == first, (text, ids)
        if first is not None:  # a stopped row may produce nothing but the end token
            _, logits = observer.on_logits(state, prompt, 0, ops.zeros((1, 8)))
            assert np.asarray(logits)[0].argmax() == 2 and np.asarray(logits)[0].max() == 0


# ------------------------------------------------------------- in the engine
def _engine(model, **generation):
    from samplerlab.engine import CellEngine
    from samplerlab.spec import GenerationSpec

    return CellEngine(model, GenerationSpec(max_length=40, batch_size=3, **generation))


def _run(engine, sampler, params):
    from samplerlab.prompts import Prompt
    from samplerlab.spec import Cell

    cell = Cell(index=0, id=f"000-{sampler}", sampler=sampler, params=params, label=sampler)
    return engine.run(cell, [Prompt(p, i) for i, p in enumerate(PROMPTS)], seed=5)


def _straddling(model, tokens):
    """A stop string that starts inside one generated token and ends inside the next."""
    first, second = (_text(model.tokenizer, [t]) for t in tokens[3:5])
    return first[len(first) // 2:] + second[: max(1, len(second) // 2)]


@pytest.mark.parametrize("sampler, params", [("greedy", {}),
                                             ("contrastive", {"k": 3, "alpha": 0.4})])
def test_a_row_ends_at_its_stop_string_and_keeps_only_the_text_before_it(tiny_model, sampler,
                                                                         params):
    plain = _run(_engine(tiny_model, stop_at_end_token=False), sampler, params)
    stops = [_straddling(tiny_model, s["token_ids"]) for s in plain.samples]
    # stop_at_end_token: false: the loop still ends once every row has hit a stop string.
    stopped = _run(_engine(tiny_model, stop_at_end_token=False, stop=stops), sampler, params)
    for before, after in zip(plain.samples, stopped.samples, strict=True):
        kept, stop = cut_at_stop(before["text"], stops)
        assert (after["text"], after["stop_string"], after["stop_reason"]) == (
            kept, stop, STOP_STRING)
        assert after["token_ids"] == before["token_ids"][:len(after["token_ids"])]
        assert kept.startswith(_text(tiny_model.tokenizer, after["token_ids"]))
        assert after["num_tokens"] == len(after["token_ids"])
    assert stopped.timing["generated_tokens"] < plain.timing["generated_tokens"] / 2


def test_beam_search_ends_its_hypotheses_at_stop_strings(tiny_model):
    plain = _run(_engine(tiny_model), "beam", {"num_beams": 2})
    stops = [_straddling(tiny_model, s["token_ids"]) for s in plain.samples]
    stopped = _run(_engine(tiny_model, stop=stops), "beam", {"num_beams": 2})
    assert stopped.timing["generated_tokens"] < plain.timing["generated_tokens"]
    for sample in stopped.samples:
        assert sample["stop_reason"] == STOP_STRING
        assert not any(s in sample["text"] for s in stops)


def test_metrics_count_only_the_kept_text(base_spec, write_spec, tmp_path):
    import json

    import samplerlab

    spec = {**base_spec, "metrics": ["length"],
            "generation": {**base_spec["generation"], "max_length": 24, "stop": ["e", "a"]}}
    result = samplerlab.run(write_spec(spec), results_root=tmp_path, progress=False)
    samples = [json.loads(line) for line in
               (result.run_dir / "samples.jsonl").read_text().splitlines()]
    assert {s["stop_reason"] for s in samples} == {STOP_STRING}
    assert all(s["stop_string"] in ("e", "a") and not {"e", "a"} & set(s["text"])
               for s in samples)
    mean_tokens = result.metrics["mean_tokens"].iloc[0]
    assert mean_tokens == pytest.approx(np.mean([s["num_tokens"] for s in samples]))
