"""Self-BLEU (Zhu et al. 2018): BLEU-4 of each generation against the rest of its cell."""

from __future__ import annotations

import numpy as np

from samplerlab.metrics.base import MetricContext, Samples, SumPooledMetric, ratio
from samplerlab.metrics.text import text_index

EPSILON = 0.1  # nltk SmoothingFunction().method1's default


def _closest_other_length(lengths: np.ndarray) -> np.ndarray:
    """For each text, the length of the closest *other* text (ties: the shorter), as nltk."""
    values, counts = np.unique(lengths, return_counts=True)
    at = np.searchsorted(values, lengths)
    # Another text of the same length exists: the closest reference length is the length.
    out = lengths.astype(float).copy()
    alone = counts[at] == 1
    below = np.where(at > 0, values[np.maximum(at - 1, 0)], -1)
    above = np.where(at < len(values) - 1, values[np.minimum(at + 1, len(values) - 1)], -1)
    lo_gap = np.where(below >= 0, lengths - below, np.inf)
    hi_gap = np.where(above >= 0, above - lengths, np.inf)
    pick = np.where(lo_gap <= hi_gap, below, above)
    out[alone] = pick[alone]
    return out


def _max_in_other_texts(table) -> np.ndarray:
    """Per (text, n-gram) pair: the n-gram's largest count in any *other* text."""
    starts = table.group_start
    group = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(table.code)]))
    max1 = np.maximum.reduceat(table.count, starts)
    is_max = table.count == max1[group]
    # The first pair holding the maximum stands for it; the others see the maximum.
    seen = np.cumsum(is_max)
    seen_before = np.r_[0, seen[starts[1:] - 1]]
    first_max = is_max & (seen - seen_before[group] == 1)
    rest = np.where(first_max, 0, table.count)
    max2 = np.maximum.reduceat(rest, starts)
    return np.where(first_max, max2[group], max1[group])


def self_bleu_scores(samples: Samples, context: MetricContext | None) -> np.ndarray:
    """BLEU-4 of every generation against all the others, as nltk's ``sentence_bleu``.

    Equal to ``sentence_bleu(others, hyp, (0.25,) * 4,
    smoothing_function=SmoothingFunction().method1)`` on unit lists, computed for all
    generations at once: an n-gram's clip count against "all other texts" is the largest
    count in any text, or the second largest for the text that holds the largest.
    """
    index = text_index(samples, context)
    n_texts = index.num_texts
    if n_texts < 2:
        return np.full(n_texts, np.nan)
    log_p = np.zeros(n_texts)
    first_matches = None
    for n in range(1, 5):
        table = index.tables[n]
        numer = np.zeros(n_texts)
        if len(table.code):
            others = _max_in_other_texts(table)
            numer = np.bincount(table.doc, weights=np.minimum(table.count, others),
                                minlength=n_texts)
        denom = np.maximum(index.lengths - n + 1, 1).astype(float)
        if n == 1:
            first_matches = numer
        p = np.where(numer > 0, numer, EPSILON) / denom
        log_p += 0.25 * np.log(p)
    hyp = index.lengths.astype(float)
    ref = _closest_other_length(index.lengths)
    with np.errstate(divide="ignore", invalid="ignore"):
        bp = np.where(hyp > ref, 1.0, np.exp(1.0 - ref / np.maximum(hyp, 1)))
    bleu = bp * np.exp(log_p)
    # nltk returns 0 when no unigram matches (an empty text included).
    return np.where((first_matches == 0) | (hyp == 0), 0.0, bleu)


class SelfBleu(SumPooledMetric):
    """Self-BLEU: mean BLEU-4 of each generation with all other generations as references.

    The Texygen convention (Zhu et al. 2018) that Holtzman et al. (2020) use: uniform
    weights over 1- to 4-grams, nltk's smoothing method 1, brevity penalty against the
    closest reference length. Generations are split into units (words; CJK characters).
    Higher means the cell's generations resemble each other more.

    Args:
        max_samples: score only this many generations (drawn with ``seed``) as
            hypotheses, still against all others, as Holtzman et al. do. The computation
            is linear in the cell size, so the default scores every generation.
        seed: which generations are drawn when ``max_samples`` is set.

    Example:

    ```python
    from samplerlab.metrics.self_bleu import SelfBleu

    metric = SelfBleu()
    samples = [{"text": "the cat sat on the mat"}] * 2
    assert metric.aggregate(metric.stats(samples, None)) == {"self_bleu": 1.0}
    ```
    """

    name = "self_bleu"

    def __init__(self, max_samples: int | None = None, seed: int = 0) -> None:
        self.max_samples = max_samples
        self.seed = seed

    def columns(self) -> list[str]:
        return ["self_bleu"]

    def stats(self, samples: Samples, context: MetricContext | None) -> np.ndarray:
        scores = self_bleu_scores(samples, context)
        scored = ~np.isnan(scores)
        if self.max_samples is not None and scored.sum() > self.max_samples:
            rng = np.random.default_rng(self.seed)
            keep = rng.choice(np.flatnonzero(scored), size=self.max_samples, replace=False)
            scored = np.zeros_like(scored)
            scored[keep] = True
        return np.column_stack([np.where(scored, scores, 0.0), scored.astype(float)])

    def from_sums(self, sums: np.ndarray) -> dict[str, np.ndarray]:
        return {"self_bleu": ratio(sums[:, 0], sums[:, 1])}

