"""Decoding adapters: how the engine runs each model family's cached forward pass.

:func:`adapter_for` picks one when a model loads. A family with a fast adapter (GPT-2; the
Llama-style families: Llama, Llama 3, Mistral, Qwen, Qwen 3, Gemma) gets samplerlab's
copy-free cache (and contrastive search over a shared cache); any other
KerasHub causal LM runs KerasHub's own ``call_with_cache`` through
:class:`~samplerlab.models.adapters.base.DecodingAdapter`, and the manifest says so.
"""

from __future__ import annotations

from typing import Any

from samplerlab.models.adapters.base import DecodingAdapter

__all__ = ["DecodingAdapter", "adapter_for", "fast_adapters", "family_adapters"]


def fast_adapters() -> list[type[DecodingAdapter]]:
    """The fast adapter classes, tried in order (imported here: they import Keras)."""
    from samplerlab.models.adapters.gpt2 import GPT2Adapter
    from samplerlab.models.adapters.llama import GemmaAdapter, LlamaAdapter

    return [GPT2Adapter, LlamaAdapter, GemmaAdapter]


def family_adapters() -> list[type[DecodingAdapter]]:
    """KerasHub-path adapters of families whose ``generate_step`` differs from the common
    loop (they run KerasHub's own ``call_with_cache`` with the family's arguments)."""
    from samplerlab.models.adapters.gemma3 import Gemma3Adapter

    return [Gemma3Adapter]


def adapter_for(causal_lm: Any, fast: bool = True) -> DecodingAdapter:
    """The fast adapter that supports ``causal_lm`` (when ``fast``), else KerasHub's path
    (the family's own where its generate loop differs).

    Example:

    ```python
    from samplerlab.models.adapters import adapter_for

    assert adapter_for(causal_lm).name == "gpt2"  # causal_lm: a GPT2CausalLM
    assert adapter_for(causal_lm, fast=False).name == "keras_hub"
    ```
    """
    candidates = (fast_adapters() if fast else []) + family_adapters()
    for adapter in candidates:
        if adapter.supports(causal_lm):
            return adapter(causal_lm)
    return DecodingAdapter(causal_lm)
