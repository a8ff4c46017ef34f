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
