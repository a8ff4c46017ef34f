"""Top-k sampling whose temperature is a program parameter."""

from __future__ import annotations

from functools import partial

import keras
import keras_hub

from samplerlab.decoding.contract import SamplerCapabilities, default_capabilities
from samplerlab.decoding.distributions import top_k
from samplerlab.decoding.params import ProgramParams


# Registered under its former name, so saved configs still deserialize.
@keras.saving.register_keras_serializable(package="samplerlab", name="TracedTopKSampler")
class TopKSampler(ProgramParams, keras_hub.samplers.TopKSampler):
    """KerasHub's ``TopKSampler`` (Fan et al. 2018) whose temperature is a program parameter.

    Token for token identical to ``keras_hub.samplers.TopKSampler`` under the same seed;
    only the temperature moves from a Python constant to a ``keras.Variable``, so a sweep
    over temperature (or seeds) reuses one compiled generate function. ``k`` fixes a
    shape, so it stays static and is part of :meth:`structure_key`.

    Args:
        k: int, the number of most probable tokens to sample from.
        temperature: float, softmax temperature (> 0).
        seed: int, the random seed. Defaults to ``None``.

    Example:

    ```python
    from samplerlab.samplers.top_k import TopKSampler
    causal_lm.compile(sampler=TopKSampler(k=40, temperature=0.8, seed=1))
    causal_lm.generate(["Keras is a"])
    ```
    """

    def __init__(self, k: int = 5, temperature: float = 1.0, seed: int | None = None) -> None:
        super().__init__(k=k, seed=seed)
        self.temperature = self.add_param("temperature", temperature)
        self.add_static("k", int(k))

    def decoding_capabilities(self) -> SamplerCapabilities:
        """KerasHub's base loop; the top-k distribution (:func:`~samplerlab.decoding.
        distributions.top_k`)."""
        return default_capabilities(self, loop="base", distribution=partial(top_k, self))
