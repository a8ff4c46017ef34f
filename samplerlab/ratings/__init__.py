"""Blind pairwise ratings of a run's continuations: the store (``ratings.sqlite``), win
rates and Bradley–Terry scores, and the report's "Human ratings" section.

The viewer (:mod:`samplerlab.viewer`) collects the judgements through this package; the
report and ``samplerlab ratings export`` read them through it, without the web app.

Example:

```python
from samplerlab.ratings import RatingsStore, rate_cells
from samplerlab.results import RunDir

store = RatingsStore(RunDir(run_dir).ratings_path)  # run_dir: a run directory
judgements = [{"cell_a": "x", "cell_b": "y", "choice": "a"}] * 3 + store.judgements()
(best, *_) = rate_cells(judgements, n_bootstrap=0)
assert best.cell_id == "x" and best.wins == 3
```
"""

from __future__ import annotations

from samplerlab.ratings.bradley_terry import CellRating, format_score, rate_cells
from samplerlab.ratings.report_section import ratings_lines, run_labels_and_seed
from samplerlab.ratings.store import (
    RatingRejected,
    RatingsError,
    RatingsStore,
    check_cells,
    clean_rater,
    ratings_csv_text,
)

__all__ = ["CellRating", "RatingRejected", "RatingsError", "RatingsStore", "check_cells",
           "clean_rater", "format_score", "rate_cells", "ratings_csv_text", "ratings_lines",
           "run_labels_and_seed"]
