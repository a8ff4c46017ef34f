"""Top-a as a KerasHub sampler and as a samplerlab chain processor."""

import keras
from keras import ops
from keras_hub.samplers import Sampler

from samplerlab.processors.base import Context, Processor, keep
from samplerlab.traced import TracedParams


def top_a_mask(probabilities, a):
    """True where ``p >= a * max(p)**2`` (the most probable token always qualifies)."""
    top = ops.max(probabilities, axis=-1, keepdims=True)
    return probabilities >= a * ops.square(top)


@keras.saving.register_keras_serializable(package="samplerlab_example")
class TopASampler(TracedParams, Sampler):
    """Top-a sampling: sample among the tokens with ``p >= a * p_max**2``.

    ``a`` and ``temperature`` are traced values (:class:`samplerlab.traced.TracedParams`):
    a sweep over them compiles once. The sampler serialises like KerasHub's
    (``keras_hub.samplers.serialize`` / ``deserialize``).

    Args:
        a: float in (0, 1], the ratio to the squared top probability.
        temperature: float, divides the logits before the softmax.
        seed: int, the random seed.

    Example:

    ```python
    from samplerlab_example.sampling import TopASampler
    causal_lm.compile(sampler=TopASampler(a=0.2, seed=1))
    causal_lm.generate(["Keras is a"])
    ```
    """

    def __init__(self, a=0.2, temperature=1.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.a = self.add_param("a", a)
        self.temperature = self.add_param("temperature", temperature)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def get_next_token(self, probabilities):
        kept = ops.where(top_a_mask(probabilities, self.a), probabilities, 0.0)
        drawn = keras.random.categorical(ops.log(kept), 1, seed=self.seed_generator,
                                         dtype="int32")
        return ops.squeeze(drawn, axis=-1)

    def get_config(self):
        config = super().get_config()
        config["seed"] = self.seed
        return config


@keras.saving.register_keras_serializable(package="samplerlab_example")
class TopA(Processor):
    """Top-a as a chain processor; ``a`` is traced, so sweeping it does not recompile."""

    def __init__(self, a=0.2):
        self.a = self.add_param("a", a)

    def process(self, logits, context: Context):
        return keep(logits, top_a_mask(keras.activations.softmax(logits, axis=-1), self.a))
