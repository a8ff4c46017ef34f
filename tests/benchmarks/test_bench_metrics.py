"""Scoring 10,000 generations of 128 tokens with every text metric (issue 17: <= 10 s).

Run with ``python -m pytest tests/benchmarks/test_bench_metrics.py -o addopts=""
--benchmark-only`` (benchmarks are outside the default test run). The text metrics are
rep-n, diversity, distinct-n, self-BLEU, Zipf and length, each with its bootstrap
interval (1,000 replicates; Zipf's 200); the model metrics (perplexity, MAUVE features,
coherence) run batched on the scoring model after generation and are not part of it.
"""

from __future__ import annotations

import numpy as np
import pytest

from samplerlab.metrics.base import MetricContext
from samplerlab.metrics.scoring import TEXT_METRICS, build_metrics, score_cell

N_GENERATIONS = 10_000
TOKENS_PER_GENERATION = 128
VOCABULARY = 20_000


@pytest.fixture(scope="module")
def generations() -> list[dict]:
    """Zipf-distributed words (like text), one unit per token, seeded, with the fields a
    run writes (so that length counts tokens and stop reasons)."""
    rng = np.random.default_rng(0)
    p = 1.0 / np.arange(1, VOCABULARY + 1)
    words = np.array([f"w{i}" for i in range(VOCABULARY)], dtype=object)
    ids = rng.choice(VOCABULARY, size=(N_GENERATIONS, TOKENS_PER_GENERATION), p=p / p.sum())
    return [{"text": " ".join(words[row]), "token_ids": row.tolist(),
             "num_tokens": TOKENS_PER_GENERATION, "stop_reason": "max_length",
             "prompt_index": i // 4, "sample_index": i % 4} for i, row in enumerate(ids)]


def test_score_10k_generations_of_128_tokens_with_every_text_metric(benchmark, generations):
    assert TEXT_METRICS == ["rep_n", "diversity", "distinct_n", "self_bleu", "zipf", "length"]
    metrics = build_metrics(TEXT_METRICS)
    context = MetricContext(seed=0, n_bootstrap=1000)
    scores = benchmark.pedantic(score_cell, args=(generations, metrics, context), rounds=3,
                                iterations=1)
    row = scores.values
    assert scores.errors == {}
    assert row["rep_2_ci_low"] <= row["rep_2"] <= row["rep_2_ci_high"]
    assert 0 < row["self_bleu"] < 1 and 0 < row["zipf"]
    assert row["mean_tokens"] == TOKENS_PER_GENERATION
    assert benchmark.stats.stats.median <= 10.0
