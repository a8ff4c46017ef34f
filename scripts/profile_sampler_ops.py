"""Per-step cost of the sampling operations over GPT-2's 50,257-token vocabulary (JAX, jit).

Each op runs 30 times inside one jitted ``fori_loop`` (as in KerasHub's generate loop);
the best of 3 runs is printed in ms per step. This is how the top-p and random samplers,
and the DRY processor against repetition_penalty, were profiled (see docs/performance.md).

Usage: python scripts/profile_sampler_ops.py [BATCH ...]
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

VOCAB = 50257
STEPS = 30


def bench(name: str, op, batch: int) -> None:
    import jax
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.RandomState(0)
    x = jax.nn.softmax(jnp.asarray(rng.randn(batch, VOCAB).astype("float32") * 0.5))
    # The tiny data dependence on the carry stops XLA hoisting the op out of the loop.
    loop = jax.jit(lambda x: jax.lax.fori_loop(
        0, STEPS, lambda i, c: c + op(x + c * 1e-9).astype("float32").sum() * 0, 0.0))
    loop(x).block_until_ready()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        loop(x).block_until_ready()
        best = min(best, (time.perf_counter() - start) / STEPS)
    print(f"batch {batch:2d}  {name:34s} {best * 1e3:8.3f} ms/step", flush=True)


def main(batches: list[int]) -> None:
    import jax
    import jax.numpy as jnp

    from samplerlab.samplers.fast_ops import (
        nucleus_threshold,
        sample_from_weights,
        sample_nucleus,
    )

    key = jax.random.key(1)
    ops = {
        "argmax (greedy)": lambda x: jnp.argmax(x, -1),
        "top_k(5) + categorical (top_k)": lambda x: jax.random.categorical(
            key, jnp.log(jax.lax.top_k(x, 5)[0])),
        "full sort (KerasHub top_p)": lambda x: jax.lax.top_k(x, VOCAB)[0],
        "cumsum over vocab": lambda x: jnp.cumsum(x, -1),
        "categorical over vocab (random)": lambda x: jax.random.categorical(key, jnp.log(x)),
        "nucleus_threshold (bisection)": lambda x: nucleus_threshold(x, 0.9),
        "sample_from_weights (inverse CDF)": lambda x: sample_from_weights(x, key),
        "sample_nucleus (rejection, top_p)": lambda x: sample_nucleus(x, 0.9, key),
    }
    for batch in batches:
        for name, op in {**ops, **processor_ops(batch)}.items():
            bench(name, op, batch)


def processor_ops(batch: int) -> dict:
    """History-aware chain processors on a 128-token history (step 100), per step."""
    import jax.numpy as jnp
    import numpy as np

    from samplerlab.processors.base import Context
    from samplerlab.processors.dry import DRY
    from samplerlab.processors.penalties import RepetitionPenalty

    tokens = np.random.RandomState(1).randint(0, 50, size=(batch, 128)).astype("int32")
    prompt_mask = np.zeros_like(tokens, dtype=bool)

    def history(x):
        # A zero that depends on the loop carry: the history's work is not hoisted out of
        # the loop (in generation it changes every step).
        zero = (x[0, 0] * 0).astype("int32")
        return Context(tokens + zero, 100 + zero, prompt_mask)

    # GPT-2's ids of llama.cpp's default breakers "\n", ":", '"', "*".
    dry = DRY(0.8, sequence_breakers=[[198], [25], [1], [9]])
    repetition = RepetitionPenalty(1.2)
    return {"repetition_penalty (chain processor)":
            lambda x: repetition(jnp.log(x), history(x)),
            "dry (chain processor)": lambda x: dry(jnp.log(x), history(x))}


if __name__ == "__main__":
    main([int(b) for b in sys.argv[1:]] or [1, 8])
