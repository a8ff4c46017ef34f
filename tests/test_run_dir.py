"""The run directory has one owner: :class:`samplerlab.results.RunDir` names every file.

A specification of the layout: each file a run writes is named by ``RunDir``; no other
module of the package spells a run directory's file name; the manifest round-trips; and
the model metrics step reads the run and writes nothing (the runner writes what it
yields).
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

import samplerlab
from samplerlab.results import RunDir

PACKAGE = Path(samplerlab.__file__).resolve().parent
OWNER = PACKAGE / "results"
# Every file and folder name RunDir gives a run directory.
FILE_NAMES = [RunDir.SPEC, RunDir.MANIFEST, RunDir.SAMPLES, RunDir.METRICS,
              RunDir.METRICS_PARQUET, RunDir.LATENCY, RunDir.HUMAN_RECORD,
              RunDir.HUMAN_SAMPLES, RunDir.TRACES, RunDir.RATINGS, RunDir.REPORT,
              RunDir.FINETUNE_LOSS, RunDir.FINETUNE_LOSS_PLOT, RunDir.FINETUNE_SUMMARY,
              RunDir.CELL_TRACES]
FOLDER_NAMES = [RunDir.CELLS, RunDir.PLOTS, RunDir.TRACE_PLOTS]
SPELLED = re.compile("|".join(rf"(?<![\w.]){re.escape(n)}(?!\w)" for n in FILE_NAMES))


def _docstrings(tree: ast.AST) -> set[int]:
    nodes = [tree, *(n for n in ast.walk(tree) if isinstance(
        n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef))]
    return {id(n.body[0].value) for n in nodes if n.body and isinstance(n.body[0], ast.Expr)
            and isinstance(n.body[0].value, ast.Constant)}


def spelled_names(source: str) -> list[tuple[int, str]]:
    """``(line, text)`` of each string literal naming a run-directory file, and each path
    joined with a run-directory folder (``run_dir / "plots"``); docstrings are prose."""
    tree = ast.parse(source)
    prose = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in prose and SPELLED.search(node.value):
            found.append((node.lineno, node.value))
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) \
                and isinstance(node.right, ast.Constant) and node.right.value in FOLDER_NAMES:
            found.append((node.lineno, f'/ "{node.right.value}"'))
    return found


def test_no_module_but_results_spells_a_run_directory_file_name():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.is_relative_to(OWNER):
            continue
        for line, text in spelled_names(path.read_text(encoding="utf-8")):
            offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {text!r}")
    assert not offenders, ("run-directory file names belong to samplerlab.results.RunDir; "
                           "spelled elsewhere:\n" + "\n".join(offenders))


def test_the_scan_finds_names_in_code_and_not_in_docstrings():
    source = ('"""Writes ``manifest.json``."""\n'
              'def f(run_dir):\n'
              '    """Reads samples.jsonl."""\n'
              '    return run_dir / "plots", f"{run_dir}/metrics.csv", "cells"\n')
    assert [text for _, text in spelled_names(source)] == ['/ "plots"', "/metrics.csv"]


TEXTS = ["The old lighthouse keeper climbed the stairs every night to light the lamp",
         "A small boat drifted past the harbour while the gulls circled above the masts"]


@pytest.fixture(scope="module")
def full_run(tiny_preset, tmp_path_factory):
    """A finished run with every kind of file: traces (and the references'), a human row
    and a model metric scored after generation."""
    spec = {"name": "full", "seed": 1,
            "model": {"preset": str(tiny_preset), "sequence_length": 32},
            "prompts": {"dataset": {"source": "inline", "texts": TEXTS}, "take": 2,
                        "prefix_words": 4},
            "generation": {"max_length": 20, "samples_per_prompt": 1, "batch_size": 2,
                           "trace": True, "trace_top": 2, "trace_reference": True},
            "samplers": ["greedy", {"name": "top_k", "params": {"k": 5}}],
            "metrics": ["rep_n", "perplexity"]}
    loaded = samplerlab.load_spec(spec)
    result = samplerlab.run(loaded, results_root=tmp_path_factory.mktemp("full"), run_id="r1",
                            progress=False)
    assert result.status == "complete"
    return loaded, result.run_dir


def test_rundir_names_every_file_of_a_finished_run(full_run):
    from samplerlab.traces.table import REFERENCE_CELL

    _, run_dir = full_run
    run = RunDir.read(run_dir)
    cells = run.done_cells()
    named = {run.spec_path, run.manifest_path, run.samples_path, run.metrics_path,
             run.metrics_parquet_path, run.latency_path, run.traces_path, run.report_path,
             run.human_record_path, run.human_samples_path,
             run.cell_traces_path(REFERENCE_CELL),
             *(run.cell_record_path(c) for c in cells), *(run.cell_samples_path(c) for c in cells),
             *(run.cell_traces_path(c) for c in cells)}
    written = {p for p in run_dir.rglob("*") if p.is_file()}
    plots = {p for p in written if p.parent in (run.plots_dir, run.trace_plots_dir)
             and p.suffix == ".png"}
    assert plots and run.trace_plots_dir in {p.parent for p in plots}
    assert written - plots == named
    assert len(cells) == 2


def test_the_manifest_round_trips(tmp_path):
    manifest = {"name": "x", "run_id": "r1", "seed": 5, "status": "running",
                "cells": [{"id": "000-greedy", "label": "greedy", "status": "pending"}],
                "notes": ["ünïcode \u2028 kept"]}
    created = RunDir.create(tmp_path / "x" / "r1", spec_yaml="name: x\n", manifest=manifest)
    created.write_cell("000-greedy", [{"text": "a\u0085b"}],
                       {"status": "done", "error": None, "timing": {"s": 1.0},
                        "num_samples": 1})
    created.set_status("complete", finished="later")
    assert created.add_notes(["ünïcode \u2028 kept", "new"]) == ["new"]
    for again in (RunDir.open(created.path), RunDir.read(created.path)):
        assert again.manifest == created.manifest
        assert again.cells[0]["status"] == "done" and again.seed() == 5
        assert again.cell_labels() == {"000-greedy": "greedy"}
    assert RunDir.read(created.path).samples() == [{"text": "a\u0085b"}]
    assert json.loads(created.manifest_path.read_text(encoding="utf-8")) == created.manifest


def test_reading_a_damaged_manifest_says_why_and_resuming_refuses(tmp_path):
    from samplerlab.errors import UserInputError

    run = RunDir.create(tmp_path / "r", spec_yaml="name: x\n", manifest={})
    run.manifest_path.write_text("{not json", encoding="utf-8")
    read = RunDir.read(run.path)
    assert read.manifest == {} and read.problem.startswith("not valid JSON")
    with pytest.raises(UserInputError, match="not valid JSON"):
        RunDir.open(run.path)


def _snapshot(path: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(path)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(path.rglob("*")) if p.is_file()}


def test_the_model_metrics_step_writes_nothing_itself(full_run, tiny_preset, tmp_path):
    """The step yields the scored records, the human row and a summary; the files change
    only when the runner writes them."""
    import shutil

    from samplerlab.metrics.model_metrics import (
        ModelMetricsSummary,
        ScoredCell,
        ScoredHuman,
        score_after_generation,
    )
    from samplerlab.models import load_model
    from samplerlab.prompts import resolve_prompts

    loaded, run_dir = full_run
    run = RunDir.open(shutil.copytree(run_dir, tmp_path / "run"))
    scored = {}
    for cell_id in run.done_cells():  # as a run killed before its model metrics left it
        record = run.cell_record(cell_id)
        scored[cell_id] = record["metrics"]["perplexity"]
        record["metrics"] = {k: v for k, v in record["metrics"].items()
                             if not k.startswith(("perplexity", "gap_"))}
        run.write_cell_record(cell_id, {**record, "metrics_pending": ["perplexity"]})
    run.human_record_path.unlink()
    before = _snapshot(run.path)
    model = load_model(str(tiny_preset), 32)
    results = list(score_after_generation(run, loaded, model, resolve_prompts(loaded),
                                          progress=False))
    assert _snapshot(run.path) == before
    assert type(results[0]) is ScoredHuman and type(results[-1]) is ModelMetricsSummary
    cells = {r.cell_id: r.record for r in results if isinstance(r, ScoredCell)}
    assert set(cells) == set(scored)
    for cell_id, record in cells.items():
        assert "metrics_pending" not in record
        assert record["metrics"]["perplexity"] == pytest.approx(scored[cell_id], rel=1e-5)
        assert "gap_perplexity" in record["metrics"]
    assert results[-1].human["num_samples"] == results[0].record["num_samples"] == 2
    assert results[-1].metrics_model["is_generator"] is True
