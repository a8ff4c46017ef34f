"""Temperature and the truncation processors: each keeps a subset of tokens, -inf elsewhere.

Every truncation keeps at least the most probable token (HF's ``min_tokens_to_keep=1``).
Set sizes (top-k, top-p, typical) are found by bisecting on a threshold rather than by
sorting the vocabulary (see :func:`~samplerlab.processors.base.smallest_set_threshold`):
``k`` and ``p`` stay program parameters, so a sweep over them does not recompile, and tokens
tied with the threshold are all kept (as HF's top-k does).
"""

from __future__ import annotations

import math
from typing import Any

import keras

from samplerlab.processors.base import (
    Context,
    Processor,
    is_max,
    keep,
    smallest_set_threshold,
)


def _softmax(logits: Any) -> Any:
    import keras

    return keras.activations.softmax(logits, axis=-1)


def _log_probs_and_entropy(logits: Any) -> tuple[Any, Any, Any]:
    """Log-probabilities, probabilities and the entropy ``H(p)`` of each row (keepdims)."""
    from keras import ops

    log_probs = ops.log_softmax(logits, axis=-1)
    probs = ops.exp(log_probs)
    # 0 * -inf is nan: removed tokens contribute nothing to the entropy.
    entropy = -ops.sum(ops.where(probs > 0, probs * log_probs, 0.0), axis=-1, keepdims=True)
    return log_probs, probs, entropy


@keras.saving.register_keras_serializable(package="samplerlab")
class Temperature(Processor):
    """Divide the logits by ``temperature`` (< 1 sharpens, > 1 flattens).

    Example:

    ```python
    from samplerlab.processors.truncation import Temperature
    assert Temperature(0.5).params() == {"temperature": 0.5}
    ```
    """

    def __init__(self, temperature: float = 1.0) -> None:
        self.temperature = self.add_param("temperature", temperature)

    def process(self, logits: Any, context: Context) -> Any:
        return logits / self.temperature


@keras.saving.register_keras_serializable(package="samplerlab")
class TopK(Processor):
    """Keep the ``k`` highest logits (Fan et al. 2018; HF ``TopKLogitsWarper``).

    ``k`` is a program parameter: the threshold (the k-th largest logit) is found by
    bisection, with no upper bound on ``k`` and no sort; ties with it are kept, as HF does
    (it removes ``scores < topk(scores, k)[-1]``).
    """

    def __init__(self, k: int = 50) -> None:
        self.k = self.add_param("k", k, dtype="int32")

    def process(self, logits: Any, context: Context) -> Any:
        from keras import ops

        k = ops.cast(ops.maximum(self.k, 1), "float32")
        threshold = smallest_set_threshold(-logits, ops.ones_like(logits), k)
        return keep(logits, -logits <= threshold)


@keras.saving.register_keras_serializable(package="samplerlab")
class TopP(Processor):
    """Nucleus: keep the smallest top set whose probability reaches ``p``.

    Holtzman et al. 2020; HF ``TopPLogitsWarper``: a token is kept when the probability
    mass of the tokens strictly more probable than it is below ``p``.
    """

    def __init__(self, p: float = 0.9) -> None:
        self.p = self.add_param("p", p)

    def process(self, logits: Any, context: Context) -> Any:

        threshold = smallest_set_threshold(-logits, _softmax(logits), self.p)
        return keep(logits, -logits <= threshold)


@keras.saving.register_keras_serializable(package="samplerlab")
class MinP(Processor):
    """Keep tokens whose probability is at least ``p`` times the top probability.

    Nguyen et al. 2024, "Turning Up the Heat: Min-p Sampling"; HF ``MinPLogitsWarper``.
    """

    def __init__(self, p: float = 0.05) -> None:
        self.p = self.add_param("p", p)

    def process(self, logits: Any, context: Context) -> Any:
        from keras import ops

        probs = _softmax(logits)
        top = ops.max(probs, axis=-1, keepdims=True)
        return keep(logits, ops.logical_or(probs >= self.p * top, is_max(logits)))


@keras.saving.register_keras_serializable(package="samplerlab")
class TypicalP(Processor):
    """Locally typical sampling (Meister et al. 2023; HF ``TypicalLogitsWarper``).

    Rank tokens by ``|-log p(x) - H(p)|`` (distance of their surprisal from the entropy),
    and keep the closest ones until their probability mass reaches ``p``.
    """

    def __init__(self, p: float = 0.9) -> None:
        self.p = self.add_param("p", p)

    def process(self, logits: Any, context: Context) -> Any:
        from keras import ops

        log_probs, probs, entropy = _log_probs_and_entropy(logits)
        shifted = ops.where(probs > 0, ops.abs(-log_probs - entropy), math.inf)
        # The smallest set, most typical first, whose mass reaches p (HF keeps the token
        # that crosses p; the most typical token is always kept).
        threshold = smallest_set_threshold(shifted, probs, self.p)
        return keep(logits, shifted <= threshold)


@keras.saving.register_keras_serializable(package="samplerlab")
class EpsilonCutoff(Processor):
    """Keep tokens with probability at least ``epsilon``.

    Hewitt et al. 2022, "Truncation Sampling as Language Model Desmoothing";
    HF ``EpsilonLogitsWarper``.
    """

    def __init__(self, epsilon: float = 3e-4) -> None:
        self.epsilon = self.add_param("epsilon", epsilon)

    def process(self, logits: Any, context: Context) -> Any:
        from keras import ops

        return keep(logits, ops.logical_or(_softmax(logits) >= self.epsilon, is_max(logits)))


@keras.saving.register_keras_serializable(package="samplerlab")
class EtaCutoff(Processor):
    """Entropy-dependent cutoff: keep tokens with ``p >= min(eta, sqrt(eta) * exp(-H))``.

    Hewitt et al. 2022 (eta-sampling); HF ``EtaLogitsWarper`` (whose parameter is
    called ``epsilon``).
    """

    def __init__(self, eta: float = 3e-4) -> None:
        self.eta = self.add_param("eta", eta)

    def process(self, logits: Any, context: Context) -> Any:
        from keras import ops

        _, probs, entropy = _log_probs_and_entropy(logits)
        cutoff = ops.minimum(self.eta, ops.sqrt(self.eta) * ops.exp(-entropy))
        return keep(logits, ops.logical_or(probs >= cutoff, is_max(logits)))


@keras.saving.register_keras_serializable(package="samplerlab")
class TopNSigma(Processor):
    """Keep logits within ``n`` standard deviations of the maximum logit.

    Tang et al. 2024, "Top-nσ: Not All Logits Are You Need"; llama.cpp ``top_n_sigma``:
    threshold ``max - n * std``, mean and (population) std over the finite logits.
    """

    def __init__(self, n: float = 1.0) -> None:
        self.n = self.add_param("n", n)

    def process(self, logits: Any, context: Context) -> Any:
        from keras import ops

        finite = ops.isfinite(logits)
        count = ops.sum(ops.cast(finite, "float32"), axis=-1, keepdims=True)
        values = ops.where(finite, logits, 0.0)
        mean = ops.sum(values, axis=-1, keepdims=True) / count
        var = ops.sum(ops.where(finite, ops.square(logits - mean), 0.0), axis=-1,
                      keepdims=True) / count
        top = ops.max(logits, axis=-1, keepdims=True)
        return keep(logits, logits >= top - self.n * ops.sqrt(var))

