"""``model.distribution: {model_parallel: N}``: weights sharded with the backbone's own
layout map, decoding the tokens the unsharded model decodes.

Runs in a subprocess with two host CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=2``): JAX fixes its devices when it
starts, so the test process itself cannot get a second one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from samplerlab.models.family import FAMILIES

REPO = Path(__file__).resolve().parents[1]
SHARDED = [name for name, family in FAMILIES.items() if family.layout_map]

SCRIPT = r'''
import json, os, sys
import keras_hub, numpy as np
import jax
from samplerlab.cli import main
from samplerlab.engine.programs import ProgramCache
from samplerlab.finetune import fit_texts
from samplerlab.models import build_tiny_family, load_model, save_preset

PROMPTS = ["The Bionic Dog", "A celebrity is"]
# The layout maps shard key/value heads over the devices: Gemma with one per query head
# (Gemma 7B's), not the tiny Gemma's single one (Gemma 2B's).
SHAPES = {"gemma": {"num_key_value_heads": 4}}
root, names = sys.argv[1], sys.argv[2:]


def greedy(model):
    inputs = model.preprocessor.generate_preprocess(PROMPTS, sequence_length=12)
    sampler = keras_hub.samplers.GreedySampler()
    program = ProgramCache(model.adapter, persistent=False).get(sampler, inputs, None)
    return np.asarray(program(sampler, inputs)["token_ids"]).tolist()


def sharded(model):
    return sorted({v.path for v in model.causal_lm.variables
                   if "model" in str(v.value.sharding.spec)})


found = {"devices": len(jax.devices())}
for name in names:
    preset = save_preset(build_tiny_family(name, sequence_length=16, **SHAPES.get(name, {})),
                         f"{root}/{name}")
    single, parallel = load_model(str(preset), 16), load_model(str(preset), 16, model_parallel=2)
    found[name] = {"single": greedy(single), "parallel": greedy(parallel),
                   "sharded": sharded(parallel), "notes": parallel.notes}
    if name == names[0]:
        history = fit_texts(parallel.causal_lm, ["the cat sat on the mat"] * 2, batch_size=2,
                            learning_rate=1e-2, progress=False,
                            distribution=parallel.distribution)
        found[name]["fit_loss"] = history[-1]["batch_loss"]
        found[name]["sharded_after_fit"] = sharded(parallel)
        spec = {"name": "sharded", "model": {"preset": str(preset), "sequence_length": 16,
                                             "distribution": {"model_parallel": 2}},
                "prompts": PROMPTS, "generation": {"max_length": 12, "batch_size": 2},
                "samplers": ["greedy"], "metrics": ["length"]}
        with open(f"{root}/spec.json", "w") as f:
            json.dump(spec, f)
        found["cli_exit"] = main(["run", f"{root}/spec.json", "--results-root",
                                  f"{root}/results", "--run-id", "r"])
        found["cli_run"] = f"{root}/results/sharded/r"
print("RESULT " + json.dumps(found))
'''


@pytest.fixture(scope="module")
def sharding(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("sharded")
    env = {**os.environ, "KERAS_BACKEND": "jax",
           "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get(
               "PYTHONPATH")])]),
           "XLA_FLAGS": " ".join(filter(None, [os.environ.get("XLA_FLAGS"),
                                               "--xla_force_host_platform_device_count=2",
                                               "--xla_backend_optimization_level=0"]))}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(root), *SHARDED], env=env,
                          capture_output=True, text=True, timeout=900)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, done.stderr[-4000:]
    return json.loads(lines[-1][len("RESULT "):])


@pytest.mark.parametrize("family", SHARDED)
def test_sharded_weights_decode_the_unsharded_tokens(family, sharding):
    assert sharding["devices"] == 2
    found = sharding[family]
    assert found["sharded"], "no weight is laid out over the model axis"
    assert found["parallel"] == found["single"]
    assert any("sharded over 2 devices" in note for note in found["notes"])


def test_a_sharded_model_fine_tunes_and_stays_sharded(sharding):
    found = sharding[SHARDED[0]]
    assert found["fit_loss"] > 0
    assert found["sharded_after_fit"] == found["sharded"]


def test_samplerlab_run_decodes_with_a_sharded_model(sharding):
    """The runner loads the spec's model sharded; its greedy samples are the unsharded
    model's tokens."""
    assert sharding["cli_exit"] == 0
    run = Path(sharding["cli_run"])
    manifest = json.loads((run / "manifest.json").read_text())
    assert any("sharded over 2 devices" in note for note in manifest["notes"])
    stops = set(manifest["model"]["stop_token_ids"])
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().split("\n")
               if line]
    for sample, row in zip(sorted(samples, key=lambda s: s["prompt_index"]),
                           sharding[SHARDED[0]]["single"], strict=True):
        continuation = row[sample["prompt_tokens"]:]
        ends = [i for i, t in enumerate(continuation) if t in stops]
        assert sample["token_ids"] == continuation[:ends[0] if ends else None]
