"""History-aware processors: penalties on tokens already in the context, n-gram blocking.

History is the prompt plus the tokens generated so far (positions ``< index``), as in
Hugging Face ``transformers`` (whose processors see ``input_ids``, prompt included).
The three penalties accept ``include_prompt=False`` to count generated tokens only
(closer to OpenAI's presence/frequency penalties on a completion).
"""

from __future__ import annotations

from typing import Any

import keras

from samplerlab.processors.base import (
    NEG_INF,
    Context,
    Processor,
    scatter_rows,
    token_counts,
)


class _Penalty(Processor):

    def __init__(self, penalty: float, include_prompt: bool) -> None:
        self.penalty = self.add_param("penalty", penalty)
        self.include_prompt = self.add_static("include_prompt", bool(include_prompt))

    def counts(self, logits: Any, context: Context) -> Any:
        from keras import ops

        return token_counts(context, ops.shape(logits)[-1],
                            include_prompt=self.include_prompt)


@keras.saving.register_keras_serializable(package="samplerlab")
class RepetitionPenalty(_Penalty):
    """Make tokens already in the history less likely (Keskar et al. 2019, CTRL).

    HF ``RepetitionPenaltyLogitsProcessor``: a seen token's logit is divided by
    ``penalty`` when positive and multiplied by it when negative. ``penalty > 1``
    discourages repetition; 1 is a no-op.
    """

    def __init__(self, penalty: float = 1.2, include_prompt: bool = True) -> None:
        super().__init__(penalty, include_prompt)

    def process(self, logits: Any, context: Context) -> Any:
        from keras import ops

        seen = self.counts(logits, context) > 0
        penalised = ops.where(logits < 0, logits * self.penalty, logits / self.penalty)
        return ops.where(seen, penalised, logits)


@keras.saving.register_keras_serializable(package="samplerlab")
class PresencePenalty(_Penalty):
    """Subtract ``penalty`` from the logit of every token present in the history.

    OpenAI API / llama.cpp ``penalty_present``: ``logit -= penalty * [count > 0]``.
    """

    def __init__(self, penalty: float = 0.5, include_prompt: bool = True) -> None:
        super().__init__(penalty, include_prompt)

    def process(self, logits: Any, context: Context) -> Any:
        from keras import ops

        seen = ops.cast(self.counts(logits, context) > 0, logits.dtype)
        return logits - self.penalty * seen


@keras.saving.register_keras_serializable(package="samplerlab")
class FrequencyPenalty(_Penalty):
    """Subtract ``penalty`` times a token's count in the history from its logit.

    OpenAI API / llama.cpp ``penalty_freq``: ``logit -= penalty * count``.
    """

    def __init__(self, penalty: float = 0.5, include_prompt: bool = True) -> None:
        super().__init__(penalty, include_prompt)

    def process(self, logits: Any, context: Context) -> Any:
        return logits - self.penalty * self.counts(logits, context)


@keras.saving.register_keras_serializable(package="samplerlab")
class NoRepeatNGram(Processor):
    """Forbid any token that would complete an n-gram already in the history.

    HF ``NoRepeatNGramLogitsProcessor`` (Paulus et al. 2018): when the last ``n - 1``
    tokens equal the first ``n - 1`` tokens of an earlier n-gram, that n-gram's last token
    gets ``-inf``. ``n`` sets the shape of the comparison, so it is a static parameter
    (part of the structure key): changing it recompiles.
    """


    def __init__(self, n: int = 3) -> None:
        self.n = self.add_static("n", int(n))

    def banned(self, context: Context, vocab_size: int) -> Any:
        """``(batch, vocab)`` bool: tokens that would repeat an n-gram."""
        from keras import ops

        n = self.n
        tokens = ops.cast(context.tokens, "int32")
        length = ops.shape(tokens)[1]
        index = ops.cast(context.index, "int32")
        starts = ops.arange(length, dtype="int32")
        # An earlier n-gram starting at j lies wholly in the history: j + n - 1 < index.
        match = ops.broadcast_to((starts + n - 1 < index)[None, :], ops.shape(tokens))
        for m in range(n - 1):
            earlier = ops.take(tokens, ops.clip(starts + m, 0, length - 1), axis=1)
            current = ops.take(tokens, ops.clip(index - (n - 1) + m, 0, length - 1), axis=1)
            match = ops.logical_and(match, earlier == current[:, None])
        following = ops.take(tokens, ops.clip(starts + n - 1, 0, length - 1), axis=1)
        return scatter_rows(following, ops.cast(match, "float32"), vocab_size) > 0

    def process(self, logits: Any, context: Context) -> Any:
        from keras import ops

        banned = self.banned(context, ops.shape(logits)[-1])
        return ops.where(banned, ops.full_like(logits, NEG_INF), logits)
