"""Generate programs kept on disk (``jax.export``), so a fresh process skips tracing them.

The persistent XLA cache (:mod:`samplerlab.compilation`) saves a second process the XLA
compile, but not the Python tracing of KerasHub's generate loop and its lowering to
StableHLO, which must happen before the XLA cache can even be asked (its key is the
lowered module): ~0.45 s of a warm first call on a small model, most of it. samplerlab
therefore also keeps the *exported* generate program, serialized by ``jax.export``, beside
the XLA cache (``~/.cache/samplerlab/xla-programs`` by default; ``<DIR>-programs`` with
``SAMPLERLAB_COMPILATION_CACHE=DIR``); a later process deserializes it and calls it, so
its first call costs a cache lookup and the run.

A program is reused only when everything that shapes it is equal (the key): the
versions of JAX, jaxlib, Keras, KerasHub and Python, a digest of samplerlab's own
source files, the platform and ``XLA_FLAGS``, the model's configuration, variable
shapes and dtypes, its tokenizer's vocabulary and whether fast decoding is on, the
sampler's class and structure (``structure_key()`` or, without one, its config), the input
shapes and the stop tokens.
Samplers (and chain processors) whose classes come from anywhere but samplerlab,
KerasHub and Keras are never kept: a plugin's code can change without any of the above
changing. ``SAMPLERLAB_COMPILATION_CACHE=0`` turns this cache off with the XLA one.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

from samplerlab.compilation import compilation_cache_dir

TRUSTED_MODULES = ("samplerlab.", "keras_hub.", "keras.")
_SOURCE_DIGEST: str | None = None


def programs_dir() -> Path | None:
    """Where exported programs are kept (beside the XLA cache: ``<xla dir>-programs``), or
    None when the compilation caches are off."""
    xla = compilation_cache_dir()
    return None if xla is None else xla.with_name(f"{xla.name}-programs")


def cacheable(sampler: Any) -> bool:
    """Whether ``sampler``'s program may be kept: all its code is samplerlab's or KerasHub's."""
    parts = [sampler, *getattr(sampler, "processors", [])]
    return all(cls.__module__.startswith(TRUSTED_MODULES) or cls.__module__ == "builtins"
               for part in parts for cls in type(part).__mro__)


def program_key(causal_lm: Any, inputs: dict, stop_token_ids: tuple | None) -> str:
    """The digest naming the program that ``causal_lm.generate`` would run on ``inputs``."""
    import jax
    import jaxlib
    import keras
    import keras_hub

    sampler = causal_lm.sampler
    structure = (sampler.structure_key() if hasattr(sampler, "structure_key")
                 else sampler.get_config())
    device = jax.devices()[0]
    parts = {
        "versions": [jax.__version__, jaxlib.__version__, keras.__version__,
                     keras_hub.__version__, sys.version, platform.machine()],
        "samplerlab": _samplerlab_digest(),
        "device": [device.platform, getattr(device, "device_kind", ""),
                   os.environ.get("XLA_FLAGS", ""), bool(jax.config.jax_enable_x64)],
        "model": _model_digest(causal_lm),
        "sampler": [f"{type(sampler).__module__}.{type(sampler).__qualname__}", structure,
                    [(tuple(v.shape), str(v.dtype)) for v in sampler.variables]],
        "inputs": {k: [tuple(v.shape), _dtype_name(v)] for k, v in sorted(inputs.items())},
        "stop_token_ids": list(stop_token_ids) if stop_token_ids is not None else None,
    }
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _dtype_name(tensor: Any) -> str:
    """``int32`` whether the preprocessor handed over a NumPy, TensorFlow or JAX tensor."""
    dtype = tensor.dtype
    return str(getattr(dtype, "name", dtype))


def _model_digest(causal_lm: Any) -> str:
    """The model's class, backbone configuration, variables and decoding path (memoised:
    the same model object is asked once per batch)."""
    from samplerlab.decoding import has_fast_decoding

    fast = has_fast_decoding(causal_lm)
    cached = getattr(causal_lm, "_samplerlab_program_digest", None)
    if cached is not None and cached[0] == fast:
        return cached[1]
    parts = [type(causal_lm).__qualname__, causal_lm.backbone.get_config(), fast,
             str(causal_lm.compute_dtype),
             [(v.path, tuple(v.shape), str(v.dtype)) for v in causal_lm.variables],
             _vocabulary_digest(causal_lm)]
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    object.__setattr__(causal_lm, "_samplerlab_program_digest", (fast, digest.hexdigest()))
    return digest.hexdigest()


def _vocabulary_digest(causal_lm: Any) -> str | None:
    """The tokenizer's vocabulary: a program may bake token ids in (DRY's sequence breakers
    are tokenized when the chain is traced), and two vocabularies can share every shape."""
    tokenizer = getattr(getattr(causal_lm, "preprocessor", None), "tokenizer", None)
    get_vocabulary = getattr(tokenizer, "get_vocabulary", None)
    if not callable(get_vocabulary):
        return None
    return hashlib.sha256("\n".join(map(str, get_vocabulary())).encode()).hexdigest()


def _samplerlab_digest() -> str:
    global _SOURCE_DIGEST
    if _SOURCE_DIGEST is None:
        digest = hashlib.sha256()
        package = Path(__file__).resolve().parent
        for path in sorted(package.rglob("*.py")):
            digest.update(str(path.relative_to(package)).encode())
            digest.update(path.read_bytes())
        _SOURCE_DIGEST = digest.hexdigest()
    return _SOURCE_DIGEST


class ProgramCache:
    """Exported generate programs of one model: in memory, and on disk when allowed.

    :meth:`generate_function` returns a callable with the behaviour of KerasHub's
    ``make_generate_function()`` result (``fn(inputs, stop_token_ids=...)``; the
    sampler's variables are read at call time and its seed state written back), or None
    where the program cannot be kept (not JAX, an untrusted sampler, caches off).
    """

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory if directory is not None else programs_dir()
        self._loaded: dict[str, Any] = {}
        self.loaded_from_disk = 0
        self.exported = 0

    def generate_function(self, causal_lm: Any, inputs: dict,
                          stop_token_ids: tuple | None) -> Any:
        import keras

        if (self.directory is None or keras.config.backend() != "jax"
                or not cacheable(causal_lm.sampler)):
            return None
        from keras import ops, tree

        key = program_key(causal_lm, inputs, stop_token_ids)
        if key not in self._loaded:
            try:
                self._loaded[key] = self._load_or_export(
                    key, causal_lm, tree.map_structure(ops.convert_to_tensor, inputs),
                    stop_token_ids)
            except Exception:  # noqa: BLE001 - never worse than KerasHub's own path,
                # which reports a sampler's real errors as it always has
                self._loaded[key] = None
        program = self._loaded[key]
        if program is None:
            return None

        def call(inputs: dict, stop_token_ids: Any = None) -> dict:
            outputs, sampler_values = program(tree.map_structure(ops.convert_to_tensor, inputs),
                                              _state(causal_lm))
            for variable, value in zip(causal_lm.sampler.variables, sampler_values,
                                       strict=True):
                variable.assign(value)
            return outputs

        return call

    def _load_or_export(self, key: str, causal_lm: Any, inputs: dict,
                        stop_token_ids: tuple | None) -> Any:
        import jax
        from jax import export

        path = self.directory / f"{key}.jaxexport"
        exported = None
        if path.is_file():
            try:
                exported = export.deserialize(bytearray(path.read_bytes()))
                self.loaded_from_disk += 1
            except Exception:  # noqa: BLE001 - a damaged entry is rebuilt, never fatal
                exported = None
        if exported is None:
            exported = export.export(_generate_program(causal_lm, stop_token_ids))(
                inputs, _state(causal_lm))
            self.exported += 1
            _write_atomically(path, exported.serialize())
        # Compiled ahead of time for these shapes: a call never recompiles because an
        # argument changed only in committed-ness or weak type (assigned seed states).
        return jax.jit(exported.call).lower(inputs, _state(causal_lm)).compile()


def _state(causal_lm: Any) -> tuple:
    return ([v.value for v in causal_lm.sampler.variables],
            [v.value for v in causal_lm.trainable_variables],
            [v.value for v in causal_lm.non_trainable_variables])


def _generate_program(causal_lm: Any, stop_token_ids: tuple | None) -> Any:
    """KerasHub's JAX generate program (``CausalLM.make_generate_function``), stateless."""
    import jax
    import keras

    @jax.jit
    def program(inputs: dict, state: tuple) -> tuple:
        sampler_values, trainable, non_trainable = state
        mapping = itertools.chain(
            zip(causal_lm.sampler.variables, sampler_values, strict=True),
            zip(causal_lm.trainable_variables, trainable, strict=True),
            zip(causal_lm.non_trainable_variables, non_trainable, strict=True))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            outputs = causal_lm.generate_step(inputs, stop_token_ids)
        updated = []
        for variable in causal_lm.sampler.variables:
            value = scope.get_current_value(variable)
            updated.append(value if value is not None else variable.value)
        return outputs, updated

    return program


def _write_atomically(path: Path, data: bytes | bytearray) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(bytes(data))
        os.replace(tmp, path)
    except OSError:
        pass  # an unwritable cache must never stop a run
