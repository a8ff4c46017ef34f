"""Scoring 10,000 generations of 200 words with the default metrics (issue 5: <= 10 s).

Run with ``python -m pytest tests/benchmarks/test_bench_metrics.py`` (benchmarks are
outside the default test run). Perplexity and MAUVE are excluded, as in the issue; the
1,000-replicate bootstrap intervals are included.
"""

from __future__ import annotations

import numpy as np
import pytest

from samplerlab.metrics.base import MetricContext
from samplerlab.metrics.scoring import build_metrics, score_samples

N_GENERATIONS = 10_000
WORDS_PER_GENERATION = 200
VOCABULARY = 20_000
DEFAULT_METRICS = ["rep_n", "diversity", "distinct_n", "self_bleu", "zipf", "length", "latency"]


@pytest.fixture(scope="module")
def generations() -> list[dict]:
    """Zipf-distributed words (like text), seeded, with the fields a run writes."""
    rng = np.random.default_rng(0)
    p = 1.0 / np.arange(1, VOCABULARY + 1)
    words = np.array([f"w{i}" for i in range(VOCABULARY)], dtype=object)
    ids = rng.choice(VOCABULARY, size=(N_GENERATIONS, WORDS_PER_GENERATION), p=p / p.sum())
    return [{"text": " ".join(words[row]), "num_tokens": 260, "stop_reason": "max_length",
             "prompt_index": i // 4, "sample_index": i % 4} for i, row in enumerate(ids)]


def test_score_10k_generations_of_200_words(benchmark, generations):
    timing = {"first_call_s": 9.0, "compile_s": 8.0, "steady_call_s": [1.0] * 39 + [1.2],
              "generated_tokens": 2_600_000, "steady_generated_tokens": 2_535_000}
    metrics = build_metrics(DEFAULT_METRICS)
    context = MetricContext(timing=timing, seed=0, n_bootstrap=1000)
    row = benchmark.pedantic(score_samples, args=(generations, metrics, context), rounds=3,
                             iterations=1)
    assert row["rep_2_ci_low"] <= row["rep_2"] <= row["rep_2_ci_high"]
    assert 0 < row["self_bleu"] < 1 and 0 < row["zipf"]
    assert benchmark.stats.stats.median <= 10.0
