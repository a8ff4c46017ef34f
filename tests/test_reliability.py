"""Finished work is never lost: SIGKILL + resume, Ctrl-C, failing plugins, identical reruns."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

import samplerlab
from samplerlab.cli import main

GATE_PLUGIN = Path(__file__).resolve().parent / "gate_plugin.py"
CELLS = 3


def _spec(tiny_preset, **extra) -> dict:
    return {
        "name": "rel", "seed": 3,
        "model": {"preset": str(tiny_preset), "sequence_length": 32},
        "prompts": ["I like basketball", "That Italian restaurant is"],
        "generation": {"max_length": 14, "samples_per_prompt": 2, "batch_size": 4},
        "samplers": [{"name": "top_k", "params": {"k": [2, 3, 4, 5, 6, 7, 8, 9]}}],
        "metrics": ["rep_n"], **extra,
    }


def _samples(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "batch_seconds"} for r in rows]


@pytest.fixture
def gated_spec(tiny_preset, tmp_path):
    """Three cells of the test plugin's ``gated`` sampler (see tests/gate_plugin.py)."""
    spec = _spec(tiny_preset, plugins=[str(GATE_PLUGIN)])
    spec["samplers"] = [{"name": "gated", "params": {"cell": list(range(1, CELLS + 1))}}]
    path = tmp_path / "rel.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture
def gated_run(gated_spec, tmp_path, subprocess_env, monkeypatch):
    """``start(run_id)`` runs the gated spec in a child process; returns (process, gate)."""
    from gate_plugin import GATE_ENV

    monkeypatch.delenv(GATE_ENV, raising=False)  # runs in this process never wait
    gate = tmp_path / "gate"
    gate.mkdir()
    children = []

    def start(root: Path, run_id: str) -> subprocess.Popen:
        env = subprocess_env(PYTHONUNBUFFERED="1", **{GATE_ENV: str(gate)})
        child = subprocess.Popen([sys.executable, "-m", "samplerlab", "run", str(gated_spec),
                                  "--results-root", str(root), "--run-id", run_id, "-q"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=env)
        children.append(child)
        return child

    yield start, gate
    for child in children:
        if child.poll() is None:
            child.kill()
            child.communicate()


def _wait_for(marker: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    """Until the child creates ``marker``; a bounded wait that fails with what it saw."""
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            pytest.fail(f"the run ended before {marker.name}: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {marker.name} within {timeout:.0f} s: {proc.communicate()}")
        time.sleep(0.02)


def _mid_second_cell(proc: subprocess.Popen, gate: Path) -> None:
    """Let cell 1 run; return once cell 1 is written and cell 2 has started."""
    _wait_for(gate / "cell-1.started", proc)
    (gate / "cell-1.go").touch()
    _wait_for(gate / "cell-2.started", proc)


def test_sigkill_mid_sweep_then_resume_equals_an_uninterrupted_run(gated_spec, gated_run,
                                                                  tmp_path):
    start, gate = gated_run
    root = tmp_path / "results"
    proc = start(root, "killed")
    _mid_second_cell(proc, gate)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = root / "rel" / "killed"
    assert {p.stem for p in (killed / "cells").glob("*.json")} == {"000-gated-cell=1"}
    manifest = json.loads((killed / "manifest.json").read_text())
    assert manifest["status"] == "running"

    assert main(["run", "--resume", str(killed), "-q"]) == 0
    assert main(["run", str(gated_spec), "--results-root", str(root), "--run-id", "clean",
                 "-q"]) == 0
    resumed, clean = _samples(killed), _samples(root / "rel" / "clean")
    assert len(clean) == CELLS * 2 * 2
    assert resumed == clean
    manifest = json.loads((killed / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["resumed"]


def test_ctrl_c_keeps_finished_cells_marks_the_run_and_exits_130(gated_run, tmp_path):
    start, gate = gated_run
    root = tmp_path / "results"
    proc = start(root, "int")
    run_dir = root / "rel" / "int"
    _mid_second_cell(proc, gate)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert f"samplerlab run --resume {run_dir}" in err
    assert "Traceback" not in err
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert [c["status"] for c in manifest["cells"]] == ["done", "pending", "pending"]
    assert len(_samples(run_dir)) == 2 * 2


BAD_PLUGIN = '''
import keras
import keras_hub
import samplerlab


class _Raises(keras_hub.samplers.Sampler):
    def get_next_token(self, probabilities):
        raise RuntimeError("kaboom at trace time")


class _OutOfRange(keras_hub.samplers.Sampler):
    def get_next_token(self, probabilities):
        return keras.ops.full(keras.ops.shape(probabilities)[:1], 10**6, "int32")


class _NaN(keras_hub.samplers.Sampler):
    def get_next_token(self, probabilities):
        nan = keras.ops.full(keras.ops.shape(probabilities)[:1], float("nan"))
        return keras.ops.cast(nan, "int32") * 0 - 7


def _fails_at_construction():
    raise ValueError("cannot build")


@samplerlab.hookimpl
def register_samplers(register):
    register("breaks_at_construction", _fails_at_construction)
    register("breaks_at_trace", _Raises)
    register("out_of_range", _OutOfRange)
    register("negative_ids", _NaN)
'''


def test_a_failing_sampler_fails_only_its_own_cell(tiny_preset, tmp_path, capsys):
    plugin = tmp_path / "bad_samplers.py"
    plugin.write_text(textwrap.dedent(BAD_PLUGIN))
    spec = _spec(tiny_preset, plugins=[str(plugin)])
    spec["samplers"] = ["breaks_at_construction", "greedy", "breaks_at_trace", "out_of_range",
                        "negative_ids", {"name": "top_k", "params": {"k": 3}}]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec))
    code = main(["run", str(path), "--results-root", str(tmp_path / "r"), "--run-id", "x", "-q"])
    err = capsys.readouterr().err
    assert code == 1
    run_dir = tmp_path / "r" / "rel" / "x"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    status = {c["sampler"]: (c["status"], c["error"]) for c in manifest["cells"]}
    assert status["greedy"] == ("done", None) and status["top_k"] == ("done", None)
    assert "cannot build" in status["breaks_at_construction"][1]
    assert "kaboom at trace time" in status["breaks_at_trace"][1]
    assert "outside [0, 50257)" in status["out_of_range"][1]
    assert "outside [0, 50257)" in status["negative_ids"][1]
    assert manifest["status"] == "failed"
    assert "4 cell(s) failed" in err
    for cell in ("000-breaks_at_construction", "002-breaks_at_trace"):
        assert cell in err
    assert {s["sampler"] for s in _samples(run_dir)} == {"greedy", "top_k"}


def test_nothing_is_written_outside_the_results_root(tiny_preset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = _spec(tiny_preset)
    spec["samplers"] = ["greedy"]
    result = samplerlab.run(samplerlab.load_spec(spec), results_root="results", progress=False)
    written = {p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("*") if p.is_file()}
    assert written == {"results"}
    assert result.run_dir.resolve().is_relative_to((tmp_path / "results").resolve())


def test_a_broken_metric_costs_only_its_own_columns(tiny_preset, tmp_path, capsys):
    """One metric raises, one returns NaN: both leave empty columns, the raiser's error is
    in the cell record, every other metric is scored, and plots and report are written."""
    plugin = tmp_path / "bad_metrics.py"
    plugin.write_text(textwrap.dedent('''
        import numpy as np

        import samplerlab
        from samplerlab.metrics.base import Metric


        class Broken(Metric):
            name = "broken"

            def columns(self):
                return ["broken"]

            def stats(self, samples, context):
                raise ZeroDivisionError("bad metric")

            def aggregate(self, stats):
                return {}


        class Undefined(Metric):
            name = "undefined"

            def columns(self):
                return ["undefined"]

            def stats(self, samples, context):
                return np.full((len(samples), 1), np.nan)

            def aggregate(self, stats):
                return {"undefined": float("nan")}


        @samplerlab.hookimpl
        def register_metrics(register):
            register("broken", Broken)
            register("undefined", Undefined)
    '''))
    spec = _spec(tiny_preset, plugins=[str(plugin)],
                 metrics=["rep_n", "broken", "undefined", "diversity"])
    spec["samplers"] = ["greedy", {"name": "top_k", "params": {"k": [2, 5]}}]  # a sweep plot
    result = samplerlab.run(samplerlab.load_spec(spec), results_root=tmp_path / "r",
                            progress=False)
    err = capsys.readouterr().err
    assert result.status == "complete"
    assert len(_samples(result.run_dir)) == 12
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert not [n for n in manifest.get("notes", []) if "failed" in n]  # plots, report
    for path in sorted((result.run_dir / "cells").glob("*.json")):
        record = json.loads(path.read_text())
        assert record["metric_errors"] == {"broken": "ZeroDivisionError: bad metric"}
        assert math.isnan(record["metrics"]["broken"])
        assert math.isnan(record["metrics"]["undefined"])
        assert 0 <= record["metrics"]["rep_2"] <= 100 and 0 <= record["metrics"]["diversity"]
        assert f"cell {record['id']}: metric 'broken' failed" in err
    table = (result.run_dir / "metrics.csv").read_text().splitlines()
    assert table[0].split(",")[table[0].split(",").index("broken")] == "broken"
    assert (result.run_dir / "plots" / "metric_rep_2.png").is_file()
    assert (result.run_dir / "plots" / "sweep_top_k_k.png").is_file()
    report = (result.run_dir / "report.md").read_text(encoding="utf-8")
    assert "## Metric errors" in report
    assert "`broken` on greedy: ZeroDivisionError: bad metric" in report
    all_metrics = report.split("<summary>All metrics</summary>")[1].split("</details>")[0]
    header, _, greedy = ([c.strip() for c in line.strip("|").split("|")]
                         for line in all_metrics.strip().splitlines()[:3])
    assert greedy[header.index("undefined")] == "–"
