"""Step observers: code that watches (and may steer) the generate loop from inside it.

An observer sees, inside the compiled loop, the logits of every position before the
sampler does (and may change them, e.g. to force an end token), and every token once it
is decided. Its state is a pytree of batch-first arrays carried in the loop's cache, so
every sampler threads it without knowing (beam search reorders it with its beams), and
a generate step without observers compiles exactly the program it compiles today.

Observers run through :class:`ObservedAdapter`, which wraps the model's decoding adapter:
``step`` (every sampler's ``next``) and ``advance`` (samplers that score candidates over a
shared cache) call the observers around the wrapped adapter's own call.
"""

from __future__ import annotations

from typing import Any

from keras import ops


class StepObserver:
    """Base class of step observers; the default methods observe nothing.

    Subclasses keep per-row state (``init``), update it when a token is decided
    (``on_token``) and may read or change the logits of a position (``on_logits``).
    ``structure_key()`` says what fixes the compiled program (it is part of the
    program's key).

    Example:

    ```python
    from keras import ops
    from samplerlab.engine.observers import StepObserver

    class CountGenerated(StepObserver):
        def init(self, token_ids, padding_mask):
            return ops.zeros((ops.shape(token_ids)[0],), "int32")

        def on_token(self, state, prompt, index, generated):
            return state + ops.cast(generated, "int32")
    ```
    """

    def structure_key(self) -> tuple:
        cls = type(self)
        return (f"{cls.__module__}.{cls.__qualname__}",)

    def init(self, token_ids: Any, padding_mask: Any) -> Any:
        """The state before the first step (batch-first arrays; ``()`` for none)."""
        return ()

    def on_token(self, state: Any, prompt: Any, index: Any, generated: Any) -> Any:
        """``prompt[:, index]`` is decided; ``generated`` ``(batch,)`` is False on rows
        where it is a prompt token. Returns the new state."""
        return state

    def on_logits(self, state: Any, prompt: Any, index: Any, logits: Any) -> tuple[Any, Any]:
        """The ``(batch, vocab)`` logits of position ``index``, before the sampler reads
        them; returns ``(state, logits)`` (changed logits steer every sampler)."""
        return state, logits


class ObservedAdapter:
    """A decoding adapter whose ``step`` and ``advance`` run ``observers`` around the
    wrapped adapter's. Its cache is ``(inner cache, observer states, padding mask)``."""

    def __init__(self, adapter: Any, observers: tuple[StepObserver, ...]) -> None:
        self.inner = adapter
        self.observers = tuple(observers)

    @property
    def causal_lm(self) -> Any:
        return self.inner.causal_lm

    @property
    def shared_cache(self) -> bool:
        return self.inner.shared_cache

    def start(self, token_ids: Any, padding_mask: Any) -> tuple[Any, tuple]:
        hidden_states, cache = self.inner.start(token_ids, padding_mask)
        states = tuple(o.init(token_ids, padding_mask) for o in self.observers)
        return hidden_states, (cache, states, padding_mask)

    def step(self, prompt: Any, cache: tuple, index: Any, padding_mask: Any) -> tuple:
        inner, states, mask = cache
        states = self._token(states, prompt, index - 1, mask)
        logits, hidden_states, inner = self.inner.step(prompt, inner, index, padding_mask)
        states, logits = self._logits(states, prompt, index, logits)
        return logits, hidden_states, (inner, states, mask)

    def candidate_forward(self, tokens: Any, cache: tuple, index: Any) -> tuple[Any, Any]:
        return self.inner.candidate_forward(tokens, cache[0], index)

    def advance(self, prompt: Any, cache: tuple, updates: Any, hidden: Any, chosen: Any,
                index: Any) -> tuple[Any, tuple]:
        inner, states, mask = cache
        states = self._token(states, prompt, index, mask)
        logits, inner = self.inner.advance(prompt, inner, updates, hidden, chosen, index)
        states, logits = self._logits(states, prompt, index + 1, logits)
        return logits, (inner, states, mask)

    def _token(self, states: tuple, prompt: Any, index: Any, mask: Any) -> tuple:
        generated = ops.logical_not(ops.take(mask, index, axis=1))
        return tuple(o.on_token(s, prompt, index, generated)
                     for o, s in zip(self.observers, states, strict=True))

    def _logits(self, states: tuple, prompt: Any, index: Any, logits: Any) -> tuple:
        out = []
        for observer, state in zip(self.observers, states, strict=True):
            state, logits = observer.on_logits(state, prompt, index, logits)
            out.append(state)
        return tuple(out), logits
