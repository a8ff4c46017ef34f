"""The ratings section of ``report.md``: win rates and Bradley–Terry scores per cell."""

from __future__ import annotations

from pathlib import Path

from samplerlab.ratings.bradley_terry import format_score, rate_cells
from samplerlab.ratings.store import RatingsStore
from samplerlab.results import RunDir
from samplerlab.results.tables import markdown_table


def run_labels_and_seed(run_dir: str | Path) -> tuple[dict[str, str], int]:
    """Cell labels in the run's order, and the run's seed (the viewer's bootstrap seed)."""
    run = RunDir.read(run_dir)
    return run.cell_labels(), run.seed()


def ratings_lines(run_dir: str | Path, n_bootstrap: int = 1000) -> list[str]:
    """Markdown lines of the "Human ratings" section; ``[]`` when the run has no judgements.

    The bootstrap is seeded with the run's seed, as in the viewer, so both show the same
    intervals.

    Raises :class:`~samplerlab.ratings.store.RatingsError` (one line, exit 2 in the CLI)
    for a ratings.sqlite that is newer, locked or damaged.
    """
    from samplerlab.metrics.scoring import format_value

    store = RatingsStore(RunDir(run_dir).ratings_path)
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
        f"(`{RunDir.RATINGS}`; `samplerlab ratings export` writes them as CSV). The win rate "
        "counts a tie as half a win; Bradley–Terry scores are on the Elo scale (1000 + "
        "400 log10 strength, the rated cells average 1000). Both with 95% bootstrap "
        "intervals over judgements.", "",
        markdown_table(["cell", "judgements", "wins", "ties", "losses", "win rate",
                        "Bradley–Terry"], rows), ""]
