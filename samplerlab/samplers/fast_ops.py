"""Sort-free building blocks for samplers over a large vocabulary (keras.ops only).

On a CPU a full sort of GPT-2's 50,257 logits costs ~20 ms per step, and
``keras.random.categorical`` draws one Gumbel variate per token (threefry, ~1 ms per row
per step). The two functions here replace them with a handful of passes over the row:

- :func:`nucleus_threshold`: the exact top-p cut by bisection over float32 bit patterns.
- :func:`sample_from_weights`: an exact inverse-CDF draw from unnormalised weights with
  one uniform variate per row, via a two-level (block, then token) cumulative sum.
"""

from __future__ import annotations

from typing import Any

from keras import ops, random

# Non-negative float32 values order like their int32 bit patterns; every probability is
# in [0, 1] and bits(1.0) = 0x3F800000 < 2**30, so 31 halvings of [-1, bits(max)] close
# the interval on the exact threshold.
BISECTION_STEPS = 31
BLOCK = 128


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

    >>> import numpy as np
    >>> probs = np.array([[0.5, 0.3, 0.15, 0.05]], dtype="float32")
    >>> float(nucleus_threshold(probs, 0.7)[0, 0])  # 0.5 + 0.3 reaches 0.7
    0.30000001192092896
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
    return ops.view(hi, "float32")


def sample_from_weights(weights: Any, seed: Any) -> Any:
    """Draw one index per row with probability ``weights / sum(weights)`` (inverse CDF).

    One uniform variate per row, scaled by the row's total, is located first among the
    cumulative sums of blocks of 128 tokens, then inside its block. A token of zero
    weight is never returned, even where float rounding makes the two levels disagree.

    Args:
        weights: float tensor ``(batch, vocab)``, non-negative, each row with a positive
            sum (e.g. probabilities with removed tokens set to 0).
        seed: a ``keras.random.SeedGenerator`` (or anything ``keras.random`` accepts).

    Returns:
        int32 tensor ``(batch,)``.

    Example:

    >>> import keras, numpy as np
    >>> weights = np.array([[0.0, 2.0, 0.0, 0.0]], dtype="float32")
    >>> int(sample_from_weights(weights, keras.random.SeedGenerator(1))[0])
    1
    """
    weights = ops.cast(weights, "float32")
    batch, vocab = ops.shape(weights)
    blocks = -(-vocab // BLOCK)
    padded = ops.pad(weights, ((0, 0), (0, blocks * BLOCK - vocab)))
    padded = ops.reshape(padded, (batch, blocks, BLOCK))
    block_mass = ops.sum(padded, axis=-1)
    block_cum = ops.cumsum(block_mass, axis=-1)
    target = random.uniform((batch, 1), seed=seed) * block_cum[:, -1:]
    block = ops.minimum(ops.sum(ops.cast(block_cum <= target, "int32"), axis=-1,
                                keepdims=True), blocks - 1)
    before = ops.take_along_axis(block_cum - block_mass, block, axis=-1)
    row = ops.take_along_axis(padded, block[:, :, None], axis=1)[:, 0]
    inside = ops.sum(ops.cast(ops.cumsum(row, axis=-1) + before <= target, "int32"),
                     axis=-1, keepdims=True)
    index = block * BLOCK + ops.minimum(inside, BLOCK - 1)
    # Rounding guard: fall back to the last token of positive weight.
    positions = ops.arange(vocab, dtype="int32")[None, :]
    last = ops.max(ops.where(weights > 0, positions, -1), axis=-1, keepdims=True)
    index = ops.minimum(index, vocab - 1)
    chosen = ops.take_along_axis(weights, index, axis=-1)
    return ops.squeeze(ops.where(chosen > 0, index, last), axis=-1)
