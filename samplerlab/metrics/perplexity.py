"""Perplexity of the generated continuations under a causal LM."""

from __future__ import annotations

from typing import Any

import numpy as np

from samplerlab.metrics.base import MetricContext, Samples, SumPooledMetric
from samplerlab.metrics.base import ratio as _ratio


def prompt_ids(preprocessor: Any, prompt: str) -> list[int]:
    """The prompt's token ids exactly as ``generate()`` feeds them (start token included)."""
    packed = preprocessor.generate_preprocess([prompt])
    ids = np.asarray(packed["token_ids"])[0]
    mask = np.asarray(packed["padding_mask"])[0].astype(bool)
    return [int(i) for i in ids[mask]]


def continuation_nll(causal_lm: Any, contexts: list[list[int]], continuations: list[list[int]],
                     batch_size: int = 8, limit: int | None = None) -> np.ndarray:
    """Summed negative log-likelihood (nats) of each continuation given its context.

    Sequences longer than ``limit`` (the model's context length, ``LoadedModel.
    context_length``; None: the model states none) keep their continuation and lose the
    oldest context tokens. Batches are right-padded; padding never reaches a scored
    position because attention is causal.
    """
    import keras

    rows = []
    for ctx, cont in zip(contexts, continuations, strict=True):
        ctx, cont = list(ctx), list(cont)
        if limit is not None:
            cont = cont[: limit - 1]
            ctx = ctx[-(limit - len(cont)):]
        rows.append((ctx, cont))
    # One input shape for every batch (width rounded up, short batches padded with empty
    # rows): JAX compiles the forward pass once instead of once per shape.
    longest = max((len(c) + len(t) for c, t in rows), default=1)
    width = -(-longest // 32) * 32
    width = min(limit, width) if limit is not None else width
    out = np.zeros(len(rows))
    for start in range(0, len(rows), batch_size):
        ids = np.zeros((batch_size, width), dtype="int32")
        mask = np.zeros((batch_size, width), dtype=bool)
        target = np.zeros((batch_size, width), dtype=bool)
        chunk = rows[start:start + batch_size]
        for i, (ctx, cont) in enumerate(chunk):
            seq = ctx + cont
            ids[i, : len(seq)] = seq
            mask[i, : len(seq)] = True
            # Position p predicts token p + 1: the continuation is predicted from len(ctx)-1.
            target[i, max(len(ctx) - 1, 0): len(seq) - 1] = True
        logits = causal_lm({"token_ids": ids, "padding_mask": mask})
        log_probs = keras.ops.log_softmax(keras.ops.cast(logits, "float32"), axis=-1)
        nxt = np.concatenate([ids[:, 1:], np.zeros((batch_size, 1), "int32")], axis=1)
        picked = keras.ops.take_along_axis(log_probs, nxt[..., None], axis=-1)[..., 0]
        picked = np.asarray(keras.ops.convert_to_numpy(picked), dtype=float)
        out[start:start + len(chunk)] = -(picked * target).sum(axis=1)[: len(chunk)]
    return out


class Perplexity(SumPooledMetric):
    """Token-level perplexity of the continuations: ``exp(total NLL / total tokens)``.

    Each continuation (its ``token_ids``, the end token excluded) is scored given its
    prompt, tokenised as ``generate()`` tokenises it, under the run's model
    (``context.model``) or, with ``preset``, under another model loaded for the purpose.
    Tokens are pooled over the cell, as language-model perplexity is usually reported.

    Args:
        preset: score under this model instead of the run's (a KerasHub preset name,
            directory or ``samplerlab:<name>``).
        batch_size: sequences per forward pass (2 by default: a GPT-2 forward pass holds
            batch x length x 50,257 logits, which decides the peak memory of a run).

    Example:

    ```python
    from samplerlab.metrics.base import MetricContext
    from samplerlab.models import LoadedModel, build_tiny_causal_lm

    lm = build_tiny_causal_lm()
    context = MetricContext(model=LoadedModel(lm, "tiny", "", None, []))
    samples = [{"prompt": "Hello", "token_ids": [11, 995]}]
    metric = Perplexity()
    metric.aggregate(metric.stats(samples, context))  # {'perplexity': ~50257 (random model)}
    ```
    """

    name = "perplexity"
    requires = frozenset({"model"})

    def __init__(self, preset: str | None = None, batch_size: int = 2) -> None:
        self.preset = preset
        self.batch_size = batch_size
        self._model = None

    def columns(self) -> list[str]:
        return ["perplexity"]

    def model(self, context: MetricContext) -> Any:
        if self.preset is None:
            return context.model
        if self._model is None:
            from samplerlab.models import load_model

            self._model = load_model(self.preset)
        return self._model

    def stats(self, samples: Samples, context: MetricContext) -> np.ndarray:
        model = self.model(context)
        preprocessor = model.preprocessor
        cache: dict[str, list[int]] = {}
        contexts = []
        for s in samples:
            prompt = s.get("prompt") or ""
            if prompt not in cache:
                cache[prompt] = prompt_ids(preprocessor, prompt)
            contexts.append(cache[prompt])
        continuations = [list(s.get("token_ids") or []) for s in samples]
        limit = model.context_length
        nll = continuation_nll(model.causal_lm, contexts, continuations, self.batch_size, limit)
        lengths = np.array([min(len(c), limit - 1) if limit is not None else len(c)
                            for c in continuations], dtype=float)
        return np.column_stack([nll, lengths])

    def from_sums(self, sums: np.ndarray) -> dict[str, np.ndarray]:
        with np.errstate(over="ignore"):
            return {"perplexity": np.exp(_ratio(sums[:, 0], sums[:, 1]))}
