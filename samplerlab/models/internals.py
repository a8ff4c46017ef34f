"""The one module that reads private KerasHub and Keras attributes.

samplerlab's fast decoding runs a model's *own* KerasHub sub-layers (its attention
projections, layer norms, feed-forward denses) in a different cache layout, so it must
reach a few attributes that KerasHub keeps private; a handful of other needs (the seed
state of a sampler, the layout of an already-built variable) have no public accessor
either. Every such name is read here and nowhere else, and every one is listed in
:data:`CONTRACT`, which ``tests/test_internals_contract.py`` checks against the
installed KerasHub and Keras: a release that renames one fails that test with the name,
instead of failing deep inside a traced generate loop.

Functions here are small accessors with the name of what they return; :func:`private`
raises :class:`InternalsError` naming the attribute when one is missing.
"""

from __future__ import annotations

from typing import Any, NamedTuple

# Class (as "module:qualname") -> the private attributes samplerlab reads on its
# instances. The contract test builds an instance of each and checks every name.
CONTRACT: dict[str, tuple[str, ...]] = {
    "keras_hub.src.samplers.sampler:Sampler": ("_seed_generators",),
    "keras_hub.src.models.causal_lm:CausalLM": ("_build_cache",),
    # Gemma 3's cache is seeded with padding-aware arguments (its generate_step's).
    "keras_hub.src.models.gemma3.gemma3_causal_lm:Gemma3CausalLM": ("_build_cache",),
    "keras_hub.src.layers.modeling.transformer_decoder:TransformerDecoder": (
        "_self_attention_layer", "_self_attention_layer_norm", "_self_attention_dropout",
        "_feedforward_layer_norm", "_feedforward_intermediate_dense",
        "_feedforward_output_dense", "_feedforward_dropout", "_cross_attention_layer"),
    "keras_hub.src.layers.modeling.cached_multi_head_attention:CachedMultiHeadAttention": (
        "_query_dense", "_key_dense", "_value_dense", "_output_dense",
        "_inverse_sqrt_key_dim"),
    "keras.src.backend.common.variables:Variable": ("_layout", "_direct_assign"),
    # Llama-style decoders (samplerlab/models/adapters/llama.py): one block design.
    **dict.fromkeys((
        "keras_hub.src.models.llama.llama_decoder:LlamaTransformerDecoder",
        "keras_hub.src.models.mistral.mistral_transformer_decoder:MistralTransformerDecoder",
        "keras_hub.src.models.qwen.qwen_decoder:QwenTransformerDecoder",
        "keras_hub.src.models.qwen3.qwen3_decoder:Qwen3TransformerDecoder"), (
        "_self_attention_layer", "_self_attention_layernorm", "_feedforward_layernorm",
        "_feedforward_gate_dense", "_feedforward_intermediate_dense",
        "_feedforward_output_dense")),
    **dict.fromkeys((
        "keras_hub.src.models.llama.llama_attention:LlamaAttention",
        "keras_hub.src.models.mistral.mistral_attention:CachedMistralAttention",
        "keras_hub.src.models.qwen.qwen_attention:QwenAttention"), (
        "_query_dense", "_key_dense", "_value_dense", "_output_dense", "_inv_norm_factor")),
    "keras_hub.src.models.qwen3.qwen3_attention:Qwen3Attention": (
        "_query_dense", "_key_dense", "_value_dense", "_output_dense", "_inv_norm_factor",
        "_query_dense_layer_norm", "_key_dense_layer_norm"),
    "keras_hub.src.models.gemma.gemma_attention:CachedGemmaAttention": (
        "_apply_rope", "_use_fused_attention_op"),
}

# Module-level functions samplerlab imports from KerasHub's private modules.
CONTRACT_FUNCTIONS: dict[str, tuple[str, ...]] = {
    "keras_hub.src.utils.tensor_utils": ("any_equal",),
    "keras_hub.src.utils.preset_utils": ("get_preset_loader",),
    "keras_hub.src.utils.keras_utils": ("fused_attention_op_available",),
    "keras_hub.src.tokenizers.byte_pair_tokenizer": ("bytes_to_unicode",),
}


class InternalsError(AttributeError):
    """A private KerasHub/Keras attribute samplerlab relies on is missing."""


def private(obj: Any, name: str) -> Any:
    """``obj.<name>``, or an :class:`InternalsError` that names it and the versions."""
    try:
        return getattr(obj, name)
    except AttributeError:
        raise InternalsError(
            f"{type(obj).__module__}.{type(obj).__qualname__} has no attribute '{name}', "
            f"which samplerlab reads ({_versions()}); this KerasHub/Keras release changed "
            "it: pin keras-hub as pyproject.toml does, or update "
            "samplerlab/models/internals.py") from None


def _versions() -> str:
    import keras
    import keras_hub

    return f"keras-hub {keras_hub.__version__}, keras {keras.__version__}"


# ------------------------------------------------------------------------ samplers
def seed_generators(sampler: Any) -> list[Any]:
    """The ``keras.random.SeedGenerator`` s whose state a KerasHub sampler threads."""
    return list(getattr(sampler, "_seed_generators", None) or [])


def any_equal(inputs: Any, values: Any, padding_mask: Any) -> Any:
    """KerasHub's ``any_equal``: True where ``inputs`` is one of ``values`` and not masked."""
    from keras_hub.src.utils import tensor_utils

    return private(tensor_utils, "any_equal")(inputs, values, padding_mask)


# ----------------------------------------------------------------------- tokenizers
def byte_decoder() -> dict[str, int]:
    """Byte-level BPE's vocabulary alphabet: character → the byte it stands for (the
    inverse of KerasHub's ``bytes_to_unicode``, GPT-2's table)."""
    from keras_hub.src.tokenizers import byte_pair_tokenizer

    byte_values, characters = private(byte_pair_tokenizer, "bytes_to_unicode")()
    return {c: b[0] for b, c in zip(byte_values, characters, strict=True)}


# -------------------------------------------------------------------------- models
def build_cache(causal_lm: Any, token_ids: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
    """KerasHub's ``CausalLM._build_cache``: ``(hidden_states, cache)`` seeded on the prompt
    (``args``/``kwargs``: the family's extra arguments, as its ``generate_step`` passes
    them)."""
    return private(causal_lm, "_build_cache")(token_ids, *args, **kwargs)


def preset_backbone_class(preset: str) -> type:
    """The backbone class a preset holds (KerasHub, transformers or timm format), read
    from its config.json without building the model: KerasHub's own preset loader
    (the class ``from_preset`` would build)."""
    from keras_hub.src.utils import preset_utils

    loader = private(preset_utils, "get_preset_loader")(preset)
    return loader.check_backbone_class()


class DecoderBlock(NamedTuple):
    """The sub-layers of one pre-norm ``keras_hub.layers.TransformerDecoder`` block."""

    attention: Any
    attention_norm: Any
    attention_dropout: Any
    feedforward_norm: Any
    feedforward_intermediate: Any
    feedforward_output: Any
    feedforward_dropout: Any
    cross_attention: Any


def decoder_block(layer: Any) -> DecoderBlock:
    """The sub-layers a ``TransformerDecoder`` runs, in the order its ``call`` runs them."""
    return DecoderBlock(*(private(layer, name) for name in (
        "_self_attention_layer", "_self_attention_layer_norm", "_self_attention_dropout",
        "_feedforward_layer_norm", "_feedforward_intermediate_dense",
        "_feedforward_output_dense", "_feedforward_dropout", "_cross_attention_layer")))


class AttentionProjections(NamedTuple):
    """The dense projections of a ``CachedMultiHeadAttention`` and its score scale."""

    query: Any
    key: Any
    value: Any
    output: Any
    inverse_sqrt_key_dim: float


def attention_projections(attention: Any) -> AttentionProjections:
    """Query/key/value/output denses of a KerasHub (Keras) multi-head attention layer."""
    return AttentionProjections(*(private(attention, name) for name in (
        "_query_dense", "_key_dense", "_value_dense", "_output_dense",
        "_inverse_sqrt_key_dim")))


def uses_flash_attention(attention: Any) -> bool:
    """Whether Keras would run this attention layer with a flash-attention kernel."""
    return bool(getattr(attention, "_flash_attention", False))


class GatedDecoderBlock(NamedTuple):
    """The sub-layers of one Llama-style decoder block (``LlamaTransformerDecoder`` and
    its copies in Mistral, Qwen and Qwen 3): pre-norm attention, then a gated
    feed-forward ``output(intermediate(x) * activation(gate(x)))``."""

    attention: Any
    attention_norm: Any
    feedforward_norm: Any
    feedforward_gate: Any
    feedforward_intermediate: Any
    feedforward_output: Any


def gated_decoder_block(layer: Any) -> GatedDecoderBlock:
    """The sub-layers a Llama-style decoder block runs, in the order its ``call`` runs them."""
    return GatedDecoderBlock(*(private(layer, name) for name in (
        "_self_attention_layer", "_self_attention_layernorm", "_feedforward_layernorm",
        "_feedforward_gate_dense", "_feedforward_intermediate_dense",
        "_feedforward_output_dense")))


class RotaryAttention(NamedTuple):
    """The projections of a Llama-style grouped-query attention layer, the scale its
    ``dot_product_attention`` call applies and (Qwen 3) its per-head query/key norms."""

    query: Any
    key: Any
    value: Any
    output: Any
    scale: float
    query_norm: Any = None
    key_norm: Any = None


def rotary_attention(attention: Any, head_norms: bool = False) -> RotaryAttention:
    """``LlamaAttention`` (and Mistral's, Qwen's, Qwen 3's with ``head_norms``) sub-layers."""
    names = ["_query_dense", "_key_dense", "_value_dense", "_output_dense", "_inv_norm_factor"]
    if head_norms:
        names += ["_query_dense_layer_norm", "_key_dense_layer_norm"]
    return RotaryAttention(*(private(attention, name) for name in names))


def gemma_rope(attention: Any) -> Any:
    """``CachedGemmaAttention._apply_rope(x, start_index)``: its rotary layer followed by
    Gemma's interleaving of the two halves."""
    return private(attention, "_apply_rope")


def gemma_uses_fused_attention(attention: Any) -> bool:
    """Whether ``CachedGemmaAttention`` would call ``ops.dot_product_attention`` (on a GPU
    or TPU) instead of its own einsum/softmax arithmetic."""
    return bool(private(attention, "_use_fused_attention_op")())


def fused_attention_available() -> bool:
    """KerasHub's ``fused_attention_op_available()``: whether its Llama-style attention
    layers call ``ops.dot_product_attention`` (always, on JAX) rather than their own
    einsum/softmax path (the only one that applies Qwen's sliding window)."""
    from keras_hub.src.utils import keras_utils

    return bool(private(keras_utils, "fused_attention_op_available")())


# ----------------------------------------------------------------- keras variables
def relayout_variable(variable: Any, layout: Any) -> None:
    """Give an already-built variable a new layout (``keras.distribution``) and re-place it.

    Keras lays variables out when they are created; a model built before a distribution
    existed keeps its weights on one device, which JAX refuses to mix with a sharded
    batch. Keras has no public call to move an existing variable.
    """
    variable._layout = layout  # listed in CONTRACT
    private(variable, "_direct_assign")(variable.value)

