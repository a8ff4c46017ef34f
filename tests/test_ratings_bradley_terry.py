"""Win rates and Bradley–Terry scores with bootstrap intervals."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from samplerlab.ratings.bradley_terry import ELO_SCALE, fit_bradley_terry, rate_cells


def judgements_from(strengths: dict[str, float], n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    cells = list(strengths)
    out = []
    for _ in range(n):
        a, b = rng.sample(cells, 2)
        p = 1 / (1 + math.exp(-(strengths[a] - strengths[b])))
        out.append({"cell_a": a, "cell_b": b, "choice": "a" if rng.random() < p else "b"})
    return out


def test_scores_recover_the_strengths_that_made_the_judgements():
    truth = {"x": 1.0, "y": 0.0, "z": -1.0}
    ratings = {r.cell_id: r for r in rate_cells(judgements_from(truth, 3000), n_bootstrap=200)}
    assert [r for r in ratings] == ["x", "y", "z"]  # best first
    for cell, strength in truth.items():
        r = ratings[cell]
        assert (r.score - 1000) / ELO_SCALE == pytest.approx(strength, abs=0.15)
        assert r.score_low < r.score < r.score_high
        assert r.win_rate_low < r.win_rate < r.win_rate_high
    assert np.mean([r.score for r in ratings.values()]) == pytest.approx(1000)


def test_win_rate_counts_a_tie_as_half_a_win():
    judgements = [{"cell_a": "x", "cell_b": "y", "choice": "a"},
                  {"cell_a": "y", "cell_b": "x", "choice": "tie"},
                  {"cell_a": "y", "cell_b": "x", "choice": "a"},
                  {"cell_a": "x", "cell_b": "y", "choice": "tie"}]
    ratings = {r.cell_id: r for r in rate_cells(judgements, n_bootstrap=0)}
    x, y = ratings["x"], ratings["y"]
    assert (x.games, x.wins, x.ties, x.losses) == (4, 1, 2, 1)
    assert x.win_rate == y.win_rate == 0.5
    assert x.score == pytest.approx(y.score) == pytest.approx(1000)
    assert math.isnan(x.score_low)  # no bootstrap asked


def test_a_cell_that_wins_every_game_gets_a_finite_score():
    judgements = [{"cell_a": "x", "cell_b": "y", "choice": "a"}] * 5
    x, y = rate_cells(judgements, n_bootstrap=100)
    assert x.cell_id == "x" and x.win_rate == 1.0 and y.win_rate == 0.0
    assert 1000 < x.score < 2000 and math.isfinite(x.score_high)


def test_fitting_replicates_together_gives_each_its_own_optimum():
    rng = np.random.default_rng(0)
    wins = rng.integers(0, 6, size=(6, 4, 4)).astype(float)
    wins[:, np.arange(4), np.arange(4)] = 0
    together = fit_bradley_terry(wins)
    alone = np.stack([fit_bradley_terry(w) for w in wins])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_labels_name_and_order_the_cells():
    judgements = [{"cell_a": "c2", "cell_b": "c1", "choice": "tie"}]
    ratings = rate_cells(judgements, {"c1": "greedy", "c2": "top_k", "c3": "unused"},
                         n_bootstrap=0)
    assert [(r.cell_id, r.label) for r in ratings] == [("c1", "greedy"), ("c2", "top_k")]
