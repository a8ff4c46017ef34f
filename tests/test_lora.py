"""LoRA fine-tuning (``finetune.lora_rank``): KerasHub's ``enable_lora``, base weights
frozen, and a cached preset that holds the merged weights as KerasHub saves them."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

TEXTS = ["the cat sat on the mat and the dog sat on the log"] * 8


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    """A tiny Llama fine-tuned with ``lora_rank: 2`` through the spec path."""
    import yaml

    from samplerlab import finetune
    from samplerlab.models import build_tiny_family, save_preset
    from samplerlab.spec import load_spec

    root = tmp_path_factory.mktemp("lora")
    base = save_preset(build_tiny_family("llama", sequence_length=16), root / "base")
    spec = {"name": "lora", "seed": 1, "model": {"preset": str(base), "sequence_length": 16},
            "finetune": {"dataset": {"source": "inline", "texts": TEXTS}, "batch_size": 4,
                         "take_batches": 2, "epochs": 3, "lora_rank": 2,
                         "optimizer": {"learning_rate": 0.02, "schedule": "constant"}},
            "prompts": ["the cat"], "samplers": ["greedy"]}
    (root / "spec.yaml").write_text(yaml.safe_dump(spec))
    loaded = load_spec(root / "spec.yaml")
    trained = []  # the fresh copy fine-tuning trains, kept here to look at its LoRA weights
    fit_texts = finetune.fit_texts

    def fit_and_keep(causal_lm, *args, **kwargs):
        trained.append(causal_lm)
        return fit_texts(causal_lm, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(finetune, "fit_texts", fit_and_keep)
        result = finetune.finetune_from_spec(loaded, results_root=root / "results")
    return SimpleNamespace(base=base, loaded=loaded, trained=trained[0], result=result)


def _weights(variables) -> dict[str, np.ndarray]:
    return {v.path: np.asarray(v.value) for v in variables}


def test_the_loss_falls(lora_run):
    losses = [r["batch_loss"] for r in lora_run.result.history]
    assert len(losses) == 6 and losses[-1] < losses[0]


def test_only_the_low_rank_weights_change(lora_run):
    from samplerlab.models import load_model

    base = _weights(load_model(str(lora_run.base), 16).causal_lm.backbone.variables)
    tuned = _weights(lora_run.trained.backbone.variables)
    lora = {path for path in tuned if "lora_kernel" in path}
    assert lora and lora.isdisjoint(base)  # one A and one B per query and value layer
    assert all(np.array_equal(base[path], tuned[path]) for path in base)
    assert any(np.abs(tuned[path]).max() > 0 for path in lora if path.endswith("_b"))


def test_the_cached_preset_holds_the_merged_weights(lora_run):
    from samplerlab.models import load_model

    tuned = load_model(str(lora_run.result.preset_dir), 16)
    assert not [v for v in tuned.causal_lm.variables if "lora" in v.path]
    inputs = tuned.preprocessor.generate_preprocess(["the cat sat"], sequence_length=16)
    merged = np.asarray(tuned.causal_lm(inputs))
    adapted = np.asarray(lora_run.trained(inputs))
    base = np.asarray(load_model(str(lora_run.base), 16).causal_lm(inputs))
    np.testing.assert_allclose(merged, adapted, rtol=1e-4, atol=1e-5)
    assert not np.allclose(merged, base, rtol=1e-4, atol=1e-5)


def test_the_rank_is_part_of_the_cache_key(lora_run):
    from samplerlab.finetune import finetune_key

    material = json.loads((lora_run.result.directory / "key.json").read_text())
    assert material["hyperparameters"]["lora_rank"] == 2
    assert finetune_key(material) == lora_run.result.key
    full = {**material, "hyperparameters": {k: v for k, v in material["hyperparameters"].items()
                                            if k != "lora_rank"}}
    assert finetune_key(full) != lora_run.result.key
