"""Program parameters: sampler and processor parameters that are inputs of the compiled
program (:class:`ProgramParams`), so a sweep over them compiles once.

KerasHub's jitted generate function (JAX backend) receives ``sampler.variables`` as
state, so a value kept in a ``keras.Variable`` listed there is an *input* of the compiled
program, not a constant baked into it (JAX calls such a value *traced*: hence the older
name ``samplerlab.traced.TracedParams``, kept as an alias). A sweep over such values
(temperature, top-p's ``p``, a penalty) then compiles once: the runner swaps in the next
sampler without calling ``compile()`` when :meth:`ProgramParams.structure_key` is
unchanged, or copies the values over with :meth:`ProgramParams.assign_params`.

Parameters that change the program (a shape such as top-k's ``k`` in KerasHub's sampler,
an n-gram size, a flag) are *static*: registered with :meth:`ProgramParams.add_static`,
they are part of the structure key. Both kinds make up :meth:`ProgramParams.params` and
the object's Keras config, so every user of the mixin serialises with
``keras.saving.serialize_keras_object`` (``keras_hub.samplers.serialize``) and rebuilds
with ``from_config``.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np


class ProgramParams:
    """Mixin for samplers (``keras_hub.samplers.Sampler`` subclasses) and chain processors.

    In ``__init__``, call :meth:`add_param` for each numeric parameter that does not change
    the program and :meth:`add_static` for each one that does. The constructor's argument
    names must match the registered names: ``get_config`` returns them, ``from_config``
    passes them back to the constructor.

    Example:

    ```python
    import keras_hub
    from samplerlab.decoding.params import ProgramParams

    class SweepableRandom(ProgramParams, keras_hub.samplers.RandomSampler):
        def __init__(self, temperature=1.0, seed=None):
            super().__init__(seed=seed)
            self.temperature = self.add_param("temperature", temperature)

    a, b = SweepableRandom(0.7, seed=1), SweepableRandom(1.3, seed=2)
    assert a.structure_key() == b.structure_key()
    a.assign_params(b)
    assert a.params() == b.params()
    ```
    """

    def add_param(self, name: str, value: float | int, dtype: str = "float32") -> keras.Variable:
        """Store ``value`` as a non-trainable float32 (or int32) Variable, tracked as state."""
        if dtype not in ("float32", "int32"):
            raise ValueError(f"a program parameter is float32 or int32, got {dtype!r}")
        # autocast off: a mixed-precision policy must not turn it into float16.
        variable = keras.Variable(value, dtype=dtype, trainable=False, autocast=False,
                                  name=name)
        self.__dict__.setdefault("_program_params", {})[name] = variable
        return variable

    def add_static(self, name: str, value: Any) -> Any:
        """Record a parameter that changes the compiled program; returns ``value``.

        ``value`` must be JSON-friendly (numbers, strings, booleans, None, lists of those).
        """
        self.__dict__.setdefault("_static_params", {})[name] = value
        return value

    @property
    def variables(self) -> list:
        """The parent's variables (a sampler's seed state first, as in KerasHub), then ours."""
        parent = getattr(super(), "variables", [])
        return [*parent, *self.__dict__.get("_program_params", {}).values()]

    def params(self) -> dict[str, Any]:
        """Every parameter's current value as Python data: traced ones, then static ones."""
        out = {name: _python_number(keras.ops.convert_to_numpy(v.value))
               for name, v in self.__dict__.get("_program_params", {}).items()}
        out.update(self.__dict__.get("_static_params", {}))
        return out

    def structure_key(self) -> tuple:
        """Equal keys mean one compiled generate function serves both objects."""
        cls = type(self)
        statics = self.__dict__.get("_static_params", {})
        return (f"{cls.__module__}.{cls.__qualname__}",
                tuple(self.__dict__.get("_program_params", {})),
                tuple((name, _frozen(value)) for name, value in sorted(statics.items())))

    def assign_params(self, other: Any) -> None:
        """Take ``other``'s parameter values and seed state; the compiled program stays valid.

        Raises:
            ValueError: ``other`` has a different structure key.
        """
        key = self.structure_key()
        other_key = getattr(other, "structure_key", lambda: None)()
        if key != other_key:
            raise ValueError(f"cannot assign parameters across structures: {key} vs "
                             f"{other_key}")
        for mine, theirs in zip(self.variables, other.variables, strict=True):
            mine.assign(theirs.value)

    def get_config(self) -> dict[str, Any]:
        parent = getattr(super(), "get_config", None)
        config = parent() if parent is not None else {}
        config.update(self.params())
        return config


def _python_number(value: np.ndarray) -> int | float:
    """A 0-d int32/float32 array as a Python number; a float32 as its shortest decimal
    (0.7, not 0.699999988079071), which converts back to the same float32."""
    if value.dtype.kind == "f":
        return float(str(np.float32(value)))
    return int(value)


def _frozen(value: Any) -> Any:
    """A hashable stand-in for a static value (lists become tuples)."""
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    return value
