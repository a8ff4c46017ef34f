"""Shared set-up of the generation benchmarks: models, samplers, timed compiled calls.

The models are the issue's: GPT-2 124M architecture with random weights (the same cost
as the pretrained one) and the 2-layer tiny model, max_length 128, the prompt
"My trip to Yosemite was", the end token ignored (``stop_token_ids=None``).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "jax")

PROMPT = "My trip to Yosemite was"
MAX_LENGTH = 128
MODELS = ("tiny", "gpt2_124m")
# Steady rounds after the first (compiling) call: the 124M cases stay affordable on 2 cores.
ROUNDS = {"tiny": 5, "gpt2_124m": 1}
# Parameters of the benchmarked configurations (issue 7; contrastive at k=4).
SAMPLER_PARAMS: dict[str, dict[str, Any]] = {
    "greedy": {}, "top_k": {"k": 5, "seed": 1}, "top_p": {"p": 0.9, "seed": 1},
    "random": {"seed": 1}, "beam": {"num_beams": 5}, "contrastive": {"k": 4, "alpha": 0.6},
    "chain": {"processors": [{"top_k": 40}, {"top_p": 0.9}, {"temperature": 0.8}],
              "seed": 1},
}

_MODELS: dict[tuple[str, bool], Any] = {}


def loaded_model(name: str, fast: bool = True) -> Any:
    """A :class:`samplerlab.models.LoadedModel` around a freshly built model (cached).

    ``fast=True`` is what ``samplerlab run`` loads (samplerlab's engine over the model's
    fast decoding adapter, :mod:`samplerlab.models.adapters`); ``fast=False`` is KerasHub
    as shipped (its own compiled ``generate`` function), the baseline of the raw-KerasHub
    comparisons. Both are built from the same seed: same weights.
    """
    if (name, fast) not in _MODELS:
        from samplerlab.models import LoadedModel, build_gpt2_124m, build_tiny_causal_lm
        from samplerlab.models.adapters import adapter_for

        lm = (build_gpt2_124m(MAX_LENGTH) if name == "gpt2_124m"
              else build_tiny_causal_lm(sequence_length=MAX_LENGTH))
        _MODELS[name, fast] = LoadedModel(lm, preset=name, path="", dtype_policy=None,
                                          notes=[], adapter=adapter_for(lm, fast=fast))
    return _MODELS[name, fast]


def sampler_names() -> list[str]:
    """The built-in samplers, plus ``chain`` where a plugin registered it."""
    from samplerlab.plugins import get_plugin_manager

    names = ["greedy", "top_k", "top_p", "random", "beam", "contrastive"]
    return names + (["chain"] if "chain" in get_plugin_manager().registry("samplers") else [])


def build_sampler(name: str, **overrides: Any) -> Any:
    """Build a registered sampler the way a spec does (validated parameters)."""
    from samplerlab.plugins import get_plugin_manager

    entry = get_plugin_manager().registry("samplers")[name]
    return entry.build(**{**SAMPLER_PARAMS.get(name, {}), **overrides})


def inputs_for(model: Any, batch: int, prompt: str = PROMPT) -> dict:
    return model.preprocessor.generate_preprocess([prompt] * batch, sequence_length=MAX_LENGTH)


def compiled_call(model: Any, sampler: Any, batch: int,
                  inputs: dict | None = None) -> tuple[Callable[[], Any], float]:
    """Compile ``sampler`` for the model; return a blocking generate call and the first
    call's wall time (trace + XLA compile + one run). A fast model runs samplerlab's
    engine (a compiled program over its adapter); the other runs KerasHub as shipped.
    ``inputs`` (token ids and padding mask) default to the prompt through the model's
    preprocessor."""
    inputs = inputs if inputs is not None else inputs_for(model, batch)
    if model.fast_decoding:
        from samplerlab.engine.programs import ProgramCache

        programs = ProgramCache(model.adapter, persistent=False)

        def call() -> Any:
            out = programs.get(sampler, inputs, None)(sampler, inputs)
            return out["token_ids"].block_until_ready()
    else:
        lm = model.causal_lm
        lm.compile(sampler=sampler)
        fn = lm.make_generate_function()

        def call() -> Any:
            # KerasHub's generate function reads `lm.sampler.variables` at call time: put
            # this call's sampler back, or a later compile's sampler would run here.
            lm.sampler, lm.generate_function = sampler, fn
            out = fn(inputs, stop_token_ids=None)
            return out["token_ids"].block_until_ready()

    start = time.perf_counter()
    call()
    return call, time.perf_counter() - start


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class Baseline:
    """Times a baseline in pytest-benchmark's untimed ``setup`` hook, so it alternates
    round by round with the benchmarked function (fair under a fluctuating load)."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.seconds: list[float] = []

    def setup(self) -> None:
        self.seconds.append(timed(self.fn))

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def record(benchmark: Any, **info: Any) -> None:
    """Round floats and store them in the saved benchmark JSON (``extra_info``)."""
    for key, value in info.items():
        benchmark.extra_info[key] = round(value, 4) if isinstance(value, float) else value


def load_note() -> str:
    """The 1/5/15-minute load averages and the core count at measurement time."""
    return f"loadavg {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores"
