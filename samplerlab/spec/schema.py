"""The spec's schema: pydantic models, one per section, and its JSON Schema."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from samplerlab.results import RunDir

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
DEFAULT_METRICS = ["rep_n", "diversity", "distinct_n", "self_bleu", "zipf", "length", "latency"]
SWEEP_CONFIRM_THRESHOLD = 200


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DistributionSpec(_Strict):
    """How the model's weights are spread over devices."""

    model_parallel: int = Field(ge=1, description=(
        "shard the weights over this many devices with keras.distribution.ModelParallel "
        "and the backbone's own layout map (get_layout_map; docs/models.md lists the "
        "families that have one)"))


class ModelSpec(_Strict):
    """Which causal LM to load (any family of docs/models.md)."""

    preset: str = Field("samplerlab:tiny-en", description=(
        "KerasHub preset name (gpt2_base_en, llama3_8b_en, ...), a local preset directory "
        "(save_to_preset), a local Hugging Face checkpoint directory, hf://org/name, or "
        "samplerlab:<name> for a preset shipped with samplerlab"))
    sequence_length: int = Field(128, ge=2, description="preprocessor sequence length "
                                 "(fine-tuning packs to it; prompts must fit in it)")
    dtype_policy: str | None = Field(None, description=(
        "Keras dtype policy, e.g. float32, bfloat16, mixed_float16. mixed_float16 falls "
        "back to float32 on CPU, where half precision is slower"))
    fast_decoding: bool = Field(True, description=(
        "run GPT-2's cached forward pass with samplerlab's per-layer key/value cache "
        "(same layers, same tokens, no cache copies per step; docs/performance.md). false "
        "runs KerasHub's own call_with_cache"))
    context_length: int | None = Field(None, ge=2, description=(
        "the model's context length in tokens, for models whose configuration states none "
        "(rotary positions: Llama, Qwen, Gemma, Mistral, ...); generation.max_length and "
        "sequence_length are then checked against it. A model that states its context "
        "refuses a larger value"))
    distribution: DistributionSpec | None = Field(None, description=(
        "model parallelism for models larger than one device: {model_parallel: N}"))
    quantize: Literal["int8"] | None = Field(None, description=(
        "quantize the loaded weights with Keras's quantize('int8') (int8 kernels with "
        "per-channel scales, activations quantized per call; docs/performance.md says "
        "where it is faster and what it costs in perplexity)"))

    @field_validator("dtype_policy")
    @classmethod
    def _known_policy(cls, v: str | None) -> str | None:
        allowed = {"float32", "float16", "bfloat16", "mixed_float16", "mixed_bfloat16"}
        if v is not None and v not in allowed:
            raise ValueError(f"must be one of {', '.join(sorted(allowed))}")
        return v


class DatasetRef(BaseModel):
    """A dataset: ``source`` names a registered dataset, the other keys are its parameters."""

    model_config = ConfigDict(extra="allow")
    source: str = Field(description="registered dataset name: tfds, chinese_poetry, jsonl, "
                        "text, inline, ...")

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class OptimizerSpec(_Strict):
    name: Literal["adam", "adamw", "sgd"] = "adam"
    learning_rate: float = Field(5e-5, gt=0)
    schedule: Literal["polynomial_decay", "constant"] = "polynomial_decay"
    end_learning_rate: float = Field(0.0, ge=0)
    weight_decay: float | None = Field(None, ge=0)


class FinetuneSpec(_Strict):
    """Fine-tuning before sampling; defaults mirror the KerasHub GPT-2 tutorial."""

    dataset: DatasetRef
    batch_size: int = Field(32, ge=1)
    take_batches: int | None = Field(500, ge=1, description="use only the first N batches "
                                     "(the tutorial's take(500))")
    epochs: int = Field(1, ge=1)
    optimizer: OptimizerSpec = OptimizerSpec()
    distribution: Literal["none", "data_parallel"] = "none"
    lora_rank: int | None = Field(None, ge=1, description=(
        "fine-tune with KerasHub's enable_lora at this rank: base weights frozen, only "
        "the low-rank query/value updates train (for models too large to fine-tune whole); "
        "the cached preset holds the merged weights"))
    cache: bool = Field(True, description="reuse a fine-tuned preset with the same key "
                        "instead of retraining")


class PromptsFromDataset(_Strict):
    """Take prompts from a dataset: the first ``prefix_words`` words become the prompt."""

    dataset: DatasetRef
    take: int = Field(10, ge=1)
    prefix_words: int = Field(8, ge=1, description="words (characters for CJK text) kept "
                              "as the prompt")


class GenerationSpec(_Strict):
    max_length: int = Field(64, ge=2, description="total tokens, prompt included "
                            "(KerasHub's max_length)")
    samples_per_prompt: int = Field(1, ge=1)
    batch_size: int = Field(8, ge=1, description="prompts per generate() call")
    stop_at_end_token: bool = Field(True, description="stop a sample at the tokenizer's end token")
    stop: list[str] = Field(default_factory=list, max_length=16, description=(
        "stop strings (at most 16): a sample ends when its text contains one, cut before "
        "it (stop_reason stop_string); detected inside the generate loop, which then also "
        "stops rows at their end token"))
    steady_timing: bool = Field(True, description=(
        "when a cell has a single batch, call it once more to measure the steady per-call "
        "time apart from compilation"))
    trace: bool = Field(False, description=(
        "record per-token traces (model probability, rank and entropy, sampler probability "
        f"and kept-set size of every generated token) in {RunDir.TRACES}"))
    trace_top: int = Field(0, ge=0, description=(
        "with trace: also keep the N most probable alternatives of every token (0: none); "
        "at most the vocabulary size"))
    trace_reference: bool = Field(False, description=(
        "score the human reference continuations of dataset prompts token by token "
        f"(teacher-forced, up to max_length) into {RunDir.TRACES}, as cell 'reference'"))

    @field_validator("stop")
    @classmethod
    def _no_empty_stop(cls, v: list[str]) -> list[str]:
        for i, text in enumerate(v):
            if not text:
                raise ValueError(f"stop string {i} is empty (every text contains it); "
                                 "remove it")
        return v


class SamplerSpec(_Strict):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    label: str | None = Field(None, description="display name for the cell(s)")


class MetricSpec(_Strict):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class OutputSpec(_Strict):
    root: str = Field("results", description="results root, relative to the working directory")
    run_id: str | None = Field(None, description="run directory name (default: a timestamp)")

    @field_validator("root")
    @classmethod
    def _no_escape(cls, v: str) -> str:
        p = PurePosixPath(v.replace("\\", "/"))
        if p.is_absolute() or re.match(r"^[A-Za-z]:", v):
            raise ValueError("must be a relative path (use --results-root for another place)")
        if ".." in p.parts:
            raise ValueError("must not contain '..' (results stay inside the results root)")
        return v

    @field_validator("run_id")
    @classmethod
    def _safe_run_id(cls, v: str | None) -> str | None:
        if v is not None and not re.match(NAME_PATTERN, v):
            raise ValueError("must be letters, digits, '.', '_' or '-' (no path separators)")
        return v


class MetricsModelSpec(_Strict):
    """The metrics model: the model that scores perplexity, MAUVE features and coherence."""

    preset: str | None = Field(None, description=(
        "the metrics model, as model.preset (KerasHub name, local preset directory or "
        "samplerlab:<name>); unset: the generating model (after fine-tuning). It loads "
        "once, after generation; its tokenizer may differ from the generator's"))
    sequence_length: int | None = Field(None, ge=2, description=(
        "tokens of one scored sequence (prompt and continuation for perplexity, one text "
        "for features); unset: the metrics model's max_sequence_length"))
    dtype_policy: str | None = Field(None, description="Keras dtype policy of the metrics model")
    batch_size: int = Field(2, ge=1, description=(
        "sequences per forward pass of the metrics model (a GPT-2 forward pass holds batch x "
        "length x 50,257 logits, which decides the peak memory of a run)"))

    @field_validator("dtype_policy")
    @classmethod
    def _known_policy(cls, v: str | None) -> str | None:
        return ModelSpec._known_policy(v)


class HumanSpec(_Strict):
    """Human text to compare with, instead of the prompts' reference continuations."""

    path: str = Field(description="UTF-8 text file of human-written texts")
    unit: Literal["line", "paragraph"] = Field("line", description=(
        "one text per non-blank line, or per blank-line-separated paragraph"))
    take: int | None = Field(None, ge=2, description="use only the first N texts")


def _bare_names(v: Any) -> Any:
    """``greedy`` is short for ``{name: greedy}``."""
    if isinstance(v, list):
        return [{"name": x} if isinstance(x, str) else x for x in v]
    return v


class Spec(_Strict):
    """A samplerlab experiment."""

    name: str = Field(pattern=NAME_PATTERN, description="experiment name: results/<name>/<run-id>/")
    description: str | None = None
    seed: int = 1337
    plugins: list[str] = Field(default_factory=list, description=(
        "modules or .py files to import as plugins (this runs their code)"))
    model: ModelSpec = ModelSpec()
    finetune: FinetuneSpec | None = None
    prompts: list[str] | PromptsFromDataset
    generation: GenerationSpec = GenerationSpec()
    samplers: list[SamplerSpec] = Field(min_length=1)
    metrics: list[MetricSpec] = Field(
        default_factory=lambda: [MetricSpec(name=m) for m in DEFAULT_METRICS])
    metrics_model: MetricsModelSpec = Field(default_factory=MetricsModelSpec, description=(
        "the model that scores perplexity, MAUVE and coherence (default: the generating "
        "model)"))
    human: HumanSpec | None = Field(None, description=(
        "a file of human text for MAUVE and the human row (default: the reference "
        "continuations of dataset prompts)"))
    output: OutputSpec = OutputSpec()

    @field_validator("samplers", mode="before", json_schema_input_type=list[str | SamplerSpec])
    @classmethod
    def _bare_sampler_names(cls, v: Any) -> Any:
        return _bare_names(v)

    @field_validator("metrics", mode="before", json_schema_input_type=list[str | MetricSpec])
    @classmethod
    def _bare_metric_names(cls, v: Any) -> Any:
        return _bare_names(v)

    @field_validator("prompts")
    @classmethod
    def _prompts_present(cls, v: Any) -> Any:
        if isinstance(v, list):
            if not v:
                raise ValueError("the prompt list is empty; give at least one prompt, or "
                                 "prompts: {dataset: {...}}")
            for i, p in enumerate(v):
                if not p.strip():
                    raise ValueError(f"prompt {i} is an empty string; remove it or write a "
                                     "prompt")
        return v


def json_schema() -> dict[str, Any]:
    """The spec's JSON Schema (``samplerlab schema``)."""
    schema = Spec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "samplerlab experiment spec"
    return schema
