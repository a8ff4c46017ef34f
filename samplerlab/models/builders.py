"""Small models of KerasHub's own classes, with random weights, for tests and benchmarks.

A randomly initialised model costs exactly what a pretrained one of the same shape
costs, so speed work needs no downloaded weights. :data:`TINY` has a tiny configuration
of the real backbone, tokenizer and preprocessor classes of every family samplerlab
supports (:data:`samplerlab.models.family.FAMILIES`); :func:`build_tiny_family` builds one:

* byte-pair families (GPT-2, Llama 3, Qwen, OPT, ...) get a real byte-level BPE
  vocabulary cut from the vendored GPT-2 one (its 256 byte symbols and first merges, in
  GPT-2's own order) plus the special tokens their tokenizer class requires;
* SentencePiece families (Llama, Gemma, Mistral, Phi-3, ...) get a tiny SentencePiece
  model trained on text shipped with samplerlab, with the family's control pieces.

Example:

```python
from samplerlab.models.builders import build_tiny_family, save_preset
lm = build_tiny_family("qwen")             # a QwenCausalLM with random weights
save_preset(lm, "tiny-qwen")               # then model.preset: tiny-qwen
```
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from samplerlab._quiet import import_tensorflow_quietly
from samplerlab.models.family import FAMILIES, SENTENCEPIECE
from samplerlab.models.loading import ASSETS, GPT2_VOCAB_DIR

CORPUS = ASSETS / "corpus" / "fortunes.txt"
#: Merges kept from GPT-2's vocabulary for tiny byte-pair vocabularies.
BPE_MERGES = 400
#: Pieces of the tiny SentencePiece models.
SENTENCEPIECE_VOCABULARY = 400


@dataclass(frozen=True)
class Pieces:
    """The control pieces of a SentencePiece model (id -1: the model has none)."""

    unk: tuple[str, int] = ("<unk>", 0)
    bos: tuple[str, int] = ("<s>", 1)
    eos: tuple[str, int] = ("</s>", 2)
    pad: tuple[str, int] = ("<pad>", -1)
    extra: tuple[str, ...] = ()


LLAMA_PIECES = Pieces()
GEMMA_PIECES = Pieces(pad=("<pad>", 0), eos=("<eos>", 1), bos=("<bos>", 2), unk=("<unk>", 3),
                      extra=("<start_of_turn>", "<end_of_turn>"))


@dataclass(frozen=True)
class TinyConfig:
    """A tiny configuration of one family's KerasHub classes.

    Attributes:
        backbone: backbone arguments (``vocabulary_size`` is filled in from the tokenizer).
        special_tokens: byte-pair families: tokens the tokenizer class requires, added to
            the vocabulary.
        pieces: SentencePiece families: the control pieces the tokenizer expects.
        tokenizer_args: extra tokenizer arguments.
    """

    backbone: dict[str, Any]
    special_tokens: tuple[str, ...] = ()
    pieces: Pieces = LLAMA_PIECES
    tokenizer_args: dict[str, Any] = field(default_factory=dict)


_ROTARY = {"num_layers": 2, "num_query_heads": 4, "num_key_value_heads": 2,
           "hidden_dim": 32, "intermediate_dim": 64}
_ENDOFTEXT = ("<|endoftext|>",)

#: A tiny configuration of every family of :data:`samplerlab.models.family.FAMILIES`.
TINY: dict[str, TinyConfig] = {
    # GPT-2's feed-forward is 4x its width, as KerasHub's Hugging Face converter assumes.
    "gpt2": TinyConfig({"num_layers": 2, "num_heads": 2, "hidden_dim": 32,
                        "intermediate_dim": 128, "max_sequence_length": 256, "dropout": 0.0},
                       _ENDOFTEXT),
    "llama3": TinyConfig(dict(_ROTARY), ("<|begin_of_text|>", "<|end_of_text|>",
                                         "<|start_header_id|>", "<|end_header_id|>",
                                         "<|eot_id|>")),
    "llama": TinyConfig(dict(_ROTARY)),
    "mistral": TinyConfig({**_ROTARY, "sliding_window": 64}),
    "mixtral": TinyConfig({**_ROTARY, "num_experts": 4, "top_k": 2, "sliding_window": 64}),
    "qwen": TinyConfig(dict(_ROTARY), _ENDOFTEXT),
    "qwen_moe": TinyConfig({**_ROTARY, "moe_intermediate_dim": 32,
                            "shared_expert_intermediate_dim": 64, "num_experts": 4,
                            "top_k": 2}, _ENDOFTEXT),
    "qwen3": TinyConfig({**_ROTARY, "head_dim": 8}, ("<|im_end|>", "<|endoftext|>")),
    "qwen3_moe": TinyConfig({**_ROTARY, "head_dim": 8, "moe_intermediate_dim": 32,
                             "num_experts": 4, "top_k": 2}, ("<|im_end|>", "<|endoftext|>")),
    # One key/value head, as Gemma 2B has: KerasHub's Gemma exporter writes only the first
    # (sharding needs more: tests/test_model_parallel.py builds Gemma 7B's one per head).
    "gemma": TinyConfig({**_ROTARY, "num_key_value_heads": 1, "head_dim": 8},
                        pieces=GEMMA_PIECES),
    # Gemma 3's architecture flags as its presets (and Hugging Face checkpoints) have them.
    "gemma3": TinyConfig({**_ROTARY, "head_dim": 8, "image_size": 16, "vision_encoder": None,
                          "use_query_key_norm": True, "use_post_ffw_norm": True,
                          "use_post_attention_norm": True, "use_sliding_window_attention": True,
                          "sliding_window_size": 64},
                         pieces=GEMMA_PIECES, tokenizer_args={"has_vision_tokens": False}),
    "phi3": TinyConfig({**_ROTARY, "max_sequence_length": 256},
                       pieces=Pieces(extra=("<|endoftext|>", "<|end|>", "<|user|>",
                                            "<|assistant|>"))),
    "opt": TinyConfig({"num_layers": 2, "num_heads": 2, "hidden_dim": 32,
                       "intermediate_dim": 64, "max_sequence_length": 256, "dropout": 0.0},
                      ("</s>", "<pad>")),
    "bloom": TinyConfig({"num_layers": 2, "num_heads": 2, "hidden_dim": 32,
                         "intermediate_dim": 64}, ("<s>", "</s>", "<pad>")),
    "gpt_neox": TinyConfig({"num_layers": 2, "num_heads": 2, "hidden_dim": 32,
                            "intermediate_dim": 64, "max_sequence_length": 256}, _ENDOFTEXT),
    "falcon": TinyConfig({"num_layers": 2, "num_attention_heads": 2, "hidden_dim": 32,
                          "intermediate_dim": 64}, _ENDOFTEXT),
    "smollm3": TinyConfig({"num_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                           "hidden_dim": 32, "intermediate_dim": 64, "attention_bias": False,
                           "attention_dropout": 0.0, "rope_layer_enabled_list": [True, False],
                           "layer_types": ["attention", "attention"], "mlp_bias": False,
                           "layer_norm_epsilon": 1e-6, "max_position_embeddings": 256,
                           "rope_theta": 10000.0, "partial_rotary_factor": 1.0},
                          ("<|end_of_text|>", "<|begin_of_text|>", "<think>", "</think>")),
    "gpt_oss": TinyConfig({**_ROTARY, "num_experts": 4, "top_k": 2, "head_dim": 8,
                           "sliding_window": 64}, _ENDOFTEXT),
}


def gpt2_vocabulary() -> tuple[dict[str, int], list[str]]:
    """GPT-2's byte-level BPE vocabulary and merges, as vendored with samplerlab."""
    vocabulary = json.loads((GPT2_VOCAB_DIR / "encoder.json").read_text(encoding="utf-8"))
    lines = (GPT2_VOCAB_DIR / "vocab.bpe").read_text(encoding="utf-8").splitlines()
    return vocabulary, [line for line in lines[1:] if line and not line.startswith("#")]


@lru_cache(maxsize=8)
def bpe_subset(special_tokens: tuple[str, ...] = (), merges: int = BPE_MERGES,
               multiple_of: int = 64) -> tuple[dict[str, int], list[str]]:
    """A small byte-level BPE vocabulary: GPT-2's 256 byte symbols, its first ``merges``
    merges (in GPT-2's order, so tokenisation is GPT-2's on a smaller vocabulary) and
    ``special_tokens`` at the end, padded with reserved tokens to a multiple of
    ``multiple_of`` as real vocabularies are (Llama 3's ``<|reserved_special_token_N|>``),
    so the embedding shards evenly over devices."""
    full, all_merges = gpt2_vocabulary()
    by_id = {i: token for token, i in full.items()}
    vocabulary = {by_id[i]: i for i in range(256)}
    kept = []
    for merge in all_merges:
        if len(kept) == merges:
            break
        left, right = merge.split(" ")
        if left in vocabulary and right in vocabulary:
            vocabulary.setdefault(left + right, len(vocabulary))
            kept.append(merge)
    for token in special_tokens:
        vocabulary.setdefault(token, len(vocabulary))
    reserved = 0
    while len(vocabulary) % multiple_of:
        vocabulary[f"<|reserved_special_token_{reserved}|>"] = len(vocabulary)
        reserved += 1
    return vocabulary, kept


@lru_cache(maxsize=8)
def sentencepiece_proto(pieces: Pieces = LLAMA_PIECES,
                        vocabulary_size: int = SENTENCEPIECE_VOCABULARY) -> bytes:
    """A tiny SentencePiece (BPE) model trained on samplerlab's fortunes corpus."""
    import sentencepiece

    text = CORPUS.read_text(encoding="utf-8")[:200_000]
    lines = [line for line in text.splitlines() if line.strip() and line != "%"]
    proto = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=proto, vocab_size=vocabulary_size,
        model_type="bpe", character_coverage=1.0, normalization_rule_name="identity",
        unk_piece=pieces.unk[0], unk_id=pieces.unk[1], bos_piece=pieces.bos[0],
        bos_id=pieces.bos[1], eos_piece=pieces.eos[0], eos_id=pieces.eos[1],
        pad_piece=pieces.pad[0], pad_id=pieces.pad[1],
        user_defined_symbols=list(pieces.extra), num_threads=1, minloglevel=2)
    return proto.getvalue()


@lru_cache(maxsize=1)
def gpt2_tokenizer():
    """KerasHub's GPT2Tokenizer on the real GPT-2 vocabulary shipped with samplerlab."""
    import_tensorflow_quietly()
    import keras_hub

    return keras_hub.models.GPT2Tokenizer(vocabulary=str(GPT2_VOCAB_DIR / "encoder.json"),
                                          merges=str(GPT2_VOCAB_DIR / "vocab.bpe"))


def family_tokenizer(name: str) -> Any:
    """Family ``name``'s own tokenizer class on a tiny vocabulary."""
    import_tensorflow_quietly()
    import keras_hub

    family, tiny = FAMILIES[name], TINY[name]
    cls = getattr(keras_hub.models, family.causal_lm).preprocessor_cls.tokenizer_cls
    if family.tokenizer == SENTENCEPIECE:
        return cls(proto=sentencepiece_proto(tiny.pieces), **tiny.tokenizer_args)
    vocabulary, merges = bpe_subset(tiny.special_tokens)
    return cls(vocabulary=dict(vocabulary), merges=list(merges), **tiny.tokenizer_args)


def build_tiny_family(name: str, *, sequence_length: int = 64, seed: int = 0,
                      num_layers: int | None = None, **backbone_args: Any) -> Any:
    """A randomly initialised causal LM of family ``name`` (:data:`TINY`), with its own
    tokenizer and preprocessor classes; ``num_layers`` and ``backbone_args`` override the
    tiny sizes (per-layer lists, such as SmolLM3's layer types, follow ``num_layers``)."""
    import_tensorflow_quietly()
    import keras
    import keras_hub

    cls = getattr(keras_hub.models, FAMILIES[name].causal_lm)
    keras.utils.set_random_seed(seed)
    tokenizer = family_tokenizer(name)
    config = dict(TINY[name].backbone)
    if num_layers is not None:
        per_layer = config["num_layers"]
        config = {k: [v[i % per_layer] for i in range(num_layers)]
                  if isinstance(v, list) and len(v) == per_layer else v
                  for k, v in config.items()}
        config["num_layers"] = num_layers
    backbone = cls.backbone_cls(vocabulary_size=tokenizer.vocabulary_size(),
                                **{**config, **backbone_args})
    preprocessor = cls.preprocessor_cls(tokenizer=tokenizer, sequence_length=sequence_length)
    return cls(backbone=backbone, preprocessor=preprocessor)


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
