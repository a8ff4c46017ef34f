"""DRY ("don't repeat yourself"): penalise tokens that would extend a repeated sequence.

p-e-w's sampler (text-generation-webui PR #5677), with llama.cpp's parameters and
matching rules (``llama_sampler_dry``, after koboldcpp's implementation by pi6am):

1. The *window* is the last ``penalty_last_n`` tokens of the history (prompt included;
   ``-1``: the whole history, ``0``: DRY off).
2. *Sequence breakers* stop a repetition from reaching back across them: the most recent
   breaker in the window limits every match to the tokens after it.
3. For every earlier position ``j`` of the window, ``n_j`` is the length of the longest
   run of tokens ending at ``j`` that equals the run ending at the last token (within the
   window, at most the breaker limit). The token after ``j`` would extend that repetition
   to ``n_j + 1`` tokens.
4. Each such token whose longest ``n_j`` reaches ``allowed_length`` loses
   ``multiplier * base ** (n_j - allowed_length)`` from its logit (the exponent is capped
   so that the power stays finite in float32). Single-token breakers are never penalised.

Breakers are strings, as in llama.cpp: every token whose text contains the string is a
single-token breaker, and a token whose text *ends with* the start of a longer breaker
string is one when the tokens that spell the rest follow it. Turning strings into tokens
needs the model's tokenizer, which the ``chain`` sampler hands the processor before its
loop is traced (:meth:`DRY.bind`); a breaker given as a list of token ids is used as it
is and needs no tokenizer.

Everything runs inside the compiled loop with ``keras.ops``: per step it compares every
window position with the current suffix (``O(max_length²)`` booleans per row, no Python
control flow on tensor values). ``multiplier``, ``base``, ``allowed_length`` and
``penalty_last_n`` are program parameters; the breakers are static.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import keras
import numpy as np

from samplerlab.processors.base import Context, Processor

DEFAULT_SEQUENCE_BREAKERS = ("\n", ":", '"', "*")
#: llama.cpp's limits: breakers longer than this many characters, and tails longer than
#: this many tokens, are cut (here: refused by the factory / cut).
MAX_BREAKER_CHARS = 40
MAX_TAIL_TOKENS = 20
#: ``log(float32 max)``: ``base ** e`` overflows beyond ``e = FLOAT_MAX_LOG / log(base)``.
FLOAT_MAX_LOG = 88.7228391

Breaker = str | list[int]


@keras.saving.register_keras_serializable(package="samplerlab")
class DRY(Processor):
    """Penalise tokens that would continue a sequence already in the context (DRY).

    Args:
        multiplier: float, the penalty's scale; 0 turns DRY off (0.8 is the usual value).
        base: float >= 1, how fast the penalty grows with the repeated length.
        allowed_length: int >= 1, repetitions shorter than this are not penalised.
        sequence_breakers: list of strings (tokenized with the model's tokenizer, see
            :meth:`bind`) or of token-id lists, each a sequence that a repetition may not
            reach back across.
        penalty_last_n: int, how many of the last tokens to search (``-1``: all, ``0``:
            DRY off).

    Example:

    ```python
    from samplerlab.processors.dry import DRY
    from samplerlab.processors.truncation import TopK
    from samplerlab.samplers.chain_sampler import ChainSampler
    sampler = ChainSampler([DRY(multiplier=0.8), TopK(40)], seed=1)
    causal_lm.compile(sampler=sampler)   # the chain binds DRY to causal_lm's tokenizer
    causal_lm.generate(["Keras is a"])
    ```
    """


    def __init__(self, multiplier: float = 0.8, base: float = 1.75, allowed_length: int = 2,
                 sequence_breakers: list[Breaker] | tuple = DEFAULT_SEQUENCE_BREAKERS,
                 penalty_last_n: int = -1) -> None:
        self.multiplier = self.add_param("multiplier", multiplier)
        self.base = self.add_param("base", base)
        self.allowed_length = self.add_param("allowed_length", allowed_length, dtype="int32")
        self.penalty_last_n = self.add_param("penalty_last_n", penalty_last_n, dtype="int32")
        breakers = [b if isinstance(b, str) else [int(t) for t in b] for b in sequence_breakers]
        self.sequence_breakers = self.add_static("sequence_breakers", breakers)
        self._sequences: list[tuple[int, ...]] | None = None
        if all(isinstance(b, list) for b in breakers):
            self._sequences = _unique([tuple(b) for b in breakers if b])

    def bind(self, model: Any) -> None:
        """Turn string breakers into token sequences with ``model.preprocessor.tokenizer``.

        Raises:
            ValueError: a breaker is a string and the model has no tokenizer.
        """
        if all(isinstance(b, list) for b in self.sequence_breakers):
            return
        tokenizer = getattr(getattr(model, "preprocessor", None), "tokenizer", None)
        if tokenizer is None:
            raise ValueError("DRY's sequence_breakers are strings, which need the model's "
                             "tokenizer, and this model has no preprocessor; give each "
                             "breaker as a list of token ids instead")
        self._sequences = breaker_sequences(tokenizer, self.sequence_breakers)

    def sequences(self) -> list[tuple[int, ...]]:
        """The breakers as token sequences ``(head, *tail)`` (after :meth:`bind`)."""
        if self._sequences is None:
            raise ValueError("DRY's string sequence_breakers are not tokenized yet: call "
                             "bind(causal_lm) first (the chain sampler does)")
        return self._sequences

    def process(self, logits: Any, context: Context) -> Any:
        from keras import ops

        vocab = ops.shape(logits)[-1]
        tokens = ops.cast(context.tokens, "int32")
        batch, length = ops.shape(tokens)
        index = ops.cast(context.index, "int32")
        last = index - 1
        positions = ops.arange(length, dtype="int32")
        size = ops.where(self.penalty_last_n < 0, index,
                         ops.minimum(self.penalty_last_n, index))
        start = index - size
        in_window = ops.logical_and(positions >= start, positions < index)

        single = self._single_breakers(vocab)
        limit = self._repeat_limit(tokens, positions, in_window, last, size, single)
        runs = _suffix_runs(tokens, positions, last, start)
        # The token after an earlier end position j would extend its run (j < last).
        ends = ops.logical_and(positions >= start, positions < last)[None, :]
        runs = ops.where(ends, ops.minimum(runs, limit[:, None]), 0)
        following = ops.take(tokens, ops.clip(positions + 1, 0, length - 1), axis=1)
        following = ops.clip(following, 0, vocab - 1)
        # Penalties per position (batch, length), then the largest per token: the power is
        # taken max_length times per row, not vocabulary-size times.
        penalised = ops.logical_and(runs >= self.allowed_length,
                                    ops.logical_not(ops.take(single, following)))
        penalised = ops.logical_and(penalised, self.base >= 1.0)
        exponent = ops.cast(runs - self.allowed_length, "float32")
        # llama.cpp caps the exponent where base ** e would overflow float32 (not at base ~1).
        log_base = ops.log(ops.maximum(self.base, 1.000001))
        cap = ops.where(self.base > 1.000001, ops.floor(FLOAT_MAX_LOG / log_base), math.inf)
        penalty = self.multiplier * ops.power(self.base, ops.minimum(exponent, cap))
        penalty = ops.where(penalised, penalty, 0.0)
        return logits - _max_per_token(penalty, following, vocab)

    def _single_breakers(self, vocab: int) -> Any:
        """``(vocab,)`` bool constant: tokens that are a whole breaker by themselves."""
        mask = np.zeros((vocab,), dtype=bool)
        heads = [s[0] for s in self.sequences() if len(s) == 1 and 0 <= s[0] < vocab]
        mask[heads] = True
        return keras.ops.convert_to_tensor(mask)

    def _repeat_limit(self, tokens: Any, positions: Any, in_window: Any, last: Any,
                      size: Any, single: Any) -> Any:
        """``(batch,)``: how far back a run may reach (tokens after the latest breaker)."""
        from keras import ops

        is_single = ops.take(single, ops.clip(tokens, 0, ops.shape(single)[0] - 1))
        # The tail length of the longest breaker starting at each position (-1: none).
        tail = ops.where(ops.logical_and(is_single, in_window[None, :]), 0, -1)
        tail = ops.maximum(tail, self._multi_token_tails(tokens, positions, in_window, last))
        found = tail >= 0
        head = ops.max(ops.where(found, positions[None, :], -1), axis=1)
        head_tail = ops.take_along_axis(tail, ops.maximum(head, 0)[:, None], axis=1)[:, 0]
        return ops.where(head >= 0, last - head - head_tail, size)

    def _multi_token_tails(self, tokens: Any, positions: Any, in_window: Any,
                           last: Any) -> Any:
        """``(batch, length)``: the longest multi-token breaker starting there, or -1."""
        from keras import ops

        multi = [s for s in self.sequences() if len(s) > 1]
        if not multi:
            return ops.full(ops.shape(tokens), -1, dtype="int32")
        width = max(len(s) for s in multi)
        table = np.full((len(multi), width), -1, dtype="int32")
        for row, sequence in enumerate(multi):
            table[row, :len(sequence)] = sequence
        tails = np.array([len(s) - 1 for s in multi], dtype="int32")
        length = ops.shape(tokens)[1]
        # match[b, s, p]: breaker s starts at p and lies wholly in the window, before index.
        match = ops.logical_and(in_window[None, None, :],
                                (positions[None, :] + tails[:, None] <= last)[None])
        for offset in range(width):
            ahead = ops.take(tokens, ops.clip(positions + offset, 0, length - 1), axis=1)
            wanted = table[:, offset]
            same = ahead[:, None, :] == wanted[None, :, None]
            match = ops.logical_and(match, ops.logical_or(same, (wanted < 0)[None, :, None]))
        return ops.max(ops.where(match, tails[None, :, None], -1), axis=1)


def _suffix_runs(tokens: Any, positions: Any, last: Any, start: Any) -> Any:
    """``(batch, length)``: for each end position j, how many tokens ending at j equal the
    tokens ending at ``last`` (both runs inside ``[start, last]``)."""
    from keras import ops

    length = ops.shape(tokens)[1]
    back = positions  # offset m: compare tokens[j - m] with tokens[last - m]
    earlier_at = positions[:, None] - back[None, :]  # (j, m)
    earlier = ops.take(tokens, ops.clip(earlier_at, 0, length - 1), axis=1)  # (b, j, m)
    latest = ops.take(tokens, ops.clip(last - back, 0, length - 1), axis=1)  # (b, m)
    same = ops.logical_and(earlier == latest[:, None, :], (earlier_at >= start)[None])
    # The run ends at the first offset that differs (or leaves the window).
    return ops.min(ops.where(same, length, back[None, None, :]), axis=2)


def _max_per_token(values: Any, tokens: Any, vocab: int) -> Any:
    """``(batch, vocab)``: the largest of ``values[b, j]`` over the j with ``tokens[b, j]``
    equal to each token (0 where there is none; ``values`` are >= 0)."""
    from keras import ops

    batch, length = ops.shape(values)
    rows = ops.arange(batch, dtype="int32")[:, None] * vocab
    segments = ops.reshape(rows + ops.clip(tokens, 0, vocab - 1), (-1,))
    largest = ops.segment_max(ops.reshape(values, (-1,)), segments, num_segments=batch * vocab)
    return ops.maximum(ops.reshape(largest, (batch, vocab)), 0.0)


def _unique(sequences: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
    return list(dict.fromkeys(sequences))


def breaker_sequences(tokenizer: Any, breakers: list[Breaker]) -> list[tuple[int, ...]]:
    """Token sequences ``(head, *tail)`` for DRY's breakers, as llama.cpp builds them.

    A string becomes: every token whose text contains it (a single-token breaker), and,
    for each token whose text ends with a proper start of the string, that token followed
    by the tokenization of the rest (at most :data:`MAX_TAIL_TOKENS` tokens). A list of
    token ids is taken as it is.
    """
    texts = token_texts(tokenizer)
    out: list[tuple[int, ...]] = []
    for breaker in breakers:
        if not isinstance(breaker, str):
            out.extend([tuple(int(t) for t in breaker)] if breaker else [])
            continue
        breaker = breaker[:MAX_BREAKER_CHARS]
        for token, text in enumerate(texts):
            if breaker in text:
                out.append((token,))
                continue
            for cut in range(min(len(text), len(breaker) - 1), 0, -1):
                if text.endswith(breaker[:cut]):
                    rest = np.asarray(tokenizer(breaker[cut:])).reshape(-1)
                    out.append((token, *(int(t) for t in rest[:MAX_TAIL_TOKENS])))
    return _unique(out)


@functools.lru_cache(maxsize=4)
def token_texts(tokenizer: Any) -> tuple[str, ...]:
    """The text of every token id (one batched ``detokenize`` call, kept per tokenizer)."""
    ids = np.arange(tokenizer.vocabulary_size(), dtype="int32")[:, None]
    return tuple(_as_text(t) for t in tokenizer.detokenize(ids))


def _as_text(value: Any) -> str:
    if hasattr(value, "numpy"):
        value = value.numpy()
    if isinstance(value, np.ndarray):
        value = value.item()
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
