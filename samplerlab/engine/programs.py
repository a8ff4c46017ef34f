"""Compiled generate programs: one per sampler structure and input shape, kept on disk.

A *program* is :func:`samplerlab.decoding.generate.generate_step` for one model, one sampler
structure, one input shape and one set of stop tokens, compiled ahead of time. Its state
(the sampler's variables and the model's weights) is an argument, so samplers that differ
only in program parameters (a sweep over ``p`` or ``temperature``, another seed) share one
program: a sweep compiles once.

The persistent XLA cache (:mod:`samplerlab.compilation`) saves a second process the XLA
compile, but not the Python tracing of the generate loop and its lowering to StableHLO,
which must happen before the XLA cache can even be asked (its key is the lowered module):
~0.45 s of a warm first call on a small model, most of it. So programs are also kept
*exported*, serialized by ``jax.export``, beside the XLA cache
(``~/.cache/samplerlab/xla-programs`` by default; ``<DIR>-programs`` with
``SAMPLERLAB_COMPILATION_CACHE=DIR``); a later process deserializes one and compiles it,
so its first call costs a cache lookup and the run.

A program is reused only when everything that shapes it is equal (its key): the versions
of JAX, jaxlib, Keras, KerasHub and Python, a digest of samplerlab's own source files,
the platform and ``XLA_FLAGS``, the model's configuration, variable shapes and dtypes, its
tokenizer's vocabulary and its decoding adapter, the sampler's class and structure
(:attr:`~samplerlab.decoding.contract.SamplerCapabilities.structure`), the input shapes, the stop
tokens and the step observers. Programs of samplers
(and chain processors) whose classes come from anywhere but samplerlab, KerasHub and
Keras are never written to disk, since a plugin's code can change without any of the
above changing; a plugin sampler without a structure gets a program of its own.
``SAMPLERLAB_COMPILATION_CACHE=0`` turns the disk cache off with the XLA one.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import platform
import sys
from functools import cached_property
from pathlib import Path
from typing import Any

from samplerlab.compilation import compilation_cache_dir
from samplerlab.decoding.contract import attached_models, capabilities

TRUSTED_MODULES = ("samplerlab.", "keras_hub.", "keras.")
_SOURCE_DIGEST: str | None = None


def programs_dir() -> Path | None:
    """Where exported programs are kept (beside the XLA cache: ``<xla dir>-programs``), or
    None when the compilation caches are off."""
    xla = compilation_cache_dir()
    return None if xla is None else xla.with_name(f"{xla.name}-programs")


def trusted(*parts: Any) -> bool:
    """Whether all of these objects' code is samplerlab's, KerasHub's or Keras's."""
    return all(cls.__module__.startswith(TRUSTED_MODULES) or cls.__module__ == "builtins"
               for part in parts for cls in type(part).__mro__)


def trusted_sampler(sampler: Any) -> bool:
    """Whether all of ``sampler``'s code (its components too: a chain's processors) is
    trusted (:func:`trusted`)."""
    return trusted(sampler, *capabilities(sampler).components)


def program_key(model: str, sampler: Any, inputs: dict, stop_token_ids: tuple | None,
                observers: tuple = (), prefill: int | None = None) -> str | None:
    """The digest naming a program (``model``: :func:`model_digest`), or None for a
    sampler without a structure."""
    structure = capabilities(sampler).structure
    if structure is None:
        return None
    import jax
    import jaxlib
    import keras
    import keras_hub

    device = jax.devices()[0]
    parts = {
        "versions": [jax.__version__, jaxlib.__version__, keras.__version__,
                     keras_hub.__version__, sys.version, platform.machine()],
        "samplerlab": _samplerlab_digest(),
        "device": [device.platform, getattr(device, "device_kind", ""),
                   os.environ.get("XLA_FLAGS", ""), bool(jax.config.jax_enable_x64)],
        "model": model,
        "sampler": [f"{type(sampler).__module__}.{type(sampler).__qualname__}", structure,
                    [(tuple(v.shape), str(v.dtype)) for v in sampler.variables]],
        "inputs": {k: [tuple(v.shape), _dtype_name(v)] for k, v in sorted(inputs.items())},
        "stop_token_ids": list(stop_token_ids) if stop_token_ids is not None else None,
        "observers": [o.structure_key() for o in observers],
        "prefill": prefill,
    }
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _dtype_name(tensor: Any) -> str:
    """``int32`` whether the preprocessor handed over a NumPy, TensorFlow or JAX tensor."""
    dtype = tensor.dtype
    return str(getattr(dtype, "name", dtype))


def model_digest(adapter: Any) -> str:
    """The model's class, backbone configuration, variables, vocabulary and decoding
    adapter, hashed."""
    lm = adapter.causal_lm
    parts = [type(lm).__qualname__, lm.backbone.get_config(), adapter.name,
             str(lm.compute_dtype),
             [(v.path, tuple(v.shape), str(v.dtype)) for v in lm.variables],
             _vocabulary_digest(lm)]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


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
        package = Path(__file__).resolve().parents[1]
        for path in sorted(package.rglob("*.py")):
            digest.update(str(path.relative_to(package)).encode())
            digest.update(path.read_bytes())
        _SOURCE_DIGEST = digest.hexdigest()
    return _SOURCE_DIGEST


class Program:
    """A compiled generate program; calling it runs one batch with a sampler's state.

    The sampler's variables (program parameters, seed state) are read at call time and
    the updated seed state is written back, as KerasHub's generate function does.
    """

    def __init__(self, compiled: Any, adapter: Any, source: str,
                 prefill: int | None = None) -> None:
        self.compiled = compiled
        self.adapter = adapter
        self.source = source  # "traced", "exported" or "loaded"
        self.prefill = prefill  # the seed pass's length (None: all positions)

    def __call__(self, sampler: Any, inputs: dict) -> dict:
        from samplerlab.decoding.generate import prefill_length

        if self.prefill is not None and prefill_length(inputs["padding_mask"]) > self.prefill:
            raise ValueError(
                f"this program seeds the cache over {self.prefill} positions, but the "
                "batch's shortest prompt is longer: get the program for these inputs "
                "(ProgramCache.get)")
        outputs, values = self.compiled(_tensors(inputs), state(self.adapter, sampler))
        for variable, value in zip(sampler.variables, values, strict=True):
            variable.assign(value)
        return outputs


class ProgramCache:
    """The compiled generate programs of one model (in memory, and on disk when allowed).

    Args:
        adapter: the model's decoding adapter.
        directory: where exported programs live; default :func:`programs_dir` (None when
            the caches are off).
        persistent: ``False`` keeps programs in memory only.

    Example:

    ```python
    from samplerlab.engine.programs import ProgramCache
    from samplerlab.samplers.top_k import TopKSampler

    # model: a LoadedModel
    inputs = model.preprocessor.generate_preprocess(["Keras is"], sequence_length=16)
    programs = ProgramCache(model.adapter, persistent=False)
    for temperature in (0.7, 1.3):  # same structure, other values: one compiled program
        sampler = TopKSampler(k=10, temperature=temperature, seed=1)
        outputs = programs.get(sampler, inputs, stop_token_ids=None)(sampler, inputs)
    assert programs.compiled == 1
    ```
    """

    def __init__(self, adapter: Any, directory: Path | None = None, *,
                 persistent: bool = True) -> None:
        self.adapter = adapter
        self.directory = (directory or programs_dir()) if persistent else None
        self._programs: dict[str, Program] = {}
        self._unkeyed: tuple[Any, Program] | None = None  # the last structure-less sampler's
        self._digests: dict[int, str] = {}  # extra models' digests, by adapter id
        self.compiled = 0
        self.exported = 0
        self.loaded_from_disk = 0

    @cached_property
    def model_digest(self) -> str:
        return model_digest(self.adapter)

    def key(self, sampler: Any, inputs: dict, stop_token_ids: tuple | None,
            observers: tuple = ()) -> str | None:
        """The program key of ``sampler`` on these inputs (:func:`program_key`); a
        sampler's extra models (:func:`extra_adapters`) are part of it."""
        models = "+".join([self.model_digest, *(
            self._digests.setdefault(id(a), model_digest(a))
            for a in extra_adapters(self.adapter, sampler))])
        return program_key(models, sampler, inputs, stop_token_ids, observers,
                           self.prefill(inputs))

    def prefill(self, inputs: dict) -> int | None:
        """The seed pass's length for these inputs, where the adapter seeds a prefix
        (:func:`~samplerlab.decoding.generate.prefill_length`)."""
        from samplerlab.decoding.generate import prefill_length

        return prefill_length(inputs["padding_mask"]) if self.adapter.prefills else None

    def get(self, sampler: Any, inputs: dict, stop_token_ids: tuple | None,
            observers: tuple = ()) -> Program:
        """The program for ``sampler`` on inputs of this shape (with these step observers,
        :mod:`samplerlab.decoding.observers`), built on first use."""
        key = self.key(sampler, inputs, stop_token_ids, observers)
        build = (sampler, inputs, stop_token_ids, observers)
        if key is None:
            if self._unkeyed is None or self._unkeyed[0] is not sampler:
                self._unkeyed = (sampler, self._build(None, *build))
            return self._unkeyed[1]
        if key not in self._programs:
            self._programs[key] = self._build(key, *build)
        return self._programs[key]

    def _build(self, key: str | None, sampler: Any, inputs: dict,
               stop_token_ids: tuple | None, observers: tuple) -> Program:
        import jax

        inputs = _tensors(inputs)
        args = (inputs, state(self.adapter, sampler))
        prefill = self.prefill(inputs)
        make = _stateless_program(self.adapter, sampler, stop_token_ids, observers, prefill)
        program, source = None, "traced"
        keep = trusted_sampler(sampler) and trusted(*observers)
        if key is not None and self.directory is not None and keep:
            program, source = self._exported(key, make, args)
        if program is None:
            program = make
        # Compiled ahead of time for these shapes: a call never recompiles because an
        # argument changed only in committed-ness or weak type (assigned seed states).
        compiled = jax.jit(program).lower(*args).compile()
        self.compiled += 1
        return Program(compiled, self.adapter, source, prefill)

    def _exported(self, key: str, program: Any, args: tuple) -> tuple[Any, str]:
        """``(exported.call, source)`` read from disk or exported now; ``(None, "traced")``
        when this program cannot be exported (the in-memory program then serves)."""
        from jax import export

        path = self.directory / f"{key}.jaxexport"
        if path.is_file():
            try:
                exported = export.deserialize(bytearray(path.read_bytes()))
                self.loaded_from_disk += 1
                return exported.call, "loaded"
            except Exception:  # noqa: BLE001, S110 - a damaged entry is rebuilt, never fatal
                pass
        try:
            exported = export.export(program)(*args)
        except Exception:  # noqa: BLE001 - the in-memory program reports real errors
            return None, "traced"
        self.exported += 1
        _write_atomically(path, exported.serialize())
        return exported.call, "exported"


def _tensors(inputs: dict) -> dict:
    from keras import ops, tree

    return tree.map_structure(ops.convert_to_tensor, inputs)


def extra_adapters(adapter: Any, sampler: Any) -> list:
    """The decoding adapters of a sampler's attached extra models
    (:attr:`~samplerlab.decoding.contract.SamplerCapabilities.extra_models`), other than
    the program's model."""
    extras: list = []
    for extra in attached_models(sampler):
        if all(extra.causal_lm is not a.causal_lm for a in [adapter, *extras]):
            extras.append(extra)
    return extras


def state(adapter: Any, sampler: Any) -> tuple:
    """The program's state argument: sampler variables, the model's weights, then the
    weights of the sampler's own models (:func:`extra_adapters`): all inputs of the
    program, none baked into it."""
    lm = adapter.causal_lm
    extras = [([v.value for v in a.causal_lm.trainable_variables],
               [v.value for v in a.causal_lm.non_trainable_variables])
              for a in extra_adapters(adapter, sampler)]
    return ([v.value for v in sampler.variables],
            [v.value for v in lm.trainable_variables],
            [v.value for v in lm.non_trainable_variables], extras)


def _stateless_program(adapter: Any, sampler: Any, stop_token_ids: tuple | None,
                       observers: tuple = (), prefill: int | None = None) -> Any:
    """``generate_step`` as a pure function of ``(inputs, state)`` for ``jax.jit``."""
    import jax
    import keras

    from samplerlab.decoding.generate import generate_step

    lm = adapter.causal_lm

    extras = [a.causal_lm for a in extra_adapters(adapter, sampler)]

    @jax.jit
    def program(inputs: dict, state: tuple) -> tuple:
        sampler_values, trainable, non_trainable, extra_values = state
        mapping = itertools.chain(
            zip(sampler.variables, sampler_values, strict=True),
            zip(lm.trainable_variables, trainable, strict=True),
            zip(lm.non_trainable_variables, non_trainable, strict=True),
            *(itertools.chain(zip(m.trainable_variables, t, strict=True),
                              zip(m.non_trainable_variables, n, strict=True))
              for m, (t, n) in zip(extras, extra_values, strict=True)))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            outputs = generate_step(adapter, sampler, inputs, stop_token_ids, observers,
                                    prefill)
        updated = []
        for variable in sampler.variables:
            value = scope.get_current_value(variable)
            updated.append(value if value is not None else variable.value)
        return outputs, updated

    return program


def _write_atomically(path: Path, data: bytes | bytearray) -> None:
    from samplerlab.results import atomic_write

    try:
        atomic_write(path, bytes(data))
    except OSError:
        pass  # an unwritable cache must never stop a run
