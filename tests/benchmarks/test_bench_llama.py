"""Fast decoding beyond GPT-2: a ~125M Llama 3 architecture against KerasHub as shipped
and Hugging Face transformers (issue 13, item 4).

Model: ``samplerlab.models.builders.build_llama_120m`` (``Llama3Backbone``: hidden 768,
12 layers, 12 query heads sharing 4 key/value heads, feed-forward 2048, vocabulary
32,000, untied embeddings: 124.6M parameters), random weights (seed 0), float32. Prompt:
6 fixed token ids, 128 positions, 122 new tokens per row, no stop token. Greedy and top-p
(p = 0.9) at batch 1 and 8, three ways alternated round by round in one test:

* samplerlab: the engine's compiled program over ``LlamaAdapter`` (what ``samplerlab run``
  does);
* KerasHub as shipped: ``Llama3CausalLM``'s own compiled ``generate`` function with the
  same sampler (its ``call_with_cache``);
* transformers: ``LlamaForCausalLM`` on the same weights, written by KerasHub's
  ``export_to_transformers``, run in its own process (``hf_generate_worker.py``: JAX and
  PyTorch crash in one process) with its faster thread count.

Targets: samplerlab >= 1.5x transformers and >= 1.0x KerasHub tokens/s in every case.
``test_peak_rss`` records each one's peak resident memory (VmHWM of a fresh process; the
transformers worker reports its own in the comparison cases).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bench_utils import Baseline, build_sampler, compiled_call, load_note, record

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("hf_generate_worker.py")
PROMPT_IDS = [1, 3492, 6907, 304, 612, 1049]
MAX_LENGTH = 128
NEW_TOKENS = MAX_LENGTH - len(PROMPT_IDS)
# Steady rounds after the compiling call: three ways alternate in each.
ROUNDS = 3


def llama_inputs(batch: int) -> dict:
    token_ids = np.zeros((batch, MAX_LENGTH), dtype="int32")
    token_ids[:, :len(PROMPT_IDS)] = PROMPT_IDS
    return {"token_ids": token_ids, "padding_mask": token_ids != 0}


@pytest.fixture(scope="module")
def llama():
    """The model twice: samplerlab's fast decoding and KerasHub as shipped, same object."""
    from samplerlab.models import LoadedModel
    from samplerlab.models.adapters import adapter_for
    from samplerlab.models.builders import build_llama_120m

    lm = build_llama_120m()
    return {fast: LoadedModel(lm, preset="llama_120m", path="", dtype_policy=None, notes=[],
                              adapter=adapter_for(lm, fast=fast)) for fast in (True, False)}


class Worker:
    """The transformers process: one JSON request per line, one JSON answer per line."""

    def __init__(self, model_dir: Path, log: Path) -> None:
        self.log = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), str(model_dir)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self.log, text=True,
            env={k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"})
        self.versions = {k: v for k, v in self.read().items() if k != "ready"}

    def request(self, **message) -> dict:
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()
        return self.read()

    def read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            self.log.flush()
            raise RuntimeError("the transformers worker stopped:\n"
                               + Path(self.log.name).read_text()[-3000:])
        return json.loads(line)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)
        self.log.close()


@pytest.fixture(scope="module")
def transformers_worker(llama, tmp_path_factory):
    for package in ("torch", "transformers"):
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"{package} not installed: pip install torch --index-url "
                        "https://download.pytorch.org/whl/cpu transformers")
    model_dir = tmp_path_factory.mktemp("llama_hf")
    llama[True].causal_lm.export_to_transformers(str(model_dir))
    worker = Worker(model_dir, model_dir / "worker.log")
    yield worker
    worker.close()


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("sampler", ["greedy", "top_p"])
def test_versus_keras_hub_and_transformers(benchmark, llama, transformers_worker, sampler,
                                           batch):
    inputs = llama_inputs(batch)
    ours, ours_first = compiled_call(llama[True], build_sampler(sampler), batch, inputs)
    stock, stock_first = compiled_call(llama[False], build_sampler(sampler), batch, inputs)
    threads = transformers_worker.request(op="threads", prompt=PROMPT_IDS, batch=batch)
    keras_hub, hf_seconds, hf_answer = Baseline(stock), [], {}

    def setup() -> None:
        keras_hub.setup()
        hf_answer.update(transformers_worker.request(
            op="generate", prompt=PROMPT_IDS, batch=batch, new_tokens=NEW_TOKENS,
            sampler=sampler, p=0.9))
        hf_seconds.append(hf_answer["seconds"])

    benchmark.pedantic(ours, setup=setup, rounds=ROUNDS, iterations=1)
    tokens = batch * NEW_TOKENS
    ours_rate = tokens / benchmark.stats.stats.median
    keras_hub_rate = tokens / keras_hub.median
    hf_rate = tokens / float(np.median(hf_seconds))
    extra = {}
    if sampler == "greedy":
        # Same weights, same arithmetic up to rounding: the greedy continuations agree
        # until two near-equal logits (random weights) are ordered differently.
        ours_tokens = np.asarray(ours())[0, len(PROMPT_IDS):].tolist()
        extra["greedy_tokens_equal_to_transformers"] = next(
            (i for i, (a, b) in enumerate(zip(ours_tokens, hf_answer["tokens"],
                                              strict=True)) if a != b), NEW_TOKENS)
    record(benchmark, samplerlab_tokens_per_s=ours_rate,
           keras_hub_tokens_per_s=keras_hub_rate, transformers_tokens_per_s=hf_rate,
           ratio_vs_transformers=ours_rate / hf_rate, ratio_vs_keras_hub=ours_rate
           / keras_hub_rate, samplerlab_first_call_s=ours_first,
           keras_hub_first_call_s=stock_first,
           transformers_peak_rss_mb=hf_answer["peak_rss_mb"], **threads, **extra,
           **transformers_worker.versions, load=load_note())


# A fresh process: build the model, compile top-p at batch 8, generate once, report the
# peak resident memory (VmHWM starts afresh at exec).
CHILD = """
import json, sys
import numpy as np
from samplerlab.engine.programs import ProgramCache
from samplerlab.models.adapters import adapter_for
from samplerlab.models.builders import build_llama_120m
from samplerlab.plugins import get_plugin_manager
lm = build_llama_120m()
sampler = get_plugin_manager().registry("samplers")["top_p"].build(p=0.9, seed=1)
token_ids = np.zeros((8, 128), dtype="int32")
token_ids[:, :6] = [1, 3492, 6907, 304, 612, 1049]
inputs = {"token_ids": token_ids, "padding_mask": token_ids != 0}
if sys.argv[1] == "samplerlab":
    adapter = adapter_for(lm)
    ProgramCache(adapter, persistent=False).get(sampler, inputs, None)(sampler, inputs)
else:
    lm.compile(sampler=sampler)
    lm.make_generate_function()(inputs, stop_token_ids=None)
with open("/proc/self/status") as status:
    peak = next(int(l.split()[1]) / 1024 for l in status if l.startswith("VmHWM:"))
print(json.dumps({"peak_rss_mb": peak}))
"""


@pytest.mark.parametrize("path", ["samplerlab", "keras_hub"])
def test_peak_rss(benchmark, path):
    """Peak resident memory of building the 125M Llama and generating top-p at batch 8."""
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(REPO),
           "SAMPLERLAB_COMPILATION_CACHE": "0"}
    result = {}

    def run() -> None:
        out = subprocess.run([sys.executable, "-c", CHILD, path], env=env, cwd=REPO,
                             capture_output=True, text=True, check=True)
        result.update(json.loads(out.stdout.strip().splitlines()[-1]))

    benchmark.pedantic(run, rounds=1, iterations=1)
    record(benchmark, peak_rss_mb=result["peak_rss_mb"], load=load_note())
