"""SimCTG's diversity: the product of (1 - rep_n / 100) over n = 2, 3, 4."""

from __future__ import annotations

import numpy as np

from samplerlab.metrics.base import MetricContext, Samples, SumPooledMetric
from samplerlab.metrics.rep_n import NS, rep_from_sums, simctg_counts


class Diversity(SumPooledMetric):
    """``diversity = prod_{n=2..4} (1 - rep_n / 100)`` (Su et al. 2022), in [0, 1].

    SimCTG's script multiplies the rep-n values *after* rounding them to two decimals;
    samplerlab does the same, so its diversity equals the published script's exactly.

    Example:

    ```python
    from samplerlab.metrics.diversity import Diversity

    metric = Diversity()
    assert metric.aggregate(metric.stats([{"text": "a b c d e f"}], None)) == {"diversity": 1.0}
    ```
    """

    name = "diversity"

    def columns(self) -> list[str]:
        return ["diversity"]

    def stats(self, samples: Samples, context: MetricContext | None) -> np.ndarray:
        return simctg_counts(samples, context)

    def from_sums(self, sums: np.ndarray) -> dict[str, np.ndarray]:
        reps = rep_from_sums(sums)
        value = np.ones(len(sums))
        for n in NS:
            value = value * (1.0 - np.round(reps[f"rep_{n}"], 2) / 100.0)
        return {"diversity": value}
