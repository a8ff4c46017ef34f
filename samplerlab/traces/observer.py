"""The trace observer: per-token traces recorded inside the compiled generate loop.

:class:`TraceObserver` is a :class:`~samplerlab.decoding.observers.StepObserver`. When a
position's logits arrive (``on_logits``) it writes the model's entropy (and the top
alternatives) for that position, keeps the model's log-probabilities, and, for a sampler
whose final distribution is a function of the logits
(:attr:`~samplerlab.decoding.contract.SamplerCapabilities.distribution`), that
distribution and its kept size; a loop that knows its distribution reports it instead
(``on_distribution``).
When the token is decided (``on_token``, or :meth:`outputs` for the last one) it writes
the token, its log-probability and rank under the model, and its log-probability under
the sampler. One pass over the vocabulary per column, in the same program; the logits
are never changed, so the tokens are those of the untraced program.

Buffers have one slot more than the sequence: a loop that computes the logits of the
position after the last (contrastive search's final step) writes them there, unread.
A sampler whose loop does not hand its cache back gets the same columns from a
teacher-forced pass over its tokens (:func:`~samplerlab.traces.teacher.teacher_forced`).
"""

from __future__ import annotations

from typing import Any

from keras import ops

from samplerlab.decoding.contract import capabilities
from samplerlab.decoding.observers import StepObserver
from samplerlab.traces import columns
from samplerlab.traces.columns import FIELDS, TOP_FIELDS

# Empty values: -1 for integers, NaN for floats (null in traces.parquet).
_EMPTY = {"token_id": 0, "model_rank": -1, "kept_size": -1, "top_ids": 0}


class TraceObserver(StepObserver):
    """Records every position's trace columns (:data:`FIELDS`) in the loop's cache.

    Args:
        sampler: the sampler being traced (its final distribution, where known).
        vocabulary_size: the width of the model's logits.
        top: how many most probable alternatives to keep per position (0: none).

    Example:

    ```python
    import keras_hub
    from samplerlab.engine.programs import ProgramCache
    from samplerlab.traces.observer import TraceObserver

    sampler = keras_hub.samplers.GreedySampler()
    # model: a LoadedModel
    inputs = model.preprocessor.generate_preprocess(["Keras is"], sequence_length=16)
    observer = TraceObserver(sampler, vocabulary_size=model.tokenizer.vocabulary_size(), top=5)
    program = ProgramCache(model.adapter, persistent=False).get(sampler, inputs, None,
                                                                (observer,))
    out = program(sampler, inputs)
    assert out["trace"]["model_logp"].shape == (1, 16)  # (batch, max_length)
    ```
    """

    def __init__(self, sampler: Any, vocabulary_size: int, top: int = 0) -> None:
        self.sampler = sampler
        self.vocabulary_size = int(vocabulary_size)
        self.top = int(top)
        self.distribution = capabilities(sampler).distribution

    def structure_key(self) -> tuple:
        return (*super().structure_key(), self.vocabulary_size, self.top,
                self.distribution is not None)

    def fields(self) -> tuple[str, ...]:
        return FIELDS + (TOP_FIELDS if self.top else ())

    def init(self, token_ids: Any, padding_mask: Any) -> dict[str, Any]:
        batch, length = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
        slots = (batch, length + 1)
        state = {"pending": ops.full((batch,), -1, "int32"),
                 "logp": ops.zeros((batch, self.vocabulary_size), "float32"),
                 "final": ops.full((batch, self.vocabulary_size), float("nan"), "float32")}
        for name in FIELDS:
            state[name] = _empty(name, slots)
        if self.top:
            for name in TOP_FIELDS:
                state[name] = _empty(name, (*slots, self.top))
        return state

    def on_logits(self, state: dict, prompt: Any, index: Any, logits: Any) -> tuple:
        lp = columns.log_probs(logits)
        state = {**state, "logp": lp, "pending": ops.full_like(state["pending"], index)}
        state["model_entropy"] = _write(state["model_entropy"], index, columns.entropy(lp))
        if self.top:
            ids, values = columns.top(lp, self.top)
            state["top_ids"] = _write(state["top_ids"], index, ids)
            state["top_logp"] = _write(state["top_logp"], index, values)
        if self.distribution is not None:
            final, kept = self.distribution(logits)
            state = self._final(state, index, final, kept)
        return state, logits

    def on_distribution(self, state: dict, index: Any, logits: Any) -> dict:
        final = columns.log_probs(logits)
        return self._final(state, index, final, columns.kept_size(final))

    def on_token(self, state: dict, prompt: Any, index: Any, generated: Any) -> dict:
        return self._decided(state, index, ops.take(prompt, index, axis=1))

    def outputs(self, state: dict, token_ids: Any) -> dict[str, Any]:
        # The last position's token is decided after its step: resolve it here.
        length = ops.shape(token_ids)[1]
        index = ops.max(state["pending"])
        index = ops.where(index < 0, length, index)  # no step ran: the spare slot
        tokens = ops.take(token_ids, ops.minimum(index, length - 1), axis=1)
        state = self._decided(state, index, tokens)
        return {"trace": {name: state[name][:, :length] for name in self.fields()}}

    def replay_outputs(self, causal_lm: Any, token_ids: Any) -> dict[str, Any]:
        from samplerlab.traces.teacher import teacher_forced

        return {"trace": teacher_forced(causal_lm, token_ids, self.top, self.distribution)}

    def _final(self, state: dict, index: Any, final: Any, kept: Any) -> dict:
        state = {**state, "final": ops.cast(final, "float32")}
        state["kept_size"] = _write(state["kept_size"], index, ops.cast(kept, "int32"))
        return state

    def _decided(self, state: dict, index: Any, tokens: Any) -> dict:
        tokens = ops.cast(tokens, "int32")
        logp = columns.picked(state["logp"], tokens)
        rank = columns.rank(state["logp"], logp)
        sampler_logp = columns.picked(state["final"], tokens)
        state = dict(state)
        for name, value in (("token_id", tokens), ("model_logp", logp), ("model_rank", rank),
                            ("sampler_logp", sampler_logp)):
            state[name] = _write(state[name], index, value)
        return state


def _empty(name: str, shape: tuple) -> Any:
    if name in _EMPTY:
        return ops.full(shape, _EMPTY[name], "int32")
    return ops.full(shape, float("nan"), "float32")


def _write(buffer: Any, index: Any, values: Any) -> Any:
    """``buffer[:, index] = values`` (``index`` a traced scalar, at most the spare slot)."""
    start = [0, ops.cast(index, "int32")] + [0] * (len(ops.shape(buffer)) - 2)
    return ops.slice_update(buffer, start, ops.cast(values, buffer.dtype)[:, None])
