"""Top-k sampling with a traced temperature."""

from __future__ import annotations

import keras
import keras_hub

from samplerlab.traced import TracedParams


@keras.saving.register_keras_serializable(package="samplerlab")
class TracedTopKSampler(TracedParams, keras_hub.samplers.TopKSampler):
    """KerasHub's ``TopKSampler`` (Fan et al. 2018) whose temperature is a traced value.

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
    from samplerlab.samplers.traced_top_k import TracedTopKSampler
    causal_lm.compile(sampler=TracedTopKSampler(k=40, temperature=0.8, seed=1))
    causal_lm.generate(["Keras is a"])
    ```
    """

    def __init__(self, k: int = 5, temperature: float = 1.0, seed: int | None = None) -> None:
        super().__init__(k=k, seed=seed)
        self.temperature = self.add_param("temperature", temperature)
        self.add_static("k", int(k))
