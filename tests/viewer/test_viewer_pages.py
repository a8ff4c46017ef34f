"""Every page and endpoint of the viewer through Starlette's test client."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from pathlib import Path

import pytest
from synthetic import XSS_PROMPTS, cell, snapshot, write_run, write_traces

from samplerlab.ratings.store import FORMAT_VERSION


def run_url(run: Path) -> str:
    return f"/runs/{run.parent.name}/{run.name}/"


def pair_id(html: str) -> str:
    return re.search(r'name="pair" value="([0-9a-f]+)"', html).group(1)


# ------------------------------------------------------------------------------ runs
def test_the_runs_page_lists_each_run_and_why_it_did_not_finish(tmp_path, make_client):
    root = tmp_path / "results"
    write_run(root, "done", "r1", started="2026-03-01T10:00:00+00:00")
    write_run(root, "broken", "r2", status="failed",
              failed={"001-top_k-k=5": "ValueError: k must be positive\ntraceback..."})
    write_run(root, "stopped", "r3", status="interrupted", metrics=False)
    (root / "garbled" / "r4").mkdir(parents=True)
    (root / "garbled" / "r4" / "manifest.json").write_text("{not json", encoding="utf-8")
    html = make_client(root).get("/").text
    rows = {m.group(1): m.group(0) for m in re.finditer(
        r'<tr class="run-row">\s*<td data-sort="([^"]*)">.*?</tr>', html, re.S)}
    assert set(rows) == {"done", "broken", "stopped", "garbled"}
    assert "complete" in rows["done"] and "2026-03-01 10:00:00" in rows["done"]
    assert "samplerlab:tiny-en" in rows["done"] and "2/2" in rows["done"]
    assert "cell top_k(k=5) failed: ValueError: k must be positive" in rows["broken"]
    assert "traceback" not in rows["broken"]
    assert "interrupted after 2 of 2 cells" in rows["stopped"]
    assert "samplerlab run --resume" in rows["stopped"]
    assert "manifest.json: not valid JSON" in rows["garbled"]


def test_the_real_run_is_served_with_its_metrics_plots_spec_and_manifest(client, real_run):
    html = client.get(run_url(real_run)).text
    table = html[html.index('id="metric-table"'):html.index("</table>",
                                                             html.index('id="metric-table"'))]
    for label in ("greedy", "top_k(k=5)", "top_k(k=40)"):
        assert f">{label}</th>" in table
    assert re.search(r'data-sort="[0-9.e-]+">[0-9.]+ \[[0-9.]+, [0-9.]+\]</td>', table)
    assert "rep_4" in table and 'class="sortable metrics"' in html
    plots = sorted(p.name for p in (real_run / "plots").glob("*.png"))
    assert plots and all(f'plots/{name}"' in html for name in plots)
    assert "name: viewer" in html  # spec.yaml
    assert "keras-hub" in html and "compiled programs" in html  # manifest facts
    assert html.count("<option value=") == 0  # no other run to compare with


def test_plots_and_the_known_files_are_served(client, real_run):
    png = next((real_run / "plots").glob("*.png"))
    response = client.get(run_url(real_run) + f"plots/{png.name}")
    assert response.status_code == 200 and response.content == png.read_bytes()
    assert response.headers["content-type"] == "image/png"
    response = client.get(run_url(real_run) + "files/spec.yaml")
    assert response.status_code == 200 and "name: viewer" in response.text
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("path", [
    "plots/..%2Fmanifest.json", "plots/%2Fetc%2Fpasswd", "plots/%2E%2E", "plots/outside.png",
    "files/..%2F..%2Fsecret.txt", "files/ratings.sqlite", "files/outside.yaml",
    "files/cells", "files/%2Fetc%2Fpasswd", "../../secret.txt", "files/%2E%2E",
])
def test_urls_never_reach_files_outside_the_run(tmp_path, make_client, path):
    run = write_run(tmp_path / "results")
    secret = tmp_path / "results" / "secret.txt"
    secret.write_text("secret", encoding="utf-8")
    (run / "plots").mkdir()
    (run / "plots" / "outside.png").symlink_to(secret)
    (run / "outside.yaml").symlink_to(secret)
    response = make_client(run).get(run_url(run) + path)
    assert response.status_code == 404
    assert "secret" not in response.text


def test_the_stylesheet_and_script_are_served_from_the_package(client):
    for name, kind in (("viewer.css", "text/css"), ("viewer.js", "javascript")):
        response = client.get(f"/static/{name}")
        assert response.status_code == 200 and kind in response.headers["content-type"]
    assert client.get("/static/..%2Fapp.py").status_code == 404
    assert client.get("/static/%2E%2E/app.py").status_code == 404


def test_an_unknown_run_is_404(client):
    assert client.get("/runs/nope/r1/").status_code == 404
    assert client.get("/runs/nope/r1/samples").status_code == 404


def test_compare_shows_samplerlab_compare_for_two_served_runs(real_run, make_client):
    other = real_run.parents[1] / "again" / "r2"
    shutil.copytree(real_run, other)
    client = make_client(real_run, other)
    page = client.get(run_url(real_run))
    assert '<option value="again/r2">' in page.text
    html = client.get(run_url(real_run) + "compare", params={"with": "again/r2"}).text
    assert "B − A [95% CI]" in html
    rows = re.findall(r'<th scope="row" data-sort="([^"]+)">', html)
    assert {"greedy", "top_k(k=5)", "top_k(k=40)"} <= set(rows)
    assert "0.000 [0.000, 0.000]" in html  # a run against its copy: no difference
    assert client.get(run_url(real_run) + "compare", params={"with": "x/y"}).status_code == 404


# --------------------------------------------------------------------------- samples
def test_samples_show_one_prompt_with_every_cells_continuations_side_by_side(client, real_run):
    samples = [json.loads(x) for x in (real_run / "samples.jsonl").read_text().splitlines()]
    html = client.get(run_url(real_run) + "samples").text
    assert "prompt 1 of 4" in html and "I like basketball" in html
    for s in (s for s in samples if s["prompt_index"] == 0):
        card = re.search(rf'data-cell="{re.escape(s["cell_id"])}" data-stop="[^"]+">\s*'
                         r'<div class="text">(.*?)</div>', html, re.S)
        assert card, s["cell_id"]
    heads = re.findall(r'<th scope="col" data-cell="([^"]+)"', html)
    assert heads == ["000-greedy", "001-top_k-k=5", "002-top_k-k=40"]
    next_url = re.search(r'id="next-prompt" data-key="ArrowRight n" href="([^"]+)"', html)
    html = client.get(next_url.group(1).replace("&amp;", "&")).text
    assert "prompt 2 of 4" in html and "My trip to Yosemite was" in html


def test_samples_filter_by_cell_stop_reason_prompt_and_text(demo_run, make_client):
    client = make_client(demo_run)
    url = run_url(demo_run) + "samples"
    html = client.get(url, params={"cells": "001-top_k-k=5"}).text
    assert re.findall(r'<th scope="col" data-cell="([^"]+)"', html) == ["001-top_k-k=5"]
    html = client.get(url, params={"stop": "end_token"}).text
    assert 'data-stop="max_length"' not in html and 'data-stop="end_token"' in html
    html = client.get(url, params={"prompt": 1}).text
    assert "My trip to Yosemite was" in html and "prompt 2 of 2" in html
    html = client.get(url, params={"q": "CONTINUATION 1 of prompt 1"}).text
    assert "prompt 1 of 1" in html and "<mark>continuation 1 of prompt 1</mark>" in html
    html = client.get(url, params={"q": "no such words"}).text
    assert "No prompt matches these filters." in html


def test_samples_page_through_many_samples_of_one_prompt(tmp_path, make_client):
    run = write_run(tmp_path / "results", samples_per_prompt=13)
    client = make_client(run)
    html = client.get(run_url(run) + "samples").text
    assert "samples 1–10 of 13" in html
    assert re.findall(r'<th scope="row" class="rowhead">(\d+)</th>', html) == \
        [str(i) for i in range(10)]
    html = client.get(run_url(run) + "samples", params={"row": 10}).text
    assert re.findall(r'<th scope="row" class="rowhead">(\d+)</th>', html) == \
        ["10", "11", "12"]


def test_repeated_ngrams_are_highlighted_as_rep_n_counts_them(demo_run, make_client):
    client = make_client(demo_run)
    html = client.get(run_url(demo_run) + "samples").text
    # "the cat sat on the mat and the cat sat on the mat": 4-grams repeat from "the cat".
    assert re.search(r'<span class="rep" title="repeats an earlier 4-gram">the cat sat on the'
                     r'</span>', html)
    assert "rep-4 12.5% (2/16)" in html
    html = client.get(run_url(demo_run) + "samples", params={"n": 2}).text
    assert "repeats an earlier 2-gram" in html and "rep-2 " in html


def test_the_reference_continuation_is_shown_when_the_prompt_has_one(tmp_path, make_client):
    run = write_run(tmp_path / "results", references=["the human's own ending", None])
    html = make_client(run).get(run_url(run) + "samples").text
    assert 'class="reference-head">reference</th>' in html
    assert "the human&#39;s own ending" in html


def test_a_damaged_samples_line_is_named_and_the_rest_served(demo_run, make_client):
    path = demo_run / "samples.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = '{"cell_id": "000-greedy", "text": tru'
    lines[4] = json.dumps({"text": "no cell"})
    path.write_text("\n".join(lines) + "\n")
    client = make_client(demo_run)
    for page in ("", "samples"):
        html = client.get(run_url(demo_run) + page).text
        assert "samples.jsonl:3: not valid JSON" in html
        assert "samples.jsonl:5: missing cell_id, prompt_index; line skipped" in html
    html = client.get(run_url(demo_run) + "samples").text
    assert "I like basketball" in html and "continuation 1 of prompt 0" in html


def test_an_interrupted_run_without_metrics_is_still_browsable(tmp_path, make_client):
    run = write_run(tmp_path / "results", status="interrupted", metrics=False)
    client = make_client(run)
    html = client.get(run_url(run)).text
    assert "metrics.csv: missing (the run is interrupted)" in html
    assert "interrupted after 2 of 2 cells" in html
    assert "I like basketball" in client.get(run_url(run) + "samples").text


# ---------------------------------------------------------------------------- tokens
def test_the_tokens_page_exists_only_with_traces(demo_run, make_client):
    client = make_client(demo_run)
    assert client.get(run_url(demo_run) + "tokens").status_code == 404
    assert "/tokens" not in client.get(run_url(demo_run)).text
    assert "· <a href" not in client.get(run_url(demo_run) + "samples").text


def test_tokens_are_coloured_by_probability_or_entropy_with_alternatives(demo_run,
                                                                          make_client):
    write_traces(demo_run, [("000-greedy", 0, 0), ("000-greedy", 0, 1)],
                 ["The", " cat", " <b>sat</b>"], top_texts=["<i>alt</i>"])
    client = make_client(demo_run)
    assert f'href="{run_url(demo_run)}tokens"' in client.get(run_url(demo_run)).text
    samples = client.get(run_url(demo_run) + "samples").text
    assert re.findall(r'href="[^"]*tokens\?([^"]+)"', samples) == [
        "cell=000-greedy&amp;prompt=0&amp;sample=0", "cell=000-greedy&amp;prompt=0&amp;sample=1"]
    html = client.get(run_url(demo_run) + "tokens",
                      params={"cell": "000-greedy", "prompt": 0, "sample": 1}).text
    shades = re.findall(r'<span class="tok (t\d)" tabindex="0">', html)
    assert shades == ["t2", "t5", "t7"]  # probabilities 1/4, 2/4, 3/4
    assert "&lt;b&gt;sat&lt;/b&gt;" in html and "<b>sat</b>" not in html
    assert "\\u003ci\\u003ealt\\u003c/i\\u003e" in html  # an alternative, shown as text
    assert "rank 0" in html and "sampler p 0.9000" in html and "kept 40" in html
    assert "sample 1" in html and "previous generation" in html
    html = client.get(run_url(demo_run) + "tokens", params={"colour": "entropy"}).text
    assert re.findall(r'<span class="tok (t\d)"', html) == ["t8", "t4", "t0"]
    html = client.get(run_url(demo_run) + "tokens", params={"cell": "001-top_k-k=5"}).text
    assert "no trace of cell 001-top_k-k=5, prompt None, sample 0" in html


def test_damaged_traces_are_named(demo_run, make_client):
    (demo_run / "traces.parquet").write_bytes(b"PAR1 not really")
    html = make_client(demo_run).get(run_url(demo_run) + "tokens").text
    assert "traces.parquet: cannot be read" in html


# ---------------------------------------------------------------------------- rating
def test_rating_a_pair_stores_one_judgement_and_serves_the_next(client, real_run):
    page = client.get(run_url(real_run) + "rate")
    assert page.status_code == 200
    for cell_id in ("000-greedy", "001-top_k-k=5", "002-top_k-k=40", "greedy", "top_k"):
        assert cell_id not in page.text.split("<main>")[1]  # blind: no cell names
    response = client.post(run_url(real_run) + "rate", data={
        "pair": pair_id(page.text), "choice": "a", "rater": "ana"}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].endswith("/rate")
    assert response.cookies["samplerlab_rater"] == "ana"
    nxt = client.get(response.headers["location"])
    assert 'value="ana"' in nxt.text and "You have judged 1 pair." in nxt.text
    rows = sqlite3.connect(real_run / "ratings.sqlite").execute(
        "SELECT pair_id, choice, rater FROM judgements").fetchall()
    assert rows == [(pair_id(page.text), "a", "ana")]


def test_rating_can_be_limited_to_two_cells(client, real_run):
    cells = ["000-greedy", "002-top_k-k=40"]
    page = client.get(run_url(real_run) + "rate", params={"cells": cells})
    response = client.post(run_url(real_run) + "rate", data={
        "pair": pair_id(page.text), "choice": "tie", "cells": cells}, follow_redirects=False)
    assert "cells=000-greedy&cells=002-top_k-k%3D40" in response.headers["location"]
    [(a, b)] = sqlite3.connect(real_run / "ratings.sqlite").execute(
        "SELECT cell_a, cell_b FROM judgements").fetchall()
    assert {a, b} == set(cells)


@pytest.mark.parametrize("change, message", [
    ({"pair": "0123abcd"}, "unknown pair"),
    ({"choice": "both"}, "unknown choice"),
    ({"choice": ""}, "unknown choice"),
    ({"cells": ["000-greedy", "<b>nope</b>"]}, "unknown cell"),
])
def test_a_bad_rating_request_is_400_and_stores_nothing(client, real_run, change, message):
    page = client.get(run_url(real_run) + "rate")
    data = {"pair": pair_id(page.text), "choice": "a", **change}
    response = client.post(run_url(real_run) + "rate", data=data)
    assert response.status_code == 400 and message in response.text
    assert "<b>nope</b>" not in response.text
    count = sqlite3.connect(real_run / "ratings.sqlite").execute(
        "SELECT COUNT(*) FROM judgements").fetchone()[0]
    assert count == 0


def test_an_unknown_cell_on_the_rating_page_is_400(client, real_run):
    response = client.get(run_url(real_run) + "rate", params={"cells": ["a", "b"]})
    assert response.status_code == 400 and "unknown cell" in response.text


def test_a_rating_posted_from_another_site_is_refused(client, real_run):
    page = client.get(run_url(real_run) + "rate")
    for origin in ("http://evil.example", "null"):
        response = client.post(run_url(real_run) + "rate", headers={"Origin": origin},
                               data={"pair": pair_id(page.text), "choice": "a"})
        assert response.status_code == 403
    response = client.post(run_url(real_run) + "rate", headers={"Origin": "http://testserver"},
                           data={"pair": pair_id(page.text), "choice": "a"},
                           follow_redirects=False)
    assert response.status_code == 303


def test_win_rates_and_scores_appear_once_there_are_ratings(client, real_run):
    assert 'id="ratings-table"' not in client.get(run_url(real_run)).text
    for choice in ("a", "a", "b", "tie"):
        page = client.get(run_url(real_run) + "rate")
        client.post(run_url(real_run) + "rate", data={"pair": pair_id(page.text),
                                                      "choice": choice, "rater": "bo"})
    html = client.get(run_url(real_run)).text
    assert "4 blind pairwise judgements by 1 rater." in html
    table = html[html.index('id="ratings-table"'):]
    assert len(re.findall(r'<tr data-cell=', table[:table.index("</table>")])) >= 2
    csv_text = client.get(run_url(real_run) + "ratings.csv").text.splitlines()
    assert csv_text[0].startswith("id,pair_id,prompt_index,cell_a,sample_a,cell_b,sample_b,"
                                  "choice,rater,created_at,label_a,label_b,winner")
    assert len(csv_text) == 5


def test_a_newer_or_locked_ratings_database_is_named_and_the_rest_served(real_run,
                                                                          make_client):
    client = make_client(real_run, ratings_timeout=0.1)  # waits 0.1 s for a lock
    page = client.get(run_url(real_run) + "rate")
    conn = sqlite3.connect(real_run / "ratings.sqlite", isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
    try:
        response = client.post(run_url(real_run) + "rate",
                               data={"pair": pair_id(page.text), "choice": "a"})
        assert response.status_code == 503 and "locked by another writer" in response.text
    finally:
        conn.execute("ROLLBACK")
    conn.execute(f"PRAGMA user_version={FORMAT_VERSION + 1}")
    conn.close()
    html = client.get(run_url(real_run)).text
    assert "ratings.sqlite: written by a newer samplerlab" in html
    assert 'id="metric-table"' in html
    response = client.get(run_url(real_run) + "rate")
    assert response.status_code == 503 and "newer samplerlab" in response.text


# -------------------------------------------------------------------------- security
def hostile_run(root: Path) -> Path:
    """Prompts, texts, labels, parameters, names and files that are HTML."""
    cells = [cell(0, "greedy", XSS_PROMPTS[0]), cell(1, "top_k", XSS_PROMPTS[1],
                                                    k=XSS_PROMPTS[0])]
    run = write_run(root, XSS_PROMPTS[1], XSS_PROMPTS[0].replace("/", "|"), cells=cells,
                    prompts=XSS_PROMPTS, references=[XSS_PROMPTS[1], None],
                    text=lambda c, p, s: f"{XSS_PROMPTS[p]} said {c['label']}",
                    status="failed", failed={})
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["notes"] = [XSS_PROMPTS[0]]
    manifest["cells"][0]["error"] = XSS_PROMPTS[1]
    (run / "manifest.json").write_text(json.dumps(manifest))
    (run / "plots").mkdir()
    png = next(Path(__file__).parent.glob("*.png"), None)
    (run / "plots" / "<img src=x onerror=alert(1)>.png").write_bytes(
        png.read_bytes() if png else b"\x89PNG\r\n\x1a\n")
    write_traces(run, [(cells[0]["id"], 0, 0)], [XSS_PROMPTS[0]], top_texts=[XSS_PROMPTS[1]])
    return run


def assert_escaped(html: str) -> None:
    for raw in XSS_PROMPTS:
        assert raw not in html
    assert "onerror=alert(1)&gt;" in html or "onerror=alert(1)\\u003e" in html


def test_every_page_shows_hostile_text_as_text(tmp_path, make_client):
    run = hostile_run(tmp_path / "results")
    client = make_client(tmp_path / "results")
    url = client.get("/").text
    assert_escaped(url)
    base = re.search(r'<a href="(/runs/[^"]+/)">', url).group(1)
    pages = ["", "samples", "samples?q=%3Cscript%3E", "samples?prompt=1", "tokens", "rate"]
    for page in pages:
        response = client.get(base + page)
        assert response.status_code == 200, page
        assert_escaped(response.text)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in client.get(base + "samples").text
    plot = client.get(base + "plots/" + "%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E.png")
    assert plot.status_code == 200
    assert run.is_dir()


def test_pages_carry_a_strict_content_security_policy(client):
    headers = client.get("/").headers
    policy = headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert headers["referrer-policy"] == "same-origin"


def test_allowed_hosts_refuse_other_host_names(real_run, make_client):
    client = make_client(real_run, allowed_hosts=["127.0.0.1", "testserver"])
    assert client.get("/").status_code == 200
    assert client.get("/", headers={"host": "attacker.example"}).status_code == 400


def test_browsing_changes_nothing_in_the_run_but_ratings(client, real_run):
    before = snapshot(real_run)
    url = run_url(real_run)
    for page in ("", "samples", "samples?q=the", "rate", "files/spec.yaml", "ratings.csv"):
        assert client.get(url + page).status_code == 200
    page = client.get(url + "rate")
    client.post(url + "rate", data={"pair": pair_id(page.text), "choice": "a"})
    assert snapshot(real_run) == before
    assert (real_run / "ratings.sqlite").is_file()
