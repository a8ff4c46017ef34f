"""The processor contract: a logits → logits step of a ``chain`` sampler.

A processor sees the float32 logits of the next token (``(batch, vocab)``) and a
:class:`Context` holding the token history, and returns new logits. Tokens it removes
get ``-inf``. Processors run inside KerasHub's compiled generate loop, so they use
``keras.ops`` only and never Python control flow on tensor values.

Numeric parameters (``k``, ``p``, penalties, ...) are stored as non-trainable
``keras.Variable`` s and exposed through :attr:`Processor.variables`. KerasHub passes a
sampler's ``variables`` into its jitted generate function as *state*, so they are traced
values: changing them (``assign_params``) reuses the compiled function instead of
recompiling. Parameters that change shapes (``no_repeat_ngram_size``'s ``n``) or program
structure are *static*: they are part of :meth:`Processor.structure_key`.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

NEG_INF = -math.inf


class Context(NamedTuple):
    """What a processor may look at besides the logits.

    Attributes:
        tokens: int tensor ``(batch, max_length)``: the prompt and the tokens generated so
            far. Positions ``< index`` are filled (prompt or generated); later positions
            hold padding or, for rows with a longer prompt, the rest of that prompt.
        index: int32 scalar tensor, the position being generated.
        prompt_mask: bool tensor ``(batch, max_length)``, True on prompt tokens.
    """

    tokens: Any
    index: Any
    prompt_mask: Any


class Processor:
    """Base class of logits processors usable in a ``chain`` sampler.

    Subclasses call :meth:`add_param` for each traced numeric parameter, set
    ``self.static`` entries for shape-changing ones, and implement :meth:`process`.

    Example:

    >>> import keras
    >>> from samplerlab.processors.base import Processor
    >>> class Shift(Processor):
    ...     '''Add a constant to every logit (a no-op for sampling).'''
    ...     def __init__(self, amount=1.0):
    ...         super().__init__()
    ...         self.amount = self.add_param("amount", amount)
    ...     def process(self, logits, context):
    ...         return logits + self.amount
    >>> Shift(2.0).params()
    {'amount': 2.0}
    """

    #: True when :meth:`process` reads ``context.tokens`` (documentation only).
    needs_history = False

    def __init__(self) -> None:
        self._params: dict[str, Any] = {}
        self.static: dict[str, Any] = {}

    def add_param(self, name: str, value: float | int, dtype: str = "float32") -> Any:
        """Create a non-trainable ``keras.Variable`` holding a traced parameter."""
        import keras

        variable = keras.Variable(value, dtype=dtype, trainable=False,
                                  name=f"{type(self).__name__}_{name}")
        self._params[name] = variable
        return variable

    @property
    def variables(self) -> list[Any]:
        """The traced parameters, in a fixed order (KerasHub threads them as state)."""
        return list(self._params.values())

    def params(self) -> dict[str, Any]:
        """Current parameter values as Python numbers (static ones included)."""
        import keras

        out: dict[str, Any] = {k: keras.ops.convert_to_numpy(v).item()
                               for k, v in self._params.items()}
        out.update(self.static)
        return out

    def structure_key(self) -> tuple:
        """What must match for two processors to share one compiled program."""
        return (type(self).__module__, type(self).__qualname__, tuple(self._params),
                tuple(sorted(self.static.items())))

    def process(self, logits: Any, context: Context) -> Any:
        """Return processed ``(batch, vocab)`` float32 logits."""
        raise NotImplementedError

    def __call__(self, logits: Any, context: Context) -> Any:
        return self.process(logits, context)

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


def structure_key(sampler: Any) -> tuple | None:
    """A hashable key, or None when the sampler cannot share a compiled program.

    Two samplers with equal keys differ only in traced values (and seeds): the runner
    may compile once, then ``assign_params`` the next one into the compiled sampler.
    """
    method = getattr(sampler, "structure_key", None)
    return method() if callable(method) else None


def assign_params(target: Any, source: Any) -> None:
    """Copy every traced value (parameters and seed state) of ``source`` into ``target``.

    After this, ``target`` behaves exactly like ``source`` would, and a generate function
    already compiled for ``target`` is reused without recompiling.

    Raises:
        ValueError: the two samplers do not have the same structure key.
    """
    key = structure_key(target)
    if key is None or key != structure_key(source):
        raise ValueError(f"cannot assign parameters across structures: {key} vs "
                         f"{structure_key(source)}")
    for mine, theirs in zip(target.variables, source.variables, strict=True):
        mine.assign(theirs.value)


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
