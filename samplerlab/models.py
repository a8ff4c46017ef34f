"""Loading GPT-2 models: KerasHub preset names, local preset directories, embedded presets.

``model.preset`` is one of

* a KerasHub preset name (``gpt2_base_en``): downloaded by KerasHub at run time;
* a local preset directory written by ``save_to_preset`` (loaded with ``from_preset(path)``);
* ``samplerlab:<name>``: a preset shipped inside samplerlab (``samplerlab:tiny-en``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from samplerlab._quiet import import_tensorflow_quietly, native_logs_silenced
from samplerlab.compilation import enable_compilation_cache
from samplerlab.decoding import install_fast_decoding
from samplerlab.errors import ModelLoadError, UserInputError

ASSETS = Path(__file__).parent / "assets"
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
    fast_decoding: bool = False

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

    With ``fast_decoding`` (the default) a GPT-2 gets samplerlab's copy-free cached
    forward pass (:mod:`samplerlab.decoding`); other models are left as loaded.
    """
    enable_compilation_cache()
    import keras_hub

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
    fast = fast_decoding and install_fast_decoding(causal_lm)
    return LoadedModel(causal_lm, preset, path, policy, [note] if note else [], fast)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""


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
