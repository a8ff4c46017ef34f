"""Zipf coefficient of generated text (Holtzman et al. 2020)."""

from __future__ import annotations

from typing import Any

import numpy as np

from samplerlab.metrics.base import Metric, MetricContext, Samples
from samplerlab.metrics.text import text_index


def zipf_from_counts(counts: np.ndarray, top: int) -> np.ndarray:
    """Zipf coefficient of each row of type counts: ``-slope`` of log count vs log rank.

    The fit uses the ``top`` most frequent types (ranks 1..top), as Holtzman et al.'s
    ``zipf.py`` (``linregress(log rank, log count)`` over the 5,000 most frequent tokens).
    Rows with fewer than two types give NaN.
    """
    counts = np.atleast_2d(np.asarray(counts, dtype=float))
    k = min(top, counts.shape[1])
    if k == 0:
        return np.full(len(counts), np.nan)
    if counts.shape[1] > k:
        counts = -np.partition(-counts, k - 1, axis=1)[:, :k]
    counts = -np.sort(-counts, axis=1)
    mask = counts > 0
    x = np.log(np.arange(1, k + 1, dtype=float))[None, :] * mask
    y = np.log(np.where(mask, counts, 1.0))
    m = mask.sum(axis=1).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        mx, my = x.sum(1) / m, y.sum(1) / m
        sxy = (x * y).sum(1) - m * mx * my
        sxx = (x * x).sum(1) - m * mx * mx
        slope = sxy / sxx
    # Round off float noise so that a flat distribution gives 0, not -3e-17.
    return np.where(m >= 2, np.round(-slope, 12) + 0.0, np.nan)


class Zipf(Metric):
    """Zipf coefficient ``s`` of the cell's pooled unit (or token) frequencies, ``f ∝ r^-s``.

    Human English text is near 1; degenerate, repetitive text is steeper. Rows of
    ``stats`` are sparse per-generation type counts, so a bootstrap replicate is one
    sparse product; its rank-frequency refit costs more than the other metrics, hence
    ``bootstrap_samples`` replicates (default 200) instead of the run's 1,000. Resampling
    with replacement duplicates generations, which steepens the slope, so the interval is
    bias-corrected: the replicates are shifted to have the estimate as their median.

    Args:
        units: ``"words"`` (text units; CJK characters count singly) or ``"tokens"``
            (the generated token ids, as Holtzman et al.; needs ``token_ids``).
        top: number of most frequent types in the fit (5,000 in Holtzman et al.).
        bootstrap_samples: bootstrap replicates for the interval.

    Example:

    ```python
    from samplerlab.metrics.zipf import Zipf

    metric = Zipf()
    text = " ".join(["a"] * 12 + ["b"] * 6 + ["c"] * 4 + ["d"] * 3)  # f = 12 / r
    assert round(metric.aggregate(metric.stats([{"text": text}], None))["zipf"], 6) == 1.0
    ```
    """

    name = "zipf"
    # Duplicated generations in a replicate steepen the slope; centre the interval.
    interval = "bias_corrected"

    def __init__(self, units: str = "words", top: int = 5000,
                 bootstrap_samples: int = 200) -> None:
        self.units = units
        self.top = top
        self.max_bootstrap = bootstrap_samples

    def columns(self) -> list[str]:
        return ["zipf"]

    def stats(self, samples: Samples, context: MetricContext | None) -> Any:
        from scipy import sparse

        if self.units == "tokens":
            ids = [np.asarray(s.get("token_ids") or [], dtype=np.int64) for s in samples]
            lengths = np.array([len(i) for i in ids], dtype=np.int64)
            flat = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
            codes = np.unique(flat, return_inverse=True)[1].ravel()
            width = int(codes.max()) + 1 if len(codes) else 0
            doc = np.repeat(np.arange(len(samples)), lengths)
        else:
            index = text_index(samples, context)
            codes, doc, width = index.units, index.doc, index.tables[1].num_codes
        counts = sparse.coo_matrix((np.ones(len(codes)), (doc, codes)),
                                   shape=(len(samples), width)).tocsr()
        counts.sum_duplicates()
        return counts

    def aggregate(self, stats: Any) -> dict[str, float]:
        totals = np.asarray(stats.sum(axis=0)).ravel()
        return {"zipf": float(zipf_from_counts(totals[None, :], self.top)[0])}

    def aggregate_weighted(self, stats: Any, weights: np.ndarray) -> dict[str, np.ndarray]:
        totals = np.asarray(stats.T @ weights.T).T  # (replicates, types)
        return {"zipf": zipf_from_counts(totals, self.top)}
