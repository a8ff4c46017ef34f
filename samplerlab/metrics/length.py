"""Length of the generations and the share that stopped at the end token."""

from __future__ import annotations

import numpy as np

from samplerlab.metrics.base import MetricContext, Samples, SumPooledMetric, ratio
from samplerlab.metrics.text import text_index


def _token_count(sample: dict) -> float:
    if sample.get("num_tokens") is not None:
        return float(sample["num_tokens"])
    if sample.get("token_ids") is not None:
        return float(len(sample["token_ids"]))
    return np.nan


class Length(SumPooledMetric):
    """Mean generated tokens, mean generated units (words; CJK characters) and end-token share.

    ``mean_tokens`` uses the sample's ``num_tokens`` (the end token is not counted);
    ``end_token_share`` is the fraction with ``stop_reason == "end_token"``. Either is
    NaN for generations that lack the field (text scored from elsewhere).

    Example:

    ```python
    from samplerlab.metrics.length import Length

    metric = Length()
    samples = [{"text": "a b c", "num_tokens": 4, "stop_reason": "end_token"},
               {"text": "a", "num_tokens": 2, "stop_reason": "max_length"}]
    assert metric.aggregate(metric.stats(samples, None)) == {
        "mean_tokens": 3.0, "mean_words": 2.0, "end_token_share": 0.5}
    ```
    """

    name = "length"

    def columns(self) -> list[str]:
        return ["mean_tokens", "mean_words", "end_token_share"]

    def stats(self, samples: Samples, context: MetricContext | None) -> np.ndarray:
        tokens = np.array([_token_count(s) for s in samples], dtype=float)
        has_tokens = ~np.isnan(tokens)
        reasons = [s.get("stop_reason") for s in samples]
        has_reason = np.array([r is not None for r in reasons], dtype=float)
        ended = np.array([r == "end_token" for r in reasons], dtype=float)
        words = text_index(samples, context).lengths.astype(float)
        return np.column_stack([np.where(has_tokens, tokens, 0.0), has_tokens.astype(float),
                                words, np.ones(len(samples)), ended, has_reason])

    def from_sums(self, sums: np.ndarray) -> dict[str, np.ndarray]:
        return {"mean_tokens": ratio(sums[:, 0], sums[:, 1]),
                "mean_words": ratio(sums[:, 2], sums[:, 3]),
                "end_token_share": ratio(sums[:, 4], sums[:, 5])}
