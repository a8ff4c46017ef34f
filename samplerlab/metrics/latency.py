"""Latency of a cell: compile time, steady seconds per call, tokens per second."""

from __future__ import annotations

import numpy as np

from samplerlab.metrics.base import Metric, MetricContext, Samples


def _float(value) -> float:
    return float(value) if value is not None else np.nan


class Latency(Metric):
    """Compile time, steady per-call seconds (p50, p95) and generated tokens per second.

    Each is its own column, never mixed: ``compile_s`` is the first call's extra time
    (as the runner measured it), ``steady_p50_s``/``steady_p95_s`` are percentiles of
    the calls after the first, and ``tokens_per_s`` is the tokens those steady calls
    generated over their total time. Rows of ``stats`` are steady calls, so the
    bootstrap resamples calls; ``compile_s`` has no interval.

    Example:

    ```python
    import pytest
    from samplerlab.metrics.base import MetricContext
    from samplerlab.metrics.latency import Latency

    timing = {"first_call_s": 5.0, "compile_s": 4.0, "steady_call_s": [1.0, 3.0],
              "generated_tokens": 30, "steady_generated_tokens": 20}
    metric = Latency()
    scores = metric.aggregate(metric.stats([], MetricContext(timing=timing)))
    assert scores == pytest.approx(
        {"compile_s": 4.0, "steady_p50_s": 2.0, "steady_p95_s": 2.9, "tokens_per_s": 5.0})
    ```
    """

    name = "latency"
    requires = frozenset({"timing"})
    rows = "call"

    def columns(self) -> list[str]:
        return ["compile_s", "steady_p50_s", "steady_p95_s", "tokens_per_s"]

    def stats(self, samples: Samples, context: MetricContext) -> np.ndarray:
        timing = context.timing or {}
        calls = np.asarray(timing.get("steady_call_s") or [], dtype=float)
        compile_s = _float(timing.get("compile_s"))
        if len(calls) == 0:
            return np.array([[np.nan, compile_s, np.nan]])
        tokens_per_call = _float(timing.get("steady_generated_tokens")) / len(calls)
        return np.column_stack([calls, np.full(len(calls), compile_s),
                                np.full(len(calls), tokens_per_call)])

    def aggregate(self, stats: np.ndarray) -> dict[str, float]:
        calls = stats[:, 0]
        calls = calls[~np.isnan(calls)]
        if len(calls) == 0:
            steady = {"steady_p50_s": np.nan, "steady_p95_s": np.nan, "tokens_per_s": np.nan}
        else:
            total = calls.sum()
            steady = {"steady_p50_s": float(np.percentile(calls, 50)),
                      "steady_p95_s": float(np.percentile(calls, 95)),
                      "tokens_per_s": float(stats[:, 2].sum() / total) if total > 0 else np.nan}
        return {"compile_s": float(stats[0, 1]) if len(stats) else np.nan, **steady}
