"""Models: loading presets (``loading``), test-size builders (``builders``), and the
decoding adapters the engine runs them through (``adapters``, with the one module that
reads KerasHub internals, ``internals``).

Importing this package does not import Keras: validating a spec uses it.
"""

from samplerlab.models.builders import (
    build_gpt2_124m,
    build_tiny_causal_lm,
    gpt2_tokenizer,
    save_preset,
)
from samplerlab.models.loading import (
    ASSETS,
    EMBEDDED_PREFIX,
    GPT2_VOCAB_DIR,
    LoadedModel,
    check_preset_reference,
    embedded_presets,
    has_accelerator,
    is_local_reference,
    load_model,
    preset_max_sequence_length,
    resolve_dtype_policy,
    resolve_preset,
)

__all__ = ["ASSETS", "EMBEDDED_PREFIX", "GPT2_VOCAB_DIR", "LoadedModel",
           "build_gpt2_124m", "build_tiny_causal_lm", "check_preset_reference",
           "embedded_presets", "gpt2_tokenizer", "has_accelerator", "is_local_reference",
           "load_model", "preset_max_sequence_length", "resolve_dtype_policy",
           "resolve_preset", "save_preset"]
