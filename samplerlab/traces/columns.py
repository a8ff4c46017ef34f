"""The model-side trace columns of a position, from its logits (``keras.ops`` only).

One set of functions serves the generate loop (one position per step, ``(batch, vocab)``)
and teacher-forced scoring (every position at once, ``(batch, length, vocab)``): the
model's log-probability of the chosen token at temperature 1, its rank (0 = the most
probable token; ties share the better rank), the entropy of the distribution in nats and,
optionally, the ``top`` most probable tokens with their log-probabilities.
"""

from __future__ import annotations

from typing import Any

from keras import ops

#: Per-position outputs, ``(batch, max_length)`` (``top_*``: ``(batch, max_length, top)``).
FIELDS = ("token_id", "model_logp", "model_rank", "model_entropy", "sampler_logp",
          "kept_size")
TOP_FIELDS = ("top_ids", "top_logp")


def log_probs(logits: Any) -> Any:
    """``log softmax`` of ``logits`` in float32 (whatever the model's compute dtype)."""
    return ops.log_softmax(ops.cast(logits, "float32"), axis=-1)


def entropy(log_probs: Any) -> Any:
    """Entropy in nats of each distribution along the last axis (removed tokens add 0)."""
    terms = ops.where(ops.isfinite(log_probs), ops.exp(log_probs) * log_probs, 0.0)
    return -ops.sum(terms, axis=-1)


def picked(log_probs: Any, tokens: Any) -> Any:
    """The log-probability of ``tokens`` (shape ``log_probs.shape[:-1]``)."""
    return ops.take_along_axis(log_probs, ops.cast(tokens, "int32")[..., None], axis=-1)[..., 0]


def rank(log_probs: Any, token_log_probs: Any) -> Any:
    """How many tokens are strictly more probable than the chosen one (0: the argmax)."""
    return ops.sum(ops.cast(log_probs > token_log_probs[..., None], "int32"), axis=-1)


def top(log_probs: Any, n: int) -> tuple[Any, Any]:
    """The ``n`` most probable token ids and their log-probabilities, most probable first."""
    values, ids = ops.top_k(log_probs, k=n, sorted=True)
    return ops.cast(ids, "int32"), values


def kept_size(log_probs: Any) -> Any:
    """How many tokens a distribution keeps (finite log-probability), as int32."""
    return ops.sum(ops.cast(ops.isfinite(log_probs), "int32"), axis=-1)
