"""Small models of KerasHub's own classes, with random weights, for tests and benchmarks.

A randomly initialised model costs exactly what a pretrained one of the same shape
costs, so speed work needs no downloaded weights.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from samplerlab._quiet import import_tensorflow_quietly
from samplerlab.models.loading import GPT2_VOCAB_DIR


@lru_cache(maxsize=1)
def gpt2_tokenizer():
    """KerasHub's GPT2Tokenizer on the real GPT-2 vocabulary shipped with samplerlab."""
    import_tensorflow_quietly()
    import keras_hub

    return keras_hub.models.GPT2Tokenizer(vocabulary=str(GPT2_VOCAB_DIR / "encoder.json"),
                                          merges=str(GPT2_VOCAB_DIR / "vocab.bpe"))


def build_tiny_causal_lm(*, tokenizer: Any = None, num_layers: int = 2, num_heads: int = 2,
                         hidden_dim: int = 32, intermediate_dim: int = 64,
                         max_sequence_length: int = 256, sequence_length: int = 64,
                         seed: int = 0) -> Any:
    """A randomly initialised GPT-2 of real KerasHub classes, small enough for tests."""
    import_tensorflow_quietly()
    import keras
    import keras_hub

    keras.utils.set_random_seed(seed)
    tokenizer = tokenizer or gpt2_tokenizer()
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=tokenizer.vocabulary_size(), num_layers=num_layers,
        num_heads=num_heads, hidden_dim=hidden_dim, intermediate_dim=intermediate_dim,
        max_sequence_length=max_sequence_length, dropout=0.0)
    preprocessor = keras_hub.models.GPT2CausalLMPreprocessor(
        tokenizer=tokenizer, sequence_length=sequence_length)
    return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=preprocessor)


def build_gpt2_124m(sequence_length: int = 128, seed: int = 0) -> Any:
    """GPT-2 base (124M) architecture with random weights: same cost as the pretrained one."""
    return build_tiny_causal_lm(num_layers=12, num_heads=12, hidden_dim=768,
                                intermediate_dim=3072, max_sequence_length=1024,
                                sequence_length=sequence_length, seed=seed)


def save_preset(causal_lm: Any, path: str | os.PathLike) -> Path:
    """Save a causal LM (backbone, tokenizer, preprocessor, task) with ``save_to_preset``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    causal_lm.save_to_preset(str(path))
    return path


# Tiny backbones of each Llama-style KerasHub family: the family's own backbone class, a
# shared small shape (2 layers, 4 query heads sharing 2 key/value heads) and, per family,
# what it adds, set so that tests exercise it: rope scaling, a sliding window shorter than
# a test sequence, Qwen 3's explicit head_dim, Gemma 2's post-norms and soft caps.
TINY_SHAPE: dict[str, int] = {"num_layers": 2, "num_query_heads": 4, "num_key_value_heads": 2,
                              "hidden_dim": 32, "intermediate_dim": 64}
TINY_BACKBONES: dict[str, tuple[str, str, dict[str, Any]]] = {
    # family: (backbone class, causal LM class, family-specific arguments)
    "llama": ("LlamaBackbone", "LlamaCausalLM", {"rope_position_scaling_factor": 2.0}),
    "llama3": ("Llama3Backbone", "Llama3CausalLM", {  # Llama 3.1 rope scaling
        "rope_max_wavelength": 500_000, "rope_frequency_adjustment_factor": 8.0,
        "rope_low_freq_factor": 1.0, "rope_high_freq_factor": 4.0,
        "rope_pretraining_sequence_length": 32}),
    "mistral": ("MistralBackbone", "MistralCausalLM", {"sliding_window": 6}),
    "qwen": ("QwenBackbone", "QwenCausalLM", {}),  # attention biases, tied embeddings
    "qwen3": ("Qwen3Backbone", "Qwen3CausalLM", {"head_dim": 16}),
    "gemma": ("GemmaBackbone", "GemmaCausalLM", {"head_dim": 8}),
    "gemma2": ("GemmaBackbone", "GemmaCausalLM", {
        "head_dim": 16, "query_head_dim_normalize": False, "use_post_ffw_norm": True,
        "use_post_attention_norm": True, "attention_logit_soft_cap": 2.0,
        "final_logit_soft_cap": 5.0, "use_sliding_window_attention": True,
        "sliding_window_size": 6}),
}


def tiny_backbone(family: str, *, vocabulary_size: int = 256, seed: int = 0,
                  dtype: str | None = None, **overrides: Any) -> Any:
    """A randomly initialised 2-layer backbone of ``family`` (a key of
    :data:`TINY_BACKBONES`), built from KerasHub's own class.

    Example:

    ```python
    from samplerlab.models.builders import tiny_backbone
    backbone = tiny_backbone("llama3")                 # keras_hub.models.Llama3Backbone
    backbone = tiny_backbone("gemma", dtype="bfloat16")
    ```
    """
    import_tensorflow_quietly()
    import keras
    import keras_hub

    if family not in TINY_BACKBONES:
        raise ValueError(f"no tiny backbone for family '{family}' "
                         f"(known: {', '.join(TINY_BACKBONES)})")
    backbone_class, _, extra = TINY_BACKBONES[family]
    keras.utils.set_random_seed(seed)
    kwargs = {**TINY_SHAPE, **extra, **overrides}
    if dtype is not None:
        kwargs["dtype"] = dtype
    return getattr(keras_hub.models, backbone_class)(vocabulary_size=vocabulary_size,
                                                      **kwargs)


def tiny_family_causal_lm(family: str, **kwargs: Any) -> Any:
    """The family's causal LM around :func:`tiny_backbone` (``kwargs``), without a
    preprocessor: it takes token ids (``{"token_ids", "padding_mask"}``)."""
    import keras_hub

    causal_lm_class = getattr(keras_hub.models, TINY_BACKBONES[family][1])
    return causal_lm_class(backbone=tiny_backbone(family, **kwargs), preprocessor=None)


def build_llama_120m(seed: int = 0, dtype: str | None = None) -> Any:
    """A ~125M-parameter Llama 3 architecture with random weights, no preprocessor: hidden
    768, 12 layers, 12 query heads sharing 4 key/value heads, feed-forward 2048, vocabulary
    32,000, untied embeddings (the benchmark model of ``tests/benchmarks/test_bench_llama.py``)."""
    import_tensorflow_quietly()
    import keras
    import keras_hub

    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.Llama3Backbone(
        vocabulary_size=32_000, num_layers=12, num_query_heads=12, num_key_value_heads=4,
        hidden_dim=768, intermediate_dim=2048, rope_max_wavelength=500_000, dtype=dtype)
    return keras_hub.models.Llama3CausalLM(backbone=backbone, preprocessor=None)
