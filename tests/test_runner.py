"""A spec with all six built-in samplers (one a sweep) runs into the documented results layout."""

from __future__ import annotations

import json
import os
import stat

import pandas as pd
import pytest

import samplerlab
from samplerlab.engine import STOP_END, STOP_MAX, CellEngine, cell_seed
from samplerlab.prompts import Prompt


@pytest.fixture(scope="module")
def six_sampler_run(tiny_preset, tmp_path_factory):
    from samplerlab.plugins import reset_plugin_manager

    reset_plugin_manager()
    root = tmp_path_factory.mktemp("results")
    spec = {
        "name": "six",
        "seed": 11,
        "model": {"preset": str(tiny_preset), "sequence_length": 32},
        "prompts": ["I like basketball", "My trip to Yosemite was", "That Italian restaurant is"],
        "generation": {"max_length": 20, "samples_per_prompt": 2, "batch_size": 4},
        "samplers": ["greedy", {"name": "top_k", "params": {"k": [5, 40]}},
                     {"name": "top_p", "params": {"p": 0.9}}, "random",
                     {"name": "beam", "params": {"num_beams": 2}},
                     {"name": "contrastive", "params": {"k": 3, "alpha": 0.6}}],
        "metrics": ["rep_n", "latency"],
    }
    loaded = samplerlab.load_spec(spec)
    previous = os.umask(0o022)  # a common umask: files 0644, readable by colleagues
    try:
        result = samplerlab.run(loaded, results_root=root, run_id="r1", progress=False)
    finally:
        os.umask(previous)
    return loaded, result


def test_every_cell_of_the_sweep_runs(six_sampler_run):
    loaded, result = six_sampler_run
    assert result.status == "complete"
    assert [c.sampler for c in loaded.cells] == ["greedy", "top_k", "top_k", "top_p", "random",
                                                 "beam", "contrastive"]
    assert result.run_dir.name == "r1" and result.run_dir.parent.name == "six"


def test_results_directory_layout(six_sampler_run):
    _, result = six_sampler_run
    for name in ("spec.yaml", "manifest.json", "samples.jsonl", "metrics.csv", "latency.csv"):
        assert (result.run_dir / name).is_file(), name


def test_result_files_are_readable_as_the_umask_allows(six_sampler_run):
    _, result = six_sampler_run
    modes = {p.relative_to(result.run_dir).as_posix(): stat.S_IMODE(p.stat().st_mode)
             for p in result.run_dir.rglob("*") if p.is_file()}
    assert {"metrics.csv", "report.md", "samples.jsonl", "manifest.json"} <= set(modes)
    assert {name for name, mode in modes.items() if mode != 0o644} == set()


def test_manifest_records_versions_devices_seed_and_cells(six_sampler_run):
    loaded, result = six_sampler_run
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    for key in ("samplerlab", "keras", "keras-hub", "jax"):
        assert key in manifest["versions"]
    assert manifest["backend"] == "jax"
    assert manifest["devices"]
    assert manifest["seed"] == 11
    assert manifest["started"] and manifest["finished"]
    assert [c["status"] for c in manifest["cells"]] == ["done"] * len(loaded.cells)
    for cell in manifest["cells"]:
        assert cell["timing"]["first_call_s"] > 0
        assert cell["timing"]["steady_call_s"]


def test_samples_keep_prompt_and_continuation_apart(six_sampler_run):
    loaded, result = six_sampler_run
    samples = samplerlab.load_samples(result.run_dir)
    assert len(samples) == len(loaded.cells) * 3 * 2
    for column in ("cell_id", "sampler", "params", "prompt", "seed", "text", "token_ids",
                   "num_tokens", "stop_reason", "batch_seconds"):
        assert column in samples.columns
    assert set(samples["stop_reason"]) <= {STOP_END, STOP_MAX}
    row = samples.iloc[0]
    assert not row["text"].startswith(row["prompt"])
    assert row["num_tokens"] == len(row["token_ids"])
    max_new = 20 - samples["prompt_tokens"]
    assert (samples["num_tokens"] <= max_new).all()
    full = samples[samples["stop_reason"] == STOP_MAX]
    assert (full["num_tokens"] == max_new[full.index]).all()


def test_a_sweep_value_reaches_the_sampler(six_sampler_run):
    _, result = six_sampler_run
    samples = samplerlab.load_samples(result.run_dir)
    ks = sorted(p["k"] for p in samples[samples["sampler"] == "top_k"]["params"])
    assert ks == [5] * 6 + [40] * 6


def test_metrics_table_has_one_row_per_cell(six_sampler_run):
    loaded, result = six_sampler_run
    metrics = pd.read_csv(result.run_dir / "metrics.csv")
    assert list(metrics["cell_id"]) == [c.id for c in loaded.cells]
    assert {"rep_2", "rep_4", "tokens_per_s"} <= set(metrics.columns)


def test_greedy_and_beam_samples_are_identical_across_samples_per_prompt(six_sampler_run):
    _, result = six_sampler_run
    samples = samplerlab.load_samples(result.run_dir)
    for sampler in ("greedy", "beam"):
        rows = samples[samples["sampler"] == sampler]
        for _, group in rows.groupby("prompt_index"):
            assert group["text"].nunique() == 1


@pytest.fixture(scope="module")
def keras_hub_model(tiny_preset):
    """The tiny preset's CausalLM, loaded for this module: the parity test compiles it."""
    from samplerlab.models import load_model

    return load_model(str(tiny_preset), sequence_length=64).causal_lm


@pytest.mark.parametrize("sampler,params", [("greedy", {}), ("top_k", {"k": 5}),
                                            ("beam", {"num_beams": 2})])
def test_parity_with_calling_keras_hub_directly(tiny_model, keras_hub_model, sampler, params):
    """samplerlab's output is token for token what compile(sampler=...) + generate gives."""
    import keras_hub

    from samplerlab.spec import Cell, GenerationSpec

    prompts = ["I like basketball", "My trip to Yosemite was"]
    cell = Cell(index=0, id="c", sampler=sampler, params=params, label=sampler)
    seed = cell_seed(3, cell)
    generation = GenerationSpec(max_length=18, batch_size=2, steady_timing=False)
    ours = CellEngine(tiny_model, generation).run(
        cell, [Prompt(p, i) for i, p in enumerate(prompts)], seed)
    direct_sampler = {"greedy": lambda: keras_hub.samplers.GreedySampler(),
                      "top_k": lambda: keras_hub.samplers.TopKSampler(k=5, seed=seed),
                      "beam": lambda: keras_hub.samplers.BeamSampler(num_beams=2)}[sampler]()
    keras_hub_model.compile(sampler=direct_sampler)
    direct = keras_hub_model.generate(prompts, max_length=18, strip_prompt=True)
    if sampler == "beam":
        # The prompts differ in length, and KerasHub's BeamSampler then mixes their rows
        # (tests/test_beam.py): each prompt alone is what KerasHub's beam search gives it.
        direct = [text for p in prompts for text in keras_hub_model.generate(
            [p], max_length=18, strip_prompt=True)]
    assert [s["text"] for s in ours.samples] == list(direct)


def test_same_seed_same_samples_and_other_seed_differs(tiny_preset, tmp_path):
    spec = {"name": "det", "seed": 5, "model": {"preset": str(tiny_preset),
                                                "sequence_length": 32},
            "prompts": ["I like basketball"], "generation": {"max_length": 14,
                                                             "samples_per_prompt": 2},
            "samplers": [{"name": "top_k", "params": {"k": 20}}, "random"], "metrics": []}
    runs = []
    for run_id, seed in (("a", 5), ("b", 5), ("c", 6)):
        loaded = samplerlab.load_spec({**spec, "seed": seed})
        result = samplerlab.run(loaded, results_root=tmp_path, run_id=run_id, progress=False)
        runs.append((result.run_dir / "samples.jsonl").read_text())
    strip = [[{k: v for k, v in json.loads(line).items() if k != "batch_seconds"}
              for line in text.splitlines()] for text in runs]
    assert strip[0] == strip[1]
    assert [s["token_ids"] for s in strip[0]] != [s["token_ids"] for s in strip[2]]
