"""The text metrics against values computed by hand on small fixed texts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

from samplerlab.metrics.base import MetricContext
from samplerlab.metrics.distinct_n import DistinctN
from samplerlab.metrics.diversity import Diversity
from samplerlab.metrics.latency import Latency
from samplerlab.metrics.length import Length
from samplerlab.metrics.rep_n import RepN
from samplerlab.metrics.self_bleu import SelfBleu, self_bleu_scores
from samplerlab.metrics.text import units
from samplerlab.metrics.zipf import Zipf


def score(metric, texts, context=None):
    samples = [{"text": t} for t in texts]
    return metric.aggregate(metric.stats(samples, context or MetricContext()))


# ----------------------------------------------------------------------------- units
def test_units_are_whitespace_words_for_space_delimited_text():
    assert units("  the cat\tsat\n on ") == ["the", "cat", "sat", "on"]


def test_units_split_every_cjk_character_and_keep_latin_words():
    assert units("床前明月光，疑是 GPT-2 霜。") == [
        "床", "前", "明", "月", "光", "，", "疑", "是", "GPT-2", "霜", "。"]


def test_units_of_empty_text():
    assert units("") == []


# ----------------------------------------------------------------------------- rep_n
def test_rep_n_follows_simctg_window_when_last_ngram_is_a_repeat():
    # "a b a b a": SimCTG's loop counts (a b)(b a)(a b) and never the final (b a):
    # 2 distinct of 3 -> rep_2 = 33.33 (standard windows would give 2 of 4 = 50).
    # Trigrams (a b a)(b a b): no repeat. 4-grams (a b a b): one, no repeat.
    got = score(RepN(), ["a b a b a"])
    assert got["rep_2"] == pytest.approx(100 / 3)
    assert got["rep_3"] == 0.0
    assert got["rep_4"] == 0.0


def test_rep_n_drops_the_last_ngram_even_when_it_is_new():
    # "a b a b c": windows (a b)(b a)(a b); the new final (b c) is not counted: 2 of 3.
    assert score(RepN(), ["a b a b c"])["rep_2"] == pytest.approx(100 / 3)


def test_rep_n_pools_counts_over_the_cell_rather_than_averaging_texts():
    # text 1: 2 distinct of 3 bigrams; text 2 (7 words): 5 distinct of 5.
    # Pooled: 1 - 7/8 = 12.5%; the mean of per-text rates would be 16.67%.
    got = score(RepN(), ["a b a b a", "c d e f g h i"])
    assert got["rep_2"] == pytest.approx(12.5)


def test_rep_n_counts_repeats_within_a_text_not_across_texts():
    # The same text twice: every bigram of each copy is distinct within its text.
    assert score(RepN(), ["a b c d", "a b c d"])["rep_2"] == 0.0


def test_rep_n_of_texts_too_short_for_any_ngram_is_nan():
    got = score(RepN(), ["a b", "c"])
    assert math.isnan(got["rep_2"]) and math.isnan(got["rep_4"])


def test_rep_n_on_chinese_counts_characters():
    # 春眠不觉晓春眠不觉晓: 10 characters.  SimCTG windows (L - n per text):
    # bigrams 8, distinct 5 (春眠 眠不 不觉 觉晓 晓春) -> 37.5
    # trigrams 7, distinct 5 -> 28.57; 4-grams 6, distinct 5 -> 16.67.
    got = score(RepN(), ["春眠不觉晓春眠不觉晓"])
    assert got["rep_2"] == pytest.approx(37.5)
    assert got["rep_3"] == pytest.approx(200 / 7)
    assert got["rep_4"] == pytest.approx(100 / 6)


# ------------------------------------------------------------------------- diversity
def test_diversity_multiplies_rounded_rep_rates_as_simctg():
    # rep_2 = 33.333 -> rounded 33.33 -> diversity 0.6667 exactly (SimCTG's rounding).
    assert score(Diversity(), ["a b a b a"])["diversity"] == pytest.approx(0.6667, abs=1e-12)


def test_diversity_of_chinese_text():
    expected = (1 - 0.375) * (1 - 0.2857) * (1 - 0.1667)
    assert score(Diversity(), ["春眠不觉晓春眠不觉晓"])["diversity"] == pytest.approx(expected)


def test_diversity_is_one_without_repetition():
    assert score(Diversity(), ["one two three four five six"])["diversity"] == 1.0


# ------------------------------------------------------------------------ distinct_n
def test_distinct_n_uses_all_windows_pooled_over_the_cell():
    # words a b a | a c: 3 distinct of 5; bigrams (a b)(b a)(a c): 3 of 3;
    # trigram (a b a): 1 of 1; no 4-gram.
    got = score(DistinctN(), ["a b a", "a c"])
    assert got["distinct_1"] == pytest.approx(0.6)
    assert got["distinct_2"] == 1.0
    assert got["distinct_3"] == 1.0
    assert math.isnan(got["distinct_4"])


def test_distinct_n_counts_ngrams_shared_by_texts_once():
    # bigrams (a b)(b c) | (a b)(b d): 3 distinct of 4.
    assert score(DistinctN(n=2), ["a b c", "a b d"]) == {"distinct_2": 0.75}


def test_distinct_n_on_chinese():
    # 白日依山尽，白日: characters 白 日 依 山 尽 ， 白 日 -> 6 distinct of 8.
    assert score(DistinctN(n=1), ["白日依山尽，白日"])["distinct_1"] == pytest.approx(0.75)


# ------------------------------------------------------------------------- self_bleu
def test_self_bleu_of_identical_texts_is_one():
    assert score(SelfBleu(), ["the cat sat on the mat"] * 3)["self_bleu"] == pytest.approx(1.0)


def test_self_bleu_by_hand():
    # "a b c d" against "a b c e": p1 = 3/4, p2 = 2/3, p3 = 1/2, p4 = 0/1 -> 0.1 (method 1),
    # equal lengths so no brevity penalty; symmetric, so the mean is the same value.
    expected = (3 / 4 * 2 / 3 * 1 / 2 * 0.1) ** 0.25
    assert score(SelfBleu(), ["a b c d", "a b c e"])["self_bleu"] == pytest.approx(expected)


def test_self_bleu_scores_equal_nltk_sentence_bleu():
    texts = ["the cat sat on the mat", "the cat ate the mat", "a dog sat on a log",
             "the the the", "", "床前明月光", "on the mat the cat sat down"]
    smoothing = SmoothingFunction().method1
    expected = [sentence_bleu([units(o) for j, o in enumerate(texts) if j != i], units(t),
                              (0.25,) * 4, smoothing_function=smoothing)
                for i, t in enumerate(texts)]
    got = self_bleu_scores([{"text": t} for t in texts], None)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


TEXYGEN_SET = [
    "the cat sat on the mat and looked at the dog",
    "the dog sat on the log and looked at the cat",
    "a bird flew over the house in the morning light",
    "the cat and the dog slept in the morning sun",
    "nobody knew where the old road through the forest went",
    "the old road went through the forest to the sea",
    "i like basketball and i like the sea",
    "the sea was calm and the sky was grey",
]


def texygen_self_bleu(texts: list[str], gram: int = 4) -> float:
    """Texygen's ``SelfBleu.get_bleu_parallel`` (Zhu et al. 2018), transcribed serially:
    each text against all the others with nltk's corpus BLEU, uniform weights, smoothing 1,
    then the mean. Texygen tokenizes with nltk.word_tokenize; this set has no punctuation,
    where that is ``str.split``."""
    from nltk.translate.bleu_score import corpus_bleu

    reference = [t.split() for t in texts]
    weight = tuple(1.0 / gram for _ in range(gram))
    scores = []
    for index, hypothesis in enumerate(reference):
        other = reference[:index] + reference[index + 1:]
        scores.append(corpus_bleu([other], [hypothesis], weight,
                                  smoothing_function=SmoothingFunction().method1))
    return sum(scores) / len(scores)


def test_self_bleu_equals_texygens_corpus_bleu_definition_on_a_fixed_set():
    assert score(SelfBleu(), TEXYGEN_SET)["self_bleu"] == pytest.approx(
        texygen_self_bleu(TEXYGEN_SET), rel=0, abs=1e-12)


def test_self_bleu_max_samples_scores_a_seeded_subset_against_everyone():
    texts = ["a b c d", "a b c e", "x y z w", "a b x y"]
    all_scores = self_bleu_scores([{"text": t} for t in texts], None)
    metric = SelfBleu(max_samples=2, seed=3)
    stats = metric.stats([{"text": t} for t in texts], None)
    chosen = stats[:, 1].astype(bool)
    assert chosen.sum() == 2
    assert metric.aggregate(stats)["self_bleu"] == pytest.approx(all_scores[chosen].mean())
    np.testing.assert_array_equal(metric.stats([{"text": t} for t in texts], None), stats)


def test_self_bleu_needs_two_texts():
    assert math.isnan(score(SelfBleu(), ["only one"])["self_bleu"])


# ------------------------------------------------------------------------------ zipf
def test_zipf_of_an_exact_power_law_is_its_exponent():
    # counts 12, 6, 4, 3 = 12 / rank: log count = log 12 - 1 * log rank.
    text = " ".join(["a"] * 12 + ["b"] * 6 + ["c"] * 4 + ["d"] * 3)
    assert score(Zipf(), [text])["zipf"] == pytest.approx(1.0)


def test_zipf_pools_texts_and_fits_only_the_top_ranks():
    # Counts over both texts: a 16, b 4, c 1 -> top 2 ranks: log(16/4) / log 2 = 2.
    texts = [" ".join(["a"] * 8 + ["b"] * 2), " ".join(["a"] * 8 + ["b"] * 2 + ["c"])]
    assert score(Zipf(top=2), texts)["zipf"] == pytest.approx(2.0)


def test_zipf_on_token_ids():
    samples = [{"text": "", "token_ids": [7] * 9 + [5] * 3 + [2]}]  # counts 9, 3, 1
    metric = Zipf(units="tokens")
    slope = np.polyfit(np.log([1, 2, 3]), np.log([9, 3, 1]), 1)[0]
    assert metric.aggregate(metric.stats(samples, MetricContext()))["zipf"] == \
        pytest.approx(-slope)


# ---------------------------------------------------------------------------- length
def test_length_means_and_end_token_share():
    samples = [{"text": "a b c", "num_tokens": 4, "stop_reason": "end_token"},
               {"text": "a", "num_tokens": 2, "stop_reason": "max_length"},
               {"text": "床前明月光", "token_ids": [1, 2, 3], "stop_reason": "max_length"}]
    metric = Length()
    got = metric.aggregate(metric.stats(samples, MetricContext()))
    assert got["mean_tokens"] == pytest.approx(3.0)       # (4 + 2 + 3) / 3
    assert got["mean_words"] == pytest.approx(3.0)        # (3 + 1 + 5) / 3
    assert got["end_token_share"] == pytest.approx(1 / 3)


def test_length_of_text_without_token_fields():
    metric = Length()
    got = metric.aggregate(metric.stats([{"text": "a b"}], MetricContext()))
    assert got["mean_words"] == 2.0
    assert math.isnan(got["mean_tokens"]) and math.isnan(got["end_token_share"])


# --------------------------------------------------------------------------- latency
def test_latency_keeps_compile_steady_and_throughput_apart():
    timing = {"first_call_s": 5.0, "compile_s": 4.0, "steady_call_s": [1.0, 3.0],
              "generated_tokens": 30, "steady_generated_tokens": 20}
    metric = Latency()
    got = metric.aggregate(metric.stats([], MetricContext(timing=timing)))
    assert got == {"compile_s": 4.0, "steady_p50_s": 2.0, "steady_p95_s": pytest.approx(2.9),
                   "tokens_per_s": 5.0}


def test_latency_without_steady_calls_reports_no_steady_numbers():
    timing = {"first_call_s": 5.0, "compile_s": None, "steady_call_s": [],
              "generated_tokens": 30, "steady_generated_tokens": 0}
    metric = Latency()
    got = metric.aggregate(metric.stats([], MetricContext(timing=timing)))
    assert all(math.isnan(v) for v in got.values())


def simctg_reference(texts):
    """SimCTG's measure_repetition_and_diversity, restated: per-text window loop, pooled sums."""
    unique, total = {2: 0, 3: 0, 4: 0}, {2: 0, 3: 0, 4: 0}
    for text in texts:
        words = text.strip().split()
        for n in (2, 3, 4):
            grams = [tuple(words[i:i + n]) for i in range(len(words) - n)]  # end < len
            unique[n] += len(set(grams))
            total[n] += len(grams)
    reps = [round((1 - unique[n] / total[n]) * 100, 2) for n in (2, 3, 4)]
    return reps, (1 - reps[0] / 100) * (1 - reps[1] / 100) * (1 - reps[2] / 100)


def test_rep_n_and_diversity_equal_simctg_to_two_decimals_on_random_cells():
    rng = np.random.default_rng(0)
    for _ in range(200):
        vocab = list("abcdef")[: rng.integers(1, 7)]
        texts = [" ".join(rng.choice(vocab, size=rng.integers(5, 25)))
                 for _ in range(rng.integers(1, 6))]
        reps, div = simctg_reference(texts)
        got = score(RepN(), texts)
        assert [round(got[f"rep_{n}"], 2) for n in (2, 3, 4)] == reps
        assert score(Diversity(), texts)["diversity"] == pytest.approx(div, abs=1e-12)
