"""Pieces of a continuation to show: repeated n-grams as rep-n counts them, search matches.

The units and the n-gram windows are samplerlab.metrics' own (:func:`~samplerlab.metrics.
text.unit_spans`, :func:`~samplerlab.metrics.rep_n.repeated_windows`): a highlighted window
is exactly one that makes the text's ``rep_n`` larger, so the count shown next to a
continuation is the metric of that continuation alone.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from samplerlab.metrics.rep_n import repeated_windows
from samplerlab.metrics.text import unit_spans


@dataclass(frozen=True)
class Piece:
    """A run of characters with the same marks."""

    text: str
    repeated: bool = False
    match: bool = False


@dataclass(frozen=True)
class Highlighted:
    pieces: list[Piece]
    n: int
    repeated: int  # repeated windows (total - distinct, SimCTG's windows)
    windows: int  # SimCTG's windows: max(units - n, 0)

    @property
    def rep(self) -> float:
        """``rep_n`` of this text alone, in percent (NaN without windows)."""
        return 100.0 * self.repeated / self.windows if self.windows else math.nan


def highlight(text: str, n: int, query: str | None = None) -> Highlighted:
    """Split ``text`` into pieces marking repeated ``n``-grams and matches of ``query``.

    Example:

    ```python
    import pytest
    from samplerlab.viewer.highlight import highlight

    h = highlight("a b a b a", 2)
    assert [p.text for p in h.pieces if p.repeated] == ["a b"]  # the third window repeats
    assert h.rep == pytest.approx(100 / 3)  # rep_2 of the text, as samplerlab.metrics has it
    ```
    """
    spans = unit_spans(text)
    starts = repeated_windows([text[a:b] for a, b in spans], n)
    repeated_ranges = [(spans[s][0], spans[s + n - 1][1]) for s in starts]
    match_ranges = ([m.span() for m in re.finditer(re.escape(query), text, re.IGNORECASE)]
                    if query else [])
    pieces = _pieces(text, repeated_ranges, match_ranges)
    return Highlighted(pieces, n, len(starts), max(len(spans) - n, 0))


def _pieces(text: str, repeated: list[tuple[int, int]],
            matches: list[tuple[int, int]]) -> list[Piece]:
    """Sweep over the range boundaries: a piece ends wherever a mark starts or stops."""
    if not repeated and not matches:
        return [Piece(text)] if text else []
    events: dict[int, list[int]] = {0: [0, 0], len(text): [0, 0]}
    for kind, ranges in ((0, repeated), (1, matches)):
        for a, b in ranges:
            events.setdefault(a, [0, 0])[kind] += 1
            events.setdefault(b, [0, 0])[kind] -= 1
    pieces: list[Piece] = []
    depth = [0, 0]
    points = sorted(events)
    for a, b in zip(points, points[1:], strict=False):
        depth = [depth[0] + events[a][0], depth[1] + events[a][1]]
        piece = Piece(text[a:b], depth[0] > 0, depth[1] > 0)
        if pieces and (pieces[-1].repeated, pieces[-1].match) == (piece.repeated, piece.match):
            pieces[-1] = Piece(pieces[-1].text + piece.text, piece.repeated, piece.match)
        else:
            pieces.append(piece)
    return pieces
