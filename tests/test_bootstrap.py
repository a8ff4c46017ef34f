"""Bootstrap intervals: seeded, deterministic, and paired over matching generations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from samplerlab.metrics.base import MetricContext
from samplerlab.metrics.rep_n import RepN
from samplerlab.metrics.scoring import (
    bootstrap_weights,
    build_metrics,
    match_samples,
    paired_difference,
    percentile_interval,
    score_samples,
)

WORDS = "the a cat dog sat ran on in mat park and then".split()


def make_samples(seed: int, n: int = 40, length: int = 30) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"text": " ".join(rng.choice(WORDS, size=length)), "prompt_index": i // 2,
             "sample_index": i % 2, "num_tokens": length, "stop_reason": "max_length"}
            for i in range(n)]


METRICS = ["rep_n", "diversity", "distinct_n", "self_bleu", "zipf", "length"]


def test_bootstrap_weights_resample_every_row_count_once_per_draw():
    w = bootstrap_weights(7, 50, seed=1)
    assert w.shape == (50, 7)
    np.testing.assert_array_equal(w.sum(axis=1), np.full(50, 7))
    assert (w >= 0).all() and (w == np.round(w)).all()


def test_bootstrap_is_deterministic_under_a_seed():
    samples = make_samples(0)
    a = score_samples(samples, build_metrics(METRICS), MetricContext(seed=5, n_bootstrap=200))
    b = score_samples(samples, build_metrics(METRICS), MetricContext(seed=5, n_bootstrap=200))
    assert a == b


def test_another_seed_gives_other_intervals_but_the_same_values():
    samples = make_samples(0)
    a = score_samples(samples, build_metrics(["rep_n"]), MetricContext(seed=1))
    b = score_samples(samples, build_metrics(["rep_n"]), MetricContext(seed=2))
    assert a["rep_2"] == b["rep_2"]
    assert (a["rep_2_ci_low"], a["rep_2_ci_high"]) != (b["rep_2_ci_low"], b["rep_2_ci_high"])


def test_every_column_has_an_interval_around_its_value():
    row = score_samples(make_samples(1), build_metrics(METRICS), MetricContext(seed=0))
    columns = [c for c in row if not c.endswith(("_ci_low", "_ci_high"))]
    assert "rep_4" in columns and "self_bleu" in columns and "zipf" in columns
    for col in columns:
        if col in ("mean_tokens", "mean_words", "end_token_share"):  # constant here
            assert row[f"{col}_ci_low"] == row[col] == row[f"{col}_ci_high"]
            continue
        assert row[f"{col}_ci_low"] < row[col] < row[f"{col}_ci_high"], col


def test_vectorised_bootstrap_equals_resampling_rows_one_by_one():
    samples = make_samples(2)
    metric = RepN()
    stats = metric.stats(samples, MetricContext())
    weights = bootstrap_weights(len(samples), 20, seed=3)
    fast = metric.aggregate_weighted(stats, weights)
    rows = np.arange(len(samples))
    for b, w in enumerate(weights):
        resampled = [samples[i] for i in np.repeat(rows, w.astype(int))]
        slow = metric.aggregate(metric.stats(resampled, MetricContext()))
        assert fast["rep_2"][b] == pytest.approx(slow["rep_2"])


def test_percentile_interval_ignores_nan_replicates():
    assert percentile_interval(np.array([np.nan, 1.0, 2.0, 3.0]), 0.5) == (1.5, 2.5)
    assert all(math.isnan(x) for x in percentile_interval(np.array([np.nan]), 0.95))


def test_a_single_generation_has_no_interval():
    row = score_samples([{"text": "a b a b a"}], build_metrics(["rep_n"]))
    assert row["rep_2"] == pytest.approx(100 / 3)
    assert math.isnan(row["rep_2_ci_low"]) and math.isnan(row["rep_2_ci_high"])


def test_metric_without_its_requirement_gives_nan_columns():
    row = score_samples(make_samples(0), build_metrics(["latency"]))
    assert set(row) == {f"{c}{s}" for c in ("compile_s", "steady_p50_s", "steady_p95_s",
                                            "tokens_per_s") for s in ("", "_ci_low", "_ci_high")}
    assert all(math.isnan(v) for v in row.values())


# ---------------------------------------------------------------------- paired
def test_paired_difference_of_a_cell_with_itself_is_exactly_zero():
    samples = make_samples(3)
    diff = paired_difference(samples, list(reversed(samples)), RepN(), MetricContext(seed=0))
    for col in ("rep_2", "rep_3", "rep_4"):
        assert diff[col]["difference"] == 0.0
        assert diff[col]["ci_low"] == diff[col]["ci_high"] == 0.0
        assert diff[col]["n"] == len(samples)


def test_paired_difference_matches_generations_by_prompt_and_sample_index():
    a = [{"text": "x", "prompt_index": 1, "sample_index": 0},
         {"text": "y", "prompt_index": 0, "sample_index": 0},
         {"text": "only in a", "prompt_index": 2, "sample_index": 0}]
    b = [{"text": "Y", "prompt_index": 0, "sample_index": 0},
         {"text": "X", "prompt_index": 1, "sample_index": 0}]
    got_a, got_b = match_samples(a, b)
    assert [s["text"] for s in got_a] == ["y", "x"]
    assert [s["text"] for s in got_b] == ["Y", "X"]


def test_paired_difference_detects_a_real_difference():
    repetitive = [{"text": "the cat sat " * 10, "prompt_index": i, "sample_index": 0}
                  for i in range(30)]
    varied = make_samples(4, n=30)
    for i, s in enumerate(varied):
        s.update(prompt_index=i, sample_index=0)
    diff = paired_difference(repetitive, varied, RepN(), MetricContext(seed=0))["rep_4"]
    expected = (score_samples(repetitive, [RepN()])["rep_4"]
                - score_samples(varied, [RepN()])["rep_4"])
    assert diff["difference"] == pytest.approx(expected)
    assert 0 < diff["ci_low"] <= diff["difference"] <= diff["ci_high"]


def test_paired_difference_of_latency_resamples_each_side_independently():
    from samplerlab.metrics.latency import Latency

    fast = MetricContext(timing={"compile_s": 1.0, "steady_call_s": [1.0, 1.1, 0.9, 1.0],
                                 "steady_generated_tokens": 40}, seed=0)
    slow = MetricContext(timing={"compile_s": 2.0, "steady_call_s": [2.0, 2.2, 1.8, 2.0],
                                 "steady_generated_tokens": 40}, seed=0)
    diff = paired_difference([], [], Latency(), slow, context_b=fast)
    assert diff["steady_p50_s"]["difference"] == pytest.approx(1.0)
    assert 0 < diff["steady_p50_s"]["ci_low"] <= 1.0 <= diff["steady_p50_s"]["ci_high"]
    assert diff["compile_s"]["difference"] == pytest.approx(1.0)


def test_zipf_interval_is_centred_on_its_estimate():
    """Duplicated generations bias a Zipf slope; its interval must still contain the estimate."""
    from samplerlab.metrics.base import MetricContext
    from samplerlab.metrics.scoring import score_metric
    from samplerlab.metrics.zipf import Zipf

    rng = np.random.default_rng(0)
    samples = [{"text": " ".join(f"w{int(x)}" for x in rng.zipf(1.5, size=30))}
               for _ in range(16)]
    row = score_metric(Zipf(), samples, MetricContext(seed=1))
    assert row["zipf_ci_low"] <= row["zipf"] <= row["zipf_ci_high"]
    assert row["zipf_ci_low"] < row["zipf_ci_high"]
