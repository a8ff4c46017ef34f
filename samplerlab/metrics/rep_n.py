"""SimCTG's rep-n (Su et al. 2022), numerically identical to its evaluation script."""

from __future__ import annotations

import numpy as np

from samplerlab.metrics.base import MetricContext, Samples, SumPooledMetric, ratio
from samplerlab.metrics.text import text_index

NS = (2, 3, 4)


def simctg_counts(samples: Samples, context: MetricContext | None) -> np.ndarray:
    """Per text and n = 2, 3, 4: distinct n-grams and n-grams, SimCTG's window convention.

    Columns: ``unique_2, total_2, unique_3, total_3, unique_4, total_4``. A text of ``L``
    units has ``max(L - n, 0)`` n-grams: SimCTG's loop stops before the n-gram that ends
    on the last unit.
    """
    index = text_index(samples, context)
    out = np.zeros((index.num_texts, 2 * len(NS)))
    for j, n in enumerate(NS):
        out[:, 2 * j] = index.simctg_unique(n)
        out[:, 2 * j + 1] = np.maximum(index.lengths - n, 0)
    return out


def repeated_windows(text_units: list[str], n: int) -> list[int]:
    """Start positions of the n-gram windows that repeat an earlier window of the text.

    The windows are SimCTG's (``max(L - n, 0)`` of them: the n-gram ending on the last
    unit is not counted), so ``len(repeated_windows(u, n))`` is the text's
    ``total - distinct`` and ``rep_n`` of the text alone is
    ``100 * len(repeated) / max(L - n, 0)``. The viewer highlights these windows.

    Example:

    ```python
    from samplerlab.metrics.rep_n import repeated_windows

    assert repeated_windows("a b a b a".split(), 2) == [2]
    # (a b) again at position 2; the final (b a) is not counted
    ```
    """
    seen: set[tuple[str, ...]] = set()
    repeated = []
    for start in range(max(len(text_units) - n, 0)):
        gram = tuple(text_units[start:start + n])
        if gram in seen:
            repeated.append(start)
        else:
            seen.add(gram)
    return repeated


def rep_from_sums(sums: np.ndarray) -> dict[str, np.ndarray]:
    """``rep_n = 100 * (1 - sum unique / sum total)`` from pooled counts."""
    return {f"rep_{n}": 100.0 * (1.0 - ratio(sums[:, 2 * j], sums[:, 2 * j + 1]))
            for j, n in enumerate(NS)}


class RepN(SumPooledMetric):
    """Repetition rate rep-n, n = 2, 3, 4, as SimCTG's ``measure_repetition_and_diversity``.

    Texts are split into units (whitespace words; a CJK character is one unit). For each
    text, the distinct n-grams and the n-grams are counted, with SimCTG's window
    convention: a text of ``L`` units contributes ``L - n`` n-grams, so the n-gram that
    ends on its last unit is never counted. The counts are summed over the cell's
    generations and ``rep_n = 100 * (1 - distinct / total)``. Values are in percent;
    SimCTG rounds them to two decimals, samplerlab keeps full precision.

    Example:

    ```python
    import pytest
    from samplerlab.metrics.rep_n import RepN

    metric = RepN()
    samples = [{"text": "a b a b a"}]
    assert metric.aggregate(metric.stats(samples, None))["rep_2"] == pytest.approx(100 / 3)
    # SimCTG counts (a b)(b a)(a b), not the final (b a): 2 distinct of 3
    ```
    """

    name = "rep_n"

    def columns(self) -> list[str]:
        return [f"rep_{n}" for n in NS]

    def stats(self, samples: Samples, context: MetricContext | None) -> np.ndarray:
        return simctg_counts(samples, context)

    def from_sums(self, sums: np.ndarray) -> dict[str, np.ndarray]:
        return rep_from_sums(sums)
