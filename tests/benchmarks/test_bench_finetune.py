"""Fine-tuning throughput (steps/s) of the tiny test model and the GPT-2 124M architecture.

Run with ``python -m pytest tests/benchmarks/test_bench_finetune.py --benchmark-only``.
The first ``fit_texts`` call compiles the train step; the benchmark then times steady
``fit`` calls of ``STEPS`` steps on the same compiled function, and reports steps/s in
``extra_info``. Random weights cost exactly what pretrained ones cost.
"""

from __future__ import annotations

import pytest

STEPS = {"tiny": 8, "gpt2_124m": 2}
TEXT = "My trip to Yosemite was long, cold and wonderful. " * 40  # fills 128 tokens


def _model(name: str):
    from samplerlab.models import build_gpt2_124m, build_tiny_causal_lm

    if name == "tiny":
        return build_tiny_causal_lm(sequence_length=128, seed=0)
    return build_gpt2_124m(sequence_length=128, seed=0)


@pytest.mark.parametrize("name", ["tiny", "gpt2_124m"])
def test_finetune_steps_per_second(benchmark, name):
    from samplerlab.finetune import fit_texts, text_dataset

    batch, steps = 8, STEPS[name]
    lm = _model(name)
    fit_texts(lm, [TEXT] * batch, batch_size=batch, progress=False)  # compiles the step
    ds = text_dataset([TEXT] * batch * steps, batch)

    def run():
        lm.fit(ds, epochs=1, verbose=0, shuffle=False)

    benchmark.pedantic(run, rounds=3 if name == "tiny" else 2, iterations=1, warmup_rounds=1)
    mean = benchmark.stats.stats.mean
    benchmark.extra_info.update({"batch_size": batch, "sequence_length": 128,
                                 "steps_per_round": steps, "steps_per_second": steps / mean})
    assert steps / mean > 0
