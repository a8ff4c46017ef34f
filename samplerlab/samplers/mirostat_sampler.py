"""Mirostat 2.0: sampling that steers the surprise of each token towards a target."""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops
from keras_hub.samplers import Sampler

from samplerlab.decoding.contract import SamplerCapabilities, default_capabilities
from samplerlab.decoding.loop import history_loop
from samplerlab.decoding.params import ProgramParams
from samplerlab.processors.base import NEG_INF, is_max

LOG2 = math.log(2.0)


@keras.saving.register_keras_serializable(package="samplerlab")
class MirostatSampler(ProgramParams, Sampler):
    """Mirostat v2 (Basu et al. 2021, "Mirostat: a neural text decoding algorithm that
    directly controls perplexity"; as in llama.cpp ``mirostat_v2``).

    Each row keeps a running bound ``mu`` (initially ``2 * tau``). At each step the tokens
    whose surprise ``-log2 p`` exceeds ``mu`` are removed (the most probable token always
    stays), a token is drawn from the renormalised rest, and
    ``mu -= eta * (surprise_of_drawn_token - tau)`` with the surprise measured under the
    renormalised distribution. The average surprise converges to ``tau`` bits.

    ``tau``, ``eta`` and ``temperature`` are program parameters: a sweep over them
    compiles once.

    Args:
        tau: float, target surprise in bits.
        eta: float, learning rate of ``mu``.
        temperature: float, applied to the logits first.
        seed: int, the random seed.

    Example:

    ```python
    from samplerlab.samplers.mirostat_sampler import MirostatSampler
    causal_lm.compile(sampler=MirostatSampler(tau=5.0, eta=0.1, seed=1))
    causal_lm.generate(["Keras is a"])
    ```
    """

    def __init__(self, tau: float = 5.0, eta: float = 0.1, temperature: float = 1.0,
                 seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tau = self.add_param("tau", tau)
        self.eta = self.add_param("eta", eta)
        self.temperature = self.add_param("temperature", temperature)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def truncate(self, logits: Any, mu: Any) -> Any:
        """Remove tokens with surprise ``-log2 p > mu`` (``mu``: ``(batch,)``)."""
        surprise = -ops.log_softmax(logits, axis=-1) / LOG2
        kept = ops.logical_or(surprise <= mu[:, None], is_max(logits))
        return ops.where(kept, logits, ops.full_like(logits, NEG_INF))

    def update_mu(self, truncated: Any, token: Any, mu: Any) -> Any:
        """``mu - eta * (surprise of token under the renormalised distribution - tau)``."""
        log_probs = ops.log_softmax(truncated, axis=-1)
        chosen = ops.take_along_axis(log_probs, ops.cast(token, "int32")[:, None], axis=-1)
        return mu - self.eta * (-chosen[:, 0] / LOG2 - self.tau)

    def decoding_capabilities(self) -> SamplerCapabilities:
        """Its own history loop, which reports the distribution each step drew from."""
        return default_capabilities(self, loop="adapter", reports_distribution=True)

    def __call__(self, next, prompt, cache=None, index=0, mask=None,
                 stop_token_ids=None, hidden_states=None, model=None, decoding=None,
                 **kwargs):
        batch = ops.shape(prompt)[0]

        def step(logits, context, extra):
            (mu,) = extra
            truncated = self.truncate(logits / self.temperature, mu)
            drawn = keras.random.categorical(truncated, 1, seed=self.seed_generator,
                                             dtype="int32")[:, 0]
            return drawn, (self.update_mu(truncated, drawn, mu),), lambda: truncated

        mu = ops.ones((batch,), dtype="float32") * (2.0 * self.tau)
        return history_loop(self, next, prompt, cache=cache, index=index, mask=mask,
                            stop_token_ids=stop_token_ids, model=model, step=step,
                            extra=(mu,), decoding=decoding)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["seed"] = self.seed
        return config
