"""The metric contract: per-row sufficient statistics, an aggregate, and a cheap bootstrap.

A metric turns a cell's samples into a matrix of *sufficient statistics*, one row per
generation (or per timed call for latency), and aggregates that matrix into its
columns. Because the aggregate is a function of the rows only, a bootstrap confidence
interval is a matter of resampling rows and aggregating again: no text is re-read and
no model is re-run. Most built-in metrics pool counts over the cell (SimCTG's rep-n sums
n-gram counts), so their aggregate is a function of the column sums of ``stats``; those
derive from :class:`SumPooledMetric` and bootstrap all replicates in one matrix product.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

Samples = list[dict[str, Any]]


@dataclass
class MetricContext:
    """What a metric may use besides the samples.

    Attributes:
        model: the model that scores (a :class:`samplerlab.models.LoadedModel`: the run's
            ``metrics_model``, by default the generating model), or ``None``.
        tokenized_by_model: the samples' ``token_ids`` come from ``model``'s tokenizer,
            so perplexity scores them as they are; otherwise it re-tokenizes the text.
        human: human texts to compare with (the samples of the human row: ``text`` and
            ``prompt``), for metrics that need them (MAUVE); ``None``: the samples'
            ``reference`` continuations.
        timing: the cell's timing dict (``first_call_s``, ``steady_call_s``, ``compile_s``,
            ``generated_tokens``, ``steady_generated_tokens``), or ``None``.
        seed: seeds the bootstrap, so intervals are reproducible.
        n_bootstrap: bootstrap replicates.
        confidence: two-sided level of the percentile intervals.
        batch_size: texts per forward pass of ``model``.
        max_tokens: tokens of one scored sequence (default: the model's
            ``max_sequence_length``).
        progress: called with the number of samples a model metric has just scored.
        cache: scratch space shared by the metrics of one scoring call (the text index).
        memo: kept across scoring calls that share this context (features of texts).
    """

    model: Any = None
    tokenized_by_model: bool = False
    human: list[dict[str, Any]] | None = None
    timing: dict[str, Any] | None = None
    seed: int = 0
    n_bootstrap: int = 1000
    confidence: float = 0.95
    batch_size: int = 2
    max_tokens: int | None = None
    progress: Callable[[int], None] | None = field(default=None, repr=False)
    cache: dict[str, Any] = field(default_factory=dict, repr=False)
    memo: dict[Any, Any] = field(default_factory=dict, repr=False)

    def advance(self, n: int) -> None:
        """Report ``n`` samples scored to :attr:`progress`, when set."""
        if self.progress is not None:
            self.progress(n)


class Metric:
    """Base class of every metric (built-in or plugin).

    Subclasses set ``name`` and ``requires`` and implement :meth:`columns`,
    :meth:`stats` and :meth:`aggregate`. ``requires`` may hold ``"model"`` (scored after
    generation by the run's ``metrics_model``), ``"timing"`` and ``"references"`` (human
    text: dataset references or ``human.path``); ``min_rows`` is the fewest generations a
    cell needs (a spec that cannot reach it is refused). ``rows`` says what a row of
    ``stats`` is:
    ``"generation"`` (the default; paired differences match rows by prompt and sample)
    or ``"call"`` (latency). Set ``bootstrap = False`` for a metric without an interval,
    and ``max_bootstrap`` to cap the replicates of an expensive aggregate.

    Example:

    ```python
    import numpy as np
    from samplerlab.metrics.base import Metric

    class MeanChars(Metric):
        name = "mean_chars"

        def columns(self):
            return ["mean_chars"]

        def stats(self, samples, context):
            return np.array([[len(s["text"])] for s in samples], dtype=float)

        def aggregate(self, stats):
            return {"mean_chars": float(stats[:, 0].mean())}

    metric = MeanChars()
    assert metric.aggregate(metric.stats([{"text": "ab"}, {"text": "abcd"}], None)) == {
        "mean_chars": 3.0}
    ```
    """

    name: ClassVar[str] = "metric"
    requires: ClassVar[frozenset[str]] = frozenset()
    rows: ClassVar[str] = "generation"
    min_rows: ClassVar[int] = 0
    bootstrap: bool = True
    max_bootstrap: int | None = None
    #: ``"percentile"``, or ``"bias_corrected"``: the percentile interval of replicates
    #: shifted so their median is the estimate (for statistics that resampling biases).
    interval: ClassVar[str] = "percentile"

    def columns(self) -> list[str]:
        raise NotImplementedError

    def stats(self, samples: Samples, context: MetricContext) -> Any:
        """Per-row sufficient statistics, shape ``(n, k)`` (a NumPy or SciPy sparse matrix)."""
        raise NotImplementedError

    def aggregate(self, stats: Any) -> dict[str, float]:
        raise NotImplementedError

    def aggregate_weighted(self, stats: Any, weights: np.ndarray) -> dict[str, np.ndarray]:
        """Aggregate each bootstrap replicate; ``weights[b, i]`` = times row ``i`` was drawn.

        The default re-aggregates each replicate; subclasses vectorise it.
        """
        out: dict[str, list[float]] = {c: [] for c in self.columns()}
        rows = np.arange(weights.shape[1])
        for w in weights:
            values = self.aggregate(stats[np.repeat(rows, w.astype(np.int64))])
            for col in out:
                out[col].append(values.get(col, np.nan))
        return {c: np.asarray(v, dtype=float) for c, v in out.items()}


class SumPooledMetric(Metric):
    """A metric whose aggregate depends only on the column sums of ``stats``.

    Subclasses implement :meth:`from_sums`, which maps sums of shape ``(b, k)`` to
    columns of shape ``(b,)``; the point value and every bootstrap replicate use it.
    """

    def from_sums(self, sums: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def aggregate(self, stats: np.ndarray) -> dict[str, float]:
        stats = np.nan_to_num(np.asarray(stats, dtype=float), nan=0.0)
        sums = stats.sum(axis=0, keepdims=True)
        return {k: float(v[0]) for k, v in self.from_sums(sums).items()}

    def aggregate_weighted(self, stats: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
        # NaN rows (e.g. unscored hypotheses) must not poison the sums.
        stats = np.nan_to_num(np.asarray(stats, dtype=float), nan=0.0)
        return self.from_sums(weights @ stats)


def as_number(value: Any) -> float:
    """``value`` as a float (a metric read back from CSV or JSON), NaN when it is none."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` with NaN where the denominator is zero."""
    numerator = np.asarray(numerator, dtype=float)
    denominator = np.asarray(denominator, dtype=float)
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out
