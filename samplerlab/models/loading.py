"""Loading causal LMs: KerasHub preset names, local preset directories, embedded presets.

``model.preset`` is one of

* a KerasHub preset name (``gpt2_base_en``): downloaded by KerasHub at run time;
* a local preset directory written by ``save_to_preset`` (loaded with ``from_preset(path)``);
* ``samplerlab:<name>``: a preset shipped inside samplerlab (``samplerlab:tiny-en``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from samplerlab._quiet import native_logs_silenced
from samplerlab.compilation import enable_compilation_cache
from samplerlab.errors import ModelLoadError, UserInputError

ASSETS = Path(__file__).resolve().parents[1] / "assets"
EMBEDDED_PREFIX = "samplerlab:"
GPT2_VOCAB_DIR = ASSETS / "vocab" / "gpt2"
# KerasHub's GPT-2 presets all use 1024 positions; known without importing KerasHub.
KNOWN_PRESET_LIMITS = {"gpt2_base_en": 1024, "gpt2_medium_en": 1024, "gpt2_large_en": 1024,
                       "gpt2_extra_large_en": 1024, "gpt2_base_en_cnn_dailymail": 1024}


def embedded_presets() -> dict[str, Path]:
    """Name → directory of every preset shipped with samplerlab."""
    root = ASSETS / "presets"
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir()) if (p / "config.json").is_file()}


def is_local_reference(preset: str) -> bool:
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


def check_preset_reference(preset: str) -> None:
    """Cheap checks before anything loads: embedded names exist, local directories are presets."""
    path = resolve_preset(preset)
    if not is_local_reference(preset):
        return
    p = Path(path)
    if not p.exists():
        raise UserInputError(f"local preset directory '{preset}' does not exist; give a "
                             "KerasHub preset name (gpt2_base_en), a directory written by "
                             "save_to_preset, or samplerlab:tiny-en")
    if not p.is_dir() or not (p / "config.json").is_file():
        raise UserInputError(f"'{preset}' is not a KerasHub preset directory (no config.json; "
                             "write one with save_to_preset)")


def preset_max_sequence_length(preset: str) -> int | None:
    if not is_local_reference(preset):
        return KNOWN_PRESET_LIMITS.get(preset)
    try:
        config = json.loads((Path(resolve_preset(preset)) / "config.json").read_text())
        return int(config["config"]["max_sequence_length"])
    except (OSError, KeyError, ValueError, TypeError):
        return None


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
    """A KerasHub causal LM ready to generate, and how it was obtained."""

    causal_lm: Any
    preset: str
    path: str
    dtype_policy: str | None
    notes: list[str]
    adapter: Any = None  # the DecodingAdapter the engine runs (samplerlab.models.adapters)

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
    def max_sequence_length(self) -> int:
        return int(self.causal_lm.backbone.max_sequence_length)


@native_logs_silenced()  # TensorFlow and XLA start-up notices; Python errors still show
def load_model(preset: str, sequence_length: int = 128,
               dtype_policy: str | None = None, fast_decoding: bool = True) -> LoadedModel:
    """Load a causal LM and its preprocessor through KerasHub's ``from_preset``.

    With ``fast_decoding`` (the default) a family with a fast decoding adapter (GPT-2)
    decodes with samplerlab's copy-free cache (:mod:`samplerlab.models.adapters`); any
    other model runs KerasHub's own ``call_with_cache``, and a note says so. The model
    object itself is left exactly as KerasHub loaded it.
    """
    enable_compilation_cache()
    import keras
    import keras_hub

    if keras.config.backend() != "jax":
        raise ModelLoadError(f"samplerlab runs its generate loop on Keras's JAX backend, but "
                             f"KERAS_BACKEND is '{keras.config.backend()}': unset it or set "
                             "KERAS_BACKEND=jax")
    path = resolve_preset(preset)
    check_preset_reference(preset)
    policy, note = resolve_dtype_policy(dtype_policy)
    kwargs: dict[str, Any] = {"dtype": policy} if policy else {}
    try:
        preprocessor = keras_hub.models.CausalLMPreprocessor.from_preset(
            path, sequence_length=sequence_length)
        causal_lm = keras_hub.models.CausalLM.from_preset(path, preprocessor=preprocessor,
                                                          **kwargs)
    except Exception as exc:  # noqa: BLE001 - turned into one actionable line
        if is_local_reference(preset):
            raise ModelLoadError(f"could not load preset directory '{preset}': "
                                 f"{type(exc).__name__}: {_first_line(exc)}; re-save it with "
                                 "save_to_preset from this keras-hub version") from exc
        raise ModelLoadError(
            f"could not download KerasHub preset '{preset}' ({type(exc).__name__}: "
            f"{_first_line(exc)}). Without network access, point model.preset at a local "
            "preset directory saved with save_to_preset (-o model.preset=PATH) or use the "
            "embedded model (-o model.preset=samplerlab:tiny-en).") from exc
    from samplerlab.models.adapters import adapter_for

    adapter = adapter_for(causal_lm, fast=fast_decoding)
    notes = [note] if note else []
    if fast_decoding and not adapter.fast:
        notes.append(f"no fast decoding adapter for {adapter.family}; decoding runs "
                     "KerasHub's own call_with_cache")
    return LoadedModel(causal_lm, preset, path, policy, notes, adapter)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""
