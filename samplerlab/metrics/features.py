"""Text features from a causal LM's backbone: MAUVE's last-token state, coherence's mean.

Texts are tokenized with the metrics model's own tokenizer (no start token, as MAUVE's
``featurize_tokens_from_model`` does with GPT-2), cut to the model's scoring window, run
through the backbone in right-padded batches (causal attention: padding never reaches a
real position) and reduced to one vector: the final hidden state at the last token
(Pillutla et al. 2021) or the mean of the final hidden states (coherence). The model is
opaque here: any :class:`samplerlab.models.LoadedModel` whose backbone maps
``{"token_ids", "padding_mask"}`` to hidden states works.
"""

from __future__ import annotations

import weakref
from typing import Any, Literal

import numpy as np

Pooling = Literal["last", "mean"]
# One compiled forward pass per layer and kind, dropped with the model.
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _compiled(layer: Any, kind: str) -> Any:
    """``layer``'s forward pass under ``jax.jit`` through Keras's ``stateless_call``: the
    weights are arguments, so one trace serves every batch of a shape (eager Keras runs
    op by op, which costs more than the arithmetic on small models)."""
    import jax
    import jax.numpy as jnp

    per_layer = _COMPILED.setdefault(layer, {})
    if kind not in per_layer:
        def forward(trainable, non_trainable, ids, mask):
            out, _ = layer.stateless_call(trainable, non_trainable,
                                          {"token_ids": ids, "padding_mask": mask})
            if kind == "hidden":
                return out.astype(jnp.float32)
            log_probs = jax.nn.log_softmax(out.astype(jnp.float32), axis=-1)
            following = jnp.concatenate([ids[:, 1:], jnp.zeros_like(ids[:, :1])], axis=1)
            return jnp.take_along_axis(log_probs, following[..., None], axis=-1)[..., 0]

        per_layer[kind] = jax.jit(forward)
    return per_layer[kind]


def _run(layer: Any, kind: str, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    trainable = [v.value for v in layer.trainable_variables]
    non_trainable = [v.value for v in layer.non_trainable_variables]
    return np.asarray(_compiled(layer, kind)(trainable, non_trainable, ids, mask),
                      dtype=np.float64)


def hidden_states(model: Any, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The backbone's final hidden states, shape ``(batch, width, hidden_dim)``."""
    return _run(model.causal_lm.backbone, "hidden", ids, mask)


def next_token_log_probs(causal_lm: Any, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``out[b, p] = log P(ids[b, p + 1] | ids[b, : p + 1])`` (the last column is unused)."""
    return _run(causal_lm, "next_token", ids, mask)


def token_ids(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    """Token ids of each text (one tokenizer call for the whole list)."""
    if not texts:
        return []
    out = tokenizer(list(texts))
    if hasattr(out, "to_list"):  # a ragged tensor
        return [[int(t) for t in row] for row in out.to_list()]
    return [[int(t) for t in np.asarray(row).ravel()] for row in out]


def scoring_window(model: Any, max_tokens: int | None) -> int | None:
    """Tokens of one scored sequence: ``max_tokens`` within the model's context length
    (``LoadedModel.context_length``); None when neither sets a limit."""
    limit = model.context_length
    if not max_tokens:
        return limit
    return min(limit, max_tokens) if limit is not None else max_tokens


def embed(model: Any, texts: list[str], pooling: Pooling = "last", *, batch_size: int = 4,
          max_tokens: int | None = None, memo: dict | None = None,
          on_batch: Any = None) -> np.ndarray:
    """One feature vector per text, shape ``(len(texts), hidden_dim)``.

    Args:
        model: the metrics model (``.causal_lm.backbone``, ``.tokenizer``).
        texts: the texts; an empty text is scored as the end token alone.
        pooling: ``"last"``: the final hidden state at the last token (MAUVE);
            ``"mean"``: the mean of the final hidden states over the tokens (coherence).
        batch_size: texts per forward pass.
        max_tokens: keep at most this many tokens of a text (default: the model's
            ``max_sequence_length``), the first ones, as MAUVE truncates.
        memo: a dict that keeps features across calls (texts repeat across cells).
        on_batch: called with the number of texts of each forward pass.

    Example:

    ```python
    from samplerlab.metrics.features import embed

    features = embed(model, ["hello world", "a"], "mean")  # model: a LoadedModel
    assert features.shape == (2, model.causal_lm.backbone.hidden_dim)
    ```
    """
    memo = {} if memo is None else memo
    keys = [(id(model), pooling, max_tokens, t) for t in texts]
    todo = list(dict.fromkeys(t for k, t in zip(keys, texts, strict=True) if k not in memo))
    if todo:
        width = scoring_window(model, max_tokens)
        end = int(model.tokenizer.end_token_id)
        ids = [row[:width] or [end] for row in token_ids(model.tokenizer, todo)]
        for start in range(0, len(ids), batch_size):
            chunk = ids[start:start + batch_size]
            vectors = _pooled(model, chunk, pooling, batch_size)
            for text, vector in zip(todo[start:start + batch_size], vectors, strict=True):
                memo[(id(model), pooling, max_tokens, text)] = vector
            if on_batch is not None:
                on_batch(len(chunk))
    if not texts:
        return np.zeros((0, int(model.causal_lm.backbone.hidden_dim)))
    return np.stack([memo[k] for k in keys])


def _pooled(model: Any, rows: list[list[int]], pooling: Pooling, batch_size: int) -> np.ndarray:
    # Every batch has the same shape (padded rows, width rounded up to 32): one trace.
    longest = max(len(r) for r in rows)
    width = min(model.max_sequence_length, -(-longest // 32) * 32)
    ids = np.zeros((batch_size, width), dtype="int32")
    mask = np.zeros((batch_size, width), dtype=bool)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = True
    hidden = hidden_states(model, ids, mask)[: len(rows)]
    mask = mask[: len(rows)]
    if pooling == "last":
        return hidden[np.arange(len(rows)), mask.sum(axis=1) - 1]
    weights = mask[..., None].astype(np.float64)
    return (hidden * weights).sum(axis=1) / weights.sum(axis=1)
