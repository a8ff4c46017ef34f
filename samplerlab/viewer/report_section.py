"""The ratings section of ``report.md``: win rates and Bradley–Terry scores per cell."""

from __future__ import annotations

import json
from pathlib import Path

from samplerlab.viewer.ratings import RatingsStore
from samplerlab.viewer.runs import MANIFEST, RATINGS


def run_labels_and_seed(run_dir: Path) -> tuple[dict[str, str], int]:
    """Cell labels in the run's order, and the run's seed (the viewer's bootstrap seed)."""
    try:
        manifest = json.loads((run_dir / MANIFEST).read_text(encoding="utf-8"))
        labels = {str(c["id"]): str(c.get("label") or c["id"])
                  for c in manifest.get("cells", [])}
        return labels, int(manifest.get("seed") or 0)
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}, 0


def ratings_lines(run_dir: str | Path, n_bootstrap: int = 1000) -> list[str]:
    """Markdown lines of the "Human ratings" section; ``[]`` when the run has no judgements.

    The bootstrap is seeded with the run's seed, as in the viewer, so both show the same
    intervals.

    Raises :class:`~samplerlab.viewer.ratings.RatingsError` (one line, exit 2 in the CLI)
    for a ratings.sqlite that is newer, locked or damaged.
    """
    from samplerlab.metrics.scoring import format_value
    from samplerlab.report import markdown_table
    from samplerlab.viewer.bradley_terry import format_score, rate_cells

    run_dir = Path(run_dir)
    store = RatingsStore(run_dir / RATINGS)
    if not store.exists():
        return []
    judgements = store.judgements()
    if not judgements:
        return []
    labels, seed = run_labels_and_seed(run_dir)
    ratings = rate_cells(judgements, labels, n_bootstrap=n_bootstrap, seed=seed)
    raters = len({j["rater"] for j in judgements})
    rows = [[r.label, r.games, r.wins, r.ties, r.losses,
             format_value(r.win_rate, r.win_rate_low, r.win_rate_high),
             format_score(r.score, r.score_low, r.score_high)] for r in ratings]
    return [
        "## Human ratings", "",
        f"{len(judgements)} blind pairwise judgements by {raters} rater(s) "
        f"(`{RATINGS}`; `samplerlab ratings export` writes them as CSV). The win rate "
        "counts a tie as half a win; Bradley–Terry scores are on the Elo scale (1000 + "
        "400 log10 strength, the rated cells average 1000). Both with 95% bootstrap "
        "intervals over judgements.", "",
        markdown_table(["cell", "judgements", "wins", "ties", "losses", "win rate",
                        "Bradley–Terry"], rows), ""]
