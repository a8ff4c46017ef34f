"""The causal-LM families samplerlab runs, and what differs between them, read from the
model, never assumed from GPT-2.

:data:`FAMILIES` is the table of supported KerasHub families and what samplerlab does
with each (the tests parametrise over it; docs/models.md's matrix is rendered from it).

The engine, the prompt checks and the metrics need a few facts about a model: how long
a sequence it can take, which tokens end a generation, whether the preprocessor puts a
start token before a prompt, and which special tokens to strip from generated text.
KerasHub families differ in every one (GPT-2 starts and ends with ``<|endoftext|>``;
Qwen has no start token; Llama 3 also stops at ``<|eot_id|>``; Gemma 3 and Phi-3 at their
end-of-turn tokens; rotary-position families state no context length at all).
:func:`describe_family` reads them from the backbone's config, the tokenizer and the
preprocessor, and, for a Hugging Face checkpoint, from its ``config.json``.

Defaults, where the model does not say (each one leaves a note in the manifest):

* **context length**: the backbone's position table (``max_sequence_length``,
  ``max_position_embeddings``), else the Hugging Face ``config.json``'s
  (``max_position_embeddings``, ``n_positions``), else ``model.context_length`` from the
  spec, else *none*: families with rotary or ALiBi positions (Llama, Qwen, Gemma,
  Mistral, Bloom, Falcon, ...) save no context length in a KerasHub preset, so
  samplerlab does not cap ``generation.max_length`` and says so.
* **stop tokens**: KerasHub's ``generate(stop_token_ids="auto")`` for the family: the
  tokenizer's end token, its second end token where it has one (Llama 3's
  ``<|eot_id|>``), and the end-of-turn token of the families whose ``generate`` adds one
  (:data:`END_OF_TURN`), when the vocabulary has it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Family:
    """A KerasHub causal-LM family samplerlab supports, and what it can do with it.

    Every flag is checked by the tests for a tiny model of the family
    (``tests/test_families.py``), and docs/models.md's matrix is rendered from this
    table (:func:`family_matrix`), so the documentation cannot drift.

    Attributes:
        name: samplerlab's name (``"llama3"``): the key of :data:`FAMILIES`.
        title: how documentation names it (``"Llama 3"``).
        causal_lm: the ``keras_hub.models`` task class.
        tokenizer: ``"byte-pair"`` or ``"SentencePiece"``.
        hf_model_types: Hugging Face ``model_type`` s KerasHub converts to this family.
        hf_tokenizer: the tokenizer files KerasHub's converter reads for it (any one set).
        hf_export: the ``model_type`` KerasHub's ``export_to_transformers`` writes this
            family as (the export loads back with the same greedy tokens), or None.
        layout_map: the backbone has ``get_layout_map`` (``model.distribution``).
        fast_decoding: samplerlab has a fast decoding adapter for it.
        shared_cache: contrastive search scores its candidates over one shared cache.
        lora_layers: the layers LoRA adapts, where KerasHub's default names (``query``,
            ``value``, ...) find none in this family's backbone; None: KerasHub's.
        prompt_response: the preprocessor trains on ``{"prompts", "responses"}`` (loss on
            the responses only) instead of plain texts; fine-tuning feeds each text as a
            response to an empty prompt.
    """

    name: str
    title: str
    causal_lm: str
    tokenizer: str
    hf_model_types: tuple[str, ...] = ()
    hf_tokenizer: tuple[tuple[str, ...], ...] = ()
    hf_export: str | None = None
    layout_map: bool = False
    fast_decoding: bool = False
    shared_cache: bool = False
    lora_layers: tuple[str, ...] | None = None
    prompt_response: bool = False

    @property
    def backbone(self) -> str:
        """The backbone class name (``Llama3Backbone``)."""
        return self.causal_lm.removesuffix("CausalLM") + "Backbone"


BPE, SENTENCEPIECE = "byte-pair", "SentencePiece"
# The tokenizer files KerasHub's converters read (utils/transformers/convert_*.py).
BPE_FILES = (("vocab.json", "merges.txt"),)
TOKENIZER_JSON = (("tokenizer.json",),)
SENTENCEPIECE_MODEL = (("tokenizer.model",),)

#: Every family samplerlab runs, in the order docs/models.md lists them.
FAMILIES: dict[str, Family] = {f.name: f for f in [
    Family("gpt2", "GPT-2", "GPT2CausalLM", BPE, ("gpt2",), BPE_FILES, hf_export="gpt2",
           fast_decoding=True, shared_cache=True),
    Family("llama3", "Llama 3", "Llama3CausalLM", BPE, ("llama",), TOKENIZER_JSON,
           hf_export="llama", layout_map=True,
           fast_decoding=True, shared_cache=True),
    Family("llama", "Llama", "LlamaCausalLM", SENTENCEPIECE, layout_map=True,
           fast_decoding=True, shared_cache=True),
    Family("mistral", "Mistral", "MistralCausalLM", SENTENCEPIECE, ("mistral",),
           (*SENTENCEPIECE_MODEL, ("tekken.json",)), hf_export="mistral",
           fast_decoding=True, shared_cache=True),
    Family("mixtral", "Mixtral", "MixtralCausalLM", SENTENCEPIECE, ("mixtral",),
           SENTENCEPIECE_MODEL),
    Family("qwen", "Qwen 2 / 2.5", "QwenCausalLM", BPE, ("qwen2",), TOKENIZER_JSON,
           hf_export="qwen2", layout_map=True,
           fast_decoding=True, shared_cache=True),
    Family("qwen_moe", "Qwen MoE", "QwenMoeCausalLM", BPE, ("qwen2_moe",), TOKENIZER_JSON,
           layout_map=True),
    Family("qwen3", "Qwen 3", "Qwen3CausalLM", BPE, ("qwen3",), TOKENIZER_JSON,
           fast_decoding=True, shared_cache=True),
    Family("qwen3_moe", "Qwen 3 MoE", "Qwen3MoeCausalLM", BPE, ("qwen3_moe",),
           TOKENIZER_JSON, layout_map=True),
    Family("gemma", "Gemma", "GemmaCausalLM", SENTENCEPIECE, ("gemma", "gemma2"),
           SENTENCEPIECE_MODEL, hf_export="gemma", layout_map=True,
           fast_decoding=True, shared_cache=True),
    Family("gemma3", "Gemma 3", "Gemma3CausalLM", SENTENCEPIECE, ("gemma3", "gemma3_text"),
           (*SENTENCEPIECE_MODEL, *TOKENIZER_JSON), hf_export="gemma3_text",
           prompt_response=True),
    Family("phi3", "Phi-3", "Phi3CausalLM", SENTENCEPIECE),
    Family("opt", "OPT", "OPTCausalLM", BPE),
    Family("bloom", "Bloom", "BloomCausalLM", BPE),
    Family("gpt_neox", "GPT-NeoX", "GPTNeoXCausalLM", BPE, lora_layers=("query_key_value",)),
    Family("falcon", "Falcon", "FalconCausalLM", BPE),
    Family("smollm3", "SmolLM3", "SmolLM3CausalLM", BPE, ("smollm3",), TOKENIZER_JSON,
           lora_layers=("q_proj", "v_proj")),
    Family("gpt_oss", "GPT-OSS", "GptOssCausalLM", BPE, ("gpt_oss",), TOKENIZER_JSON),
]}


MATRIX_HEADER = ("| family | KerasHub class | tokenizer | loads | fast decoding | contrastive "
                 "fast path | fine-tune | LoRA | model parallel | HF import |")


def family_matrix() -> str:
    """The support matrix of docs/models.md, rendered from :data:`FAMILIES` (the table the
    tests check, so the documentation cannot drift from what is tested).

    HF import: "tested" for the ``model_type`` KerasHub exports the family as (the export
    loads back with the same greedy tokens); "converter" for the ``model_type`` s KerasHub
    converts but cannot write, so no offline test has a checkpoint of them.
    """
    def mark(flag: bool) -> str:
        return "✓" if flag else "–"

    rows = [MATRIX_HEADER, "|" + " --- |" * MATRIX_HEADER.count(" | ") + " --- |"]
    for f in FAMILIES.values():
        others = [f"`{t}`" for t in f.hf_model_types if t != f.hf_export]
        parts = ([f"✓ tested: `{f.hf_export}`"] if f.hf_export else []) + (
            [f"converter: {', '.join(others)}"] if others else [])
        hf = "; ".join(parts) or "–"
        rows.append(f"| {f.title} | `{f.causal_lm}` | {f.tokenizer} | ✓ | "
                    f"{mark(f.fast_decoding)} | {mark(f.shared_cache)} | ✓ | ✓ | "
                    f"{mark(f.layout_map)} | {hf} |")
    return "\n".join(rows) + "\n"


def family_of(class_name: str) -> Family | None:
    """The supported family whose task or backbone class is ``class_name``, if any."""
    for family in FAMILIES.values():
        if class_name in (family.causal_lm, family.backbone):
            return family
    return None


def family_for_model_type(model_type: str) -> Family | None:
    """The supported family KerasHub converts a Hugging Face ``model_type`` to, if any."""
    for family in FAMILIES.values():
        if model_type in family.hf_model_types:
            return family
    return None


def hf_model_types() -> list[str]:
    """Every Hugging Face ``model_type`` samplerlab loads, sorted."""
    return sorted(t for family in FAMILIES.values() for t in family.hf_model_types)


#: Backbone config keys that bound the positions a model can take (a position table).
BACKBONE_CONTEXT_KEYS = ("max_sequence_length", "max_position_embeddings")
#: Hugging Face ``config.json`` keys for the context length, in the order read.
HF_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length",
                   "seq_length")
#: The end-of-turn token each family's ``generate(stop_token_ids="auto")`` adds to the
#: tokenizer's end token (Phi3CausalLM, Gemma3CausalLM, ... in KerasHub).
END_OF_TURN = {"Phi3CausalLM": "<|end|>", "Gemma3CausalLM": "<end_of_turn>",
               "Gemma3nCausalLM": "<end_of_turn>", "Gemma4CausalLM": "<turn|>"}


@dataclass(frozen=True)
class ModelFamily:
    """The facts about a loaded causal LM that samplerlab reads instead of assuming.

    Attributes:
        name: the KerasHub task class (``QwenCausalLM``).
        context_length: the longest sequence (prompt + generation) the model takes, or
            None when nothing states one.
        context_source: where ``context_length`` came from (for messages and the
            manifest).
        start_token_id: the tokenizer's start token, or None (Qwen, SmolLM3, ...).
        end_token_id: the tokenizer's end token.
        pad_token_id: the tokenizer's padding token.
        stop_token_ids: the tokens that end a generation (KerasHub's ``"auto"``).
        prompt_overhead: tokens the preprocessor adds to a prompt for generation (1 when
            it prepends a start token, else 0).
        special_token_ids: tokens stripped from generated text (as KerasHub's
            ``generate_postprocess`` strips them).
        notes: what was assumed, for the manifest.
    """

    name: str
    context_length: int | None
    context_source: str
    start_token_id: int | None
    end_token_id: int | None
    pad_token_id: int | None
    stop_token_ids: tuple[int, ...]
    prompt_overhead: int
    special_token_ids: tuple[int, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    def describe(self) -> dict[str, Any]:
        """What the manifest records about the model's family."""
        return {"family": self.name, "context_length": self.context_length,
                "context_source": self.context_source,
                "start_token_id": self.start_token_id, "end_token_id": self.end_token_id,
                "pad_token_id": self.pad_token_id,
                "stop_token_ids": list(self.stop_token_ids),
                "prompt_overhead": self.prompt_overhead,
                "special_token_ids": list(self.special_token_ids)}


def describe_family(causal_lm: Any, *, hf_config: dict[str, Any] | None = None,
                    context_length: int | None = None) -> ModelFamily:
    """Read a causal LM's :class:`ModelFamily` from its backbone, tokenizer and
    preprocessor (and ``hf_config``, the ``config.json`` of a Hugging Face checkpoint).

    ``context_length`` (the spec's ``model.context_length``) applies when the model
    states none; where it does, a larger value is refused by the caller.

    Example:

    ```python
    from samplerlab.models.builders import build_tiny_family
    from samplerlab.models.family import describe_family

    family = describe_family(build_tiny_family("qwen"))
    assert (family.start_token_id, family.prompt_overhead) == (None, 0)  # no start token
    ```
    """
    name = type(causal_lm).__name__
    preprocessor = causal_lm.preprocessor
    tokenizer = preprocessor.tokenizer if preprocessor is not None else None
    stated, source = stated_context(causal_lm.backbone.get_config(), hf_config)
    notes = []
    if stated is None and context_length is not None:
        stated, source = context_length, "model.context_length"
    elif stated is None:
        source = "none stated"
        notes.append(f"{type(causal_lm.backbone).__name__} states no context length "
                     "(its positions are rotary or ALiBi); generation.max_length is not "
                     "capped: set model.context_length to have it checked")
    return ModelFamily(
        name=name, context_length=stated, context_source=source,
        start_token_id=_token_id(tokenizer, "start_token_id"),
        end_token_id=_token_id(tokenizer, "end_token_id"),
        pad_token_id=_token_id(tokenizer, "pad_token_id"),
        stop_token_ids=stop_token_ids(causal_lm),
        prompt_overhead=prompt_overhead(preprocessor),
        special_token_ids=special_token_ids(tokenizer), notes=tuple(notes))


def stated_context(backbone_config: dict[str, Any],
                   hf_config: dict[str, Any] | None = None) -> tuple[int | None, str]:
    """The context length a model's configs state, and which key stated it.

    Reads the KerasHub backbone config (a position table) first, then a Hugging Face
    ``config.json`` (top level, or its ``text_config`` for multimodal checkpoints).
    """
    for key in BACKBONE_CONTEXT_KEYS:
        value = backbone_config.get(key)
        if isinstance(value, int) and value > 0:
            return value, f"backbone {key}"
    for config in (hf_config or {}, (hf_config or {}).get("text_config") or {}):
        for key in HF_CONTEXT_KEYS:
            value = config.get(key)
            if isinstance(value, int) and value > 0:
                return value, f"config.json {key}"
    return None, "none stated"


def stop_token_ids(causal_lm: Any) -> tuple[int, ...]:
    """The tokens KerasHub's ``generate(stop_token_ids="auto")`` stops at for this model."""
    preprocessor = causal_lm.preprocessor
    if preprocessor is None:
        return ()
    tokenizer = preprocessor.tokenizer
    ids = [tokenizer.end_token_id]
    second = getattr(tokenizer, "end_token2_id", None)
    if second is not None:
        ids.append(second)
    turn = END_OF_TURN.get(type(causal_lm).__name__)
    if turn is not None:
        turn_id = vocabulary_id(tokenizer, turn)
        if turn_id is not None:
            ids.append(turn_id)
    return tuple(dict.fromkeys(int(i) for i in ids if i is not None))


def vocabulary_id(tokenizer: Any, token: str) -> int | None:
    """The id of ``token`` when the vocabulary has it as one piece, else None (a
    SentencePiece tokenizer maps unknown pieces to its unknown id instead of failing)."""
    try:
        token_id = tokenizer.token_to_id(token)
    except (KeyError, ValueError):
        return None
    if token_id is None or tokenizer.id_to_token(int(token_id)) != token:
        return None
    return int(token_id)


def prompt_overhead(preprocessor: Any) -> int:
    """Tokens ``generate_preprocess`` adds to a prompt (a start token or none), measured."""
    import numpy as np

    if preprocessor is None:
        return 0
    text = "a"
    packed = preprocessor.generate_preprocess([text], sequence_length=8)
    return int(np.asarray(packed["padding_mask"]).sum()) - len(
        np.asarray(preprocessor.tokenizer(text)).reshape(-1))


def special_token_ids(tokenizer: Any) -> tuple[int, ...]:
    """The tokenizer's special tokens, which KerasHub strips from generated text."""
    if tokenizer is None:
        return ()
    try:
        ids = tokenizer.special_token_ids
    except ValueError:  # a special token without an id in this vocabulary
        ids = [vocabulary_id(tokenizer, token) for token in tokenizer.special_tokens]
    return tuple(sorted({int(i) for i in ids if i is not None and int(i) >= 0}))


def _token_id(tokenizer: Any, attribute: str) -> int | None:
    value = getattr(tokenizer, attribute, None) if tokenizer is not None else None
    return int(value) if value is not None else None
