"""A mixin that makes a KerasHub sampler's numeric parameters traced values.

KerasHub's jitted generate function (JAX backend) receives ``sampler.variables`` as
state, so a value kept in a ``keras.Variable`` listed there is an *input* of the compiled
program, not a constant baked into it. A sweep over such values (temperature, top-p's
``p``) then compiles once: the runner swaps in the next sampler without calling
``compile()`` when :meth:`TracedParams.structure_key` is unchanged.
"""

from __future__ import annotations

from typing import Any

import keras


class TracedParams:
    """Mixin for ``keras_hub.samplers.Sampler`` subclasses with traced numeric parameters.

    Subclasses call :meth:`add_param` for each numeric parameter that does not change the
    program (temperature, p) and list everything that does (class, static shapes such as
    top-k's ``k``) in :meth:`static_params`.

    Example:

    ```python
    import keras_hub
    from samplerlab.samplers.traced_params import TracedParams

    class TracedRandom(TracedParams, keras_hub.samplers.RandomSampler):
        def __init__(self, temperature=1.0, seed=None):
            super().__init__(seed=seed)
            self.temperature = self.add_param("temperature", temperature)

    a, b = TracedRandom(0.7, seed=1), TracedRandom(1.3, seed=2)
    assert a.structure_key() == b.structure_key()
    ```
    """

    def add_param(self, name: str, value: float) -> keras.Variable:
        """Store ``value`` as a float32 non-trainable Variable and track it as state."""
        params = self.__dict__.setdefault("_traced_params", {})
        # float32 always: no autocast to a mixed-precision compute dtype.
        variable = keras.Variable(float(value), dtype="float32", trainable=False,
                                  autocast=False, name=name)
        params[name] = variable
        return variable

    @property
    def variables(self) -> list:
        # Seed state first (KerasHub's order), then the traced parameters.
        return [*super().variables, *self.__dict__.get("_traced_params", {}).values()]

    def params(self) -> dict[str, float]:
        """The current values of the traced parameters, as Python floats."""
        return {name: float(keras.ops.convert_to_numpy(v))
                for name, v in self.__dict__.get("_traced_params", {}).items()}

    def static_params(self) -> tuple:
        """Values that change the compiled program; subclasses extend this."""
        return ()

    def structure_key(self) -> tuple:
        """Equal keys mean one compiled generate function serves both samplers."""
        cls = type(self)
        return (f"{cls.__module__}.{cls.__qualname__}", *self.static_params())

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(self.params())
        return config
