"""Every KerasHub causal-LM family of docs/models.md works end to end, offline.

For each family a tiny randomly initialised model of its own KerasHub classes (byte-pair
families on a vocabulary cut from the vendored GPT-2 one, SentencePiece families on a
tiny SentencePiece model trained here) is saved with ``save_to_preset`` and run through
``samplerlab run``: a few fine-tuning steps, every built-in sampler, the default metrics
and perplexity, plots and report. The work runs in two worker processes at once
(``tests/families_worker.py``, XLA's backend optimisation off: these tests check
behaviour, not speed); the tests below check what the workers recorded.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from samplerlab.models.family import FAMILIES, family_matrix

REPO = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("families_worker.py")
NAMES = list(FAMILIES)
WORKERS = max(1, min(2, os.cpu_count() or 1))
BUILT_IN_SAMPLERS = {"greedy", "top_k", "top_p", "random", "beam", "contrastive", "chain",
                     "mirostat", "xtc"}


def _selected_families(session) -> list[str]:
    """The families whose tests this session runs (``-k qwen`` runs Qwen's work only)."""
    chosen = {item.callspec.params["family"] for item in session.items
              if hasattr(item, "callspec") and "family" in item.callspec.params
              and item.fspath == __file__}
    return [name for name in NAMES if name in chosen]


@pytest.fixture(scope="session")
def family_runs(request, tmp_path_factory) -> dict[str, dict]:
    """Each selected family's run and observations (``tests/families_worker.py``)."""
    out = tmp_path_factory.mktemp("families")
    names = _selected_families(request.session)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
               [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
           "KERAS_BACKEND": "jax",
           "XLA_FLAGS": " ".join(filter(None, [os.environ.get("XLA_FLAGS"),
                                               "--xla_backend_optimization_level=0"]))}
    workers = [subprocess.Popen([sys.executable, str(WORKER), str(out), *names[i::WORKERS]],
                                env=env, cwd=out, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
               for i in range(WORKERS) if names[i::WORKERS]]
    logs = [worker.communicate(timeout=1200)[1] for worker in workers]
    found = {}
    for name in names:
        path = out / f"{name}.json"
        found[name] = (json.loads(path.read_text()) if path.is_file() else
                       {"errors": {"worker": "\n".join(log[-3000:] for log in logs)}})
    return found


def _observed(family_runs: dict, family: str, key: str):
    found = family_runs[family]
    assert key not in found["errors"], found["errors"][key]
    assert "run" not in found["errors"], found["errors"]["run"]
    return found[key]


def _run_dir(family_runs: dict, family: str) -> Path:
    found = family_runs[family]
    assert "run" not in found["errors"], found["errors"]
    assert found["exit_code"] == 0, found["stderr"]
    return Path(found["run_dir"])


@pytest.mark.parametrize("family", NAMES)
def test_every_sampler_metric_plot_and_fine_tuning_work(family, family_runs):
    run = _run_dir(family_runs, family)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert {c["sampler"] for c in manifest["cells"]} == BUILT_IN_SAMPLERS
    assert all(c["status"] == "done" and c["num_samples"] == 2 for c in manifest["cells"])
    metrics = pd.read_csv(run / "metrics.csv")
    assert len(metrics) == len(BUILT_IN_SAMPLERS)
    assert metrics["perplexity"].map(math.isfinite).all()
    assert (metrics["perplexity"] > 1).all()
    assert metrics["tokens_per_s"].notna().all()
    plots = {p.name for p in (run / "plots").glob("*.png")}
    assert {"metric_perplexity.png", "finetune_loss.png", "lengths.png"} <= plots
    report = (run / "report.md").read_text()
    assert all(c["label"] in report for c in manifest["cells"])
    assert "failed" not in " ".join(manifest.get("notes", []))
    finetune = json.loads((run / "finetune.json").read_text())
    assert finetune["steps"] == 2 and math.isfinite(finetune["last_loss"])
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().split("\n")
               if line]
    assert all(s["num_tokens"] == len(s["token_ids"]) for s in samples)


@pytest.mark.parametrize("family", NAMES)
def test_greedy_tokens_are_keras_hubs_own(family, family_runs):
    """The engine's generate loop over the family's adapter gives the tokens KerasHub's
    own compiled ``generate`` gives (on the fine-tuned model, with padded prompts)."""
    run = _run_dir(family_runs, family)
    rows = [json.loads(line) for line in (run / "samples.jsonl").read_text().split("\n")
            if line]
    greedy = [r["token_ids"] for r in sorted(rows, key=lambda r: r["prompt_index"])
              if r["sampler"] == "greedy"]
    assert greedy == _observed(family_runs, family, "keras_hub_greedy")


@pytest.mark.parametrize("family", NAMES)
def test_stop_tokens_are_keras_hubs_auto_stop_tokens(family, family_runs):
    run = _run_dir(family_runs, family)
    model = json.loads((run / "manifest.json").read_text())["model"]
    assert model["stop_token_ids"] == _observed(family_runs, family, "keras_hub_auto_stop")
    assert model["end_token_id"] == model["stop_token_ids"][0]


@pytest.mark.parametrize("family", NAMES)
def test_what_differs_is_read_from_the_model(family, family_runs):
    run = _run_dir(family_runs, family)
    manifest = json.loads((run / "manifest.json").read_text())
    model, declared = manifest["model"], FAMILIES[family]
    assert model["family"] == declared.causal_lm
    assert model["prompt_overhead"] == (0 if model["start_token_id"] is None else 1)
    assert model["end_token_id"] in model["special_token_ids"]
    assert model["decoding"]["fast"] is declared.fast_decoding
    assert model["decoding"]["shared_cache"] is declared.shared_cache
    if model["context_length"] is None:  # rotary/ALiBi: the manifest says it is not capped
        assert any("states no context length" in note for note in manifest["notes"])
    else:
        assert model["context_length"] == 256 and model["context_source"].startswith("backbone")


@pytest.mark.parametrize("family", NAMES)
def test_lora_finds_the_attention_projections(family, family_runs):
    weights = _observed(family_runs, family, "lora_weights")
    assert weights >= 2 and weights % 2 == 0  # an A and a B per adapted projection


@pytest.mark.parametrize("family", NAMES)
def test_hugging_face_checkpoints_load_with_the_same_greedy_tokens(family, family_runs):
    """KerasHub's ``export_to_transformers`` output of the fine-tuned model, loaded by
    samplerlab through KerasHub's converters, decodes KerasHub's greedy tokens of the model
    itself; families KerasHub cannot export are refused by its exporter (docs/models.md's
    HF column says which)."""
    hf = _observed(family_runs, family, "hf")
    declared = FAMILIES[family]
    assert hf["exported"] is bool(declared.hf_export), hf
    if not declared.hf_export:
        return
    assert hf["model_type"] == declared.hf_export
    assert hf["class"] == declared.causal_lm
    assert hf["loaded_greedy"] == hf["original_greedy"]
    if "refused" in hf:  # KerasHub's Qwen export lacks tokenizer.json: refused in one line
        assert "tokenizer.json" in hf["refused"] and hf["completed"]


@pytest.mark.parametrize("family", NAMES)
def test_layout_maps_are_where_the_table_says(family):
    import keras_hub

    backbone = getattr(keras_hub.models, FAMILIES[family].backbone)
    assert hasattr(backbone, "get_layout_map") is FAMILIES[family].layout_map


def test_docs_matrix_is_the_tested_family_table():
    """docs/models.md shows the table these tests check, row for row."""
    assert family_matrix() in (REPO / "docs" / "models.md").read_text(encoding="utf-8")
