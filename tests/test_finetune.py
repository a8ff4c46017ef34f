"""Fine-tuning: the tutorial's recipe changes the model, the result is cached, DataParallel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from rich.console import Console

from samplerlab.finetune import batch_sizes, finetune_key, fit_texts, maybe_finetune
from samplerlab.spec import load_spec

CORPUS_LINE = "the cat sat on the mat."


def greedy_continuation(causal_lm, prompt: str, max_length: int = 10) -> str:
    causal_lm.compile(sampler="greedy")
    return causal_lm.generate([prompt], max_length=max_length)[0]


@pytest.fixture(scope="module")
def trained():
    """The tiny model before and after one epoch on a repetitive corpus."""
    from samplerlab.models import build_tiny_causal_lm

    lm = build_tiny_causal_lm(sequence_length=16, seed=0)
    before = greedy_continuation(lm, "the cat")
    history = fit_texts(lm, [CORPUS_LINE] * 320, batch_size=8, learning_rate=1e-2,
                        end_learning_rate=1e-3, progress=False)
    return lm, before, history


def test_batch_sizes_follow_take():
    assert batch_sizes(10, 4, None) == [4, 4, 2]
    assert batch_sizes(10, 4, 2) == [4, 4]
    assert batch_sizes(3, 4, 500) == [3]


def test_loss_falls_and_generation_moves_to_the_corpus(trained):
    lm, before, history = trained
    assert before != CORPUS_LINE
    assert [r["step"] for r in history] == list(range(1, 41))
    first, last = history[0]["batch_loss"], history[-1]["batch_loss"]
    assert last < first / 4
    assert history[-1]["accuracy"] > history[0]["accuracy"]
    assert greedy_continuation(lm, "the cat") == CORPUS_LINE


def test_history_records_the_polynomial_decay_and_exact_step_losses(trained):
    _, _, history = trained
    lrs = [r["learning_rate"] for r in history]
    assert lrs[0] == pytest.approx(1e-2)
    assert all(a > b for a, b in zip(lrs, lrs[1:], strict=False))
    assert lrs[-1] == pytest.approx(1e-3 + (1e-2 - 1e-3) / 40, rel=1e-4)
    # Equal batches: the epoch's running mean is the mean of the per-step losses.
    mean = sum(r["batch_loss"] for r in history) / len(history)
    assert history[-1]["loss"] == pytest.approx(mean, rel=1e-4)


def test_fit_texts_refuses_empty_input():
    with pytest.raises(ValueError, match="no non-empty texts"):
        fit_texts(object(), ["", "  "], progress=False)


def finetune_spec(base_spec, seed=7):
    return dict(base_spec, seed=seed, model={"preset": base_spec["model"]["preset"],
                                             "sequence_length": 16},
                finetune={"dataset": {"source": "inline", "texts": [CORPUS_LINE] * 16},
                          "batch_size": 4, "take_batches": 3,
                          "optimizer": {"learning_rate": 1e-2}})


def test_maybe_finetune_saves_reuses_and_copies_the_loss_curve(base_spec, write_spec, tiny_model,
                                                                tmp_path):
    loaded = load_spec(write_spec(finetune_spec(base_spec)))
    root, run1, run2 = tmp_path / "results", tmp_path / "run1", tmp_path / "run2"
    console = Console(record=True, width=200)

    tuned = maybe_finetune(loaded, tiny_model, results_root=root, run_dir=run1, console=console)
    cache = root / "_finetuned"
    (key_dir,) = cache.iterdir()
    assert tuned.path == str(key_dir / "preset")
    assert (key_dir / "preset" / "config.json").is_file()
    assert (run1 / "finetune_loss.csv").read_text().splitlines()[0].startswith("epoch,step")
    assert len((run1 / "finetune_loss.csv").read_text().splitlines()) == 1 + 3
    assert (run1 / "plots" / "finetune_loss.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((run1 / "finetune.json").read_text())
    assert summary["reused"] is False and summary["steps"] == 3
    assert int(tuned.causal_lm.preprocessor.sequence_length) == 16

    again = maybe_finetune(load_spec(write_spec(finetune_spec(base_spec))), tiny_model,
                           results_root=root, run_dir=run2, console=console)
    assert again.path == tuned.path
    assert json.loads((run2 / "finetune.json").read_text())["reused"] is True
    assert "reusing fine-tuned model" in console.export_text()
    assert (run2 / "finetune_loss.csv").read_text() == (run1 / "finetune_loss.csv").read_text()
    assert list(cache.iterdir()) == [key_dir]


def test_fine_tuning_trains_a_copy_and_leaves_the_callers_model_unchanged(
        base_spec, write_spec, tiny_model, tmp_path):
    lm = tiny_model.causal_lm
    before = {w.path: np.array(w.value) for w in lm.weights}
    compiled = (lm.sampler, lm.optimizer, lm.generate_function)
    tuned = maybe_finetune(load_spec(write_spec(finetune_spec(base_spec, seed=3))), tiny_model,
                           results_root=tmp_path)
    assert {w.path for w in lm.weights} == set(before)
    assert all(np.array_equal(np.asarray(w.value), before[w.path]) for w in lm.weights)
    assert (lm.sampler, lm.optimizer, lm.generate_function) == compiled
    tuned_weights = {w.path: np.asarray(w.value) for w in tuned.causal_lm.weights}
    assert any(not np.array_equal(tuned_weights[path], value) for path, value in before.items())


def test_the_cache_key_changes_with_seed_data_and_hyperparameters(base_spec, write_spec):
    from samplerlab.datasets.build import build_source
    from samplerlab.finetune import finetune_key_material

    def key(spec):
        loaded = load_spec(write_spec(spec))
        source = build_source(loaded, loaded.spec.finetune.dataset, ("finetune", "dataset"))
        return finetune_key(finetune_key_material(loaded, source))

    base = finetune_spec(base_spec)
    assert key(base) == key(finetune_spec(base_spec))
    assert key(base) != key(finetune_spec(base_spec, seed=8))
    more = finetune_spec(base_spec)
    more["finetune"] = dict(more["finetune"], batch_size=2)
    assert key(base) != key(more)
    other = finetune_spec(base_spec)
    other["finetune"] = dict(other["finetune"], dataset={"source": "inline", "texts": ["x y"]})
    assert key(base) != key(other)


def test_without_finetune_the_model_is_returned_unchanged(base_spec, write_spec, tiny_model,
                                                           tmp_path):
    loaded = load_spec(write_spec(base_spec))
    assert maybe_finetune(loaded, tiny_model, results_root=tmp_path) is tiny_model
    assert not (tmp_path / "_finetuned").exists()


DATA_PARALLEL_SCRIPT = textwrap.dedent("""
    import json
    import jax
    from samplerlab.models import build_tiny_causal_lm
    from samplerlab.finetune import fit_texts

    lm = build_tiny_causal_lm(sequence_length=16, seed=0)
    history = fit_texts(lm, ["the cat sat on the mat."] * 32, batch_size=8, epochs=1,
                        learning_rate=1e-2, progress=False, distribution="data_parallel")
    weights = lm.backbone.token_embedding.embeddings.value
    print(json.dumps({"devices": len(jax.devices()),
                      "weight_devices": len(weights.sharding.device_set),
                      "losses": [r["batch_loss"] for r in history]}))
""")


def test_data_parallel_trains_on_two_cpu_devices(tmp_path):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
           "KERAS_BACKEND": "jax"}
    script = tmp_path / "dp.py"
    script.write_text(DATA_PARALLEL_SCRIPT)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env=env, cwd=os.path.dirname(os.path.dirname(__file__)), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["devices"] == 2 and result["weight_devices"] == 2
    assert result["losses"][-1] < result["losses"][0]
