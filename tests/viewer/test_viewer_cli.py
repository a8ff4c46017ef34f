"""``samplerlab view`` (serving and --export), ``samplerlab report`` and
``samplerlab ratings export`` through the real CLI."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import re
import sqlite3
from html import unescape
from pathlib import Path

import pytest
from synthetic import XSS_PROMPTS, write_run

from samplerlab.cli import main
from samplerlab.ratings.store import FORMAT_VERSION, RatingsStore
from samplerlab.viewer.samples import SampleIndex


def one_line(text: str) -> str:
    return " ".join(text.split())


def rate(run: Path, choices: list[str], rater: str = "ana") -> None:
    store = RatingsStore(run / "ratings.sqlite")
    samples = SampleIndex.load(run / "samples.jsonl")
    for choice in choices:
        store.record(store.issue_pair(samples, rater).pair_id, choice, rater)


@pytest.fixture
def served(monkeypatch):
    """Replaces uvicorn's blocking loop: records what would be served and returns."""
    calls = []

    def fake_serve(app, sock):
        calls.append((app, sock.getsockname()))

    monkeypatch.setattr("samplerlab.viewer.serve.serve", fake_serve)
    return calls


# ----------------------------------------------------------------------------- view
def test_view_prints_the_url_of_a_free_loopback_port(demo_run, served, capsys):
    assert main(["view", str(demo_run), "--no-browser"]) == 0
    out = capsys.readouterr()
    [(app, (host, port))] = served
    assert host == "127.0.0.1" and port > 0
    assert f"http://127.0.0.1:{port}/" in out.out and "1 run(s)" in out.out
    assert "warning" not in out.err


def test_view_without_arguments_serves_the_results_root(tmp_path, served, capsys,
                                                        monkeypatch):
    write_run(tmp_path / "results", "a", "r1")
    write_run(tmp_path / "results", "b", "r1")
    monkeypatch.chdir(tmp_path)
    assert main(["view", "--no-browser", "--port", "0"]) == 0
    assert "2 run(s)" in capsys.readouterr().out


def test_view_on_another_address_warns(demo_run, served, capsys):
    assert main(["view", str(demo_run), "--no-browser", "--host", "0.0.0.0"]) == 0  # noqa: S104
    err = one_line(capsys.readouterr().err)
    assert "warning: listening on 0.0.0.0, not 127.0.0.1: anyone who can reach" in err


def test_view_serves_the_good_runs_and_names_the_bad_path(demo_run, tmp_path, served, capsys):
    assert main(["view", str(demo_run), str(tmp_path / "nope"), "--no-browser"]) == 0
    err = one_line(capsys.readouterr().err)
    assert f"warning: {tmp_path / 'nope'}: does not exist (not served)" in err
    assert len(served) == 1


@pytest.mark.parametrize("args, message", [
    (["view", "{tmp}/nope"], "{tmp}/nope: does not exist"),
    (["view", "{tmp}"], "{tmp}: not a samplerlab run directory (no manifest.json) and no run "
                        "directories under it"),
    (["view", "--results-root", "{tmp}/none"], "results root '{tmp}/none' does not exist"),
    (["view", "{tmp}", "--export", "{tmp}/x.html"], "'{tmp}' is not a samplerlab run "
                                                    "directory (no manifest.json)"),
    (["report", "{tmp}"], "'{tmp}' is not a samplerlab run directory"),
    (["ratings", "export", "{tmp}/nope"], "run directory '{tmp}/nope' does not exist"),
])
def test_bad_paths_are_one_line_and_exit_2(tmp_path, served, capsys, args, message):
    args = [a.format(tmp=tmp_path) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message.format(tmp=tmp_path) in one_line(err)
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2
    assert not served


# --------------------------------------------------------------------------- export
def test_export_writes_one_self_contained_html_file(real_run, tmp_path, capsys):
    rate(real_run, ["a", "b", "tie"])
    target = tmp_path / "run.html"
    assert main(["view", str(real_run), "--export", str(target)]) == 0
    html = target.read_text(encoding="utf-8")
    # Nothing is loaded from anywhere: no src/href to a URL or file, no external CSS url().
    assert not re.search(r'(src|href)="(?!#|data:)', html)
    assert "url(" not in html and "@import" not in html
    # The policy allows only the inlined script and style, by hash.
    policy = unescape(re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"',
                                html).group(1))
    script = re.search(r"<script>(.*?)</script>", html, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in policy and "default-src 'none'" in policy
    # The run, metrics, ratings, plots and every prompt's samples are all in it.
    assert 'id="metric-table"' in html and 'id="ratings-table"' in html
    assert html.count('src="data:image/png;base64,') == len(list(real_run.glob("plots/*.png")))
    assert html.count('class="prompt-page"') == 4
    assert html.count('<td class="card"') == 3 * 4 * 2
    for raw in XSS_PROMPTS:
        assert raw not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


# --------------------------------------------------------------------------- report
def test_report_rewrites_report_md_with_the_ratings(real_run, capsys):
    assert main(["report", str(real_run)]) == 0
    assert "## Human ratings" not in (real_run / "report.md").read_text()
    rate(real_run, ["a", "a", "b", "tie", "a"])
    capsys.readouterr()
    assert main(["report", str(real_run)]) == 0
    out = capsys.readouterr().out
    assert "human ratings (5 judgements)" in out and "Bradley" in out
    report = (real_run / "report.md").read_text()
    section = report[report.index("## Human ratings"):]
    assert "5 blind pairwise judgements by 1 rater(s)" in section
    assert "| cell | judgements | wins | ties | losses | win rate | Bradley–Terry |" in section
    rows = [r for r in section.splitlines() if r.startswith("| ") and "---" not in r][1:]
    assert sum(int(r.split("|")[2]) for r in rows) == 10  # each judgement counts twice
    assert re.search(r"\| [0-9.]+ \[[0-9.]+, [0-9.]+\] \| \d{3,4} \[\d{3,4}, \d{3,4}\] \|$",
                     rows[0])


def test_report_refuses_a_newer_ratings_database_and_writes_nothing(demo_run, capsys):
    rate(demo_run, ["a"])
    conn = sqlite3.connect(demo_run / "ratings.sqlite")
    conn.execute(f"PRAGMA user_version={FORMAT_VERSION + 1}")
    conn.close()
    assert main(["report", str(demo_run)]) == 2
    err = one_line(capsys.readouterr().err)
    assert f"{demo_run / 'ratings.sqlite'}: written by a newer samplerlab" in err
    assert not (demo_run / "report.md").exists()


# -------------------------------------------------------------------- ratings export
def test_ratings_export_writes_one_csv_row_per_judgement(demo_run, tmp_path, capsys):
    rate(demo_run, ["a", "tie"], rater="ana")
    rate(demo_run, ["b"], rater="bo")
    capsys.readouterr()
    assert main(["ratings", "export", str(demo_run)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["choice"], r["rater"]) for r in rows] == [("a", "ana"), ("tie", "ana"),
                                                         ("b", "bo")]
    first = rows[0]
    assert first["winner"] == first["cell_a"] and first["label_a"] in ("greedy", "top_k(k=5)")
    assert rows[1]["winner"] == ""
    target = tmp_path / "out.csv"
    assert main(["ratings", "export", str(demo_run), "-o", str(target)]) == 0
    assert len(target.read_text().splitlines()) == 4


def test_ratings_export_without_ratings_says_how_to_make_them(demo_run, capsys):
    assert main(["ratings", "export", str(demo_run)]) == 2
    assert "has no ratings.sqlite yet" in one_line(capsys.readouterr().err)


def test_ratings_export_of_a_locked_database_is_one_line(demo_run, capsys, monkeypatch):
    rate(demo_run, ["a"])
    holder = sqlite3.connect(demo_run / "ratings.sqlite", isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("INSERT INTO judgements SELECT * FROM judgements WHERE 0")
    monkeypatch.setattr("samplerlab.ratings.store.BUSY_TIMEOUT_S", 0.1)
    try:
        assert main(["ratings", "export", str(demo_run)]) == 2
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "ratings.sqlite: locked by another writer" in one_line(capsys.readouterr().err)
