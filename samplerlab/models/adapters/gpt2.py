"""GPT-2's cached forward pass with a copy-free key/value cache.

``GPT2CausalLM.call_with_cache`` keeps one key/value cache tensor
``(batch, layers, 2, length, heads, head_dim)``. Every decoding step it slices each layer's
part out, writes the new key and value, stacks the two back, and stacks all layers back
again; the attention einsums then transpose each layer's whole key and value cache to
``(batch, heads, length, head_dim)``. Profiled on GPT-2 124M at batch 8 (2-core CPU) those
copies were ~30% of a step: 24 cache transposes (~18 ms) and the final stack (~4 ms) against
~75 ms per token.

:class:`GPT2Adapter` keeps a tuple with one ``(key, value)`` pair per layer, each
``(batch, heads, length, head_dim)``: the layout the attention products read, written in
place inside the generate loop. It runs the model's own sub-layers (embeddings, layer
norms, the attention projections, the feed-forward denses), the same causal mask and the
same attention arithmetic as ``keras.ops.dot_product_attention``
(:mod:`~samplerlab.models.adapters.attention`), so ``generate`` gives the same tokens; it
changes only where the cache lives. Samplers see the cache as KerasHub's own do: an opaque
structure whose leaves have the batch first (``tree.map_structure`` over it, as beam
search does, works unchanged).

It also scores contrastive search's ``k`` candidates against one shared cache
(:meth:`GPT2Adapter.candidate_forward`) instead of copying the cache ``k`` times, and
runs beam search over a cache its beams share (:meth:`GPT2Adapter.beam_step`): the
prompt's keys and values are kept once per row, each beam writes its own in a slot of
its own, and reordering beams reorders a table of slot indices, not the cache.
"""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar

from keras import ops

from samplerlab.models import internals
from samplerlab.models.adapters.attention import (
    causal_mask,
    masked_softmax,
    over_used_prefix,
    pick_candidate,
    scores,
    write_at,
)
from samplerlab.models.adapters.base import DecodingAdapter


class GPT2Adapter(DecodingAdapter):
    """Copy-free cached decoding for KerasHub's ``GPT2CausalLM`` (pre-norm decoder blocks).

    Example:

    ```python
    from samplerlab.models.adapters.gpt2 import GPT2Adapter

    inputs = causal_lm.preprocessor.generate_preprocess(["Keras is"], sequence_length=16)
    adapter = GPT2Adapter(causal_lm)  # causal_lm: a GPT2CausalLM
    hidden, cache = adapter.start(inputs["token_ids"], inputs["padding_mask"])
    assert len(cache) == causal_lm.backbone.num_layers
    ```
    """

    name: ClassVar[str] = "gpt2"
    fast: ClassVar[bool] = True
    shared_cache: ClassVar[bool] = True
    prefills: ClassVar[bool] = True

    @classmethod
    def supports(cls, causal_lm: Any) -> bool:
        import keras_hub

        if type(causal_lm) is not keras_hub.models.GPT2CausalLM:
            return False
        for layer in causal_lm.backbone.transformer_layers:
            block = internals.decoder_block(layer)
            if not (isinstance(layer, keras_hub.layers.TransformerDecoder)
                    and layer.normalize_first and block.cross_attention is None
                    and not internals.uses_flash_attention(block.attention)):
                return False
        return True

    def __init__(self, causal_lm: Any) -> None:
        super().__init__(causal_lm)
        self.backbone = causal_lm.backbone
        self.blocks = [internals.decoder_block(layer)
                       for layer in self.backbone.transformer_layers]
        self.projections = [internals.attention_projections(block.attention)
                            for block in self.blocks]

    def start(self, token_ids: Any, padding_mask: Any,
              prefill: int | None = None) -> tuple[Any, tuple]:
        """An empty per-layer cache seeded with one forward pass over ``token_ids``.

        With ``prefill``, the pass covers the first ``prefill`` positions only (it must
        be at least the shortest prompt's length: the generate loop recomputes every
        position from there on), and the hidden states after them are zeros: a prompt of
        6 tokens with ``max_length`` 1024 no longer costs a 1024-position forward pass.
        """
        batch_size, max_length = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
        backbone = self.backbone
        shape = (batch_size, backbone.num_heads, max_length,
                 backbone.hidden_dim // backbone.num_heads)
        dtype = self.causal_lm.compute_dtype
        cache = tuple((ops.zeros(shape, dtype=dtype), ops.zeros(shape, dtype=dtype))
                      for _ in range(backbone.num_layers))
        if prefill is None or prefill >= max_length:
            _, hidden_states, cache = self.call_with_cache(token_ids, cache, 0)
            return hidden_states, cache
        _, hidden_states, cache = self.call_with_cache(token_ids[:, :prefill], cache, 0)
        hidden_states = ops.pad(hidden_states, [[0, 0], [0, max_length - prefill], [0, 0]])
        return hidden_states, cache

    def call_with_cache(self, token_ids: Any, cache: tuple,
                        index: Any) -> tuple[Any, Any, tuple]:
        """``GPT2CausalLM.call_with_cache`` over the per-layer cache."""
        x = self._embed(token_ids, index)
        mask = causal_mask(ops.shape(x)[1], ops.shape(cache[0][0])[2], index)
        updated = []
        for block, projections, layer_cache in zip(self.blocks, self.projections, cache,
                                                   strict=True):
            x, layer_cache = _decoder_block(block, x, partial(
                _self_attention, projections, cache=layer_cache, index=index, mask=mask))
            updated.append(layer_cache)
        hidden_states = self.backbone.layer_norm(x)
        return self._head(hidden_states), hidden_states, tuple(updated)

    def candidate_forward(self, tokens: Any, cache: tuple, index: Any) -> tuple[Any, tuple]:
        """Hidden states of ``k`` candidate next tokens per row, sharing the cached prefix.

        KerasHub's contrastive search copies the whole cache ``k`` times and runs the model
        on ``batch * k`` rows; here the ``k`` candidates of a row are ``k`` queries at the
        same position that attend to the row's one cached prefix (positions ``< index``)
        and to their own key and value: the same attention without copying the cache.
        The language-model head is not applied (only the chosen candidate needs logits).

        Returns:
            ``(hidden, updates)``: hidden states ``(batch, k, dim)`` after the final layer
            norm, and per layer the candidates' ``(key, value)``, each
            ``(batch, k, heads, head_dim)``.
        """
        x = self._embed(tokens, index, one_position=True)
        updates = []
        for block, projections, layer_cache in zip(self.blocks, self.projections, cache,
                                                   strict=True):
            x, update = _decoder_block(block, x, partial(
                _candidate_attention, projections, cache=layer_cache, index=index))
            updates.append(update)
        return self.backbone.layer_norm(x), tuple(updates)

    def advance(self, prompt: Any, cache: tuple, updates: tuple, hidden: Any, chosen: Any,
                index: Any) -> tuple[Any, tuple]:
        written = []
        for (key_cache, value_cache), (key, value) in zip(cache, updates, strict=True):
            written.append((write_at(key_cache, pick_candidate(key, chosen), index),
                            write_at(value_cache, pick_candidate(value, chosen), index)))
        # Only the chosen candidate goes through the vocabulary-wide head.
        return ops.squeeze(self._head(hidden[:, None, :]), axis=1), tuple(written)

    # -- beam search over a shared cache -------------------------------------------------
    def beam_cache(self, cache: tuple, num_beams: int) -> tuple[tuple, Any]:
        """The beams' cache: per layer ``(key, value)``, each ``(batch * heads,
        num_beams * length, head_dim)``, and the slot table ``(batch, num_beams, length)``.

        The key axis holds one slot of ``length`` positions per beam. The prompt's keys
        and values (:meth:`start`'s cache, one row per prompt) go into slot 0 once; every
        beam reads them there (its slot table says 0 for the prompt's positions), so the
        prompt is neither repeated nor copied again. From the loop's first position on,
        beam ``j`` writes its keys and values into slot ``j``; ``slots[b, j, t]`` is the slot
        holding position ``t`` of beam ``j``'s history.
        """
        batch_size, _, length, _ = ops.shape(cache[0][0])
        layers = tuple((_with_empty_slots(key, num_beams), _with_empty_slots(value, num_beams))
                       for key, value in cache)
        return layers, ops.zeros((batch_size, num_beams, length), dtype="int32")

    def beam_step(self, prompt: Any, cache: tuple, index: Any) -> tuple[Any, tuple]:
        """Every beam's token at ``index - 1`` through the model, each beam attending to
        its own history through the slot table (one query per beam against the row's
        slots, the other beams' positions masked): logits ``(batch * num_beams, vocab)``.
        """
        layers, slots = cache
        batch_size, num_beams, length = ops.shape(slots)
        position = ops.cast(index, "int32") - 1
        own = ops.broadcast_to(ops.arange(num_beams, dtype="int32")[None, :, None],
                               (batch_size, num_beams, 1))
        slots = ops.slice_update(slots, [0, 0, position], own)
        # visible[b, j, i * length + t]: beam j's position t is in slot i, and t <= position.
        visible = ops.logical_and(
            ops.expand_dims(slots, 2) == ops.arange(num_beams, dtype="int32")[None, None, :, None],
            (ops.arange(length, dtype="int32") <= position)[None, None, None, :])
        visible = ops.reshape(visible, (batch_size, 1, num_beams, num_beams * length))
        tokens = ops.reshape(ops.slice(prompt, [0, position], [ops.shape(prompt)[0], 1]),
                             (batch_size, num_beams))
        x = self._embed(tokens, position, one_position=True)      # (batch, beams, dim)
        updated = []
        for block, projections, layer_cache in zip(self.blocks, self.projections, layers,
                                                   strict=True):
            x, layer_cache = _decoder_block(block, x, partial(
                _beam_attention, projections, cache=layer_cache, position=position,
                visible=visible))
            updated.append(layer_cache)
        logits = self._head(self.backbone.layer_norm(x))
        return ops.reshape(logits, (batch_size * num_beams, -1)), (tuple(updated), slots)

    def beam_reorder(self, cache: tuple, beam_indices: Any) -> tuple:
        """Beam ``j`` continues beam ``beam_indices[b, j]``: its history's slot table is
        taken over; the keys and values stay where they are."""
        layers, slots = cache
        return layers, ops.take_along_axis(slots, ops.cast(beam_indices, "int32")[:, :, None],
                                           axis=1)

    def _head(self, hidden_states: Any) -> Any:
        return self.backbone.token_embedding(hidden_states, reverse=True)

    def _embed(self, token_ids: Any, index: Any, one_position: bool = False) -> Any:
        """Token plus position embeddings from ``index`` on (all at ``index``: candidates)."""
        backbone = self.backbone
        tokens = backbone.token_embedding(token_ids)
        positions = backbone.position_embedding(tokens[:, :1] if one_position else tokens,
                                                start_index=index)
        x = backbone.embeddings_add((tokens, ops.broadcast_to(positions, ops.shape(tokens))))
        return backbone.embeddings_dropout(x)


def _decoder_block(block: internals.DecoderBlock, x: Any, attend: Any) -> tuple:
    """One pre-norm ``TransformerDecoder`` block, as its ``call`` computes it, with
    ``attend(normed_x) -> (output, state)`` as its self-attention."""
    residual = x
    h, state = attend(block.attention_norm(x))
    x = block.attention_dropout(h) + residual
    residual = x
    h = block.feedforward_output(block.feedforward_intermediate(block.feedforward_norm(x)))
    return block.feedforward_dropout(h) + residual, state


def _self_attention(projections: internals.AttentionProjections, x: Any, cache: tuple,
                    index: Any, mask: Any) -> tuple:
    """Cached multi-head self-attention with the cache in ``(batch, heads, length, dim)``,
    over the bucket of the cache that the queries can see (:func:`over_used_prefix`)."""
    query = projections.query(x)                               # (batch, queries, heads, dim)
    key_cache = write_at(cache[0], projections.key(x), index)
    value_cache = write_at(cache[1], projections.value(x), index)

    def attend(keys: int) -> Any:
        logits = scores(query, key_cache[:, :, :keys])
        logits = logits * ops.cast(projections.inverse_sqrt_key_dim, logits.dtype)
        weights = masked_softmax(logits, mask[:, None, :, :keys], value_cache.dtype)
        return ops.einsum("bnqk,bnkd->bqnd", weights, value_cache[:, :, :keys])

    last = index + ops.shape(x)[1] - 1 if isinstance(index, int) else (
        ops.cast(index, "int32") + ops.shape(x)[1] - 1)
    output = over_used_prefix(attend, last, ops.shape(key_cache)[2])
    return projections.output(output), (key_cache, value_cache)


def _candidate_attention(projections: internals.AttentionProjections, x: Any, cache: tuple,
                         index: Any) -> tuple:
    query = projections.query(x)                                   # (batch, k, heads, dim)
    key, value = projections.key(x), projections.value(x)
    index = ops.cast(index, "int32")

    def attend(length: int) -> Any:
        key_cache, value_cache = cache[0][:, :, :length], cache[1][:, :, :length]
        keys = ops.arange(length, dtype="int32")
        own = (keys == index)[None, None, None, :]
        # The candidate's own key sits where KerasHub would have written it: column
        # `index`.
        logits = ops.where(own, scores(query, key, "bqnd,bqnd->bnq")[..., None],
                           scores(query, key_cache))
        logits = logits * ops.cast(projections.inverse_sqrt_key_dim, logits.dtype)
        weights = masked_softmax(logits, (keys <= index)[None, None, None, :],
                                 value_cache.dtype)
        own_weight = ops.sum(ops.where(own, weights, 0.0), axis=-1)   # (batch, heads, k)
        prefix_weights = ops.where(own, 0.0, weights)
        # One product per candidate: XLA:CPU runs the (batch, heads)-batched product with
        # k > 1 queries ~5x slower than k products with one query each (GPT-2 124M,
        # batch 8).
        output = ops.concatenate(
            [ops.einsum("bnqk,bnkd->bqnd", prefix_weights[:, :, i:i + 1], value_cache)
             for i in range(ops.shape(query)[1])], axis=1)
        return output + ops.transpose(own_weight, (0, 2, 1))[..., None] * value

    output = over_used_prefix(attend, index, ops.shape(cache[0])[2])
    return projections.output(output), (key, value)


def _with_empty_slots(cache: Any, num_beams: int) -> Any:
    """``(batch, heads, length, dim)`` → ``(batch * heads, num_beams * length, dim)``, the
    given cache in slot 0 and zeros in the others."""
    batch_size, heads, length, dim = ops.shape(cache)
    cache = ops.reshape(cache, (batch_size * heads, length, dim))
    empty = ops.zeros((batch_size * heads, (num_beams - 1) * length, dim), dtype=cache.dtype)
    return ops.concatenate([cache, empty], axis=1)


def _write_slots(cache: Any, update: Any, position: Any) -> Any:
    """``update`` ``(batch, num_beams, heads, dim)``: beam ``j``'s written at ``position``
    of slot ``j`` of ``cache`` ``(batch * heads, num_beams * length, dim)``."""
    batch_size, num_beams, heads, dim = ops.shape(update)
    length = ops.shape(cache)[1] // num_beams
    update = ops.reshape(ops.transpose(update, (0, 2, 1, 3)), (batch_size * heads, num_beams, dim))
    # One in-place update per beam: a single update through a (..., beams, length, dim)
    # view made XLA copy the whole cache every step.
    for j in range(num_beams):
        cache = ops.slice_update(cache, [0, j * length + position, 0], update[:, j:j + 1])
    return cache


def _beam_attention(projections: internals.AttentionProjections, x: Any, cache: tuple,
                    position: Any, visible: Any) -> tuple:
    """Self-attention of one query per beam ``(batch, beams, heads, dim)`` over the row's
    slots, each beam seeing only its own history (``visible``).

    Batch and heads share one axis of the cache, ``(batch * heads, keys, dim)``: with a
    batch of one, a separate batch axis made XLA copy the cache every step (the last
    write, fused into both its consumers).
    """
    query = projections.query(x)                                   # (batch, beams, heads, dim)
    batch_size, num_beams, heads, dim = ops.shape(query)
    key_cache = _write_slots(cache[0], projections.key(x), position)
    value_cache = _write_slots(cache[1], projections.value(x), position)
    query = ops.reshape(ops.transpose(query, (0, 2, 1, 3)), (batch_size * heads, num_beams, dim))
    # Keys-major products: XLA:CPU runs a batched product of a few queries against many
    # keys ~5x faster with the keys as the product's rows (GPT-2 124M).
    logits = ops.transpose(scores(key_cache, query, "xkd,xqd->xkq"), (0, 2, 1))
    logits = logits * ops.cast(projections.inverse_sqrt_key_dim, logits.dtype)
    logits = ops.reshape(logits, (batch_size, heads, num_beams, -1))
    weights = masked_softmax(logits, visible, value_cache.dtype)    # (batch, heads, beams, keys)
    weights = ops.reshape(weights, (batch_size * heads, num_beams, -1))
    output = ops.einsum("xkd,xqk->xqd", value_cache, weights)
    output = ops.transpose(ops.reshape(output, (batch_size, heads, num_beams, dim)), (0, 2, 1, 3))
    return projections.output(output), (key_cache, value_cache)
