"""Teacher-forced traces: the model-side columns of given tokens, one forward pass.

For tokens ``x_0 .. x_{n-1}`` the causal LM's logits at position ``t - 1`` are its
distribution over ``x_t``; so every position but the first gets the columns the generate
loop records (:mod:`samplerlab.traces.columns`), from one call of the model over the whole
row (KerasHub's own forward pass). The same function serves samplers whose loop does not
hand its cache back (inside the generate program) and :func:`score_tokens` /
:func:`samplerlab.score_text` (text given by the user).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from keras import ops

from samplerlab.traces import columns
from samplerlab.traces.columns import FIELDS, TOP_FIELDS

# Row lengths are rounded up to a multiple of this, so scoring texts of similar lengths
# reuses one compiled program.
LENGTH_BUCKET = 32


def teacher_forced(causal_lm: Any, token_ids: Any, top: int = 0,
                   distribution: Any = None) -> dict[str, Any]:
    """The trace columns of every position of ``token_ids`` ``(batch, length)`` (position
    0 has no prediction: empty), from one forward pass; traceable.

    ``distribution`` (a :data:`~samplerlab.decoding.distributions.Distribution`) fills the
    sampler-side columns; without it they are empty.
    """
    token_ids = ops.cast(token_ids, "int32")
    batch, length = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
    logits = causal_lm({"token_ids": token_ids,
                        "padding_mask": ops.ones_like(token_ids, dtype="bool")})[:, :-1]
    lp = columns.log_probs(logits)
    targets = token_ids[:, 1:]
    logp = columns.picked(lp, targets)
    out = {"token_id": token_ids, "model_logp": logp, "model_rank": columns.rank(lp, logp),
           "model_entropy": columns.entropy(lp)}
    if distribution is not None:
        vocab = ops.shape(logits)[-1]
        final, kept = distribution(ops.reshape(logits, (-1, vocab)))
        final = ops.reshape(final, (batch, length - 1, vocab))
        out["sampler_logp"] = columns.picked(final, targets)
        out["kept_size"] = ops.reshape(kept, (batch, length - 1))
    else:
        out["sampler_logp"] = ops.full((batch, length - 1), float("nan"), "float32")
        out["kept_size"] = ops.full((batch, length - 1), -1, "int32")
    if top:
        out["top_ids"], out["top_logp"] = columns.top(lp, top)
    return {name: out[name] if name == "token_id" else _shift(out[name])
            for name in FIELDS + (TOP_FIELDS if top else ())}


def _shift(values: Any) -> Any:
    """Prepend an empty position 0 (-1 for integers, NaN for floats)."""
    first = ops.full_like(values[:, :1], -1 if "int" in str(values.dtype) else float("nan"))
    return ops.concatenate([first, values], axis=1)


class Scorer:
    """Teacher-forced traces of token rows under one model, compiled once per shape.

    Args:
        model: a :class:`samplerlab.models.LoadedModel`.
        top: alternatives kept per position.

    Example:

    ```python
    import numpy as np
    from samplerlab.traces.teacher import Scorer

    token_ids = np.asarray(model.tokenizer("The cat sat on")).tolist()  # model: a LoadedModel
    columns = Scorer(model, top=5).score([token_ids])[0]  # one dict per row
    logp = columns["model_logp"]  # NaN, then the log-probabilities of tokens 1..
    assert np.isnan(logp[0]) and (logp[1:] < 0).all()
    ```
    """

    def __init__(self, model: Any, top: int = 0) -> None:
        self.model = model
        self.top = int(top)
        self._compiled: dict[tuple[int, int], Any] = {}

    def score(self, rows: list[list[int]], batch_size: int = 8) -> list[dict[str, np.ndarray]]:
        """Per row, its columns as NumPy arrays of the row's length."""
        results: list[dict[str, np.ndarray]] = []
        pad = int(self.model.tokenizer.end_token_id)
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            longest = max(len(r) for r in chunk)
            length = -(-longest // LENGTH_BUCKET) * LENGTH_BUCKET
            length = max(longest, min(length, self.model.max_sequence_length))
            ids = np.full((batch_size, length), pad, dtype="int32")
            for i, row in enumerate(chunk):
                ids[i, :len(row)] = row
            out = self._program(ids.shape)(ids, self._state())
            out = {k: np.asarray(v) for k, v in out.items()}
            results += [{k: v[i, :len(row)] for k, v in out.items()}
                        for i, row in enumerate(chunk)]
        return results

    def _state(self) -> tuple:
        lm = self.model.causal_lm
        return ([v.value for v in lm.trainable_variables],
                [v.value for v in lm.non_trainable_variables])

    def _program(self, shape: tuple[int, int]) -> Any:
        if shape not in self._compiled:
            import jax
            import keras

            lm, top = self.model.causal_lm, self.top

            @jax.jit
            def program(token_ids: Any, state: tuple) -> dict:
                trainable, non_trainable = state
                mapping = itertools.chain(zip(lm.trainable_variables, trainable, strict=True),
                                          zip(lm.non_trainable_variables, non_trainable,
                                              strict=True))
                with keras.StatelessScope(state_mapping=mapping):
                    return teacher_forced(lm, token_ids, top)

            self._compiled[shape] = program
        return self._compiled[shape]
