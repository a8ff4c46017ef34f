"""distinct-n (Li et al. 2016): distinct n-grams over all n-grams of a cell."""

from __future__ import annotations

import numpy as np

from samplerlab.metrics.base import MetricContext, Samples, SumPooledMetric, ratio
from samplerlab.metrics.text import text_index


class DistinctN(SumPooledMetric):
    """distinct-n: the number of distinct n-grams of the cell over its number of n-grams.

    N-grams are every ``n`` consecutive units of a generation (``L - n + 1`` of them; they
    never span two generations), pooled over the cell. For the bootstrap, an n-gram type
    shared by ``m`` generations credits ``1/m`` to each of them, so the rows sum to the
    cell's exact count of distinct n-grams and resampling generations is cheap.

    Args:
        n: one order (column ``distinct_<n>``); by default orders 1 to 4.

    Example:

    ```python
    from samplerlab.metrics.distinct_n import DistinctN

    metric = DistinctN(n=1)
    scores = metric.aggregate(metric.stats([{"text": "a b"}, {"text": "a c"}], None))
    assert scores == {"distinct_1": 0.75}  # 3 distinct of 4 words
    ```
    """

    name = "distinct_n"

    def __init__(self, n: int | None = None) -> None:
        self.orders = (n,) if n is not None else (1, 2, 3, 4)

    def columns(self) -> list[str]:
        return [f"distinct_{n}" for n in self.orders]

    def stats(self, samples: Samples, context: MetricContext | None) -> np.ndarray:
        index = text_index(samples, context)
        out = np.zeros((index.num_texts, 2 * len(self.orders)))
        for j, n in enumerate(self.orders):
            table = index.tables[n]
            texts_with = np.bincount(table.code, minlength=table.num_codes)
            credit = 1.0 / texts_with[table.code] if len(table.code) else np.zeros(0)
            out[:, 2 * j] = np.bincount(table.doc, weights=credit, minlength=index.num_texts)
            out[:, 2 * j + 1] = np.maximum(index.lengths - n + 1, 0)
        return out

    def from_sums(self, sums: np.ndarray) -> dict[str, np.ndarray]:
        return {f"distinct_{n}": ratio(sums[:, 2 * j], sums[:, 2 * j + 1])
                for j, n in enumerate(self.orders)}
