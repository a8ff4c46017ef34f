"""What half-precision and int8 weights cost in quality, on the embedded (trained) model.

Loads ``samplerlab:tiny-en`` as float32, ``dtype_policy: bfloat16`` and ``quantize: int8``
and reports, against float32: held-out perplexity (every 20th English fortune, the
documents scripts/train_embedded.py held out) and the share of greedy tokens that change
(the first 6 words of held-out fortunes as prompts, 48 new tokens, batch 8, end token
ignored). The figures behind docs/performance.md's "Quantized and half-precision weights".

Usage: python scripts/quantization_quality.py [DOCUMENTS] [PROMPTS]
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
CORPUS = Path(__file__).resolve().parents[1] / "samplerlab" / "assets" / "corpus"


def heldout_fortunes(count: int) -> list[str]:
    text = (CORPUS / "fortunes.txt").read_text(encoding="utf-8")
    docs = [d.strip("\n") for d in text.split("\n%\n") if d.strip()]
    return [d for i, d in enumerate(docs) if i % 20 == 19][:count]


def perplexity(model, texts: list[str]) -> float:
    from samplerlab.metrics.perplexity import continuation_nll, prompt_ids

    start = [model.preprocessor.tokenizer.start_token_id]
    continuations = [prompt_ids(model.preprocessor, t, 64)[1:] for t in texts]
    nll = continuation_nll(model.causal_lm, [start] * len(texts), continuations)
    return math.exp(nll.sum() / sum(len(c) for c in continuations))


def greedy_tokens(model, prompts: list[str], max_length: int = 64):
    import keras_hub
    import numpy as np

    from samplerlab.engine.programs import ProgramCache

    programs = ProgramCache(model.adapter, persistent=False)
    rows, masks = [], []
    for start in range(0, len(prompts), 8):
        inputs = model.preprocessor.generate_preprocess(prompts[start:start + 8],
                                                        sequence_length=max_length)
        sampler = keras_hub.samplers.GreedySampler()
        rows.append(np.asarray(programs.get(sampler, inputs, None)(sampler, inputs)[
            "token_ids"]))
        masks.append(np.asarray(inputs["padding_mask"]))
    return np.concatenate(rows), np.concatenate(masks)


def main(argv: list[str]) -> None:
    from samplerlab.models import load_model

    documents = int(argv[0]) if argv else 200
    count = int(argv[1]) if len(argv) > 1 else 32
    texts = heldout_fortunes(documents)
    prompts = [" ".join(t.split()[:6]) for t in heldout_fortunes(count)]
    variants = {"float32": {}, "bfloat16": {"dtype_policy": "bfloat16"},
                "int8": {"quantize": "int8"}}
    reference = None
    for name, options in variants.items():
        model = load_model("samplerlab:tiny-en", sequence_length=64, **options)
        ppl = perplexity(model, texts)
        tokens, mask = greedy_tokens(model, prompts)
        if reference is None:
            reference = (ppl, tokens)
        new = ~mask.astype(bool)
        changed = float((tokens[new] != reference[1][new]).mean())
        # The first position where a row departs from float32 (later tokens follow it).
        departs = [(row != ref).argmax() if (row != ref).any() else None
                   for row, ref in zip(tokens, reference[1], strict=True)]
        print(f"{name:9s} perplexity {ppl:8.3f} ({ppl / reference[0] - 1:+.2%} vs float32)  "
              f"greedy tokens changed {changed:.1%} of {int(new.sum())}  "
              f"rows departing {sum(d is not None for d in departs)}/{len(departs)}")


if __name__ == "__main__":
    main(sys.argv[1:])
