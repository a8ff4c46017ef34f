"""The viewer's speed (issue 15): the samples page of a 10,000-generation run and the runs
page with 100 runs each answer in <= 1 s on this CPU.

Run with ``python -m pytest tests/benchmarks/test_bench_viewer.py -p no:cacheprovider
--benchmark-only -o addopts=""``. "Cold" builds a new app for every round, so the request
includes reading samples.jsonl (or the 100 manifests); "warm" is a later request to the
same server, with its caches filled.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from synthetic import cell, write_run  # noqa: E402

from samplerlab.viewer import Catalog, create_app  # noqa: E402

CELLS = 10
PROMPTS = 250
SAMPLES_PER_PROMPT = 4  # 10 x 250 x 4 = 10,000 generations
WORDS = 150
RUNS = 100
LIMIT_S = 1.0


@pytest.fixture(scope="module")
def big_run(tmp_path_factory) -> Path:
    """10,000 generations of 150 Zipf-distributed words (with repeats, as text has), with
    200 token ids each, as the runner writes them."""
    rng = np.random.default_rng(0)
    vocab = np.array([f"w{i}" for i in range(5000)], dtype=object)
    p = 1.0 / np.arange(1, len(vocab) + 1)
    ids = rng.choice(len(vocab), size=(CELLS, PROMPTS, SAMPLES_PER_PROMPT, WORDS),
                     p=p / p.sum())

    def text(c, prompt, sample):
        return " ".join(vocab[ids[c["index"], prompt, sample]])

    cells = [cell(i, "top_k", f"top_k(k={10 * (i + 1)})", k=10 * (i + 1)) for i in range(CELLS)]
    run = write_run(tmp_path_factory.mktemp("big"), cells=cells,
                    prompts=[f"prompt number {i} about something" for i in range(PROMPTS)],
                    samples_per_prompt=SAMPLES_PER_PROMPT, text=text, token_ids=False)
    # Token ids as a real run has them (the viewer reads past them).
    lines = (run / "samples.jsonl").read_text().splitlines()
    with (run / "samples.jsonl").open("w") as fh:
        for line in lines:
            record = json.loads(line)
            record["token_ids"] = list(range(200))
            fh.write(json.dumps(record) + "\n")
    assert len(lines) == 10_000
    return run


@pytest.fixture(scope="module")
def many_runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("many")
    for i in range(RUNS):
        write_run(root, f"exp{i % 10}", f"run{i:03d}", started=f"2026-01-01T00:{i % 60:02d}:00")
    return root


def url_of(run: Path, page: str) -> str:
    return f"/runs/{run.parent.name}/{run.name}/{page}"


@pytest.mark.parametrize("query", [{}, {"q": "w1 w2", "stop": "max_length", "prompt": 200}])
def test_samples_page_of_10k_generations_warm(benchmark, big_run, query):
    client = TestClient(create_app(Catalog([big_run])))
    assert client.get(url_of(big_run, "samples")).status_code == 200  # fills the cache
    response = benchmark(client.get, url_of(big_run, "samples"), params=query)
    assert response.status_code == 200 and "top_k(k=100)" in response.text
    assert benchmark.stats.stats.max <= LIMIT_S


def test_samples_page_of_10k_generations_cold(benchmark, big_run):
    def fresh_client():
        return (TestClient(create_app(Catalog([big_run]))),), {}

    response = benchmark.pedantic(lambda c: c.get(url_of(big_run, "samples")),
                                  setup=fresh_client, rounds=5)
    assert response.status_code == 200 and "prompt 1 of 250" in response.text
    assert benchmark.stats.stats.max <= LIMIT_S


@pytest.mark.parametrize("cache", ["cold", "warm"])
def test_runs_page_with_100_runs(benchmark, many_runs, cache):
    def client():
        return (TestClient(create_app(Catalog([many_runs]))),), {}

    if cache == "cold":
        response = benchmark.pedantic(lambda c: c.get("/"), setup=client, rounds=5)
    else:
        (warm,), _ = client()
        warm.get("/")
        response = benchmark(warm.get, "/")
    assert response.text.count('class="run-row"') == RUNS
    assert benchmark.stats.stats.max <= LIMIT_S
