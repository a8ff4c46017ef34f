"""The sampler side of a trace: the distribution a sampler finally draws each token from.

A sampler's *final distribution* at a position is the one its token is drawn from, after
temperature, truncation and renormalisation; its *kept set* is that distribution's
support. For the built-ins:

- greedy: the point mass on the argmax; kept 1.
- random: ``softmax(logits / T)``; kept: the vocabulary.
- top_k: ``softmax(logits / T)`` on the k most probable tokens, renormalised; kept k.
- top_p: the nucleus of ``softmax(logits / T)`` (after the top-k cut when ``k`` is set),
  renormalised; kept: the nucleus size.
- beam: ``softmax(logits / T)``, the factor beam search multiplies into the returned
  beam's score; kept: ``num_beams`` (the hypotheses kept per step).
- contrastive: ``softmax(logits / T)``, the confidence term of the chosen candidate's
  score; kept: k (the candidates).
- chain, mirostat, xtc: what their step draws from (reported from inside their loop);
  kept: its support.

Beam and contrastive search do not draw from a distribution; for them "sampler
probability" is the model's probability at the sampler's temperature, the quantity
their scores are built from, and the kept size is the number of candidates they weigh.

The first six are functions of the logits alone, given here (:func:`final_distribution`);
a plugin sampler of that kind can define ``trace_distribution(logits) -> (log_probs,
kept)`` itself. Samplers whose distribution depends on their own per-step state or draws
(``mirostat``'s ``mu``, ``xtc``'s coin) report it from inside their loop
(:func:`samplerlab.engine.observers.report_distribution`). Any other sampler's traces
have empty sampler-side columns.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from keras import ops

from samplerlab.traces.columns import log_probs

NEG_INF = float("-inf")
#: ``fn(logits (batch, vocab)) -> (final log-probabilities (batch, vocab), kept (batch,))``
Distribution = Callable[[Any], tuple[Any, Any]]


def _scaled(sampler: Any, logits: Any) -> Any:
    return log_probs(ops.cast(logits, "float32") / sampler.temperature)


def _full(sampler: Any, logits: Any, kept: int | None = None) -> tuple[Any, Any]:
    """``softmax(logits / T)`` itself; ``kept`` defaults to the vocabulary."""
    scaled = _scaled(sampler, logits)
    size = ops.shape(logits)[-1] if kept is None else kept
    return scaled, ops.full(ops.shape(logits)[:-1], size, "int32")


def greedy(sampler: Any, logits: Any) -> tuple[Any, Any]:
    best = ops.one_hot(ops.argmax(logits, axis=-1), ops.shape(logits)[-1]) > 0
    return (ops.where(best, 0.0, NEG_INF),
            ops.ones(ops.shape(logits)[:-1], "int32"))


def top_k(sampler: Any, logits: Any) -> tuple[Any, Any]:
    scaled = _scaled(sampler, logits)
    k = min(int(sampler.k), ops.shape(logits)[-1])
    values, _ = ops.top_k(scaled, k=k, sorted=True)
    # The k-th value bounds the kept set; the chosen token is always inside it, so ties at
    # the boundary (kept by the threshold, not by KerasHub's top_k) never change its mass.
    norm = ops.logsumexp(values, axis=-1, keepdims=True)
    final = ops.where(scaled >= values[..., -1:], scaled - norm, NEG_INF)
    return final, ops.full(ops.shape(logits)[:-1], k, "int32")


def top_p(sampler: Any, logits: Any) -> tuple[Any, Any]:
    from samplerlab.samplers.fast_ops import nucleus_threshold

    scaled = _scaled(sampler, logits)
    probs = ops.exp(scaled)
    if getattr(sampler, "k", None) is None:
        # The nucleus {P(x) >= t*} (ties kept), as TracedTopPSampler draws from it.
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
    return _full(sampler, logits, int(sampler.num_beams))


def contrastive(sampler: Any, logits: Any) -> tuple[Any, Any]:
    return _full(sampler, logits, min(int(sampler.k), ops.shape(logits)[-1]))


def random(sampler: Any, logits: Any) -> tuple[Any, Any]:
    return _full(sampler, logits)


def _known() -> dict[type, Callable[[Any, Any], tuple[Any, Any]]]:
    import keras_hub

    from samplerlab.samplers.contrastive import FastContrastiveSampler
    from samplerlab.samplers.traced_random import TracedRandomSampler
    from samplerlab.samplers.traced_top_k import TracedTopKSampler
    from samplerlab.samplers.traced_top_p import TracedTopPSampler

    s = keras_hub.samplers
    return {s.GreedySampler: greedy, s.RandomSampler: random, TracedRandomSampler: random,
            s.TopKSampler: top_k, TracedTopKSampler: top_k, s.TopPSampler: top_p,
            TracedTopPSampler: top_p, s.BeamSampler: beam, s.ContrastiveSampler: contrastive,
            FastContrastiveSampler: contrastive}


def final_distribution(sampler: Any) -> Distribution | None:
    """The sampler's final distribution as a function of the logits, or None.

    The sampler's own ``trace_distribution`` when it has one, else the built-in rule for
    its exact class (a subclass may draw differently, so it is not assumed to follow its
    parent's rule).
    """
    method = getattr(sampler, "trace_distribution", None)
    if callable(method):
        return method
    rule = _known().get(type(sampler))
    return partial(rule, sampler) if rule is not None else None
