"""Text units and a shared n-gram index for the text metrics.

**Units.** Every metric that splits text into words uses :func:`units`: whitespace-
separated words, except that each CJK character (Chinese, Japanese kana, CJK
punctuation, full-width forms) is a unit of its own, so Chinese output, written
without spaces, gets meaningful repetition and diversity numbers. For text without
CJK characters, :func:`units` is exactly ``text.split()``, the tokenisation of
SimCTG's evaluation script.

**Index.** :class:`TextIndex` maps every unit and every n-gram (n = 1..4) of a cell to
an integer code, exactly (codes come from factorising pairs of codes, not from hashing,
so there are no collisions). All text metrics of one scoring call share one index.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

_CJK = ("\u3000-\u303f"  # CJK symbols and punctuation
        "\u3040-\u30ff"  # hiragana, katakana
        "\u3400-\u4dbf"  # CJK extension A
        "\u4e00-\u9fff"  # CJK unified ideographs
        "\uf900-\ufaff"  # CJK compatibility ideographs
        "\uff00-\uffef"  # half- and full-width forms (，！？)
        "\U00020000-\U0003134f")  # CJK extensions B-G
HAS_CJK = re.compile(f"[{_CJK}]")  # whether a text holds CJK (counted per character)
_UNIT = re.compile(f"[{_CJK}]|[^\\s{_CJK}]+")
MAX_N = 4


def units(text: str) -> list[str]:
    """Split text into units: whitespace words, and each CJK character on its own.

    Example:

    ```python
    from samplerlab.metrics.text import units

    assert units("the cat  sat") == ["the", "cat", "sat"]
    assert units("床前明月光，hi") == ["床", "前", "明", "月", "光", "，", "hi"]
    ```
    """
    if HAS_CJK.search(text) is None:
        return text.split()
    return _UNIT.findall(text)


_WORD = re.compile(r"\S+")


def unit_spans(text: str) -> list[tuple[int, int]]:
    """Character offsets ``(start, end)`` of each unit of :func:`units`, in order.

    ``[text[a:b] for a, b in unit_spans(text)] == units(text)``: the viewer uses the
    offsets to highlight the units the metrics count.

    Example:

    ```python
    from samplerlab.metrics.text import unit_spans

    assert unit_spans("the  cat") == [(0, 3), (5, 8)]
    ```
    """
    pattern = _WORD if HAS_CJK.search(text) is None else _UNIT
    return [m.span() for m in pattern.finditer(text)]


@dataclass
class GramTable:
    """The n-grams of one order, counted per text (standard windows: ``L - n + 1`` per text).

    Attributes:
        doc, code, count: one entry per distinct (text, n-gram) pair, grouped by n-gram
            code (ascending) and then by text.
        group_start: index of each n-gram code's first pair (codes are ``0..num_codes-1``).
        last_pair_count: per text, how often the text's last n-gram (the one ending on its
            last unit) occurs in that text; 0 for texts shorter than ``n``.
    """

    doc: np.ndarray
    code: np.ndarray
    count: np.ndarray
    group_start: np.ndarray
    last_pair_count: np.ndarray

    @property
    def num_codes(self) -> int:
        return len(self.group_start)


@dataclass
class TextIndex:
    """Every unit and n-gram (n = 1..4) of a list of texts, as exact integer codes.

    Attributes:
        lengths: units per text, shape ``(n,)``.
        doc: the text of each flat unit position, shape ``(T,)``.
        units: the unit code at each flat position.
        tables: :class:`GramTable` per order ``n``.
    """

    lengths: np.ndarray
    doc: np.ndarray
    units: np.ndarray
    tables: dict[int, GramTable]

    @classmethod
    def build(cls, texts: list[str], max_n: int = MAX_N) -> TextIndex:
        import pandas as pd

        split = [units(t or "") for t in texts]
        lengths = np.fromiter((len(s) for s in split), dtype=np.int64, count=len(split))
        total = int(lengths.sum())
        if total:
            unit_codes = pd.factorize(np.asarray([u for s in split for u in s],
                                                 dtype=object))[0].astype(np.int64)
        else:
            unit_codes = np.zeros(0, dtype=np.int64)
        base = int(unit_codes.max()) + 1 if total else 1
        doc = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
        starts = np.cumsum(lengths) - lengths
        remaining = lengths[doc] - (np.arange(total, dtype=np.int64) - starts[doc])
        tables = {}
        codes = unit_codes  # dense codes of the (n-1)-grams at each flat position
        for n in range(1, max_n + 1):
            pos = np.flatnonzero(remaining >= n)
            if n == 1:
                raw = unit_codes
            else:
                # (dense code of the (n-1)-gram, next unit) identifies an n-gram exactly.
                raw = codes[pos] * base + unit_codes[pos + n - 1]
            tables[n], codes = _count(raw, pos, doc, remaining == n, len(texts))
        return cls(lengths, doc, unit_codes, tables)

    @property
    def num_texts(self) -> int:
        return len(self.lengths)

    def simctg_unique(self, n: int) -> np.ndarray:
        """Per text, distinct n-grams in SimCTG's windows (``while end_idx < len``).

        SimCTG never counts the n-gram that ends on a text's last unit; that removes one
        distinct n-gram exactly when the last n-gram occurs nowhere else in the text.
        """
        table = self.tables[n]
        unique = np.bincount(table.doc, minlength=self.num_texts)
        return unique - (table.last_pair_count == 1)


def _count(raw: np.ndarray, pos: np.ndarray, doc: np.ndarray, is_last: np.ndarray,
           num_texts: int) -> tuple[GramTable, np.ndarray]:
    """Group the n-grams starting at ``pos`` (codes ``raw``) by (n-gram, text).

    ``doc`` and ``is_last`` are indexed by flat position (``is_last``: the n-gram there
    ends on its text's last unit). Returns the table and the dense code of each flat
    position (-1 where no n-gram starts).
    """
    dense = np.full(len(doc), -1, dtype=np.int64)
    if len(raw) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return GramTable(empty, empty, empty, empty, np.zeros(num_texts, np.int64)), dense
    # Positions are in text order, so ordering by (n-gram, position) orders by (n-gram,
    # text). Sorting one packed int64 key is several times faster than a stable argsort.
    span = len(doc)
    if int(raw.max()) < (2**62) // span:
        s_raw, s_pos = np.divmod(np.sort(raw * span + pos), span)
    else:
        order = np.argsort(raw, kind="stable")
        s_raw, s_pos = raw[order], pos[order]
    s_doc = doc[s_pos]
    new_code = np.r_[True, s_raw[1:] != s_raw[:-1]]
    new_pair = new_code | np.r_[True, s_doc[1:] != s_doc[:-1]]
    dense_sorted = np.cumsum(new_code) - 1
    dense[s_pos] = dense_sorted
    pair_start = np.flatnonzero(new_pair)
    count = np.diff(np.r_[pair_start, len(s_raw)])
    pair_code = dense_sorted[pair_start]
    group_start = np.flatnonzero(np.r_[True, pair_code[1:] != pair_code[:-1]])
    # How often each text's last n-gram occurs in that text (SimCTG drops that window).
    last = np.flatnonzero(is_last[s_pos])
    pair_of_last = np.cumsum(new_pair)[last] - 1
    last_pair_count = np.zeros(num_texts, dtype=np.int64)
    last_pair_count[s_doc[last]] = count[pair_of_last]
    return GramTable(s_doc[pair_start], pair_code, count, group_start, last_pair_count), dense


def text_index(samples: list[dict[str, Any]], context: Any = None) -> TextIndex:
    """The :class:`TextIndex` of the samples' ``text``, shared through ``context.cache``."""
    cache = getattr(context, "cache", None)
    key = ("text_index", id(samples), len(samples))
    if cache is not None and key in cache and cache[key][0] is samples:
        return cache[key][1]
    index = TextIndex.build([s.get("text") or "" for s in samples])
    if cache is not None:
        # Holding the list keeps its id from being reused by another list.
        cache[key] = (samples, index)
    return index
