"""Nucleus (top-p) sampling without sorting the vocabulary; p and temperature are program
parameters."""

from __future__ import annotations

from functools import partial

import keras
import keras_hub

from samplerlab.decoding.contract import SamplerCapabilities, default_capabilities
from samplerlab.decoding.distributions import top_p
from samplerlab.decoding.params import ProgramParams
from samplerlab.samplers.fast_ops import sample_nucleus


# Registered under its former name, so saved configs still deserialize.
@keras.saving.register_keras_serializable(package="samplerlab", name="TracedTopPSampler")
class TopPSampler(ProgramParams, keras_hub.samplers.TopPSampler):
    """Nucleus sampling (Holtzman et al. 2020, "The Curious Case of Neural Text
    Degeneration") with ``p`` and temperature as program parameters and no vocabulary sort.

    Samples from the smallest set of most probable tokens whose mass reaches ``p``,
    renormalised: the same kept set and distribution as ``keras_hub.samplers.TopPSampler``
    (which keeps a token when the mass sorted before it is ``<= p``), without sorting all
    50,257 GPT-2 tokens every step: a token drawn from the full distribution (inverse
    CDF, one uniform variate) is kept when the mass of the tokens more probable than it is
    ``<= p`` (one masked sum), else drawn again
    (:func:`~samplerlab.samplers.fast_ops.sample_nucleus`; ~1/p draws per row, with an
    exact bisection fallback). Rows with tied probabilities at the threshold keep all the
    tied tokens (a sort keeps the lower ids first); the random stream differs from
    KerasHub's, the distribution does not.

    With ``k`` set, KerasHub's own algorithm runs on the ``k`` most probable tokens only
    (cheap for small ``k``), token for token as ``TopPSampler(p, k)``.

    ``p`` and ``temperature`` are ``keras.Variable`` s passed to the compiled generate
    function as state: a sweep over them compiles once. ``k`` is static.

    Args:
        p: float in (0, 1], the nucleus mass.
        k: int or None, an optional top-k cut applied first.
        temperature: float, softmax temperature (> 0).
        seed: int, the random seed. Defaults to ``None``.

    Example:

    ```python
    from samplerlab.samplers.top_p import TopPSampler
    causal_lm.compile(sampler=TopPSampler(p=0.9, seed=1))
    causal_lm.generate(["Keras is a"])
    ```
    """

    def __init__(self, p: float = 0.1, k: int | None = None, temperature: float = 1.0,
                 seed: int | None = None) -> None:
        super().__init__(p=p, k=k, seed=seed)
        self.p = self.add_param("p", p)
        self.temperature = self.add_param("temperature", temperature)
        self.add_static("k", None if k is None else int(k))

    def decoding_capabilities(self) -> SamplerCapabilities:
        """KerasHub's base loop; the nucleus distribution (:func:`~samplerlab.decoding.
        distributions.top_p`)."""
        return default_capabilities(self, loop="base", distribution=partial(top_p, self))

    def get_next_token(self, probabilities):
        if self.k is not None:
            return super().get_next_token(probabilities)
        return sample_nucleus(probabilities, self.p, self.seed_generator)
