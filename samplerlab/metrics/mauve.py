"""MAUVE (Pillutla et al. 2021) of the generations against human reference continuations."""

from __future__ import annotations

from typing import Any

import numpy as np

from samplerlab.errors import UserInputError
from samplerlab.metrics.base import Metric, MetricContext, Samples

INSTALL_HINT = ("the mauve metric needs the optional 'mauve-text' package "
                "(pip install 'samplerlab[mauve]' or pip install mauve-text)")


def require_mauve() -> Any:
    """Import ``mauve`` or raise a one-line :class:`UserInputError` saying how to get it."""
    try:
        import mauve
    except ImportError:
        raise UserInputError(INSTALL_HINT, field="metrics") from None
    return mauve


def text_features(model: Any, texts: list[str], batch_size: int = 8) -> np.ndarray:
    """Final-layer hidden state at each text's last token, under the run's own backbone.

    MAUVE's reference implementation embeds text with GPT-2 large this way; using the
    run's model keeps the metric offline (and comparable within a run, not across models).
    """
    backbone = model.causal_lm.backbone
    preprocessor = model.preprocessor
    rows = []
    for start in range(0, len(texts), batch_size):
        packed = preprocessor.generate_preprocess(texts[start:start + batch_size])
        ids = np.asarray(packed["token_ids"])
        mask = np.asarray(packed["padding_mask"]).astype(bool)
        hidden = np.asarray(backbone({"token_ids": ids, "padding_mask": mask}), dtype=float)
        last = np.maximum(mask.sum(axis=1) - 1, 0)
        rows.append(hidden[np.arange(len(ids)), last])
    return np.concatenate(rows) if rows else np.zeros((0, 0))


class Mauve(Metric):
    """MAUVE between the cell's generations and the dataset's reference continuations.

    Needs the optional ``mauve-text`` package, the run's model (features) and samples with
    a ``reference``. MAUVE compares two distributions, so it has no per-generation rows;
    it is reported without a bootstrap interval.

    Args:
        num_buckets: MAUVE's quantisation clusters (``"auto"``: a tenth of the samples).
        scaling_factor: MAUVE's divergence-curve scaling (5 in the paper).
        seed: MAUVE's k-means seed.

    Example:

    ```python
    metric = Mauve()  # raises UserInputError when mauve-text is not installed
    ```
    """

    name = "mauve"
    requires = frozenset({"model", "references"})
    bootstrap = False

    def __init__(self, num_buckets: int | str = "auto", scaling_factor: float = 5.0,
                 seed: int = 25) -> None:
        self._mauve = require_mauve()
        self.num_buckets = num_buckets
        self.scaling_factor = scaling_factor
        self.seed = seed

    def columns(self) -> list[str]:
        return ["mauve"]

    def stats(self, samples: Samples, context: MetricContext) -> np.ndarray:
        pairs = [(s.get("text") or "", s["reference"]) for s in samples if s.get("reference")]
        if len(pairs) < 2:
            return np.array([[np.nan]])
        p = text_features(context.model, [g for g, _ in pairs])
        q = text_features(context.model, [r for _, r in pairs])
        out = self._mauve.compute_mauve(p_features=p, q_features=q, num_buckets=self.num_buckets,
                                        mauve_scaling_factor=self.scaling_factor,
                                        seed=self.seed, verbose=False)
        return np.array([[float(out.mauve)]])

    def aggregate(self, stats: np.ndarray) -> dict[str, float]:
        return {"mauve": float(stats[0, 0])}
