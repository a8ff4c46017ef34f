"""Stop strings (``generation.stop``): a row ends when its text contains one.

Detection runs inside the compiled generate loop, as a
:class:`~samplerlab.decoding.observers.StepObserver`, so a batch stops as soon as every
row has stopped instead of generating ``max_length`` for all. The text of a row is the
concatenation of its tokens' bytes, so the stop strings are matched over bytes by one
automaton (Aho-Corasick: every stop string at once, occurrences spanning any number of
tokens), lifted from bytes to tokens once per tokenizer: ``next[class(token), state]``
is the automaton's state after reading a whole token from ``state``, and
``hit[class(token), state]`` whether a stop string ended inside it. Tokens with the same
effect from every state share a class (most tokens touch no stop string at all: one
class), so the tables stay small for any vocabulary. Per step and row that is two
lookups; a row that has completed a stop string is then steered to the end token
(``on_logits``), which every sampler's own stop condition already ends.

What a token's bytes are depends on the tokenizer (:func:`token_bytes`): byte-level BPE
(GPT-2) spells bytes with printable characters (KerasHub's ``bytes_to_unicode``), and
SentencePiece writes a space as ``▁``, bytes it has no piece for as ``<0xNN>`` pieces,
and drops the leading space of a text, so the first generated token is read without it.

The engine then cuts each row's *detokenized* text before the stop string
(:func:`cut_at_stop`), which is the truth the automaton anticipates: the sample keeps
that text, the tokens that fit in it, ``stop_reason: stop_string`` and the string.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from samplerlab.decoding.observers import StepObserver
from samplerlab.models import internals

STOP_STRING = "stop_string"
#: Logit of every token but the end token once a row has stopped (finite: no NaN in any
#: sampler's softmax).
SUPPRESSED = -1e9


class StopAutomaton:
    """Aho-Corasick over the stop strings' UTF-8 bytes, as a full transition table.

    Attributes:
        delta: ``(states, 256)`` int32, the state after reading a byte.
        accepting: ``(states,)`` bool, a stop string ends at this state.

    Example:

    ```python
    from samplerlab.engine.stop_strings import StopAutomaton

    automaton = StopAutomaton(["\\n\\n", "THE END"])
    assert automaton.run(b"and THE END")[1]  # the stop string ended in these bytes
    ```
    """

    def __init__(self, stops: list[str]) -> None:
        goto: list[dict[int, int]] = [{}]
        terminal = [False]
        for text in stops:
            state = 0
            for byte in text.encode("utf-8"):
                if byte not in goto[state]:
                    goto.append({})
                    terminal.append(False)
                    goto[state][byte] = len(goto) - 1
                state = goto[state][byte]
            terminal[state] = True
        self.delta = np.zeros((len(goto), 256), dtype=np.int32)
        self.accepting = np.array(terminal)
        fail = [0] * len(goto)
        queue = deque()
        for byte, child in goto[0].items():
            self.delta[0, byte] = child
            queue.append(child)
        while queue:  # breadth first: a state's fail link is settled before its children
            state = queue.popleft()
            self.accepting[state] |= self.accepting[fail[state]]
            self.delta[state] = self.delta[fail[state]]
            for byte, child in goto[state].items():
                fail[child] = self.delta[fail[state], byte]
                self.delta[state, byte] = child
                queue.append(child)

    @property
    def states(self) -> int:
        return len(self.accepting)

    def run(self, data: bytes, state: int = 0) -> tuple[int, bool]:
        """``(state after data, whether a stop string ended inside it)``."""
        hit = False
        for byte in data:
            state = int(self.delta[state, byte])
            hit |= bool(self.accepting[state])
        return state, hit

    def over_tokens(self, tokens: list[bytes], start: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Every token read from every state (or from ``start``, one state per token):
        ``(next, hit)``, each ``(tokens, states)`` (``(tokens,)`` with ``start``)."""
        lengths = np.array([len(t) for t in tokens])
        width = max(int(lengths.max(initial=0)), 1)
        data = np.zeros((len(tokens), width), dtype=np.int32)
        for i, token in enumerate(tokens):
            data[i, :len(token)] = np.frombuffer(token, dtype=np.uint8)
        state = (np.tile(np.arange(self.states, dtype=np.int32), (len(tokens), 1))
                 if start is None else np.asarray(start, dtype=np.int32).copy())
        hit = np.zeros(state.shape, dtype=bool)
        for j in range(width):  # only the tokens at least j + 1 bytes long move
            rows = np.nonzero(lengths > j)[0]
            byte = data[rows, j]
            moved = self.delta[state[rows], byte[:, None] if state.ndim == 2 else byte]
            state[rows] = moved
            hit[rows] |= self.accepting[moved]
        return state, hit


def token_bytes(tokenizer: Any) -> tuple[list[bytes], bool]:
    """Each token id's bytes as the tokenizer's ``detokenize`` writes them, and whether
    ``detokenize`` drops the leading space of a text (SentencePiece)."""
    import keras_hub

    vocabulary = tokenizer.get_vocabulary()
    if isinstance(tokenizer, keras_hub.tokenizers.BytePairTokenizer):
        decoder = internals.byte_decoder()
        return [bytes(decoder[c] for c in piece) if all(c in decoder for c in piece)
                else piece.encode("utf-8") for piece in vocabulary], False
    if isinstance(tokenizer, keras_hub.tokenizers.SentencePieceTokenizer):
        return _sentence_piece_bytes(tokenizer, vocabulary), True
    # Any other tokenizer: each token detokenized alone (exact for tokenizers whose
    # tokens are whole characters).
    from samplerlab.engine.text import detokenize

    return [detokenize(tokenizer, [i]).encode("utf-8") for i in range(len(vocabulary))], False


def _sentence_piece_bytes(tokenizer: Any, vocabulary: list[str]) -> list[bytes]:
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(model_proto=tokenizer.proto)
    out = []
    for i, piece in enumerate(vocabulary):
        if processor.is_control(i):
            out.append(b"")
        elif processor.is_byte(i):
            out.append(bytes([int(piece[3:5], 16)]))                 # "<0x0A>"
        elif processor.is_unknown(i):
            out.append(processor.decode([i]).encode("utf-8"))
        else:
            out.append(piece.replace("\u2581", " ").encode("utf-8"))
    return out


class StopStringObserver(StepObserver):
    """Detects the stop strings inside the generate loop and ends the rows that hit one.

    A row's state is ``(automaton state, stopped, started)``: each decided token of the
    continuation moves the automaton (the first one read as ``detokenize`` writes a
    text's beginning); once a stop string has ended inside a token the row is stopped
    and its logits allow only ``end_token_id``, so the sampler's stop condition ends it.

    Args:
        tokenizer: the model's KerasHub tokenizer.
        stops: the stop strings (non-empty).
        end_token_id: the token a stopped row is steered to.

    Example:

    ```python
    import keras_hub
    from samplerlab.engine.programs import ProgramCache
    from samplerlab.engine.stop_strings import StopStringObserver

    sampler = keras_hub.samplers.GreedySampler()
    # model: a LoadedModel
    inputs = model.preprocessor.generate_preprocess(["Keras is"], sequence_length=24)
    observer = StopStringObserver(model.tokenizer, ["\\n\\n"], model.end_token_id)
    program = ProgramCache(model.adapter, persistent=False).get(
        sampler, inputs, (model.end_token_id,), observers=(observer,))
    out = program(sampler, inputs)  # each row ends at its first blank line, or at max_length
    ```
    """

    def __init__(self, tokenizer: Any, stops: list[str], end_token_id: int) -> None:
        self.stops = list(stops)
        self.end_token_id = int(end_token_id)
        automaton = StopAutomaton(self.stops)
        pieces, strip_leading_space = token_bytes(tokenizer)
        following, hit = automaton.over_tokens(pieces)
        # One class per distinct (next, hit) row: the tables shrink to a few rows.
        table = np.concatenate([following, hit.astype(np.int32)], axis=1)
        rows, self._class = np.unique(table, axis=0, return_inverse=True)
        self._class = self._class.reshape(-1).astype(np.int32)
        self._next = rows[:, :automaton.states].astype(np.int32)
        self._hit = rows[:, automaton.states:].astype(bool)
        first = [p[1:] if strip_leading_space and p.startswith(b" ") else p for p in pieces]
        first_next, first_hit = automaton.over_tokens(first, np.zeros(len(first), np.int32))
        self._first_next = first_next.astype(np.int32)
        self._first_hit = first_hit

    def structure_key(self) -> tuple:
        return (*super().structure_key(), tuple(self.stops), self.end_token_id,
                len(self._class))

    def init(self, token_ids: Any, padding_mask: Any) -> Any:
        from keras import ops

        rows = ops.shape(token_ids)[0]
        return (ops.zeros((rows,), "int32"), ops.zeros((rows,), "bool"),
                ops.zeros((rows,), "bool"))

    def on_token(self, state: Any, prompt: Any, index: Any, generated: Any) -> Any:
        from keras import ops

        automaton, stopped, started = state
        token = ops.cast(ops.take(prompt, index, axis=1), "int32")
        token_class = ops.take(ops.convert_to_tensor(self._class), token)
        column = automaton[:, None]
        later_next = ops.take_along_axis(
            ops.take(ops.convert_to_tensor(self._next), token_class, axis=0), column, axis=1)
        later_hit = ops.take_along_axis(
            ops.take(ops.convert_to_tensor(self._hit), token_class, axis=0), column, axis=1)
        following = ops.where(started, later_next[:, 0],
                              ops.take(ops.convert_to_tensor(self._first_next), token))
        hit = ops.where(started, later_hit[:, 0],
                        ops.take(ops.convert_to_tensor(self._first_hit), token))
        live = ops.logical_and(generated, ops.logical_not(stopped))
        return (ops.where(live, following, automaton),
                ops.logical_or(stopped, ops.logical_and(live, hit)),
                ops.logical_or(started, generated))

    def on_logits(self, state: Any, prompt: Any, index: Any, logits: Any) -> tuple[Any, Any]:
        from keras import ops

        stopped = state[1]
        end = ops.arange(ops.shape(logits)[-1], dtype="int32") == self.end_token_id
        forced = ops.where(end[None, :], ops.cast(0.0, logits.dtype),
                           ops.cast(SUPPRESSED, logits.dtype))
        return state, ops.where(stopped[:, None], forced, logits)


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, str | None]:
    """``text`` up to the stop string that ends first in it (the one generation would
    have stopped at; on a tie the one starting earlier), and that string; ``(text,
    None)`` when none occurs.

    Example:

    ```python
    from samplerlab.engine.stop_strings import cut_at_stop

    assert cut_at_stop("one\\n\\ntwo THE END", ["THE END", "\\n\\n"]) == ("one", "\\n\\n")
    ```
    """
    best: tuple[tuple[int, int], str] | None = None
    for stop in stops:
        start = text.find(stop)
        if start >= 0:
            key = (start + len(stop), start)
            if best is None or key < best[0]:
                best = (key, stop)
    if best is None:
        return text, None
    return text[:best[0][1]], best[1]


def apply_stop_strings(stops: list[str], text_of: Any, text: str, tokens: list[int],
                       reason: str) -> tuple[str, list[int], str, str | None]:
    """A row's ``(text, tokens, stop reason, stop string)`` once cut before its first
    stop string (:func:`cut_at_stop`); unchanged, with ``None``, when it has none.

    The tokens kept are the longest prefix whose text (``text_of(tokens)``) is a prefix
    of the kept text: a token that straddles the cut is dropped, its kept part stays in
    the text.
    """
    kept, stop = cut_at_stop(text, stops)
    if stop is None:
        return text, tokens, reason, None
    for n in range(len(tokens), -1, -1):
        if kept.startswith(text_of(tokens[:n])):
            return kept, tokens[:n], STOP_STRING, stop
    return kept, [], STOP_STRING, stop
