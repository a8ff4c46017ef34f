"""Per-cell win rates and Bradley–Terry scores from pairwise judgements, with bootstrap
intervals.

Bradley–Terry: ``P(i beats j) = 1 / (1 + exp(-(s_i - s_j)))``. The log-strengths ``s``
are the maximum a posteriori fit under a weak Gaussian prior (``PRIOR_SD`` = 3 on the
log-strength scale), which keeps a cell that won or lost every game at a finite score;
with many judgements the prior's pull is negligible. A tie counts as half a win for each
side, in the win rates and in the fit (Chatbot Arena counts ties the same way). Scores are
shown on the Elo scale Chatbot Arena uses, ``1000 + 400 * log10(strength)``, centred so
the rated cells average 1000.

Intervals: the judgements are resampled with replacement (samplerlab's
:func:`~samplerlab.metrics.scoring.bootstrap_weights`, 1,000 replicates by default) and
every replicate refitted; all replicates are independent, so they are fitted together as
one L-BFGS problem (scipy), which gives each the same optimum a fit of its own would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from samplerlab.metrics.scoring import bootstrap_weights, percentile_interval

PRIOR_SD = 3.0
ELO_BASE = 1000.0
ELO_SCALE = 400.0 / math.log(10.0)
OUTCOME = {"a": (1.0, 0.0), "b": (0.0, 1.0), "tie": (0.5, 0.5)}


@dataclass(frozen=True)
class CellRating:
    cell_id: str
    label: str
    games: int
    wins: int
    ties: int
    losses: int
    win_rate: float
    win_rate_low: float
    win_rate_high: float
    score: float
    score_low: float
    score_high: float


def fit_bradley_terry(wins: np.ndarray, prior_sd: float = PRIOR_SD) -> np.ndarray:
    """Log-strengths from win matrices: ``wins[..., i, j]`` = (weighted) wins of i over j.

    ``wins`` is ``(C, C)`` or a batch ``(B, C, C)`` of independent problems; returns
    ``(C,)`` or ``(B, C)``, not centred.

    Example:

    ```python
    import numpy as np
    from samplerlab.ratings.bradley_terry import fit_bradley_terry

    s = fit_bradley_terry(np.array([[0.0, 3.0], [1.0, 0.0]]))  # 0 beat 1 in 3 of 4 games
    assert 0 < s[0] - s[1] < np.log(3)  # log(3), pulled in a little by the prior
    ```
    """
    from scipy.optimize import minimize
    from scipy.special import expit

    wins = np.asarray(wins, dtype=float)
    single = wins.ndim == 2
    batch = wins[None] if single else wins
    b, c, _ = batch.shape
    precision = 1.0 / prior_sd ** 2

    def objective(flat: np.ndarray) -> tuple[float, np.ndarray]:
        s = flat.reshape(b, c)
        d = s[:, :, None] - s[:, None, :]
        value = float((batch * np.logaddexp(0.0, -d)).sum() + 0.5 * precision * (s * s).sum())
        surprise = batch * expit(-d)
        grad = surprise.sum(axis=1) - surprise.sum(axis=2) + precision * s
        return value, grad.ravel()

    # ftol 0: stop on the gradient alone, which L-BFGS-B checks component by component,
    # so every replicate is converged (the summed objective alone would stop too early).
    result = minimize(objective, np.zeros(b * c), jac=True, method="L-BFGS-B",
                      options={"ftol": 0.0, "gtol": 1e-7, "maxiter": 2000})
    scores = result.x.reshape(b, c)
    return scores[0] if single else scores


def _contributions(judgements: list[dict[str, Any]], cells: list[str]) -> np.ndarray:
    """``(K, C, C)``: what each judgement adds to the win matrix."""
    position = {c: i for i, c in enumerate(cells)}
    out = np.zeros((len(judgements), len(cells), len(cells)))
    for k, j in enumerate(judgements):
        a, b = position[j["cell_a"]], position[j["cell_b"]]
        win_a, win_b = OUTCOME[j["choice"]]
        out[k, a, b] += win_a
        out[k, b, a] += win_b
    return out


def rate_cells(judgements: list[dict[str, Any]], labels: dict[str, str] | None = None,
               n_bootstrap: int = 1000, seed: int = 0,
               confidence: float = 0.95) -> list[CellRating]:
    """One :class:`CellRating` per cell that took part in a judgement, best score first.

    ``judgements`` have ``cell_a``, ``cell_b`` and ``choice`` (``a``, ``b`` or ``tie``);
    ``labels`` maps cell ids to display names (ordering cells that appear in it first).
    """
    labels = labels or {}
    judgements = [j for j in judgements if j.get("choice") in OUTCOME]
    seen = {c for j in judgements for c in (j["cell_a"], j["cell_b"])}
    cells = [c for c in labels if c in seen] + sorted(seen - set(labels))
    if not cells:
        return []
    parts = _contributions(judgements, cells)
    total = parts.sum(axis=0)
    scores = _centred(fit_bradley_terry(total), total)
    games = total + total.T
    win_rate = _safe_ratio(total.sum(axis=1), games.sum(axis=1))
    low_s = high_s = low_w = high_w = np.full(len(cells), math.nan)
    if n_bootstrap > 0 and len(judgements) > 1:
        weights = bootstrap_weights(len(judgements), n_bootstrap, seed)
        replicate_wins = np.einsum("bk,kij->bij", weights, parts)
        replicate_scores = _centred(fit_bradley_terry(replicate_wins), replicate_wins)
        replicate_games = replicate_wins + np.swapaxes(replicate_wins, 1, 2)
        replicate_rates = _safe_ratio(replicate_wins.sum(axis=2), replicate_games.sum(axis=2))
        low_s, high_s = _intervals(replicate_scores, confidence)
        low_w, high_w = _intervals(replicate_rates, confidence)
    out = []
    for i, cell in enumerate(cells):
        mine = [j for j in judgements if cell in (j["cell_a"], j["cell_b"])]
        wins = sum(1 for j in mine if j["choice"] != "tie"
                   and j[f"cell_{j['choice']}"] == cell)
        ties = sum(1 for j in mine if j["choice"] == "tie")
        out.append(CellRating(cell, labels.get(cell, cell), len(mine), wins, ties,
                              len(mine) - wins - ties, float(win_rate[i]), low_w[i], high_w[i],
                              _elo(scores[i]), _elo(low_s[i]), _elo(high_s[i])))
    return sorted(out, key=lambda r: -r.score if not math.isnan(r.score) else math.inf)


def _centred(scores: np.ndarray, wins: np.ndarray) -> np.ndarray:
    """Scores minus the mean over the cells that played; NaN for cells without a game."""
    games = wins + np.swapaxes(wins, -1, -2)
    played = games.sum(axis=-1) > 0
    scores = np.where(played, scores, np.nan)
    return scores - np.nanmean(scores, axis=-1, keepdims=True)


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _intervals(replicates: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    pairs = [percentile_interval(replicates[:, i], confidence)
             for i in range(replicates.shape[1])]
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def format_score(value: float, low: float = math.nan, high: float = math.nan) -> str:
    """``1042 [1003, 1080]``: Elo-scale scores to the point (``-`` when missing)."""
    if math.isnan(value):
        return "-"
    if math.isnan(low) or math.isnan(high):
        return f"{value:.0f}"
    return f"{value:.0f} [{low:.0f}, {high:.0f}]"


def _elo(log_strength: float) -> float:
    return ELO_BASE + ELO_SCALE * float(log_strength)
