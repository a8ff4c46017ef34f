"""Where one compiled generate call spends its time, per XLA op (``jax.profiler`` trace).

Builds the GPT-2 124M architecture (or, with ``--family llama``, the ~125M Llama 3 of
``build_llama_120m``; random weights), compiles a sampler, traces one steady generate call
of 128 tokens and prints the ops' total time, grouped by name (numbered instances such as
``transpose_copy_fusion.7`` folded together). This is the profile behind the fast
decoding paths and the contrastive sampler (docs/performance.md).

Usage: python scripts/profile_trace.py [BATCH] [SAMPLER] [--keras-hub] [--family llama]
  SAMPLER: a built-in name (default greedy); --keras-hub: KerasHub's own call_with_cache.
"""

from __future__ import annotations

import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "jax")


def main(argv: list[str]) -> None:
    import jax
    import numpy as np

    from samplerlab.engine.programs import ProgramCache
    from samplerlab.models import build_gpt2_124m
    from samplerlab.models.adapters import adapter_for
    from samplerlab.models.builders import build_llama_120m
    from samplerlab.plugins import get_plugin_manager

    family = argv[argv.index("--family") + 1] if "--family" in argv else "gpt2"
    args = [a for i, a in enumerate(argv)
            if not a.startswith("--") and (i == 0 or argv[i - 1] != "--family")]
    batch = int(args[0]) if args else 8
    sampler = args[1] if len(args) > 1 else "greedy"
    params = {"contrastive": {"k": 4, "alpha": 0.6}, "top_p": {"p": 0.9, "seed": 1}}.get(
        sampler, {})
    built = get_plugin_manager().registry("samplers")[sampler].build(**params)
    if family == "llama":
        lm = build_llama_120m()
        token_ids = np.zeros((batch, 128), dtype="int32")
        token_ids[:, :6] = [1, 3492, 6907, 304, 612, 1049]  # the benchmark's prompt
        inputs = {"token_ids": token_ids, "padding_mask": token_ids != 0}
    else:
        lm = build_gpt2_124m(128)
        inputs = lm.preprocessor.generate_preprocess(["My trip to Yosemite was"] * batch,
                                                     sequence_length=128)
    # The engine's program over the fast adapter, or (--keras-hub) KerasHub's own path.
    adapter = adapter_for(lm, fast="--keras-hub" not in argv)
    program = ProgramCache(adapter, persistent=False).get(built, inputs, None)

    def fn():
        return program(built, inputs)

    fn()["token_ids"].block_until_ready()
    with tempfile.TemporaryDirectory() as directory:
        with jax.profiler.trace(directory, create_perfetto_trace=True):
            start = time.perf_counter()
            fn()["token_ids"].block_until_ready()
            seconds = time.perf_counter() - start
        path = glob.glob(f"{directory}/**/*.trace.json.gz", recursive=True)[0]
        with gzip.open(path) as trace:
            events = json.load(trace)
    events = events["traceEvents"] if isinstance(events, dict) else events
    total, count = collections.Counter(), collections.Counter()
    for event in events:
        name = event.get("name", "")
        if event.get("ph") == "X" and "dur" in event and not name.startswith(
                ("Thunk", "$", "Slinky", "end:")):
            op = re.sub(r"\.\d+$", "", name)
            total[op] += event["dur"]
            count[op] += 1
    print(f"{family} {sampler}, batch {batch}: one call {seconds:.2f} s (under the profiler)")
    for op, micros in total.most_common(15):
        print(f"{micros / 1e3:10.1f} ms {count[op]:7d}x  {op}")


if __name__ == "__main__":
    main(sys.argv[1:])
