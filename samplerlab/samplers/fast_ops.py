"""Sort-free building blocks for samplers over a large vocabulary (keras.ops only).

On a CPU a full sort of GPT-2's 50,257 logits costs ~20 ms per step, and
``keras.random.categorical`` draws one Gumbel variate per token (threefry, ~1 ms per row
per step). The two functions here replace them with a handful of passes over the row:

- :func:`~samplerlab.decoding.distributions.nucleus_threshold` (the exact top-p cut by
  bisection over float32 bit patterns) lives with the distribution rules it defines.
- :func:`sample_from_weights`: an exact inverse-CDF draw from unnormalised weights with
  one uniform variate per row, via a two-level (block, then token) cumulative sum.
- :func:`sample_nucleus`: an exact top-p draw by rejection (draw from the full
  distribution, keep it if it is in the nucleus: one masked sum), ~1/p tries per row.
"""

from __future__ import annotations

from typing import Any

from keras import ops, random

from samplerlab.decoding.distributions import nucleus_threshold

BLOCK = 128
# Rejection draws per step before top-p falls back to the bisection (each try is one
# masked sum; a row accepts a try with probability >= p).
NUCLEUS_TRIES = 8


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

    ```python
    import keras
    import numpy as np
    from samplerlab.samplers.fast_ops import sample_from_weights

    weights = np.array([[0.0, 2.0, 0.0, 0.0]], dtype="float32")
    assert int(sample_from_weights(weights, keras.random.SeedGenerator(1))[0]) == 1
    ```
    """
    table = _InverseCDF(weights)
    uniform = random.uniform((table.batch, 1), seed=seed)
    return ops.squeeze(table.draw(uniform), axis=-1)


class _InverseCDF:
    """Block sums of a row of weights, built once, for any number of inverse-CDF draws."""

    def __init__(self, weights: Any) -> None:
        self.weights = ops.cast(weights, "float32")
        self.batch, self.vocab = ops.shape(self.weights)
        self.blocks = -(-self.vocab // BLOCK)
        padded = ops.pad(self.weights, ((0, 0), (0, self.blocks * BLOCK - self.vocab)))
        self.padded = ops.reshape(padded, (self.batch, self.blocks, BLOCK))
        self.block_mass = ops.sum(self.padded, axis=-1)
        self.block_cum = ops.cumsum(self.block_mass, axis=-1)
        positions = ops.arange(self.vocab, dtype="int32")[None, :]
        # Rounding guard: the last token of positive weight.
        self.last = ops.max(ops.where(self.weights > 0, positions, -1), axis=-1, keepdims=True)

    def draw(self, uniform: Any) -> Any:
        """``(batch, 1)`` indices for ``(batch, 1)`` uniform variates in [0, 1)."""
        target = uniform * self.block_cum[:, -1:]
        block = ops.minimum(ops.sum(ops.cast(self.block_cum <= target, "int32"), axis=-1,
                                    keepdims=True), self.blocks - 1)
        before = ops.take_along_axis(self.block_cum - self.block_mass, block, axis=-1)
        row = ops.take_along_axis(self.padded, block[:, :, None], axis=1)[:, 0]
        inside = ops.sum(ops.cast(ops.cumsum(row, axis=-1) + before <= target, "int32"),
                         axis=-1, keepdims=True)
        index = ops.minimum(block * BLOCK + ops.minimum(inside, BLOCK - 1), self.vocab - 1)
        chosen = ops.take_along_axis(self.weights, index, axis=-1)
        return ops.where(chosen > 0, index, self.last)


def in_nucleus(probabilities: Any, tokens: Any, p: Any) -> Any:
    """Whether each row's token is in its top-p set: one masked sum per row.

    A token ``x`` is kept exactly when the mass of the tokens more probable than it is
    ``<= p`` (``P(x) >= t*`` in :func:`nucleus_threshold`'s terms, ties kept), so testing
    a token needs no threshold.

    Args:
        probabilities: float tensor ``(batch, vocab)``.
        tokens: int tensor ``(batch, 1)``.
        p: float scalar.

    Returns:
        bool tensor ``(batch, 1)``.
    """
    probs = ops.cast(probabilities, "float32")
    chosen = ops.take_along_axis(probs, tokens, axis=-1)
    above = ops.sum(ops.where(probs > chosen, probs, 0.0), axis=-1, keepdims=True)
    p = ops.cast(p, "float32")
    # p = 1 keeps every token even where float32 rounding puts a row's mass above 1.
    return ops.logical_or(above <= p, p >= 1.0)


def sample_nucleus(probabilities: Any, p: Any, seed: Any, tries: int = NUCLEUS_TRIES) -> Any:
    """One draw per row from the top-p set renormalised, by rejection, without a threshold.

    Draw a token from the full distribution (inverse CDF); keep it when it is in the
    nucleus (:func:`in_nucleus`, one masked sum), else draw again. Conditioned on being
    kept, a draw is distributed exactly as the renormalised nucleus, and a row keeps its
    first draw with probability = its nucleus mass ``>= p``: at ``p = 0.9`` that is 1.1
    draws on average instead of the 31 masked sums of :func:`nucleus_threshold`. Rows
    that reject ``tries`` draws in a row (likely only for small ``p``) take an exact draw
    from the nucleus found by bisection, which leaves the distribution unchanged.

    Args:
        probabilities: float tensor ``(batch, vocab)``, rows summing to 1.
        p: float scalar (a tensor or a Variable: it stays traced).
        seed: a ``keras.random.SeedGenerator`` (or anything ``keras.random`` accepts).
        tries: rejection draws before the bisection fallback.

    Returns:
        int32 tensor ``(batch,)``.

    Example:

    ```python
    import keras
    import numpy as np
    from samplerlab.samplers.fast_ops import sample_nucleus

    probs = np.array([[0.6, 0.3, 0.1]], dtype="float32")
    assert int(sample_nucleus(probs, 0.5, keras.random.SeedGenerator(1))[0]) == 0  # nucleus {0}
    ```
    """
    probs = ops.cast(probabilities, "float32")
    table = _InverseCDF(probs)
    uniforms = random.uniform((table.batch, tries + 1), seed=seed)

    def more(i, token, done):
        return ops.logical_and(i < tries, ops.logical_not(ops.all(done)))

    def draw(i, token, done):
        candidate = table.draw(ops.slice(uniforms, [0, i], [table.batch, 1]))
        token = ops.where(done, token, candidate)
        return i + 1, token, ops.logical_or(done, in_nucleus(probs, token, p))

    start = (ops.convert_to_tensor(0, "int32"), ops.zeros((table.batch, 1), "int32"),
             ops.zeros((table.batch, 1), "bool"))
    _, token, done = ops.while_loop(more, draw, start)

    def exact() -> Any:
        kept = ops.where(probs >= nucleus_threshold(probs, p), probs, 0.0)
        return ops.where(done, token, _InverseCDF(kept).draw(uniforms[:, tries:]))

    token = ops.cond(ops.all(done), lambda: token, exact)
    return ops.squeeze(token, axis=-1)
