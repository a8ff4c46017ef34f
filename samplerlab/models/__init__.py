"""Models: loading presets (``loading``), what differs between families (``family``),
test-size builders (``builders``), and the decoding adapters the engine runs them through
(``adapters``, with the one module that reads KerasHub internals, ``internals``).

Importing this package does not import Keras: validating a spec uses it.
"""

from samplerlab.models.builders import (
    build_gpt2_124m,
    build_tiny_causal_lm,
    build_tiny_family,
    gpt2_tokenizer,
    save_preset,
)
from samplerlab.models.family import FAMILIES, Family, ModelFamily, describe_family
from samplerlab.models.loading import (
    ASSETS,
    EMBEDDED_PREFIX,
    GPT2_VOCAB_DIR,
    HF_PREFIX,
    LoadedModel,
    check_preset_reference,
    embedded_presets,
    has_accelerator,
    inspect_preset,
    is_local_reference,
    load_model,
    load_spec_model,
    preset_context_length,
    preset_max_sequence_length,
    resolve_dtype_policy,
    resolve_preset,
)

__all__ = ["ASSETS", "EMBEDDED_PREFIX", "FAMILIES", "GPT2_VOCAB_DIR", "HF_PREFIX", "Family",
           "LoadedModel", "ModelFamily", "build_gpt2_124m", "build_tiny_causal_lm",
           "build_tiny_family", "check_preset_reference", "describe_family",
           "embedded_presets", "gpt2_tokenizer", "has_accelerator", "inspect_preset",
           "is_local_reference", "load_model", "load_spec_model", "preset_context_length",
           "preset_max_sequence_length", "resolve_dtype_policy", "resolve_preset",
           "save_preset"]
