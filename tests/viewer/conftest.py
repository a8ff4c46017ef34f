"""Fixtures of the viewer's tests: one real run (made once), hand-written runs, clients."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from synthetic import XSS_PROMPTS, write_run


@pytest.fixture(scope="session")
def real_run_template(tiny_preset, tmp_path_factory) -> Path:
    """A real run of the tiny model: three cells, two prompts and the two XSS prompts."""
    import samplerlab

    spec = {
        "name": "viewer", "seed": 11,
        "model": {"preset": str(tiny_preset), "sequence_length": 32},
        "prompts": ["I like basketball", "My trip to Yosemite was", *XSS_PROMPTS],
        "generation": {"max_length": 24, "samples_per_prompt": 2, "batch_size": 8},
        "samplers": ["greedy", {"name": "top_k", "params": {"k": [5, 40]}}],
        "metrics": ["rep_n", "length"],
    }
    root = tmp_path_factory.mktemp("real")
    result = samplerlab.run(samplerlab.load_spec(spec), results_root=root, run_id="r1",
                            progress=False)
    assert result.status == "complete"
    return result.run_dir


@pytest.fixture
def real_run(real_run_template, tmp_path) -> Path:
    """A private copy of the real run (tests add ratings to it)."""
    target = tmp_path / "results" / "viewer" / "r1"
    shutil.copytree(real_run_template, target)
    return target


@pytest.fixture
def demo_run(tmp_path) -> Path:
    return write_run(tmp_path / "results")


def client_for(*paths: Path, **kwargs) -> TestClient:
    from samplerlab.viewer import Catalog, create_app

    return TestClient(create_app(Catalog(list(paths)), **kwargs))


@pytest.fixture
def client(real_run) -> TestClient:
    return client_for(real_run)


@pytest.fixture
def make_client():
    return client_for
