"""Llama-style decoders' cached forward pass with a copy-free, grouped key/value cache.

Llama 2 and 3 (``LlamaCausalLM``, ``Llama3CausalLM``), Mistral, Qwen 2/2.5
(``QwenCausalLM``), Qwen 3 and Gemma 1/2 (``GemmaCausalLM``) all decode the same way in
KerasHub: rotary position embeddings on queries and keys, grouped-query attention
(``num_key_value_heads`` key/value heads shared by ``num_query_heads`` query heads), one
cache tensor ``(batch, layers, 2, length, kv_heads, head_dim)``. Every step
``call_with_cache`` slices each layer's part out of it, writes the new key and value,
stacks the pair and then all layers back, and the attention repeats each layer's whole
key and value cache ``num_query_heads // num_key_value_heads`` times (``ops.repeat``)
before ``ops.dot_product_attention`` reads it in a layout that XLA transposes.

:class:`LlamaAdapter` and :class:`GemmaAdapter` keep one ``(key, value)`` pair per layer,
each ``(batch, kv_heads, length, head_dim)``: the layout the attention products read,
written in place inside the generate loop, and never repeated: the query heads of a
group are reshaped to ``(kv_heads, group, head_dim)`` and attend to their group's one
key/value head. They run the model's own sub-layers (token embedding, rotary embedding,
query/key/value/output projections, Qwen 3's per-head norms, RMS norms, feed-forward
denses, the reversible head with Gemma's final soft cap) and KerasHub's attention
arithmetic on this platform: for the Llama family, ``keras.ops.dot_product_attention``'s
XLA implementation (logits in float32, scaled after the product, masked with
``-0.7 * finfo.max``, softmax in float32); for Gemma, ``CachedGemmaAttention``'s own
(query scaled first, logits in the compute dtype, optional ``tanh`` soft cap, its float32
``Softmax`` layer). So ``generate`` gives KerasHub's tokens; only where the cache lives
changes. Both also score contrastive search's ``k`` candidates against one shared cache
(:meth:`RotaryDecoderAdapter.candidate_forward`).

What each family adds: Mistral's sliding window (a band in the causal mask, as its
decoder builds it); Qwen's attention biases (inside its projections); Qwen 3's query/key
norms; Llama 3.1's rope scaling (inside its ``LlamaRotaryEmbedding``); Gemma's embedding
scaling by ``sqrt(hidden_dim)``, ``(1 + scale)`` RMS norms, GeLU gate, and Gemma 2's
post-norms, attention logit soft cap and sliding window on every other layer.
"""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar, NamedTuple

import keras
import numpy as np
from keras import ops

from samplerlab.models import internals
from samplerlab.models.adapters.attention import (
    causal_mask,
    masked_softmax,
    pick_candidate,
    scores,
    write_at,
)
from samplerlab.models.adapters.base import DecodingAdapter


class XlaAttention(NamedTuple):
    """``keras.ops.dot_product_attention`` on JAX, as ``jax.nn.dot_product_attention``'s
    XLA implementation computes it: float32 logits scaled after the product."""

    scale: float

    def logits(self, query: Any, keys: Any, equation: str) -> Any:
        logits = scores(query, keys, equation)
        return logits * ops.cast(self.scale, logits.dtype)

    def weights(self, logits: Any, visible: Any, dtype: Any) -> Any:
        return masked_softmax(logits, visible, dtype)


class GemmaAttention(NamedTuple):
    """``CachedGemmaAttention``'s own arithmetic (what it runs where it does not call
    ``ops.dot_product_attention``: on CPU, and on GPU with a soft cap): the query scaled in
    the compute dtype, logits in the compute dtype, Gemma 2's ``tanh`` soft cap, then its
    float32 ``Softmax`` layer (masked with ``-1e9``)."""

    normalization: float
    soft_cap: float | None
    softmax: Any

    def logits(self, query: Any, keys: Any, equation: str) -> Any:
        query = query * ops.cast(self.normalization, query.dtype)
        logits = ops.einsum(equation, query, keys)
        if self.soft_cap is not None:
            logits = ops.multiply(ops.tanh(ops.divide(logits, self.soft_cap)), self.soft_cap)
        return logits

    def weights(self, logits: Any, visible: Any, dtype: Any) -> Any:
        return ops.cast(self.softmax(logits, mask=visible), logits.dtype)


class Layer(NamedTuple):
    """What the adapter runs for one decoder layer."""

    decoder: Any               # the decoder layer itself
    block: Any                 # its sub-layers (GatedDecoderBlock; Gemma: the decoder)
    query: Any                 # x -> (batch, n, query_heads, head_dim), before rope
    key: Any                   # x -> (batch, n, kv_heads, head_dim), before rope
    value: Any
    output: Any
    rope: Any                  # (x, start_index) -> x, the model's own rotary embedding
    arithmetic: Any            # XlaAttention or GemmaAttention
    kv_heads: int
    head_dim: int
    window: int | None         # sliding window, None: full causal attention


class RotaryDecoderAdapter(DecodingAdapter):
    """The shared machinery: per-layer cache, the cached forward pass, shared-cache
    candidates. Subclasses say which models they run (:meth:`supports`), what each layer
    is (:meth:`layer`), how tokens are embedded and how a block wraps its attention."""

    fast: ClassVar[bool] = True
    shared_cache: ClassVar[bool] = True
    #: ``keras_hub.models`` class names this adapter runs (exact classes: a subclass may
    #: change ``call_with_cache``).
    causal_lm_classes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, causal_lm: Any) -> None:
        super().__init__(causal_lm)
        self.backbone = causal_lm.backbone
        self.layers = [self.layer(layer) for layer in self.backbone.transformer_layers]

    @classmethod
    def is_causal_lm_class(cls, causal_lm: Any) -> bool:
        import keras_hub

        return any(type(causal_lm) is getattr(keras_hub.models, name, None)
                   for name in cls.causal_lm_classes)

    def layer(self, decoder: Any) -> Layer:
        raise NotImplementedError

    # -- the cached forward pass ----------------------------------------------------
    def start(self, token_ids: Any, padding_mask: Any) -> tuple[Any, tuple]:
        """An empty per-layer cache seeded with one forward pass over ``token_ids``."""
        batch_size, max_length = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
        dtype = self.causal_lm.compute_dtype
        cache = []
        for layer in self.layers:
            shape = (batch_size, layer.kv_heads, max_length, layer.head_dim)
            cache.append((ops.zeros(shape, dtype=dtype), ops.zeros(shape, dtype=dtype)))
        _, hidden_states, cache = self.call_with_cache(token_ids, tuple(cache), 0)
        return hidden_states, cache

    def call_with_cache(self, token_ids: Any, cache: tuple,
                        index: Any) -> tuple[Any, Any, tuple]:
        """The family's ``call_with_cache`` over the per-layer cache."""
        x = self.embed(token_ids)
        queries, keys = ops.shape(x)[1], ops.shape(cache[0][0])[2]
        masks: dict[int | None, Any] = {}
        updated = []
        for layer, layer_cache in zip(self.layers, cache, strict=True):
            if layer.window not in masks:
                masks[layer.window] = causal_mask(queries, keys, index, layer.window)
            x, layer_cache = self.block(layer, x, partial(
                _self_attention, layer, cache=layer_cache, index=index,
                visible=masks[layer.window]))
            updated.append(layer_cache)
        hidden_states = self.backbone.layer_norm(x)
        return self.head(hidden_states), hidden_states, tuple(updated)

    def candidate_forward(self, tokens: Any, cache: tuple, index: Any) -> tuple[Any, tuple]:
        """Hidden states of ``k`` candidate next tokens per row, sharing the cached prefix.

        KerasHub's contrastive search copies the whole cache ``k`` times and runs the model
        on ``batch * k`` rows; here the ``k`` candidates of a row are ``k`` queries at
        position ``index`` that attend to the row's one cached prefix and to their own key
        and value. The language-model head is not applied.

        Returns:
            ``(hidden, updates)``: hidden states ``(batch, k, dim)`` after the final norm,
            and per layer the candidates' ``(key, value)``, each
            ``(batch, k, kv_heads, head_dim)``.
        """
        x = self.embed(tokens)
        updates = []
        for layer, layer_cache in zip(self.layers, cache, strict=True):
            x, update = self.block(layer, x, partial(
                _candidate_attention, layer, cache=layer_cache, index=index))
            updates.append(update)
        return self.backbone.layer_norm(x), tuple(updates)

    def advance(self, prompt: Any, cache: tuple, updates: tuple, hidden: Any, chosen: Any,
                index: Any) -> tuple[Any, tuple]:
        written = []
        for (key_cache, value_cache), (key, value) in zip(cache, updates, strict=True):
            written.append((write_at(key_cache, pick_candidate(key, chosen), index),
                            write_at(value_cache, pick_candidate(value, chosen), index)))
        # Only the chosen candidate goes through the vocabulary-wide head.
        return ops.squeeze(self.head(hidden[:, None, :]), axis=1), tuple(written)

    # -- family parts ---------------------------------------------------------------
    def embed(self, token_ids: Any) -> Any:
        return self.backbone.token_embedding(token_ids)

    def head(self, hidden_states: Any) -> Any:
        return self.backbone.token_embedding(hidden_states, reverse=True)

    def block(self, layer: Layer, x: Any, attend: Any) -> tuple[Any, Any]:
        """One decoder block with ``attend(normed_x) -> (output, state)`` as attention."""
        raise NotImplementedError


class LlamaAdapter(RotaryDecoderAdapter):
    """Copy-free cached decoding for the Llama decoder design: ``LlamaCausalLM``,
    ``Llama3CausalLM`` (rope scaling included), ``MistralCausalLM`` (sliding window),
    ``QwenCausalLM`` (= ``Qwen2CausalLM``; attention biases) and ``Qwen3CausalLM``
    (query/key norms, explicit ``head_dim``).

    :meth:`supports` refuses, and KerasHub's own path runs, where the attention would not
    be what this adapter computes: KerasHub's attention layers call
    ``ops.dot_product_attention`` when ``fused_attention_op_available()`` (always on JAX),
    and on JAX that runs the XLA implementation on CPU, and on a GPU in float32; on a TPU,
    or a GPU in half precision, it may pick a flash-attention kernel (other arithmetic).
    Qwen's and Qwen 3's sliding windows are not applied, as KerasHub's
    ``dot_product_attention`` path does not apply them (only their einsum path does),
    which matters only past the window (32,768 tokens by default).

    Example:

    ```python
    from samplerlab.models.adapters.llama import LlamaAdapter
    from samplerlab.models.builders import build_tiny_family

    llama = build_tiny_family("llama3")        # a Llama3CausalLM with random weights
    inputs = llama.preprocessor.generate_preprocess(["Keras is"], sequence_length=16)
    adapter = LlamaAdapter(llama)
    hidden, cache = adapter.start(inputs["token_ids"], inputs["padding_mask"])
    key, value = cache[0]                      # (batch, kv_heads, length, head_dim)
    assert key.shape[0] == 1 and key.shape[2] == 16
    ```
    """

    name: ClassVar[str] = "llama"
    causal_lm_classes: ClassVar[tuple[str, ...]] = (
        "LlamaCausalLM", "Llama3CausalLM", "MistralCausalLM", "QwenCausalLM",
        "Qwen3CausalLM")
    #: decoder class name -> attention class name, per family.
    layer_classes: ClassVar[dict[str, str]] = {
        "LlamaTransformerDecoder": "LlamaAttention",
        "MistralTransformerDecoder": "CachedMistralAttention",
        "QwenTransformerDecoder": "QwenAttention",
        "Qwen3TransformerDecoder": "Qwen3Attention",
    }

    @classmethod
    def supports(cls, causal_lm: Any) -> bool:
        if not cls.is_causal_lm_class(causal_lm):
            return False
        for decoder in causal_lm.backbone.transformer_layers:
            attention = cls.layer_classes.get(type(decoder).__name__)
            block = internals.gated_decoder_block(decoder) if attention else None
            if block is None or type(block.attention).__name__ != attention:
                return False
        return (internals.fused_attention_available()
                and _xla_attention(causal_lm.compute_dtype))

    def layer(self, decoder: Any) -> Layer:
        block = internals.gated_decoder_block(decoder)
        parts = internals.rotary_attention(
            block.attention, head_norms=type(block.attention).__name__ == "Qwen3Attention")
        kv_heads, head_dim = parts.key.partial_output_shape[-2:]
        return Layer(
            decoder=decoder, block=block, query=_then(parts.query, parts.query_norm),
            key=_then(parts.key, parts.key_norm), value=parts.value, output=parts.output,
            rope=partial(_rotate, block.attention.rotary_embedding_layer),
            arithmetic=XlaAttention(parts.scale), kv_heads=kv_heads, head_dim=head_dim,
            # Mistral's decoder bands its causal mask; the others have no window here.
            window=getattr(decoder, "sliding_window", None))

    def block(self, layer: Layer, x: Any, attend: Any) -> tuple[Any, Any]:
        """``LlamaTransformerDecoder.call`` (dropout is the identity when generating)."""
        block, decoder = layer.block, layer.decoder
        h, state = attend(block.attention_norm(x))
        x = h + x
        normed = block.feedforward_norm(x)
        # The gate's activation runs in float32, as KerasHub runs it (as torch's silu does).
        gate = decoder.activation(ops.cast(block.feedforward_gate(normed), "float32"))
        gate = ops.cast(gate, decoder.compute_dtype)
        h = block.feedforward_output(ops.multiply(block.feedforward_intermediate(normed), gate))
        return h + x, state


class GemmaAdapter(RotaryDecoderAdapter):
    """Copy-free cached decoding for ``GemmaCausalLM`` (Gemma 1, CodeGemma, Gemma 2).

    :meth:`supports` refuses (KerasHub's own path runs) where a layer would call
    ``ops.dot_product_attention`` (``CachedGemmaAttention._use_fused_attention_op``: on a
    GPU without a soft cap, on a TPU), whose arithmetic differs from the layer's own.

    Example:

    ```python
    from samplerlab.models.adapters.llama import GemmaAdapter
    from samplerlab.models.builders import build_tiny_family

    gemma = build_tiny_family("gemma")         # a GemmaCausalLM with random weights
    inputs = gemma.preprocessor.generate_preprocess(["Keras is"], sequence_length=16)
    adapter = GemmaAdapter(gemma)
    hidden, cache = adapter.start(inputs["token_ids"], inputs["padding_mask"])
    logits, hidden, cache = adapter.call_with_cache(inputs["token_ids"][:, :1], cache, 0)
    ```
    """

    name: ClassVar[str] = "gemma"
    causal_lm_classes: ClassVar[tuple[str, ...]] = ("GemmaCausalLM",)

    @classmethod
    def supports(cls, causal_lm: Any) -> bool:
        if not cls.is_causal_lm_class(causal_lm):
            return False
        for decoder in causal_lm.backbone.transformer_layers:
            if (type(decoder).__name__ != "GemmaDecoderBlock"
                    or type(decoder.attention).__name__ != "CachedGemmaAttention"
                    or internals.gemma_uses_fused_attention(decoder.attention)):
                return False
        return True

    def layer(self, decoder: Any) -> Layer:
        attention = decoder.attention
        # Gemma 2 scales queries by the model's width per head, not by head_dim.
        scaled_by = (attention.head_dim if attention.query_head_dim_normalize
                     else attention.hidden_dim // attention.num_query_heads)
        return Layer(
            decoder=decoder, block=decoder, query=attention.query_dense,
            key=attention.key_dense, value=attention.value_dense,
            output=attention.output_dense, rope=internals.gemma_rope(attention),
            arithmetic=GemmaAttention(1 / np.sqrt(scaled_by), attention.logit_soft_cap,
                                      attention.softmax),
            kv_heads=attention.num_key_value_heads, head_dim=attention.head_dim,
            window=(attention.sliding_window_size
                    if attention.use_sliding_window_attention else None))

    def embed(self, token_ids: Any) -> Any:
        x = self.backbone.token_embedding(token_ids)
        return x * ops.cast(ops.sqrt(self.backbone.hidden_dim), x.dtype)

    def block(self, layer: Layer, x: Any, attend: Any) -> tuple[Any, Any]:
        """``GemmaDecoderBlock.call`` (dropout is the identity when generating)."""
        block = layer.block
        attention, state = attend(block.pre_attention_norm(x))
        if block.use_post_attention_norm:
            attention = block.post_attention_norm(attention)
        attention_x = x + attention
        normed = block.pre_ffw_norm(attention_x)
        h = keras.activations.gelu(block.gating_ffw(normed), approximate=True) \
            * block.gating_ffw_2(normed)
        h = block.ffw_linear(h)
        if block.use_post_ffw_norm:
            h = block.post_ffw_norm(h)
        return h + attention_x, state


# ---------------------------------------------------------------------- attention
# Layout: per key/value head, the ``group`` query heads it serves and the ``n`` positions
# form the rows of one matrix, ``(batch, kv_heads, group * n, head_dim)``, so both
# attention products are plain batched matrix products over the cache's own layout.
# (Written as 5-d einsums with the output transposed, XLA:CPU ran the value product as a
# generic dot, about twice the cost of the other.)
def _self_attention(layer: Layer, x: Any, cache: tuple, index: Any, visible: Any) -> tuple:
    """Cached grouped-query self-attention, the cache in ``(batch, kv_heads, length, dim)``
    and each group's query heads attending to their one key/value head."""
    query = layer.rope(layer.query(x), index)                  # (batch, n, heads, dim)
    key_cache = write_at(cache[0], layer.rope(layer.key(x), index), index)
    value_cache = write_at(cache[1], layer.value(x), index)
    rows = _rows(layer, query)                                 # (batch, kv, group * n, dim)
    group = ops.shape(rows)[2] // ops.shape(query)[1]
    logits = layer.arithmetic.logits(rows, key_cache, "bkmh,bksh->bkms")
    weights = layer.arithmetic.weights(logits, ops.tile(visible, (1, group, 1))[:, None],
                                       value_cache.dtype)
    output = ops.einsum("bkms,bksh->bkmh", weights, value_cache)
    return _project(layer.output, _unrows(output, ops.shape(query)[1])), \
        (key_cache, value_cache)


def _candidate_attention(layer: Layer, x: Any, cache: tuple, index: Any) -> tuple:
    """``k`` candidates per row at position ``index``: each attends to the row's cached
    prefix and to its own key and value, which sit where KerasHub would have written
    them (column ``index``)."""
    query = _at(layer.rope, layer.query(x), index)             # (batch, k, heads, dim)
    key, value = _at(layer.rope, layer.key(x), index), layer.value(x)  # (b, k, kv, dim)
    key_cache, value_cache = cache
    k = ops.shape(query)[1]
    rows = _rows(layer, query)                                 # (batch, kv, group * k, dim)
    group = ops.shape(rows)[2] // k
    # Row m is candidate m % k: its own key and value, repeated over the group (small).
    own_key = ops.tile(ops.transpose(key, (0, 2, 1, 3)), (1, 1, group, 1))
    own_value = ops.tile(ops.transpose(value, (0, 2, 1, 3)), (1, 1, group, 1))
    index = ops.cast(index, "int32")
    columns = ops.arange(ops.shape(key_cache)[2], dtype="int32")
    own = (columns == index)[None, None, None, :]
    arithmetic = layer.arithmetic
    logits = ops.where(own, arithmetic.logits(rows, own_key, "bkmh,bkmh->bkm")[..., None],
                       arithmetic.logits(rows, key_cache, "bkmh,bksh->bkms"))
    visible = causal_mask(1, ops.shape(key_cache)[2], index, layer.window)
    weights = arithmetic.weights(logits, visible[:, None], value_cache.dtype)
    own_weight = ops.sum(ops.where(own, weights, ops.zeros_like(weights)), axis=-1)
    prefix_weights = ops.where(own, ops.zeros_like(weights), weights)
    output = (ops.einsum("bkms,bksh->bkmh", prefix_weights, value_cache)
              + own_weight[..., None] * own_value)
    return _project(layer.output, _unrows(output, k)), (key, value)


def _rows(layer: Layer, query: Any) -> Any:
    """``(batch, n, heads, dim)`` -> ``(batch, kv_heads, group * n, dim)``, row
    ``g * n + i`` = position ``i`` of query head ``kv * group + g``: query head ``u``
    reads key/value head ``u // group``, as KerasHub's ``ops.repeat`` pairs them."""
    batch, n, heads, dim = ops.shape(query)
    group = heads // layer.kv_heads
    grouped = ops.reshape(query, (batch, n, layer.kv_heads, group, dim))
    return ops.reshape(ops.transpose(grouped, (0, 2, 3, 1, 4)),
                       (batch, layer.kv_heads, group * n, dim))


def _unrows(output: Any, n: int) -> Any:
    """The inverse of :func:`_rows`: ``(batch, n, heads, dim)``."""
    batch, kv_heads, rows, dim = ops.shape(output)
    group = rows // n
    if n == 1:  # decoding: the same memory order, no transpose
        return ops.reshape(output, (batch, 1, kv_heads * group, dim))
    output = ops.transpose(ops.reshape(output, (batch, kv_heads, group, n, dim)),
                           (0, 3, 1, 2, 4))
    return ops.reshape(output, (batch, n, kv_heads * group, dim))


# The attention output projections' equations (Llama family, Gemma): a product over
# (heads, head_dim), the kernel's two leading axes.
_OUTPUT_EQUATIONS = ("bquh,uhm->bqm", "btnh,nhd->btd")


def _project(dense: Any, x: Any) -> Any:
    """The attention output projection ``dense(x)``, computed with the contracted axes
    named in the kernel's order.

    ``jnp.einsum`` contracts its summed axes in alphabetical order of their letters: for
    KerasHub's ``"bquh,uhm->bqm"`` that is ``(h, u)``, the reverse of the kernel's
    ``(heads, head_dim, hidden)`` layout, so XLA transposes the whole kernel (2.4 MB per
    layer on the 125M Llama) at every decoding step. The same product with the letters
    in kernel order reads it in place. A quantized or LoRA-adapted layer runs its own
    ``call``.
    """
    if (dense.equation not in _OUTPUT_EQUATIONS or dense.quantization_mode is not None
            or dense.lora_enabled):
        return dense(x)
    out = ops.einsum("bqac,acm->bqm", x, ops.cast(dense.kernel, dense.compute_dtype))
    if dense.bias is not None:
        out = ops.add(out, ops.cast(dense.bias, dense.compute_dtype))
    return out if dense.activation is None else dense.activation(out)


def _at(rope: Any, x: Any, index: Any) -> Any:
    """Rotary embedding of ``(batch, k, heads, dim)`` with every ``k`` at ``index``."""
    shape = ops.shape(x)
    flat = ops.reshape(x, (shape[0] * shape[1], 1, *shape[2:]))
    return ops.reshape(rope(flat, index), shape)


def _rotate(rotary_embedding: Any, x: Any, index: Any) -> Any:
    return rotary_embedding(x, start_index=index)


def _then(projection: Any, norm: Any) -> Any:
    """The projection, followed by a per-head norm where the family has one (Qwen 3)."""
    return projection if norm is None else (lambda x: norm(projection(x)))


def _xla_attention(compute_dtype: str) -> bool:
    """Whether ``ops.dot_product_attention`` runs the XLA implementation here: on CPU, and
    on a GPU in float32 (cuDNN's flash attention needs half precision)."""
    import jax

    platform = jax.default_backend()
    return platform == "cpu" or (platform == "gpu" and compute_dtype == "float32")
