"""Time samplers on the tiny model or GPT-2 124M: steady seconds per generate call.

Usage: python scripts/profile_samplers.py [--model tiny|124m] [--batch 1 8] [--rounds 3]
                                          [--samplers greedy top_k top_p keras_top_p]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

PROMPT = "My trip to Yosemite was"


def make(name: str):
    import keras_hub

    from samplerlab.samplers.builtin import BUILTIN_SAMPLERS

    if name.startswith("keras_"):
        cls = {"keras_top_p": keras_hub.samplers.TopPSampler,
               "keras_top_k": keras_hub.samplers.TopKSampler,
               "keras_random": keras_hub.samplers.RandomSampler}[name]
        return cls(seed=1)
    factory = BUILTIN_SAMPLERS[name]
    kwargs = {} if name in ("greedy", "beam", "contrastive") else {"seed": 1}
    if name == "contrastive":
        kwargs = {"k": 4, "alpha": 0.6}
    return factory(**kwargs)


def time_generate(lm, preprocessor, sampler, batch: int, max_length: int, rounds: int):
    lm.compile(sampler=sampler)
    inputs = preprocessor.generate_preprocess([PROMPT] * batch, sequence_length=max_length)
    fn = lm.make_generate_function()
    start = time.perf_counter()
    fn(inputs, stop_token_ids=None)["token_ids"].block_until_ready()
    first = time.perf_counter() - start
    steady = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn(inputs, stop_token_ids=None)["token_ids"].block_until_ready()
        steady.append(time.perf_counter() - start)
    return first, statistics.median(steady)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="tiny", choices=["tiny", "124m"])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--samplers", nargs="+",
                        default=["greedy", "top_k", "top_p", "keras_top_p", "random"])
    args = parser.parse_args()
    from samplerlab.models import build_gpt2_124m, build_tiny_causal_lm

    lm = (build_gpt2_124m(args.max_length) if args.model == "124m"
          else build_tiny_causal_lm(sequence_length=args.max_length))
    for batch in args.batch:
        for name in args.samplers:
            first, steady = time_generate(lm, lm.preprocessor, make(name), batch,
                                          args.max_length, args.rounds)
            print(f"{args.model} batch={batch} {name:12s} first={first:7.3f}s "
                  f"steady={steady:7.4f}s", flush=True)


if __name__ == "__main__":
    main()
