"""ratings.sqlite: pairs, judgements, validation, two writers, restarts, bad databases."""

from __future__ import annotations

import random
import sqlite3
import threading
from pathlib import Path

import pytest
from synthetic import cell, write_run

from samplerlab.ratings.store import (
    FORMAT_VERSION,
    RatingRejected,
    RatingsError,
    RatingsStore,
    choose_pair,
)
from samplerlab.viewer.samples import SampleIndex

CELLS = [cell(0, "greedy", "greedy"), cell(1, "top_k", "top_k(k=5)", k=5),
         cell(2, "top_p", "top_p(p=0.9)", p=0.9)]


@pytest.fixture
def run(tmp_path) -> Path:
    return write_run(tmp_path, cells=CELLS, samples_per_prompt=3)


@pytest.fixture
def samples(run) -> SampleIndex:
    return SampleIndex.load(run / "samples.jsonl")


@pytest.fixture
def store(run) -> RatingsStore:
    return RatingsStore(run / "ratings.sqlite", timeout=0.2)


def test_a_pair_is_one_prompt_and_two_different_cells(samples, store):
    pair = store.issue_pair(samples, "ana", rng=random.Random(0))
    assert pair.cell_a != pair.cell_b
    a = samples.find(pair.cell_a, pair.prompt_index, pair.sample_a)
    b = samples.find(pair.cell_b, pair.prompt_index, pair.sample_b)
    assert a is not None and b is not None and a.text != b.text


def test_a_judgement_is_one_row_with_pair_cells_samples_choice_rater_and_time(samples, store):
    pair = store.issue_pair(samples, "ana")
    stored = store.record(pair.pair_id, "b", rater="ana")
    [row] = store.judgements()
    assert row == {k: stored[k] for k in row}
    assert (row["pair_id"], row["cell_a"], row["sample_a"], row["cell_b"], row["sample_b"],
            row["choice"], row["rater"]) == (pair.pair_id, pair.cell_a, pair.sample_a,
                                             pair.cell_b, pair.sample_b, "b", "ana")
    assert row["created_at"].startswith("20")


def test_the_database_is_in_wal_mode_with_its_format_version(samples, store):
    store.issue_pair(samples, "ana")
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == FORMAT_VERSION
    conn.close()


@pytest.mark.parametrize("pair_id, choice, message", [
    ("nope", "a", "unknown pair 'nope'"),
    (None, "A", "unknown choice 'A'"),
    (None, "", "unknown choice ''"),
])
def test_a_bad_judgement_stores_nothing(samples, store, pair_id, choice, message):
    pair = store.issue_pair(samples, "ana")
    with pytest.raises(RatingRejected, match=message):
        store.record(pair_id or pair.pair_id, choice, rater="ana")
    assert store.judgements() == []


def test_a_pair_is_judged_once(samples, store):
    pair = store.issue_pair(samples, "ana")
    store.record(pair.pair_id, "tie", rater="ana")
    with pytest.raises(RatingRejected, match="already judged"):
        store.record(pair.pair_id, "a", rater="ana")
    assert [j["choice"] for j in store.judgements()] == ["tie"]


def test_unknown_cells_are_refused(samples, store):
    with pytest.raises(RatingRejected, match="unknown cell 'nope'"):
        store.issue_pair(samples, "ana", cells=["000-greedy", "nope"])
    with pytest.raises(RatingRejected, match="at least two"):
        store.issue_pair(samples, "ana", cells=["000-greedy", "000-greedy"])
    assert not store.exists()


def test_pairs_can_be_limited_to_two_cells(samples, store):
    chosen = ["000-greedy", "002-top_p-p=0.9"]
    for _ in range(10):
        pair = store.issue_pair(samples, "ana", cells=chosen)
        assert {pair.cell_a, pair.cell_b} == set(chosen)


def test_the_least_judged_pair_of_cells_comes_next_in_random_order(samples):
    counts = {frozenset(("000-greedy", "001-top_k-k=5")): 3,
              frozenset(("000-greedy", "002-top_p-p=0.9")): 3}
    rng = random.Random(1)
    pairs = [choose_pair(samples, counts, set(), rng=rng) for _ in range(40)]
    assert {frozenset((p.cell_a, p.cell_b)) for p in pairs} == {
        frozenset(("001-top_k-k=5", "002-top_p-p=0.9"))}
    assert {p.cell_a for p in pairs} == {"001-top_k-k=5", "002-top_p-p=0.9"}  # both orders


def test_two_raters_writing_at_once_lose_nothing(samples, run):
    store = RatingsStore(run / "ratings.sqlite")
    pairs = {name: [store.issue_pair(samples, name) for _ in range(25)]
             for name in ("ana", "bo")}
    barrier = threading.Barrier(2)

    def rate(name: str) -> None:
        mine = RatingsStore(run / "ratings.sqlite")  # one store per rater, as two requests
        barrier.wait()
        for pair in pairs[name]:
            mine.record(pair.pair_id, "a", rater=name)

    threads = [threading.Thread(target=rate, args=(n,)) for n in pairs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    judged = store.judgements()
    assert len(judged) == 50
    assert {j["pair_id"] for j in judged} == {p.pair_id for ps in pairs.values() for p in ps}


def test_judgements_survive_a_new_store_on_the_same_file(samples, run):
    first = RatingsStore(run / "ratings.sqlite")
    pair = first.issue_pair(samples, "ana")
    first.record(pair.pair_id, "a", rater="ana")
    pending = first.issue_pair(samples, "ana")
    second = RatingsStore(run / "ratings.sqlite")  # a restarted server
    second.record(pending.pair_id, "b", rater="ana")  # a page served before the restart
    assert [j["choice"] for j in second.judgements()] == ["a", "b"]


def test_reading_never_creates_the_database(store):
    assert store.judgements() == [] and store.pair_counts() == {}
    assert not store.exists()


def test_a_database_from_a_newer_format_is_named_and_left_alone(samples, store):
    conn = sqlite3.connect(store.path)
    conn.execute(f"PRAGMA user_version={FORMAT_VERSION + 1}")
    conn.close()
    before = store.path.read_bytes()
    for action in (store.judgements, lambda: store.issue_pair(samples, "ana")):
        with pytest.raises(RatingsError, match=r"ratings.sqlite: written by a newer "
                                               r"samplerlab \(ratings format 2"):
            action()
    assert store.path.read_bytes() == before


def test_a_locked_database_says_so_and_stores_nothing(samples, store):
    pair = store.issue_pair(samples, "ana")
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
    try:
        with pytest.raises(RatingsError, match="locked by another writer"):
            store.record(pair.pair_id, "a", rater="ana")
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert store.judgements() == []


def test_a_file_that_is_not_a_database_is_named(store):
    store.path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(RatingsError, match="ratings.sqlite: not a ratings database"):
        store.judgements()


@pytest.mark.parametrize("name, stored", [("  ana ", "ana"), ("", "anonymous"),
                                          ("a\x00b\nc", "abc"), ("x" * 100, "x" * 64)])
def test_rater_names_are_cleaned(samples, store, name, stored):
    pair = store.issue_pair(samples, name)
    store.record(pair.pair_id, "a", rater=name)
    assert store.judgements()[0]["rater"] == stored
