"""Final distributions: what a sampler finally draws each token from, as a function of
the logits.

A sampler's *final distribution* at a position is the one its token is drawn from, after
temperature, truncation and renormalisation; its *kept set* is that distribution's
support. The rules (each ``rule(sampler, logits) -> (log_probs, kept)``):

- :func:`greedy`: the point mass on the argmax; kept 1.
- :func:`random`: ``softmax(logits / T)``; kept: the vocabulary.
- :func:`top_k`: ``softmax(logits / T)`` on the k most probable tokens, renormalised;
  kept k.
- :func:`top_p`: the nucleus of ``softmax(logits / T)`` (after the top-k cut when ``k``
  is set), renormalised; kept: the nucleus size.
- :func:`beam`: ``softmax(logits / T)``, the factor beam search multiplies into the
  returned beam's score; kept: ``num_beams`` (the hypotheses kept per step).
- :func:`contrastive`: ``softmax(logits / T)``, the confidence term of the chosen
  candidate's score; kept: k (the candidates).

Beam and contrastive search do not draw from a distribution; for them "sampler
probability" is the model's probability at the sampler's temperature, the quantity
their scores are built from, and the kept size is the number of candidates they weigh.

:func:`keras_hub_distribution` applies them to KerasHub's own sampler classes (the exact
classes: a subclass may draw differently). samplerlab's samplers declare theirs through
the sampler contract (:class:`~samplerlab.decoding.contract.SamplerCapabilities`), as a
plugin sampler can; a sampler whose distribution depends on its own per-step state or
draws (``mirostat``'s ``mu``, ``xtc``'s coin) reports it from inside its loop
(:func:`samplerlab.decoding.observers.report_distribution`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from keras import ops

NEG_INF = float("-inf")
# Non-negative float32 values order like their int32 bit patterns; every probability is
# in [0, 1] and bits(1.0) = 0x3F800000 < 2**30, so 31 halvings of [-1, bits(max)] close
# the interval on the exact threshold.
BISECTION_STEPS = 31
#: ``fn(logits (batch, vocab)) -> (final log-probabilities (batch, vocab), kept (batch,))``
Distribution = Callable[[Any], tuple[Any, Any]]


def _scaled(sampler: Any, logits: Any) -> Any:
    return ops.log_softmax(ops.cast(logits, "float32") / sampler.temperature, axis=-1)


def _full(sampler: Any, logits: Any, kept: int | None = None) -> tuple[Any, Any]:
    """``softmax(logits / T)`` itself; ``kept`` defaults to the vocabulary."""
    scaled = _scaled(sampler, logits)
    size = ops.shape(logits)[-1] if kept is None else kept
    return scaled, ops.full(ops.shape(logits)[:-1], size, "int32")


def greedy(sampler: Any, logits: Any) -> tuple[Any, Any]:
    """The point mass on the argmax."""
    best = ops.one_hot(ops.argmax(logits, axis=-1), ops.shape(logits)[-1]) > 0
    return (ops.where(best, 0.0, NEG_INF),
            ops.ones(ops.shape(logits)[:-1], "int32"))


def top_k(sampler: Any, logits: Any) -> tuple[Any, Any]:
    """``softmax(logits / T)`` on the ``sampler.k`` most probable tokens, renormalised."""
    scaled = _scaled(sampler, logits)
    k = min(int(sampler.k), ops.shape(logits)[-1])
    values, _ = ops.top_k(scaled, k=k, sorted=True)
    # The k-th value bounds the kept set; the chosen token is always inside it, so ties at
    # the boundary (kept by the threshold, not by KerasHub's top_k) never change its mass.
    norm = ops.logsumexp(values, axis=-1, keepdims=True)
    final = ops.where(scaled >= values[..., -1:], scaled - norm, NEG_INF)
    return final, ops.full(ops.shape(logits)[:-1], k, "int32")


def top_p(sampler: Any, logits: Any) -> tuple[Any, Any]:
    """The nucleus ``sampler.p`` of ``softmax(logits / T)`` (within the top ``sampler.k``
    when set), renormalised."""
    scaled = _scaled(sampler, logits)
    probs = ops.exp(scaled)
    if sampler.k is None:
        # The nucleus {P(x) >= t*} (ties kept), as samplerlab's top_p draws from it.
        keep = probs >= nucleus_threshold(probs, sampler.p)
        kept = ops.sum(ops.cast(keep, "int32"), axis=-1)
        mass = ops.sum(ops.where(keep, probs, 0.0), axis=-1, keepdims=True)
    else:
        # KerasHub's TopPSampler with k: the sorted top k, each kept while the mass
        # sorted before it is <= p (its own mask, shifted by one).
        k = min(int(sampler.k), ops.shape(logits)[-1])
        values, _ = ops.top_k(probs, k=k, sorted=True)
        within = ops.cumsum(values, axis=-1) <= sampler.p
        keep_sorted = ops.concatenate([ops.ones_like(within[:, :1]), within[:, :-1]], axis=-1)
        kept = ops.sum(ops.cast(keep_sorted, "int32"), axis=-1)
        keep = probs >= ops.take_along_axis(values, (kept - 1)[:, None], axis=-1)
        mass = ops.sum(ops.where(keep_sorted, values, 0.0), axis=-1, keepdims=True)
    return ops.where(keep, scaled - ops.log(mass), NEG_INF), kept


def beam(sampler: Any, logits: Any) -> tuple[Any, Any]:
    """``softmax(logits / T)``; kept: the beams."""
    return _full(sampler, logits, int(sampler.num_beams))


def contrastive(sampler: Any, logits: Any) -> tuple[Any, Any]:
    """``softmax(logits / T)``; kept: the ``k`` candidates."""
    return _full(sampler, logits, min(int(sampler.k), ops.shape(logits)[-1]))


def random(sampler: Any, logits: Any) -> tuple[Any, Any]:
    """``softmax(logits / T)`` over the whole vocabulary."""
    return _full(sampler, logits)


def _keras_hub_rules() -> dict[type, Callable[[Any, Any], tuple[Any, Any]]]:
    import keras_hub

    s = keras_hub.samplers
    return {s.GreedySampler: greedy, s.RandomSampler: random, s.TopKSampler: top_k,
            s.TopPSampler: top_p, s.BeamSampler: beam, s.ContrastiveSampler: contrastive}


def keras_hub_distribution(sampler: Any) -> Distribution | None:
    """The final distribution of one of KerasHub's own sampler classes (its exact class),
    or None for any other sampler."""
    rule = _keras_hub_rules().get(type(sampler))
    return partial(rule, sampler) if rule is not None else None


def nucleus_threshold(probabilities: Any, p: Any) -> Any:
    """Per row, the smallest probability that top-p keeps (Holtzman et al. 2020).

    Sort a row in descending order; KerasHub's ``TopPSampler`` keeps token ``i`` when
    the mass of the tokens before it is ``<= p``. With ``mass_above(t)`` = the mass of the
    tokens whose probability is ``> t``, that kept set is ``{x : P(x) >= t*}``, where
    ``t*`` is the smallest float with ``mass_above(t*) <= p``. ``mass_above`` only falls
    as ``t`` grows, so ``t*`` is found by bisection over float32 bit patterns: 31 masked
    sums over the vocabulary and no sort. (Unrolled: XLA on CPU runs it ~2x faster than
    a ``fori_loop``.)

    Args:
        probabilities: float tensor ``(batch, vocab)``, rows summing to 1.
        p: float scalar (a tensor or a Variable: it stays traced).

    Returns:
        float32 tensor ``(batch, 1)``: keep the tokens with ``probabilities >= threshold``.

    Example:

    ```python
    import numpy as np
    from samplerlab.decoding.distributions import nucleus_threshold

    probs = np.array([[0.5, 0.3, 0.15, 0.05]], dtype="float32")
    threshold = nucleus_threshold(probs, 0.7)  # 0.5 + 0.3 reaches 0.7: keep p >= 0.3
    np.testing.assert_allclose(threshold, [[0.3]])
    ```
    """
    probs = ops.cast(probabilities, "float32")
    p = ops.cast(p, "float32")
    # Invariant: mass_above(hi) <= p (true at the row maximum) and lo is below t*.
    hi = ops.view(ops.max(probs, axis=-1, keepdims=True), "int32")
    lo = ops.full_like(hi, -1)
    for _ in range(BISECTION_STEPS):
        mid = ops.maximum(ops.floor_divide(lo + hi, 2), 0)  # never -1: that is a NaN
        above = ops.sum(ops.where(probs > ops.view(mid, "float32"), probs, 0.0),
                        axis=-1, keepdims=True)
        fits = above <= p
        lo, hi = ops.where(fits, lo, mid), ops.where(fits, mid, hi)
    # p = 1 keeps every token even where float32 rounding puts a row's mass above 1.
    return ops.where(p >= 1.0, 0.0, ops.view(hi, "float32"))
