"""``model.quantize: int8``: Keras's int8 quantization of the loaded weights.

A quantized model runs through ``samplerlab run`` like any other; its quality is checked
against its own float32 run on the embedded (trained) model: held-out perplexity within
3% of float32's (int8 per-channel kernels cost ~0.5% on it, docs/performance.md).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from samplerlab.cli import main

CORPUS = Path(__file__).resolve().parents[1] / "samplerlab" / "assets" / "corpus"
PERPLEXITY_TOLERANCE = 0.03  # int8 within 3% of float32's held-out perplexity


def heldout_fortunes(count: int) -> list[str]:
    """The first ``count`` English documents the embedded model was not trained on (every
    20th fortune, as scripts/train_embedded.py holds them out)."""
    text = (CORPUS / "fortunes.txt").read_text(encoding="utf-8")
    docs = [d.strip("\n") for d in text.split("\n%\n") if d.strip()]
    return [d for i, d in enumerate(docs) if i % 20 == 19][:count]


def perplexity(model, texts: list[str]) -> float:
    from samplerlab.metrics.perplexity import continuation_nll, prompt_ids

    start = [model.preprocessor.tokenizer.start_token_id]
    continuations = [prompt_ids(model.preprocessor, t, 64)[1:] for t in texts]
    nll = continuation_nll(model.causal_lm, [start] * len(texts), continuations)
    return math.exp(nll.sum() / sum(len(c) for c in continuations))


@pytest.fixture(scope="module")
def int8_embedded():
    from samplerlab.models import load_model

    return load_model("samplerlab:tiny-en", sequence_length=64, quantize="int8")


def test_int8_weights_are_int8_and_noted(int8_embedded):
    kernels = [v for v in int8_embedded.causal_lm.weights if v.path.endswith("/kernel")]
    assert kernels and all(str(v.dtype) == "int8" for v in kernels)
    assert any("quantize('int8')" in note for note in int8_embedded.notes)


def test_int8_perplexity_is_within_tolerance_of_float32(embedded_model, int8_embedded):
    texts = heldout_fortunes(16)
    ours, reference = perplexity(int8_embedded, texts), perplexity(embedded_model, texts)
    assert abs(ours / reference - 1) <= PERPLEXITY_TOLERANCE, (ours, reference)
    assert ours != reference  # the quantized weights are what ran


def test_int8_gets_a_program_of_its_own(embedded_model, int8_embedded):
    from samplerlab.engine.programs import model_digest

    assert model_digest(int8_embedded.adapter) != model_digest(embedded_model.adapter)


def test_int8_runs_end_to_end_through_samplerlab_run(base_spec, write_spec, tmp_path):
    spec = {**base_spec, "model": {**base_spec["model"], "quantize": "int8"}}
    results = tmp_path / "results"
    assert main(["run", str(write_spec(spec)), "--results-root", str(results)]) == 0
    (run_dir,) = [p.parent for p in results.rglob("manifest.json")]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["model"]["quantize"] == "int8"
    assert manifest["status"] == "complete"
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 2 and all(s["text"] is not None for s in samples)


@pytest.mark.parametrize(("model", "expected"), [
    ({"quantize": "int4"}, "model.quantize"),
    ({"quantize": "int8", "_finetune": True}, "model.quantize"),
], ids=["unknown-mode", "with-finetune"])
def test_a_bad_quantize_is_refused_with_one_line(base_spec, tmp_path, monkeypatch, capsys,
                                                 model, expected):
    monkeypatch.chdir(tmp_path)
    spec = {**base_spec, "model": {**base_spec["model"],
                                   **{k: v for k, v in model.items() if k != "_finetune"}}}
    if model.get("_finetune"):
        spec["finetune"] = {"dataset": {"source": "inline", "texts": ["a b c"] * 4}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    code = main(["run", str(path), "--results-root", str(tmp_path / "results")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1, err
    assert expected in err[0]
    assert not (tmp_path / "results").exists()

