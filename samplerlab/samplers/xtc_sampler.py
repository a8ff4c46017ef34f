"""XTC ("exclude top choices"): sometimes drop the most obvious continuations."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops
from keras_hub.samplers import Sampler

from samplerlab.decoding.contract import SamplerCapabilities, default_capabilities
from samplerlab.decoding.loop import history_loop
from samplerlab.decoding.observers import is_observed
from samplerlab.decoding.params import ProgramParams


@keras.saving.register_keras_serializable(package="samplerlab")
class XTCSampler(ProgramParams, Sampler):
    """Exclude Top Choices (p-e-w, text-generation-webui PR #6335; llama.cpp ``xtc``).

    With chance ``probability`` (drawn per row and step), when at least two tokens have
    probability ``>= threshold``, remove all of them except the least probable one, then
    sample from what is left. This keeps the text coherent (a viable token always
    remains) while steering away from the most predictable choice.

    ``threshold``, ``probability`` and ``temperature`` are program parameters: a sweep
    over them
    compiles once.

    Args:
        threshold: float, probability a token needs to count as a "top choice".
        probability: float, chance that the exclusion applies at a step.
        temperature: float, applied to the logits first.
        seed: int, the random seed.

    Example:

    ```python
    from samplerlab.samplers.xtc_sampler import XTCSampler
    causal_lm.compile(sampler=XTCSampler(threshold=0.1, probability=0.5, seed=1))
    causal_lm.generate(["Keras is a"])
    ```
    """

    def __init__(self, threshold: float = 0.1, probability: float = 0.5,
                 temperature: float = 1.0, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.threshold = self.add_param("threshold", threshold)
        self.probability = self.add_param("probability", probability)
        # KerasHub's compute_probabilities divides the logits by self.temperature.
        self.temperature = self.add_param("temperature", temperature)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def exclude(self, probabilities: Any, apply: Any) -> Any:
        """Zero the top choices but the last, in rows where ``apply`` ``(batch,)`` is True."""
        is_top = probabilities >= self.threshold
        above = ops.sum(ops.cast(is_top, "int32"), axis=-1)
        # The least probable of the top choices (no sort: a masked minimum).
        last_top = ops.min(ops.where(is_top, probabilities, 2.0), axis=-1, keepdims=True)
        active = ops.logical_and(apply, above >= 2)[:, None]
        removed = ops.logical_and(active, probabilities > last_top)
        return ops.where(removed, ops.zeros_like(probabilities), probabilities)

    def draw(self, probabilities: Any) -> tuple[Any, Any]:
        """``(token, kept probabilities)``: this step's exclusion, then a draw."""
        batch = ops.shape(probabilities)[0]
        chance = keras.random.uniform((batch,), seed=self.seed_generator)
        kept = self.exclude(probabilities, chance < self.probability)
        drawn = keras.random.categorical(ops.log(kept), 1, seed=self.seed_generator,
                                         dtype="int32")
        return ops.squeeze(drawn, axis=-1), kept

    def get_next_token(self, probabilities: Any) -> Any:
        return self.draw(probabilities)[0]

    def decoding_capabilities(self) -> SamplerCapabilities:
        """Its own history loop, which reports the distribution each step drew from."""
        return default_capabilities(self, loop="adapter", reports_distribution=True)

    def __call__(self, next, prompt, cache=None, index=0, mask=None,
                 stop_token_ids=None, hidden_states=None, model=None, decoding=None,
                 **kwargs):
        if not is_observed(decoding):  # KerasHub's own loop, as without traces
            return super().__call__(next, prompt, cache=cache, index=index, mask=mask,
                                    stop_token_ids=stop_token_ids,
                                    hidden_states=hidden_states, model=model)

        # Observed (stop strings, traces): the same steps in samplerlab's loop, which
        # reports the distribution each step drew from (it depends on this step's random draw).
        def step(logits, context, extra):
            token, kept = self.draw(self.compute_probabilities(logits))
            return token, extra, lambda: ops.log(kept)

        return history_loop(self, next, prompt, cache=cache, index=index, mask=mask,
                            stop_token_ids=stop_token_ids, model=model, step=step,
                            decoding=decoding)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["seed"] = self.seed
        return config
