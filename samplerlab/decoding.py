"""A faster cached forward pass for KerasHub's GPT-2: same layers, same math, no cache copies.

``GPT2CausalLM.call_with_cache`` keeps one key/value cache tensor
``(batch, layers, 2, length, heads, head_dim)``. Every decoding step it slices each layer's
part out, writes the new key and value, stacks the two back, and stacks all layers back
again; the attention einsums then transpose each layer's whole key and value cache to
``(batch, heads, length, head_dim)``. Profiled on GPT-2 124M at batch 8 (2-core CPU) those
copies were ~30% of a step: 24 cache transposes (~18 ms) and the final stack (~4 ms) against
~75 ms per token.

:func:`install_fast_decoding` gives one loaded GPT-2 model a ``call_with_cache`` whose cache
is a tuple with one ``(key, value)`` pair per layer, each ``(batch, heads, length,
head_dim)``: the layout the attention products read, written in place inside the
generate loop. It runs the model's own sub-layers (embeddings, layer norms, the attention
projections, the feed-forward denses), the same causal mask and the same attention
arithmetic as ``keras.ops.dot_product_attention`` (scaled logits, masked with
``-0.7 * finfo.max``, softmax in float32), so ``generate`` gives the same tokens; it
changes only where the cache lives. Samplers see the cache as KerasHub's own do: an opaque
structure whose leaves have the batch first (``tree.map_structure`` over it, as beam and
contrastive search do, works unchanged).

Models other than KerasHub's ``GPT2CausalLM`` with pre-norm, self-attention-only
decoder layers are left alone.
"""

from __future__ import annotations

from functools import partial
from types import MethodType
from typing import Any

import numpy as np

FAST_ATTRIBUTE = "_samplerlab_fast_decoding"


def supports_fast_decoding(causal_lm: Any) -> bool:
    """True when ``causal_lm`` is a GPT-2 whose layers this module knows how to run."""
    import keras_hub

    if type(causal_lm) is not keras_hub.models.GPT2CausalLM:
        return False
    for layer in causal_lm.backbone.transformer_layers:
        if not (isinstance(layer, keras_hub.layers.TransformerDecoder)
                and layer.normalize_first
                and layer._cross_attention_layer is None
                and not getattr(layer._self_attention_layer, "_flash_attention", False)):
            return False
    return True


def install_fast_decoding(causal_lm: Any) -> bool:
    """Give ``causal_lm`` the copy-free cached forward pass; return whether it was installed.

    Idempotent. The model's compiled generate function is dropped so the next
    ``generate`` traces the new forward pass.

    Example:

    ```python
    causal_lm = keras_hub.models.GPT2CausalLM.from_preset("gpt2_base_en")
    install_fast_decoding(causal_lm)
    causal_lm.generate("My trip to Yosemite was", max_length=40)
    ```
    """
    if getattr(causal_lm, FAST_ATTRIBUTE, False):
        return True
    if not supports_fast_decoding(causal_lm):
        return False
    causal_lm.call_with_cache = MethodType(fast_call_with_cache, causal_lm)
    causal_lm._build_cache = MethodType(fast_build_cache, causal_lm)
    object.__setattr__(causal_lm, FAST_ATTRIBUTE, True)
    causal_lm.generate_function = None
    return True


def uninstall_fast_decoding(causal_lm: Any) -> None:
    """Put KerasHub's own ``call_with_cache`` back (for comparisons)."""
    for name in ("call_with_cache", "_build_cache"):
        causal_lm.__dict__.pop(name, None)
    if causal_lm.__dict__.pop(FAST_ATTRIBUTE, False):
        causal_lm.generate_function = None


def fast_build_cache(self: Any, token_ids: Any) -> tuple[Any, tuple]:
    """An empty per-layer cache seeded with one forward pass over ``token_ids``."""
    from keras import ops

    batch_size, max_length = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
    backbone = self.backbone
    shape = (batch_size, backbone.num_heads, max_length,
             backbone.hidden_dim // backbone.num_heads)
    cache = tuple((ops.zeros(shape, dtype=self.compute_dtype),
                   ops.zeros(shape, dtype=self.compute_dtype))
                  for _ in range(backbone.num_layers))
    _, hidden_states, cache = self.call_with_cache(token_ids, cache, 0)
    return hidden_states, cache


def fast_call_with_cache(self: Any, token_ids: Any, cache: tuple,
                         cache_update_index: Any) -> tuple[Any, Any, tuple]:
    """``GPT2CausalLM.call_with_cache`` over a per-layer ``(batch, heads, length, dim)`` cache.

    Returns ``(logits, hidden_states, cache)`` like KerasHub's method.
    """
    backbone = self.backbone
    x = _embed(backbone, token_ids, cache_update_index)
    mask = _causal_mask(x, cache[0][0], cache_update_index)
    updated = []
    for layer, layer_cache in zip(backbone.transformer_layers, cache, strict=True):
        x, layer_cache = _decoder_layer(layer, x, partial(
            _self_attention, cache=layer_cache, index=cache_update_index, mask=mask))
        updated.append(layer_cache)
    hidden_states = x = backbone.layer_norm(x)
    logits = backbone.token_embedding(x, reverse=True)
    return logits, hidden_states, tuple(updated)


def _embed(backbone: Any, token_ids: Any, index: Any, one_position: bool = False) -> Any:
    """Token plus position embeddings from ``index`` on (all at ``index``: candidates)."""
    from keras import ops

    tokens = backbone.token_embedding(token_ids)
    positions = backbone.position_embedding(tokens[:, :1] if one_position else tokens,
                                            start_index=index)
    x = backbone.embeddings_add((tokens, ops.broadcast_to(positions, ops.shape(tokens))))
    return backbone.embeddings_dropout(x)


def _causal_mask(x: Any, key_cache: Any, index: Any) -> Any:
    """``(1, queries, keys)``: query ``i`` (at position ``index + i``) sees keys up to it."""
    from keras import ops

    queries, keys = ops.shape(x)[1], ops.shape(key_cache)[2]
    rows = ops.arange(queries, dtype="int32")[:, None] + ops.cast(index, "int32")
    return (ops.arange(keys, dtype="int32")[None, :] <= rows)[None]


def _decoder_layer(layer: Any, x: Any, attend: Any) -> tuple:
    """One pre-norm ``TransformerDecoder`` block (GPT-2), as its ``call`` computes it, with
    ``attend(attention_layer, normed_x) -> (output, state)`` as its self-attention."""
    residual = x
    h = layer._self_attention_layer_norm(x)
    h, state = attend(layer._self_attention_layer, h)
    x = layer._self_attention_dropout(h) + residual
    residual = x
    h = layer._feedforward_layer_norm(x)
    h = layer._feedforward_output_dense(layer._feedforward_intermediate_dense(h))
    return layer._feedforward_dropout(h) + residual, state


def _self_attention(attention: Any, x: Any, cache: tuple, index: Any, mask: Any) -> tuple:
    """Cached multi-head self-attention with the cache in ``(batch, heads, length, dim)``."""
    from keras import ops

    query = attention._query_dense(x)                        # (batch, queries, heads, dim)
    key_cache, value_cache = cache
    start = [0, 0, index, 0]
    key_cache = ops.slice_update(
        key_cache, start, ops.transpose(attention._key_dense(x), (0, 2, 1, 3)))
    value_cache = ops.slice_update(
        value_cache, start, ops.transpose(attention._value_dense(x), (0, 2, 1, 3)))
    logits = _scores(attention, query, key_cache)
    logits = logits * ops.cast(attention._inverse_sqrt_key_dim, logits.dtype)
    weights = _masked_softmax(logits, mask[:, None], value_cache.dtype)
    output = ops.einsum("bnqk,bnkd->bqnd", weights, value_cache)
    return attention._output_dense(output), (key_cache, value_cache)


def _logits_dtype(query: Any) -> str:
    # Half-precision products accumulate in float32, as dot_product_attention asks for.
    return "float32" if query.dtype in ("float16", "bfloat16") else query.dtype


def _scores(attention: Any, query: Any, keys: Any, equation: str = "bqnd,bnkd->bnqk") -> Any:
    """Unscaled query-key products in the logits dtype."""
    from keras import ops

    dtype = _logits_dtype(query)
    return ops.einsum(equation, ops.cast(query, dtype), ops.cast(keys, dtype))


def _masked_softmax(logits: Any, visible: Any, dtype: Any) -> Any:
    """Scaled, masked attention weights the way ``keras.ops.dot_product_attention`` (JAX)
    computes them: masked with ``-0.7 * finfo.max``, softmax in float32."""
    from keras import ops

    large_negative = -0.7 * float(np.finfo(np.dtype(logits.dtype)).max)
    logits = ops.where(visible, logits, ops.cast(large_negative, logits.dtype))
    return ops.cast(ops.softmax(ops.cast(logits, "float32"), axis=-1), dtype)


def candidate_forward(causal_lm: Any, tokens: Any, cache: tuple, index: Any) -> tuple:
    """Hidden states of ``k`` candidate next tokens per row, sharing the cached prefix.

    Contrastive search needs the hidden state each of its ``k`` candidates would have at
    position ``index``. KerasHub copies the whole cache ``k`` times and runs the model on
    ``batch * k`` rows; here the ``k`` candidates of a row are ``k`` queries at the same
    position that attend to the row's one cached prefix (positions ``< index``) and to
    their own key and value, which is the same attention without copying the cache. The
    language-model head is not applied: only the chosen candidate needs logits
    (:func:`candidate_logits`).

    Args:
        causal_lm: a model with :func:`install_fast_decoding` applied.
        tokens: int tensor ``(batch, k)``, the candidates.
        cache: the per-layer cache, valid before ``index``.
        index: the position of the candidates.

    Returns:
        ``(hidden, updates)``: hidden states ``(batch, k, dim)`` after the final layer
        norm, and per layer the candidates' ``(key, value)``, each
        ``(batch, k, heads, head_dim)``, for :func:`write_candidates`.
    """
    backbone = causal_lm.backbone
    x = _embed(backbone, tokens, index, one_position=True)
    updates = []
    for layer, layer_cache in zip(backbone.transformer_layers, cache, strict=True):
        x, update = _decoder_layer(layer, x, partial(
            _candidate_attention, cache=layer_cache, index=index))
        updates.append(update)
    return backbone.layer_norm(x), tuple(updates)


def _candidate_attention(attention: Any, x: Any, cache: tuple, index: Any) -> tuple:
    from keras import ops

    query = attention._query_dense(x)                          # (batch, k, heads, dim)
    key, value = attention._key_dense(x), attention._value_dense(x)
    key_cache, value_cache = cache
    keys = ops.arange(ops.shape(key_cache)[2], dtype="int32")
    index = ops.cast(index, "int32")
    own = (keys == index)[None, None, None, :]
    # The candidate's own key sits where KerasHub would have written it: column `index`.
    logits = ops.where(own, _scores(attention, query, key, "bqnd,bqnd->bnq")[..., None],
                       _scores(attention, query, key_cache))
    logits = logits * ops.cast(attention._inverse_sqrt_key_dim, logits.dtype)
    weights = _masked_softmax(logits, (keys <= index)[None, None, None, :], value_cache.dtype)
    own_weight = ops.sum(ops.where(own, weights, 0.0), axis=-1)   # (batch, heads, k)
    prefix_weights = ops.where(own, 0.0, weights)
    # One product per candidate: XLA:CPU runs the (batch, heads)-batched product with
    # k > 1 queries ~5x slower than k products with one query each (GPT-2 124M, batch 8).
    output = ops.concatenate(
        [ops.einsum("bnqk,bnkd->bqnd", prefix_weights[:, :, i:i + 1], value_cache)
         for i in range(ops.shape(query)[1])], axis=1)
    output = output + ops.transpose(own_weight, (0, 2, 1))[..., None] * value
    return attention._output_dense(output), (key, value)


def write_candidates(cache: tuple, updates: tuple, chosen: Any, index: Any) -> tuple:
    """The cache with each row's chosen candidate's key and value written at ``index``.

    ``chosen`` is an int tensor ``(batch,)`` of positions among the ``k`` candidates.
    """
    from keras import ops

    pick = ops.cast(chosen, "int32")[:, None, None, None]
    start = [0, 0, index, 0]
    written = []
    for (key_cache, value_cache), (key, value) in zip(cache, updates, strict=True):
        key = ops.transpose(ops.take_along_axis(key, pick, axis=1), (0, 2, 1, 3))
        value = ops.transpose(ops.take_along_axis(value, pick, axis=1), (0, 2, 1, 3))
        written.append((ops.slice_update(key_cache, start, key),
                        ops.slice_update(value_cache, start, value)))
    return tuple(written)


def candidate_logits(causal_lm: Any, hidden: Any) -> Any:
    """Next-token logits ``(batch, vocab)`` from final hidden states ``(batch, dim)``."""
    from keras import ops

    return ops.squeeze(causal_lm.backbone.token_embedding(hidden[:, None, :], reverse=True),
                       axis=1)


def has_fast_decoding(causal_lm: Any) -> bool:
    """Whether :func:`install_fast_decoding` is in effect on ``causal_lm``."""
    return bool(getattr(causal_lm, FAST_ATTRIBUTE, False))
