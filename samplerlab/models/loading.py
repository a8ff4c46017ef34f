"""Loading causal LMs: KerasHub presets, Hugging Face checkpoints, embedded presets.

``model.preset`` is one of

* a KerasHub preset name (``gpt2_base_en``, ``llama3_8b_en``): downloaded by KerasHub;
* a local preset directory written by ``save_to_preset`` (loaded with ``from_preset(path)``);
* a local Hugging Face checkpoint directory (``config.json`` with a ``model_type``,
  safetensors weights, tokenizer files), converted by KerasHub's converters on load;
* ``hf://org/name``: a Hugging Face Hub checkpoint, downloaded and converted by KerasHub;
* ``samplerlab:<name>``: a preset shipped inside samplerlab (``samplerlab:tiny-en``).

Every family of :data:`samplerlab.models.family.FAMILIES` loads; what differs between
them (context length, stop tokens, start token, special tokens) is read from the model
(:mod:`samplerlab.models.family`). A directory that holds anything else (an encoder, an
image model, a ``model_type`` KerasHub cannot convert, a checkpoint without tokenizer
files) is refused with one line before anything loads.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from samplerlab._quiet import native_logs_silenced
from samplerlab.compilation import enable_compilation_cache
from samplerlab.errors import ModelLoadError, UserInputError
from samplerlab.models.family import (
    FAMILIES,
    Family,
    ModelFamily,
    describe_family,
    family_for_model_type,
    family_of,
    hf_model_types,
    stated_context,
)

ASSETS = Path(__file__).resolve().parents[1] / "assets"
EMBEDDED_PREFIX = "samplerlab:"
HF_PREFIX = "hf://"
GPT2_VOCAB_DIR = ASSETS / "vocab" / "gpt2"
# KerasHub's GPT-2 presets all use 1024 positions; known without importing KerasHub.
KNOWN_PRESET_LIMITS = {"gpt2_base_en": 1024, "gpt2_medium_en": 1024, "gpt2_large_en": 1024,
                       "gpt2_extra_large_en": 1024, "gpt2_base_en_cnn_dailymail": 1024}
KERAS_HUB_FORMAT, TRANSFORMERS_FORMAT = "keras_hub", "transformers"
#: ``LoadedModel.max_sequence_length`` of a model that states no context length (rotary
#: and ALiBi families): no cap.
UNSTATED_CONTEXT = 2**31 - 1
HF_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
MODELS_DOC = "docs/models.md"


def embedded_presets() -> dict[str, Path]:
    """Name → directory of every preset shipped with samplerlab."""
    root = ASSETS / "presets"
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir()) if (p / "config.json").is_file()}


def is_remote(preset: str) -> bool:
    """Whether ``preset`` is a URI that KerasHub downloads (``hf://``, ``kaggle://``, ...)."""
    return "://" in preset


def is_local_reference(preset: str) -> bool:
    """Whether ``preset`` names a directory here (a path, or ``samplerlab:NAME``)."""
    if is_remote(preset):
        return False
    return (preset.startswith(EMBEDDED_PREFIX) or "/" in preset or preset.startswith(".")
            or Path(preset).exists())


def resolve_preset(preset: str) -> str:
    """A preset reference → what ``from_preset`` takes (a path for local/embedded presets)."""
    if preset.startswith(EMBEDDED_PREFIX):
        name = preset[len(EMBEDDED_PREFIX):]
        presets = embedded_presets()
        if name not in presets:
            known = ", ".join(EMBEDDED_PREFIX + n for n in presets) or "none installed"
            raise UserInputError(f"no embedded preset '{preset}' (available: {known})")
        return str(presets[name])
    if is_local_reference(preset):
        return str(Path(preset).expanduser())
    return preset


@dataclass(frozen=True)
class PresetDirectory:
    """What a local preset directory holds, read from its JSON files (no Keras).

    Attributes:
        path: the directory.
        format: ``"keras_hub"`` (``save_to_preset``) or ``"transformers"``.
        found: the class (KerasHub) or ``model_type`` (transformers) it holds.
        family: the supported family it belongs to.
        config: its ``config.json``.
    """

    path: Path
    format: str
    found: str
    family: Family
    config: dict[str, Any]

    @property
    def hf_config(self) -> dict[str, Any] | None:
        """The Hugging Face ``config.json`` of a transformers checkpoint, else None."""
        return self.config if self.format == TRANSFORMERS_FORMAT else None


def supported_classes() -> str:
    """The supported task classes, for messages."""
    return ", ".join(f.causal_lm for f in FAMILIES.values())


def inspect_preset(preset: str) -> PresetDirectory | None:
    """Read a local preset directory's format and family; None for a remote preset.

    Raises:
        UserInputError: one line naming the path, what it holds and what is supported,
            when the directory is missing, is not a preset, holds a model that is not a
            supported causal LM, or is a transformers checkpoint KerasHub cannot convert
            or that lacks weights or tokenizer files.
    """
    path = Path(resolve_preset(preset))
    if not is_local_reference(preset):
        return None
    if not path.exists():
        raise UserInputError(f"local preset directory '{preset}' does not exist; give a "
                             "KerasHub preset name (gpt2_base_en), a directory written by "
                             "save_to_preset, a Hugging Face checkpoint directory, hf://org/name "
                             "or samplerlab:tiny-en")
    config_file = path / "config.json"
    if not path.is_dir() or not config_file.is_file():
        raise UserInputError(f"'{preset}' is not a preset directory (no config.json): write "
                             "one with save_to_preset, or point at a Hugging Face checkpoint "
                             "directory")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserInputError(f"'{config_file}' is not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise UserInputError(f"'{config_file}' is not a JSON object")
    if "registered_name" in config:
        return _keras_hub_directory(preset, path, config)
    if "model_type" in config:
        return _transformers_directory(preset, path, config)
    raise UserInputError(f"'{preset}': config.json is neither a KerasHub preset (no "
                         "registered_name) nor a Hugging Face checkpoint (no model_type)")


def _class_name(registered_name: Any) -> str:
    return str(registered_name).rpartition(">")[2]


def _keras_hub_directory(preset: str, path: Path, config: dict) -> PresetDirectory:
    backbone = _class_name(config["registered_name"])
    task = None
    task_file = path / "task.json"
    if task_file.is_file():
        with contextlib.suppress(OSError, ValueError, AttributeError):
            task = _class_name(json.loads(task_file.read_text(encoding="utf-8"))
                               .get("registered_name"))
    found = task or backbone
    family = family_of(backbone)
    if family is None or (task is not None and task != family.causal_lm):
        raise UserInputError(
            f"'{preset}' holds a KerasHub {found}"
            + (f" ({backbone})" if task and task != backbone else "")
            + f", not a causal LM samplerlab runs; supported: {supported_classes()} "
            f"({MODELS_DOC})")
    return PresetDirectory(path, KERAS_HUB_FORMAT, found, family, config)


def _transformers_directory(preset: str, path: Path, config: dict) -> PresetDirectory:
    model_type = str(config["model_type"])
    family = family_for_model_type(model_type)
    if family is None:
        raise UserInputError(
            f"'{preset}' is a Hugging Face checkpoint of model_type '{model_type}', which "
            "samplerlab cannot load as a causal LM through KerasHub's converters; supported "
            f"model_types: {', '.join(hf_model_types())} ({MODELS_DOC})")
    if not any((path / name).is_file() for name in HF_WEIGHT_FILES):
        raise UserInputError(
            f"'{preset}' is a Hugging Face checkpoint ({model_type}) without safetensors "
            f"weights (expected {' or '.join(HF_WEIGHT_FILES)})")
    wanted = family.hf_tokenizer
    if not any(all((path / name).is_file() for name in files) for files in wanted):
        names = " or ".join(" + ".join(files) for files in wanted)
        raise UserInputError(
            f"'{preset}' is a Hugging Face checkpoint ({model_type}) without the tokenizer "
            f"files KerasHub reads for it ({names}); copy them from the model's repository")
    return PresetDirectory(path, TRANSFORMERS_FORMAT, model_type, family, config)


def check_preset_reference(preset: str) -> None:
    """Cheap checks before anything loads: embedded names exist, local directories hold a
    supported causal LM (:func:`inspect_preset`)."""
    inspect_preset(preset)


def preset_context_length(preset: str) -> tuple[int, str] | None:
    """The context length a preset states, and where, read from its config.json (no Keras);
    None when it states none or is remote (except KerasHub's GPT-2 presets)."""
    if not is_local_reference(preset):
        limit = KNOWN_PRESET_LIMITS.get(preset)
        return (limit, "KerasHub's GPT-2 presets") if limit else None
    try:
        directory = inspect_preset(preset)
    except UserInputError:
        return None
    if directory is None:
        return None
    if directory.format == KERAS_HUB_FORMAT:
        limit, source = stated_context(directory.config.get("config") or {})
    else:
        limit, source = stated_context({}, directory.config)
    return (limit, source) if limit is not None else None


def preset_max_sequence_length(preset: str) -> int | None:
    """The context length a preset states (:func:`preset_context_length` without where)."""
    stated = preset_context_length(preset)
    return stated[0] if stated is not None else None


def has_accelerator() -> bool:
    import jax

    return any(d.platform in ("gpu", "tpu") for d in jax.devices())


def resolve_dtype_policy(requested: str | None) -> tuple[str | None, str | None]:
    """The policy to use and, when it differs from the request, why."""
    if requested in ("mixed_float16", "float16") and not has_accelerator():
        return "float32", (f"dtype_policy {requested} requested but no GPU/TPU is present; "
                           "using float32 (half precision is slower on CPU)")
    return requested, None


@dataclass
class LoadedModel:
    """A KerasHub causal LM ready to generate, and how it was obtained.

    ``family`` holds what differs between model families (context length, stop tokens,
    start token, special tokens), read from the model (:mod:`samplerlab.models.family`);
    it is read from ``causal_lm`` when not given.
    """

    causal_lm: Any
    preset: str
    path: str
    dtype_policy: str | None
    notes: list[str]
    adapter: Any = None  # the DecodingAdapter the engine runs (samplerlab.models.adapters)
    family: ModelFamily | None = None
    distribution: Any = None  # the keras.distribution the weights are laid out with
    quantize: str | None = None  # the Keras quantization mode applied after loading

    def __post_init__(self) -> None:
        if self.family is None:
            self.family = describe_family(self.causal_lm)

    @property
    def fast_decoding(self) -> bool:
        """Whether the engine runs samplerlab's copy-free cache for this model."""
        return bool(self.adapter is not None and self.adapter.fast)

    @property
    def preprocessor(self) -> Any:
        return self.causal_lm.preprocessor

    @property
    def tokenizer(self) -> Any:
        return self.causal_lm.preprocessor.tokenizer

    @property
    def end_token_id(self) -> int:
        return int(self.tokenizer.end_token_id)

    @property
    def stop_token_ids(self) -> tuple[int, ...]:
        """The tokens that end a generation (KerasHub's ``stop_token_ids="auto"``)."""
        return self.family.stop_token_ids

    @property
    def context_length(self) -> int | None:
        """The longest sequence the model takes, or None when nothing states one."""
        return self.family.context_length

    @property
    def max_sequence_length(self) -> int:
        """The longest sequence to feed the model, for capping lengths with ``min``: the
        context length, or :data:`UNSTATED_CONTEXT` (no cap) when the model states none."""
        limit = self.family.context_length
        return limit if limit is not None else UNSTATED_CONTEXT

    @property
    def special_token_ids(self) -> tuple[int, ...]:
        """Tokens stripped from generated text."""
        return self.family.special_token_ids


@native_logs_silenced()  # TensorFlow and XLA start-up notices; Python errors still show
def load_model(preset: str, sequence_length: int = 128,
               dtype_policy: str | None = None, fast_decoding: bool = True, *,
               context_length: int | None = None,
               model_parallel: int | None = None,
               quantize: str | None = None) -> LoadedModel:
    """Load a causal LM and its preprocessor through KerasHub's ``from_preset``.

    With ``fast_decoding`` (the default) a family with a fast decoding adapter (GPT-2)
    decodes with samplerlab's copy-free cache (:mod:`samplerlab.models.adapters`); any
    other model runs KerasHub's own ``call_with_cache``, and a note says so. The model
    object itself is left exactly as KerasHub loaded it.

    Args:
        preset: a preset reference (see the module docstring).
        sequence_length: the preprocessor's sequence length.
        dtype_policy: a Keras dtype policy (half precision falls back to float32 on CPU).
        fast_decoding: use a fast decoding adapter where the family has one.
        context_length: the context length to assume when the model states none.
        model_parallel: shard the weights over this many devices with
            ``keras.distribution.ModelParallel`` and the backbone's own layout map.
        quantize: ``"int8"``: quantize the weights with Keras's ``quantize("int8")``
            after loading (the decoding adapters call the quantized layers as they are).
    """
    path = resolve_preset(preset)
    if preset.startswith(HF_PREFIX) and not hub_reachable():
        path = hub_snapshot(preset)  # the local Hugging Face cache's copy, or a clear error
    directory = inspect_preset(path)
    enable_compilation_cache()
    import keras

    if keras.config.backend() != "jax":
        raise ModelLoadError(f"samplerlab runs its generate loop on Keras's JAX backend, but "
                             f"KERAS_BACKEND is '{keras.config.backend()}': unset it or set "
                             "KERAS_BACKEND=jax")
    policy, note = resolve_dtype_policy(dtype_policy)
    notes = [note] if note else []
    distribution = (model_parallel_distribution(preset, path, model_parallel)
                    if model_parallel and model_parallel > 1 else None)
    with _loadable(directory, path, notes) as where, (
            distribution.scope() if distribution is not None else contextlib.nullcontext()):
        causal_lm = _from_preset(preset, where, sequence_length, policy)
    if quantize is not None:
        _quantize(causal_lm, quantize, preset)
        notes.append(f"weights quantized with Keras's quantize({quantize!r})")
    notes.extend(cpu_speed_notes(policy, quantize))
    hf_config = directory.hf_config if directory is not None else _hub_config(preset)
    family = describe_family(causal_lm, hf_config=hf_config, context_length=context_length)
    if context_length is not None and family.context_source != "model.context_length" \
            and family.context_length is not None and context_length > family.context_length:
        raise ModelLoadError(f"model.context_length ({context_length}) is beyond the context "
                             f"length the model states ({family.context_length}, its "
                             f"{family.context_source}); lower or remove it")
    notes.extend(family.notes)
    if distribution is not None:
        notes.append(f"weights sharded over {model_parallel} devices with "
                     f"{type(causal_lm.backbone).__name__}.get_layout_map")
    from samplerlab.models.adapters import adapter_for

    adapter = adapter_for(causal_lm, fast=fast_decoding)
    if fast_decoding and not adapter.fast:
        notes.append(f"no fast decoding adapter for {adapter.family}; decoding runs "
                     "KerasHub's own call_with_cache")
    return LoadedModel(causal_lm, preset, path, policy, notes, adapter, family, distribution,
                       quantize)


def cpu_speed_notes(policy: str | None, quantize: str | None) -> list[str]:
    """What docs/performance.md measured for these weights on a CPU, where no accelerator
    is present: they are kept (they save memory) but said to be slower where they are."""
    if has_accelerator():
        return []
    notes = []
    if policy in ("bfloat16", "mixed_bfloat16"):
        notes.append(f"dtype_policy {policy} on CPU: XLA:CPU decodes it slower than float32 "
                     "(0.8x on GPT-2 124M at batch 1 and 8; docs/performance.md); it halves "
                     "the weights' memory")
    if quantize == "int8":
        notes.append("quantize int8 on CPU: faster than float32 at batch 8 (1.4x on GPT-2 "
                     "124M), slower at batch 1 (0.7x: each step quantizes its activations; "
                     "docs/performance.md)")
    return notes


def _quantize(causal_lm: Any, mode: str, preset: str) -> None:
    """The backbone's ``quantize(mode)`` (the task's tokenizer layers have nothing to
    quantize and are never built, which Keras refuses), a failure as one line."""
    import warnings

    try:
        with warnings.catch_warnings():
            # Keras warns for every layer without weights (softmax, input, dropout).
            warnings.filterwarnings("ignore", message=".*does not have a `quantize` method")
            causal_lm.backbone.quantize(mode)
    except Exception as exc:  # noqa: BLE001 - Keras raises several kinds; one line for all
        raise ModelLoadError(f"model.quantize: {mode} failed for {preset}: "
                             f"{_first_line(exc)}; remove model.quantize") from exc


def load_spec_model(model_spec: Any, preset: str | None = None) -> LoadedModel:
    """Load the model a spec's ``model:`` section names (or ``preset``, e.g. its fine-tuned
    copy), with all of the section's settings."""
    distribution = model_spec.distribution
    return load_model(preset or model_spec.preset, model_spec.sequence_length,
                      model_spec.dtype_policy,
                      model_spec.fast_decoding, context_length=model_spec.context_length,
                      model_parallel=distribution.model_parallel if distribution else None,
                      quantize=model_spec.quantize)


def _from_preset(preset: str, path: str, sequence_length: int, policy: str | None) -> Any:
    """``CausalLM.from_preset`` with its preprocessor, failures as one line."""
    import keras_hub

    kwargs: dict[str, Any] = {"dtype": policy} if policy else {}
    try:
        preprocessor = keras_hub.models.CausalLMPreprocessor.from_preset(
            path, sequence_length=sequence_length)
        return keras_hub.models.CausalLM.from_preset(path, preprocessor=preprocessor, **kwargs)
    except Exception as exc:  # noqa: BLE001 - turned into one actionable line
        raise _load_error(preset, exc) from exc


def _load_error(preset: str, exc: BaseException) -> ModelLoadError:
    reason = f"{type(exc).__name__}: {_first_line(exc)}"
    if is_local_reference(preset):
        return ModelLoadError(f"could not load preset directory '{preset}': {reason}; "
                              "re-save it with save_to_preset from this keras-hub version")
    if "subclass" in str(exc) and "CausalLM" in str(exc):
        return ModelLoadError(f"KerasHub preset '{preset}' is not a causal LM ({reason}); "
                              f"supported: {supported_classes()} ({MODELS_DOC})")
    if preset.startswith(HF_PREFIX):
        repository = preset[len(HF_PREFIX):]
        return ModelLoadError(
            f"could not download '{preset}' from the Hugging Face Hub ({reason}). Without "
            f"network access, download it where there is (huggingface-cli download "
            f"{repository} --local-dir DIR) and point model.preset at that directory")
    return ModelLoadError(
        f"could not download KerasHub preset '{preset}' ({reason}). Without network access, "
        "point model.preset at a local preset directory saved with save_to_preset or a "
        "Hugging Face checkpoint directory (-o model.preset=PATH) or use the embedded model "
        "(-o model.preset=samplerlab:tiny-en).")


@contextlib.contextmanager
def _loadable(directory: PresetDirectory | None, path: str,
              notes: list[str]) -> Iterator[str]:
    """Where ``from_preset`` should read ``directory``: itself, or, for a transformers
    checkpoint whose config.json names no ``architectures`` (KerasHub's own
    ``export_to_transformers`` omits it for some families, and KerasHub's loader requires
    it), a temporary view of it (links to its files) with the field added."""
    if directory is None or directory.format != TRANSFORMERS_FORMAT \
            or directory.config.get("architectures"):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="samplerlab-hf-") as view:
        for item in directory.path.iterdir():
            if item.name != "config.json":
                os.symlink(item.resolve(), Path(view) / item.name)
        config = {**directory.config, "architectures": [directory.family.causal_lm]}
        (Path(view) / "config.json").write_text(json.dumps(config), encoding="utf-8")
        notes.append(f"{directory.path}/config.json names no architectures; loaded as "
                     f"{directory.family.causal_lm}")
        yield view


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face Hub answers (DNS and a TCP connection), decided quickly:
    offline, ``huggingface_hub`` would otherwise retry for over a minute."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    endpoint = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout).close()
    except OSError:
        return False
    return True


def hub_snapshot(preset: str) -> str:
    """The local Hugging Face cache's snapshot of an ``hf://`` preset, for use offline.

    Raises:
        ModelLoadError: when the cache does not hold it.
    """
    from huggingface_hub import snapshot_download

    repository = preset[len(HF_PREFIX):]
    try:
        return snapshot_download(repository, local_files_only=True)
    except Exception:  # noqa: BLE001 - not cached: one line saying what to do
        raise ModelLoadError(
            f"cannot reach the Hugging Face Hub to download '{preset}', and it is not in the "
            f"local Hugging Face cache: download it where there is network (huggingface-cli "
            f"download {repository} --local-dir DIR) and point model.preset at DIR") from None


def _hub_config(preset: str) -> dict[str, Any] | None:
    """The Hugging Face ``config.json`` of an ``hf://`` preset KerasHub has downloaded."""
    if not preset.startswith(HF_PREFIX):
        return None
    try:
        from huggingface_hub import hf_hub_download

        return json.loads(Path(hf_hub_download(preset[len(HF_PREFIX):], "config.json"))
                          .read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - the context length is then read from the backbone
        return None


def model_parallel_distribution(preset: str, path: str, devices: int) -> Any:
    """``keras.distribution.ModelParallel`` over ``devices`` devices with the backbone's
    own layout map (``get_layout_map``), to load the preset under.

    Raises:
        ModelLoadError: when the family has no layout map or there are too few devices.
    """
    import keras

    from samplerlab.models import internals

    available = keras.distribution.list_devices()
    if devices > len(available):
        raise ModelLoadError(f"model.distribution.model_parallel is {devices}, but this machine "
                             f"has {len(available)} device(s) ({', '.join(available)})")
    try:
        backbone_cls = internals.preset_backbone_class(path)
    except Exception as exc:  # noqa: BLE001 - turned into one actionable line
        raise _load_error(preset, exc) from exc
    if not hasattr(backbone_cls, "get_layout_map"):
        able = ", ".join(f.title for f in FAMILIES.values() if f.layout_map)
        raise ModelLoadError(
            f"model.distribution: {backbone_cls.__name__} has no layout map in KerasHub "
            f"(get_layout_map), so it cannot be sharded; model parallelism works for: {able}")
    mesh = keras.distribution.DeviceMesh(shape=(1, devices), axis_names=("batch", "model"),
                                         devices=available[:devices])
    layout_map = backbone_cls.get_layout_map(mesh, model_parallel_dim_name="model",
                                             data_parallel_dim_name="batch")
    return keras.distribution.ModelParallel(layout_map=layout_map, batch_dim_name="batch")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""
