"""The processor contract: a logits → logits step of a ``chain`` sampler.

A processor sees the float32 logits of the next token (``(batch, vocab)``) and a
:class:`~samplerlab.decoding.loop.Context` holding the token history, and returns new
logits. Tokens it removes get ``-inf``. Processors run inside KerasHub's compiled
generate loop, so they use ``keras.ops`` only and never Python control flow on tensor
values.

Parameters go through :class:`samplerlab.decoding.params.ProgramParams`, as the samplers'
do: numeric ones (``k``, ``p``, penalties, ...) are non-trainable ``keras.Variable`` s that
KerasHub passes into its jitted generate function as *state*, so changing them
(``assign_params``) reuses the compiled function instead of recompiling. Parameters that
change shapes (``no_repeat_ngram_size``'s ``n``) or program structure are *static*: they
are part of the structure key.
"""

from __future__ import annotations

import math
from typing import Any

from samplerlab.decoding.loop import Context
from samplerlab.decoding.params import ProgramParams

NEG_INF = -math.inf


class Processor(ProgramParams):
    """Base class of logits processors usable in a ``chain`` sampler.

    Subclasses call :meth:`~samplerlab.decoding.params.ProgramParams.add_param` for each
    numeric program parameter and :meth:`~samplerlab.decoding.params.ProgramParams.add_static`
    for each shape- or program-changing one (the constructor's argument names must match: they are
    the processor's config), implement :meth:`process`, and register with
    ``@keras.saving.register_keras_serializable(package=...)`` so a chain holding them
    serialises. A processor that needs the model (its tokenizer, its vocabulary) overrides
    :meth:`bind`.

    Example:

    ```python
    import keras
    from samplerlab.processors.base import Processor

    @keras.saving.register_keras_serializable(package="doc")
    class Shift(Processor):
        '''Add a constant to every logit (a no-op for sampling).'''

        def __init__(self, amount=1.0):
            self.amount = self.add_param("amount", amount)

        def process(self, logits, context):
            return logits + self.amount

    assert Shift(2.0).params() == {"amount": 2.0}
    assert Shift.from_config(Shift(3.0).get_config()).params() == {"amount": 3.0}
    ```
    """

    def bind(self, model: Any) -> None:
        """Called with the causal LM before the chain traces its loop; the default does nothing.

        ``model`` is what KerasHub hands the sampler (``CausalLM.generate_step`` passes
        itself), or None when the chain runs without one.
        """

    def process(self, logits: Any, context: Context) -> Any:
        """Return processed ``(batch, vocab)`` float32 logits."""
        raise NotImplementedError

    def __call__(self, logits: Any, context: Context) -> Any:
        return self.process(logits, context)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Processor:
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


def keep(logits: Any, mask: Any) -> Any:
    """``logits`` where ``mask`` is True, ``-inf`` elsewhere."""
    from keras import ops

    return ops.where(mask, logits, ops.full_like(logits, NEG_INF))


def is_max(logits: Any) -> Any:
    """True on the most probable token(s) of each row: every truncation keeps them."""
    from keras import ops

    return logits >= ops.max(logits, axis=-1, keepdims=True)


def token_counts(context: Context, vocab_size: int, *, include_prompt: bool = True,
                 dtype: str = "float32") -> Any:
    """``(batch, vocab)`` count of each token among positions ``< index``.

    With ``include_prompt=False`` only generated tokens count.
    """
    from keras import ops

    tokens = ops.cast(context.tokens, "int32")
    batch, length = ops.shape(tokens)
    valid = ops.broadcast_to(ops.arange(length, dtype="int32")[None, :] < context.index,
                             (batch, length))
    if not include_prompt:
        valid = ops.logical_and(valid, ops.logical_not(context.prompt_mask))
    return scatter_rows(tokens, ops.cast(valid, dtype), vocab_size)


def scatter_rows(columns: Any, weights: Any, width: int) -> Any:
    """Sum ``weights[b, j]`` into ``out[b, columns[b, j]]`` for an out of shape (batch, width)."""
    from keras import ops

    batch, length = ops.shape(columns)
    rows = ops.repeat(ops.arange(batch, dtype="int32"), length)
    indices = ops.stack([rows, ops.reshape(ops.cast(columns, "int32"), (-1,))], axis=1)
    return ops.scatter(indices, ops.reshape(weights, (-1,)), (batch, width))


def smallest_set_threshold(keys: Any, weights: Any, target: Any,
                           iterations: int = 40) -> Any:
    """``(batch, 1)`` threshold ``s``: the smallest with ``sum(weights[keys <= s]) >= target``.

    Keeping ``keys <= s`` then keeps the smallest set, in increasing key order, whose
    weight reaches ``target`` (all tokens tied with the last one included): top-k is
    ``keys=-logits, weights=1``, top-p is ``keys=-logits, weights=probs``. It bisects on
    the key value instead of sorting the vocabulary: XLA's CPU sort of 50k entries costs
    more than a GPT-2 forward pass, 40 masked sums cost a fraction of it, and ``target``
    stays a traced value. 40 halvings take the interval below float32 resolution.
    When ``target`` is out of reach, ``s`` is the largest finite key (keep everything).
    """
    from keras import ops

    finite = ops.isfinite(keys)
    hi = ops.max(ops.where(finite, keys, -math.inf), axis=-1, keepdims=True)
    lo = ops.min(ops.where(finite, keys, math.inf), axis=-1, keepdims=True) - 1.0
    weights = ops.where(finite, weights, 0.0)

    def halve(_, bounds):
        lo, hi = bounds
        mid = (lo + hi) / 2
        enough = ops.sum(ops.where(keys <= mid, weights, 0.0), axis=-1, keepdims=True) >= target
        return ops.where(enough, lo, mid), ops.where(enough, mid, hi)

    _, hi = ops.fori_loop(0, iterations, halve, (lo, hi))
    return hi
