"""Blind pairwise judgements in ``RUN_DIR/ratings.sqlite`` (SQLite, WAL mode).

The rating page asks the store for a pair (:meth:`RatingsStore.issue_pair`): a prompt and
two continuations of it from two different cells, in random order, recorded under a
random pair id so the page itself carries no cell names. A judgement
(:meth:`RatingsStore.record`) names the pair and a choice (``a``, ``b`` or ``tie``);
anything else is refused before a row is written. Each judgement is one row, committed
before the answer goes back, so a stopped server loses nothing and two raters at once
never overwrite each other (SQLite serialises writers; WAL lets readers go on).

Example:

```python
from samplerlab.ratings import RatingsStore
from samplerlab.results import RunDir
from samplerlab.viewer.samples import SampleIndex

run = RunDir(run_dir)                                   # run_dir: a finished run
samples = SampleIndex.load(run.samples_path)
store = RatingsStore(run.ratings_path)
pair = store.issue_pair(samples, rater="ana")
store.record(pair.pair_id, "a", rater="ana")            # ana prefers pair.cell_a
assert store.judgements()[0]["choice"] == "a"
```
"""

from __future__ import annotations

import csv
import io
import random
import sqlite3
import uuid
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

from samplerlab.errors import UserInputError
from samplerlab.results import now

FORMAT_VERSION = 1  # PRAGMA user_version of the files this samplerlab writes and reads
CHOICES = ("a", "b", "tie")
MAX_RATER_LENGTH = 64
BUSY_TIMEOUT_S = 5.0
SCHEMA = """
CREATE TABLE IF NOT EXISTS pairs (
    pair_id TEXT PRIMARY KEY,
    prompt_index INTEGER NOT NULL,
    cell_a TEXT NOT NULL,
    sample_a INTEGER NOT NULL,
    cell_b TEXT NOT NULL,
    sample_b INTEGER NOT NULL,
    rater TEXT NOT NULL,
    issued_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS judgements (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pair_id TEXT NOT NULL UNIQUE REFERENCES pairs (pair_id),
    prompt_index INTEGER NOT NULL,
    cell_a TEXT NOT NULL,
    sample_a INTEGER NOT NULL,
    cell_b TEXT NOT NULL,
    sample_b INTEGER NOT NULL,
    choice TEXT NOT NULL CHECK (choice IN ('a', 'b', 'tie')),
    rater TEXT NOT NULL,
    created_at TEXT NOT NULL
);
"""
EXPORT_COLUMNS = ("id", "pair_id", "prompt_index", "cell_a", "sample_a", "cell_b", "sample_b",
                  "choice", "rater", "created_at")
SELECT_JUDGEMENTS = ("SELECT id, pair_id, prompt_index, cell_a, sample_a, cell_b, sample_b, "
                     "choice, rater, created_at FROM judgements ORDER BY id")
INSERT_JUDGEMENT = ("INSERT INTO judgements (pair_id, prompt_index, cell_a, sample_a, cell_b, "
                    "sample_b, choice, rater, created_at) VALUES (:pair_id, :prompt_index, "
                    ":cell_a, :sample_a, :cell_b, :sample_b, :choice, :rater, :created_at)")


class RatingsError(UserInputError):
    """ratings.sqlite cannot be used (newer format, locked, damaged): one line, exit 2."""


class RatingRejected(UserInputError):
    """A judgement that is refused (unknown pair, cell or choice; pair already judged)."""


@dataclass(frozen=True)
class Pair:
    pair_id: str
    prompt_index: int
    cell_a: str
    sample_a: int
    cell_b: str
    sample_b: int


def clean_rater(name: str | None) -> str:
    """The rater's name as stored: printable, trimmed, at most 64 characters."""
    text = "".join(ch for ch in (name or "") if ch.isprintable()).strip()
    return text[:MAX_RATER_LENGTH] or "anonymous"


class RatingsStore:
    """``ratings.sqlite`` of one run. Each call opens its own connection (thread-safe)."""

    def __init__(self, path: str | Path, timeout: float | None = None) -> None:
        self.path = Path(path)
        # How long a write waits for another writer's lock before giving up.
        self.timeout = BUSY_TIMEOUT_S if timeout is None else timeout

    # -- connections ---------------------------------------------------------------
    def _connect(self, write: bool) -> sqlite3.Connection:
        if write:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        else:
            conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                   timeout=self.timeout, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            self._check_format(conn, write)
        except BaseException:
            conn.close()
            raise
        return conn

    def _check_format(self, conn: sqlite3.Connection, write: bool) -> None:
        version = self._run(lambda: conn.execute("PRAGMA user_version").fetchone()[0])
        if version > FORMAT_VERSION:
            raise RatingsError(f"written by a newer samplerlab (ratings format {version}; this "
                               f"one reads format {FORMAT_VERSION}): upgrade samplerlab to "
                               "read it", file=str(self.path))
        if version == 0 and write:
            def create() -> None:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("BEGIN IMMEDIATE")
                try:
                    if conn.execute("PRAGMA user_version").fetchone()[0] == 0:
                        # One statement at a time: executescript() would COMMIT first.
                        for statement in SCHEMA.split(";"):
                            if statement.strip():
                                conn.execute(statement)
                        conn.execute(f"PRAGMA user_version={FORMAT_VERSION}")
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            self._run(create)

    def _run(self, fn):
        """Run ``fn``, turning SQLite's errors into one line naming the file."""
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise RatingsError(f"locked by another writer ({exc}); nothing was stored, "
                                   "try again", file=str(self.path)) from None
            raise RatingsError(f"cannot be used: {exc}", file=str(self.path)) from None
        except sqlite3.DatabaseError as exc:
            raise RatingsError(f"not a ratings database ({exc}); move it aside to start "
                               "a new one", file=str(self.path)) from None

    def exists(self) -> bool:
        return self.path.is_file()

    # -- pairs and judgements ------------------------------------------------------
    def issue_pair(self, samples: Any, rater: str, cells: list[str] | None = None,
                   rng: random.Random | None = None) -> Pair:
        """Choose, record and return a pair to judge (see :func:`choose_pair`)."""
        counts = self.pair_counts()
        seen = self.judged_samples(rater)
        pair = choose_pair(samples, counts, seen, cells=cells, rng=rng)
        conn = self._connect(write=True)
        try:
            self._run(lambda: conn.execute(
                "INSERT INTO pairs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (pair.pair_id, pair.prompt_index, pair.cell_a, pair.sample_a, pair.cell_b,
                 pair.sample_b, clean_rater(rater), now())))
        finally:
            conn.close()
        return pair

    def record(self, pair_id: str, choice: str, rater: str) -> dict[str, Any]:
        """Store one judgement of an issued pair; :class:`RatingRejected` stores nothing."""
        if choice not in CHOICES:
            raise RatingRejected(f"unknown choice {choice!r} (expected a, b or tie)",
                                 field="choice")
        if not self.exists():
            raise RatingRejected(f"unknown pair {pair_id!r}", field="pair")
        conn = self._connect(write=True)
        try:
            def insert() -> dict[str, Any]:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    pair = conn.execute("SELECT * FROM pairs WHERE pair_id = ?",
                                        (pair_id,)).fetchone()
                    if pair is None:
                        raise RatingRejected(f"unknown pair {pair_id!r}", field="pair")
                    if conn.execute("SELECT 1 FROM judgements WHERE pair_id = ?",
                                    (pair_id,)).fetchone():
                        raise RatingRejected(f"pair {pair_id!r} is already judged",
                                             field="pair")
                    row = {"pair_id": pair_id, "prompt_index": pair["prompt_index"],
                           "cell_a": pair["cell_a"], "sample_a": pair["sample_a"],
                           "cell_b": pair["cell_b"], "sample_b": pair["sample_b"],
                           "choice": choice, "rater": clean_rater(rater), "created_at": now()}
                    cursor = conn.execute(INSERT_JUDGEMENT, row)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                return {"id": cursor.lastrowid, **row}
            return self._run(insert)
        finally:
            conn.close()

    def _read(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        if not self.exists():
            return []
        conn = self._connect(write=False)
        try:
            def query() -> list[sqlite3.Row]:
                if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'judgements'"
                                ).fetchone() is None:
                    return []
                return conn.execute(sql, params).fetchall()
            return self._run(query)
        finally:
            conn.close()

    def judgements(self) -> list[dict[str, Any]]:
        """Every judgement, oldest first, with the columns of :data:`EXPORT_COLUMNS`."""
        rows = self._read(SELECT_JUDGEMENTS)
        return [dict(r) for r in rows]

    def pair_counts(self) -> dict[frozenset[str], int]:
        """Judgements so far per unordered pair of cells."""
        rows = self._read("SELECT cell_a, cell_b, COUNT(*) AS n FROM judgements "
                          "GROUP BY cell_a, cell_b")
        counts: dict[frozenset[str], int] = {}
        for r in rows:
            key = frozenset((r["cell_a"], r["cell_b"]))
            counts[key] = counts.get(key, 0) + r["n"]
        return counts

    def judged_samples(self, rater: str) -> set[tuple]:
        """The sample pairs this rater has judged (unordered), to avoid showing them again."""
        rows = self._read("SELECT prompt_index, cell_a, sample_a, cell_b, sample_b FROM "
                          "judgements WHERE rater = ?", (clean_rater(rater),))
        return {_pair_key(r["prompt_index"], r["cell_a"], r["sample_a"], r["cell_b"],
                          r["sample_b"]) for r in rows}


def _pair_key(prompt: int, cell_a: str, sample_a: int, cell_b: str, sample_b: int) -> tuple:
    return (prompt, frozenset(((cell_a, sample_a), (cell_b, sample_b))))


def check_cells(samples: Any, cells: list[str] | None) -> list[str]:
    """The cells to pair: ``cells`` (each must have samples) or every cell with samples."""
    known = list(samples.cells)
    if not cells:
        return known
    unknown = [c for c in cells if c not in samples.cells]
    if unknown:
        raise RatingRejected(f"unknown cell {unknown[0]!r} (known: {', '.join(known)})",
                             field="cells")
    chosen = list(dict.fromkeys(cells))
    if len(chosen) < 2:
        raise RatingRejected("choose at least two different cells to compare", field="cells")
    return chosen


CANDIDATE_DRAWS = 20


def choose_pair(samples: Any, counts: dict[frozenset[str], int], seen: set[tuple],
                cells: list[str] | None = None, rng: random.Random | None = None) -> Pair:
    """A pair of continuations of one prompt from two different cells, in random order.

    The pair of cells with the fewest judgements goes first (ties broken at random), so
    every comparison gets rated; within it, a random prompt both cells answered and a
    random sample of each. A draw the rater has already judged, or whose two texts are
    identical (nothing to judge), is redrawn up to a few times.
    """
    rng = rng or random.Random()  # noqa: S311 - drawing pairs, not secrets
    chosen = check_cells(samples, cells)
    cell_pairs = list(combinations(chosen, 2))
    if not cell_pairs:
        raise RatingRejected("the run needs samples from at least two cells to rate",
                             field="cells")
    rng.shuffle(cell_pairs)
    cell_pairs.sort(key=lambda p: counts.get(frozenset(p), 0))
    fallback = None
    for cell_x, cell_y in cell_pairs:
        by_prompt = _common_prompts(samples, cell_x, cell_y)
        if not by_prompt:
            continue
        prompts = sorted(by_prompt)
        for _ in range(CANDIDATE_DRAWS):
            prompt = rng.choice(prompts)
            xs, ys = by_prompt[prompt]
            x, y = rng.choice(xs), rng.choice(ys)
            if rng.random() < 0.5:
                (cell_x, x), (cell_y, y) = (cell_y, y), (cell_x, x)
            pair = Pair(uuid.uuid4().hex, prompt, cell_x, x.sample_index, cell_y,
                        y.sample_index)
            fresh = _pair_key(prompt, cell_x, x.sample_index, cell_y, y.sample_index) not in seen
            if fresh and x.text != y.text:
                return pair
            fallback = fallback or pair
    if fallback is None:
        raise RatingRejected("no prompt has continuations from two of the chosen cells",
                             field="cells")
    return fallback


def _common_prompts(samples: Any, cell_x: str, cell_y: str) -> dict[int, tuple[list, list]]:
    out = {}
    for prompt, positions in samples.by_prompt.items():
        xs = [samples.samples[i] for i in positions if samples.samples[i].cell_id == cell_x]
        ys = [samples.samples[i] for i in positions if samples.samples[i].cell_id == cell_y]
        if xs and ys:
            out[prompt] = (xs, ys)
    return out


def ratings_csv_text(judgements: list[dict[str, Any]], labels: dict[str, str]) -> str:
    """The judgements as CSV: the stored columns, the two labels and the winning cell."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*EXPORT_COLUMNS, "label_a", "label_b", "winner"])
    for j in judgements:
        winner = "" if j["choice"] == "tie" else j[f"cell_{j['choice']}"]
        writer.writerow([*(j[c] for c in EXPORT_COLUMNS), labels.get(j["cell_a"], j["cell_a"]),
                         labels.get(j["cell_b"], j["cell_b"]), winner])
    return out.getvalue()
