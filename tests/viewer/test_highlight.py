"""Repeated n-grams are highlighted exactly as samplerlab's rep-n counts them."""

from __future__ import annotations

import random

import pytest

from samplerlab.metrics.rep_n import RepN, repeated_windows
from samplerlab.metrics.text import unit_spans, units
from samplerlab.viewer.highlight import highlight

TEXTS = [
    "a b a b a",
    "the cat sat on the mat the cat sat on the mat",
    "  leading and\ttrailing\n\nspaces  ",
    "床前明月光，疑是地上霜。床前明月光",
    "mixed 中文 and english english 中文",
    "odd\x1cseparators\u2003em\u3000ideographic",
    "",
    "one",
]


@pytest.mark.parametrize("text", TEXTS)
def test_unit_spans_cut_the_units_of_the_metrics(text):
    assert [text[a:b] for a, b in unit_spans(text)] == units(text)


def _random_text(rng: random.Random) -> str:
    words = ["the", "cat", "sat", "a", "mat", "on", "床", "前"]
    return " ".join(rng.choice(words) for _ in range(rng.randint(0, 30)))


@pytest.mark.parametrize("n", [2, 3, 4])
def test_highlighted_windows_are_the_rep_n_of_the_text(n):
    rng = random.Random(n)
    metric = RepN()
    for _ in range(200):
        text = _random_text(rng)
        h = highlight(text, n)
        expected = metric.aggregate(metric.stats([{"text": text}], None))[f"rep_{n}"]
        if h.windows == 0:
            assert h.repeated == 0
            continue
        assert h.rep == pytest.approx(float(expected))


def test_simctg_never_counts_the_window_ending_on_the_last_unit():
    # (a b) (b a) (a b): the final (b a) is not a window, so only the second (a b) repeats.
    assert repeated_windows("a b a b a".split(), 2) == [2]
    h = highlight("a b a b a", 2)
    assert [p.text for p in h.pieces if p.repeated] == ["a b"]
    assert (h.repeated, h.windows) == (1, 3)


def test_pieces_rebuild_the_text_and_mark_search_matches_case_insensitively():
    text = "the cat sat.\nthe Cat sat on it; the cat sat"
    h = highlight(text, 2, query="CAT")
    assert "".join(p.text for p in h.pieces) == text
    assert [p.text for p in h.pieces if p.match] == ["cat", "Cat", "cat"]
    # Units keep their case: "the Cat" is new, the last "the cat" repeats the first.
    assert [(p.text, p.match) for p in h.pieces if p.repeated] == [("the ", False),
                                                                   ("cat", True)]


def test_a_query_with_regex_characters_is_plain_text():
    h = highlight("a (b) [c] a.b", 4, query="(b)")
    assert [p.text for p in h.pieces if p.match] == ["(b)"]
