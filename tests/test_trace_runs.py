"""Traces in a run: ``traces.parquet`` beside the samples, exact after ``--resume``, plotted
and reported; the human references scored alongside."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest

import samplerlab
from samplerlab.runner import resume_run
from samplerlab.traces.table import schema

TEXTS = ["I like basketball because it is fast and everyone can play it",
         "My trip to Yosemite was long, cold and very beautiful in the end",
         "That Italian restaurant is the best place in town for pizza"]


@pytest.fixture(scope="module")
def traced_run(tiny_preset, tmp_path_factory):
    spec = {
        "name": "traced", "seed": 11,
        "model": {"preset": str(tiny_preset), "sequence_length": 32},
        "prompts": {"dataset": {"source": "inline", "texts": TEXTS}, "take": 3,
                    "prefix_words": 4},
        # 6 generations in batches of 4: the short last batch has padding rows.
        "generation": {"max_length": 20, "samples_per_prompt": 2, "batch_size": 4,
                       "trace": True, "trace_top": 2, "trace_reference": True},
        "samplers": ["greedy", {"name": "top_p", "params": {"p": 0.9}}],
        "metrics": ["rep_n"],
    }
    root = tmp_path_factory.mktemp("results")
    return samplerlab.run(samplerlab.load_spec(spec), results_root=root, run_id="a",
                          progress=False)


def test_traces_parquet_has_the_promised_schema(traced_run):
    assert pq.read_schema(traced_run.run_dir / "traces.parquet") == schema()
    for cell in ("000-greedy", "001-top_p-p=0.9"):
        assert (traced_run.run_dir / "cells" / f"{cell}.traces.parquet").is_file()


def test_one_row_per_token_of_every_continuation(traced_run):
    traces = samplerlab.load_traces(traced_run.run_dir)
    samples = samplerlab.load_samples(traced_run.run_dir)
    generated = traces[traces["cell_id"] != "reference"]
    assert len(generated) == samples["num_tokens"].sum()
    for sample in samples.to_dict("records"):
        rows = generated[(generated["cell_id"] == sample["cell_id"])
                         & (generated["prompt_index"] == sample["prompt_index"])
                         & (generated["sample_index"] == sample["sample_index"])]
        rows = rows.sort_values("position")
        assert list(rows["position"]) == list(range(sample["num_tokens"]))
        assert list(rows["token_id"]) == sample["token_ids"]
        assert "".join(rows["token_text"]) == sample["text"]
    greedy = generated[generated["cell_id"] == "000-greedy"]
    assert (greedy["model_rank"] == 0).all() and (greedy["kept_size"] == 1).all()
    assert greedy["top_ids"].list.len().eq(2).all()
    top_p = generated[generated["cell_id"] == "001-top_p-p=0.9"]
    assert top_p["sampler_prob"].notna().all()
    assert (top_p["sampler_prob"] >= top_p["model_prob"] * (1 - 1e-5)).all()


def test_the_human_references_are_scored_as_cell_reference(traced_run, tiny_model):
    from samplerlab.traces.reference import continuation_ids

    traces = samplerlab.load_traces(traced_run.run_dir)
    reference = traces[traces["cell_id"] == "reference"]
    assert sorted(set(reference["prompt_index"])) == [0, 1, 2]
    assert reference["sampler_prob"].isna().all() and reference["kept_size"].isna().all()
    samples = samplerlab.load_samples(traced_run.run_dir)
    first = samples[samples["prompt_index"] == 0].iloc[0]
    rows = reference[reference["prompt_index"] == 0].sort_values("position")
    budget = 20 - first["prompt_tokens"]
    assert list(rows["token_id"]) == continuation_ids(tiny_model, first["reference"])[:budget]


def test_trace_plots_and_a_report_section(traced_run):
    plots = traced_run.run_dir / "plots" / "traces"
    names = {p.stem for p in plots.glob("*.png")}
    assert names == {"entropy_by_position", "model_prob_by_position", "rank", "kept_size",
                     "repetition"}
    report = (traced_run.run_dir / "report.md").read_text(encoding="utf-8")
    section = report.split("## Per-token traces", 1)[1].split("\n## ", 1)[0]
    for stem in names:
        assert f"(plots/traces/{stem}.png)" in section
    assert "| reference (human) |" in section and "| greedy |" in section


def test_resume_rebuilds_traces_exactly(traced_run, tmp_path):
    copy = tmp_path / "traced" / "a"
    shutil.copytree(traced_run.run_dir, copy)
    # Killed after the cell's traces were written, before its record: it runs again.
    for suffix in (".json", ".jsonl"):
        (copy / "cells" / f"001-top_p-p=0.9{suffix}").unlink()
    (copy / "traces.parquet").unlink()
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["status"] = "running"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert resume_run(copy, progress=False).status == "complete"
    before = pq.read_table(traced_run.run_dir / "traces.parquet")
    assert pq.read_table(copy / "traces.parquet").equals(before)


def test_load_traces_of_a_run_without_them_says_how_to_get_them(tmp_path):
    from samplerlab.errors import UserInputError

    with pytest.raises(UserInputError, match="generation.trace: true"):
        samplerlab.load_traces(tmp_path)
