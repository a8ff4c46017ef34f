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


#: The shortest key prefix the attention is cut to; then doubling up to the cache length.
SMALLEST_BUCKET = 64


def bucket_lengths(length: int, smallest: int | None = None) -> list[int]:
    """The key-prefix lengths attention over a ``length``-position cache is cut to:
    ``smallest`` (default :data:`SMALLEST_BUCKET`), twice that, ... and ``length``."""
    sizes = []
    size = smallest or SMALLEST_BUCKET
    while size < length:
        sizes.append(size)
        size *= 2
    return [*sizes, length]


def bucket_for(positions: int, length: int, smallest: int | None = None) -> int:
    """The shortest bucket of a ``length``-position cache that holds ``positions``."""
    return next(size for size in bucket_lengths(length, smallest) if size >= positions)


def over_used_prefix(attend: Any, last: Any, length: int) -> Any:
    """``attend(keys)``, an attention computed over the cache's first ``keys`` positions,
    with ``keys`` the shortest bucket that holds position ``last`` (the last query's).

    A decoding step's query sees the keys up to its own position only; the rest of the
    cache is masked. Reading only a bucket's prefix makes a step's cost follow its
    position, not the padded length (``max_length`` 1024 no longer makes early steps 8x
    the work of ``max_length`` 128). Masked keys have zero weight either way (``exp`` of
    ``-0.7 * finfo.max`` underflows to 0), so the weights and outputs are those over the
    whole cache. ``last`` is a Python int (the seed pass: its bucket is picked while
    tracing) or traced (one branch per bucket, chosen at run time).
    """
    if isinstance(last, int):
        return attend(bucket_for(last + 1, length))
    sizes = bucket_lengths(length)
    if len(sizes) == 1:
        return attend(length)
    bounds = ops.convert_to_tensor(sizes[:-1], dtype="int32")
    branch = ops.sum(ops.cast(ops.cast(last, "int32") >= bounds, "int32"))
    return ops.switch(branch, [lambda size=size: attend(size) for size in sizes])
