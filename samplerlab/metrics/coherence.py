"""Coherence (Su and Collier 2022): how close a continuation's meaning stays to its prompt."""

from __future__ import annotations

import numpy as np

from samplerlab.metrics.base import MetricContext, Samples, SumPooledMetric, ratio
from samplerlab.metrics.features import embed


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity (NaN where a row is all zeros)."""
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return ratio((a * b).sum(axis=1), norms)


class Coherence(SumPooledMetric):
    """Mean cosine similarity between the embedding of each prompt and of its continuation.

    Su and Collier (2022, "Contrastive Search Is What You Need For Neural Text
    Generation") embed both with SimCSE; samplerlab embeds them with the run's scoring
    model (``metrics_model``; by default the generating model): the mean of its final
    hidden states over the text's tokens (:func:`samplerlab.metrics.features.embed`).
    Values are comparable within a run and between runs with the same metrics model,
    not with the paper's SimCSE numbers. Generations without a prompt are left out.

    Example:

    ```python
    from samplerlab.metrics.base import MetricContext
    from samplerlab.metrics.coherence import Coherence

    samples = [{"prompt": "The cat", "text": " sat on the mat"}]
    metric = Coherence()
    scores = metric.aggregate(metric.stats(samples, MetricContext(model=model)))
    assert -1.0 <= scores["coherence"] <= 1.0  # a cosine similarity
    ```
    """

    name = "coherence"
    requires = frozenset({"model"})

    def columns(self) -> list[str]:
        return ["coherence"]

    def stats(self, samples: Samples, context: MetricContext) -> np.ndarray:
        has_prompt = np.array([bool(s.get("prompt")) for s in samples], dtype=bool)
        out = np.zeros((len(samples), 2))
        chosen = [s for s, keep in zip(samples, has_prompt, strict=True) if keep]
        if chosen:
            def features(texts: list[str]) -> np.ndarray:
                return embed(context.model, texts, "mean", batch_size=context.batch_size,
                             max_tokens=context.max_tokens, memo=context.memo)

            similarity = cosine(features([s["prompt"] for s in chosen]),
                                features([s.get("text") or "" for s in chosen]))
            out[has_prompt, 0] = np.nan_to_num(similarity)
            out[has_prompt, 1] = ~np.isnan(similarity)
        context.advance(len(samples))
        return out

    def from_sums(self, sums: np.ndarray) -> dict[str, np.ndarray]:
        return {"coherence": ratio(sums[:, 0], sums[:, 1])}
