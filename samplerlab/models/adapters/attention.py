"""Attention arithmetic shared by the fast adapters: masks and softmax as Keras does them.

The fast adapters keep each layer's cache as ``(batch, heads, length, head_dim)`` and
compute attention themselves, so they must reproduce ``keras.ops.dot_product_attention``
(JAX) exactly for ``generate`` to give KerasHub's tokens: logits masked with
``-0.7 * finfo.max`` and a float32 softmax; half-precision products accumulate in float32.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from keras import ops


def causal_mask(queries: int, keys: int, index: Any, window: int | None = None) -> Any:
    """``(1, queries, keys)``: query ``i`` (at position ``index + i``) sees keys up to it
    (with a sliding ``window``: only the ``window`` latest of them, itself included)."""
    rows = ops.arange(queries, dtype="int32")[:, None] + ops.cast(index, "int32")
    columns = ops.arange(keys, dtype="int32")[None, :]
    visible = columns <= rows
    if window is not None:
        visible = ops.logical_and(visible, rows < columns + window)
    return visible[None]


def logits_dtype(query: Any) -> str:
    """Half-precision products accumulate in float32, as ``dot_product_attention`` asks."""
    return "float32" if query.dtype in ("float16", "bfloat16") else query.dtype


def scores(query: Any, keys: Any, equation: str = "bqnd,bnkd->bnqk") -> Any:
    """Unscaled query-key products in the logits dtype."""
    dtype = logits_dtype(query)
    return ops.einsum(equation, ops.cast(query, dtype), ops.cast(keys, dtype))


def masked_softmax(logits: Any, visible: Any, dtype: Any) -> Any:
    """Attention weights the way ``keras.ops.dot_product_attention`` (JAX) computes them:
    masked with ``-0.7 * finfo.max``, softmax in float32, cast to ``dtype``."""
    large_negative = -0.7 * float(np.finfo(np.dtype(logits.dtype)).max)
    logits = ops.where(visible, logits, ops.cast(large_negative, logits.dtype))
    return ops.cast(ops.softmax(ops.cast(logits, "float32"), axis=-1), dtype)


def write_at(cache: Any, update: Any, index: Any) -> Any:
    """``cache`` ``(batch, heads, length, dim)`` with ``update`` ``(batch, n, heads, dim)``
    written at positions ``index .. index + n - 1``."""
    return ops.slice_update(cache, [0, 0, index, 0], ops.transpose(update, (0, 2, 1, 3)))


def pick_candidate(update: Any, chosen: Any) -> Any:
    """Row ``b``'s ``chosen[b]``-th candidate of ``update`` ``(batch, k, heads, dim)``,
    as ``(batch, 1, heads, dim)``."""
    pick = ops.cast(chosen, "int32")[:, None, None, None]
    return ops.take_along_axis(update, pick, axis=1)
