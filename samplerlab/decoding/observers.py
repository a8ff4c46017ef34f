"""Step observers: code that watches (and may steer) the generate loop from inside it.

An observer sees, inside the compiled loop, the logits of every position before the
sampler does (and may change them, e.g. to force an end token), and every token once it
is decided. Its state is a pytree of batch-first arrays carried in the loop's cache, so
every sampler threads it without knowing (beam search reorders it with its beams), and
a generate step without observers compiles exactly the program it compiles today.

Observers run through :class:`ObservedAdapter`, which wraps the model's decoding adapter:
``step`` (every sampler's ``next``), ``advance`` (samplers that score candidates over a
shared cache) and ``beam_step`` (beam search) call the observers around the wrapped
adapter's own call.

Two more channels serve observers that produce outputs (per-token traces,
:mod:`samplerlab.traces`). A loop that knows the distribution it draws from (a ``chain``,
``mirostat``, ``xtc`` step) reports it with :func:`report_distribution`; and a loop that
knows its carry (samplerlab's own loops) hands its final cache back with
:func:`hand_back`, so the observers' final states become program outputs
(:meth:`StepObserver.outputs`). A loop that does not (a plugin's own ``while_loop``,
KerasHub's beam search) leaves the observers :meth:`StepObserver.replay_outputs`: a
teacher-forced pass over the finished tokens inside the same program. Both helpers do
nothing when the loop runs without observers, so such a loop compiles today's program.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from keras import ops, tree

from samplerlab.models.adapters.base import gather_beams, repeat_beams


class StepObserver:
    """Base class of step observers; the default methods observe nothing.

    Subclasses keep per-row state (``init``), update it when a token is decided
    (``on_token``) and may read or change the logits of a position (``on_logits``).
    ``structure_key()`` says what fixes the compiled program (it is part of the
    program's key).

    Example:

    ```python
    import keras_hub
    from keras import ops
    from samplerlab.decoding.generate import generate_step
    from samplerlab.decoding.observers import StepObserver
    from samplerlab.models.adapters import adapter_for

    class CountGenerated(StepObserver):
        def init(self, token_ids, padding_mask):
            return ops.zeros((ops.shape(token_ids)[0],), "int32")

        def on_token(self, state, prompt, index, generated):
            return state + ops.cast(generated, "int32")

        def outputs(self, state, token_ids):
            return {"generated": state}

    inputs = causal_lm.preprocessor.generate_preprocess(["Keras is"], sequence_length=16)
    out = generate_step(adapter_for(causal_lm), keras_hub.samplers.GreedySampler(), inputs,
                        observers=(CountGenerated(),))
    print(out["generated"])  # tokens generated per row (up to an end token)
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

    def on_distribution(self, state: Any, index: Any, logits: Any) -> Any:
        """The sampler's final distribution at ``index`` as ``(batch, vocab)`` logits
        (``-inf``: removed), reported by loops that know it (:func:`report_distribution`)
        after the sampler decided; returns the new state."""
        return state

    def outputs(self, state: Any, token_ids: Any) -> dict[str, Any]:
        """Program outputs from the final state, once the loop has handed its cache back
        (``token_ids``: the finished ``(batch, max_length)`` tokens of the same rows).
        Default: none."""
        return {}

    def replay_outputs(self, causal_lm: Any, token_ids: Any) -> dict[str, Any]:
        """Program outputs when the sampler's loop did not hand its cache back: what
        can be rebuilt from the finished tokens (e.g. a teacher-forced pass of
        ``causal_lm``). Default: none."""
        return {}


class ObservedAdapter:
    """A decoding adapter whose ``step`` and ``advance`` run ``observers`` around the
    wrapped adapter's. Its cache is ``(inner cache, observer states, padding mask)``."""

    def __init__(self, adapter: Any, observers: tuple[StepObserver, ...]) -> None:
        self.inner = adapter
        self.observers = tuple(observers)
        # The loop's final (cache, tokens), once a loop hands them back (traced values
        # of the program being built; read by :meth:`outputs` in the same trace).
        self.final: tuple | None = None

    @property
    def causal_lm(self) -> Any:
        return self.inner.causal_lm

    @property
    def shared_cache(self) -> bool:
        return self.inner.shared_cache

    @property
    def prefills(self) -> bool:
        return self.inner.prefills

    def start(self, token_ids: Any, padding_mask: Any, **prefill: Any) -> tuple[Any, tuple]:
        hidden_states, cache = self.inner.start(token_ids, padding_mask, **prefill)
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

    def beam_cache(self, cache: tuple, num_beams: int) -> tuple:
        inner, states, mask = cache
        return (self.inner.beam_cache(inner, num_beams), repeat_beams(states, num_beams),
                repeat_beams(mask, num_beams))

    def beam_step(self, prompt: Any, cache: tuple, index: Any) -> tuple[Any, tuple]:
        inner, states, mask = cache
        states = self._token(states, prompt, index - 1, mask)
        logits, inner = self.inner.beam_step(prompt, inner, index)
        states, logits = self._logits(states, prompt, index, logits)
        return logits, (inner, states, mask)

    def beam_reorder(self, cache: tuple, beam_indices: Any) -> tuple:
        # Each beam's observer state follows its beam; a row's beams share its mask.
        inner, states, mask = cache
        return (self.inner.beam_reorder(inner, beam_indices),
                gather_beams(states, beam_indices), mask)

    def report(self, cache: tuple, index: Any, logits: Any) -> tuple:
        """The sampler's final distribution at ``index``, to every observer."""
        inner, states, mask = cache
        states = tuple(o.on_distribution(s, index, logits)
                       for o, s in zip(self.observers, states, strict=True))
        return inner, states, mask

    def hand_back(self, cache: tuple, tokens: Any) -> None:
        """The loop is over: keep its final cache and token rows for :meth:`outputs`."""
        self.final = (cache, tokens)

    def outputs(self, token_ids: Any) -> dict[str, Any]:
        """The observers' program outputs: from their final states when the loop handed
        its cache back, else replayed from ``token_ids`` (the returned tokens).

        A loop with more rows than it returns (a beam search's hypotheses, batch-major)
        hands back every row; each returned row's states are those of its first
        hypothesis with exactly its tokens.
        """
        out: dict[str, Any] = {}
        if self.final is None:
            for observer in self.observers:
                out.update(observer.replay_outputs(self.causal_lm, token_ids))
            return out
        (_, states, _), tokens = self.final
        if ops.shape(tokens)[0] != ops.shape(token_ids)[0]:
            rows = returned_rows(tokens, token_ids)
            states = tree.map_structure(lambda x: ops.take(x, rows, axis=0), states)
        for observer, state in zip(self.observers, states, strict=True):
            out.update(observer.outputs(state, token_ids))
        return out

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


def is_observed(decoding: Any) -> bool:
    """Whether ``decoding`` (what the engine passed a sampler) runs step observers."""
    return isinstance(decoding, ObservedAdapter)


def report_distribution(decoding: Any, cache: Any, index: Any,
                        logits: Callable[[], Any]) -> Any:
    """Report the distribution a loop drew position ``index`` from; returns the cache.

    ``logits()`` builds the ``(batch, vocab)`` logits of that distribution (``-inf``:
    removed); it is called only when observers listen, so a loop without observers
    traces none of it. ``decoding`` is what the engine passed the sampler (or None).
    """
    if is_observed(decoding):
        return decoding.report(cache, index, logits())
    return cache


def hand_back(decoding: Any, cache: Any, tokens: Any) -> None:
    """Hand a finished loop's cache and its token rows back to the engine (a no-op
    without observers)."""
    if is_observed(decoding):
        decoding.hand_back(cache, tokens)


def returned_rows(rows: Any, returned: Any) -> Any:
    """For each of ``returned`` ``(batch, length)``, the index of the first of its
    ``rows`` (``(batch * n, length)``, batch-major) holding exactly the same tokens."""
    batch, length = ops.shape(returned)[0], ops.shape(returned)[1]
    per_row = ops.shape(rows)[0] // batch
    grouped = ops.reshape(rows, (batch, per_row, length))
    same = ops.all(grouped == ops.cast(returned, rows.dtype)[:, None, :], axis=-1)
    first = ops.argmax(ops.cast(same, "int32"), axis=-1)
    return ops.arange(batch) * per_row + ops.cast(first, "int32")
