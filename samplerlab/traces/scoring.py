"""Teacher-forced scoring of given text: ``samplerlab trace`` and :func:`score_text`.

The text is tokenized as ``generate`` tokenizes a prompt (the preprocessor's start token
first when it adds one) and scored in one forward pass of the causal LM
(:mod:`samplerlab.traces.teacher`): for every token, the model's probability of it given
the tokens before it, its rank and the entropy of the model's distribution there, and
optionally the most probable alternatives. A first token with nothing before it (a model
without a start token) has empty columns.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from samplerlab.errors import UserInputError
from samplerlab.traces.reference import prompt_ids
from samplerlab.traces.table import TokenTexts

COLUMNS = ("position", "token_id", "token_text", "model_prob", "model_rank",
           "model_entropy", "top_ids", "top_probs", "top_texts")


def text_ids(model: Any, text: str, source: str = "the text") -> tuple[list[int], int]:
    """``(token ids, how many lead tokens are not the text's)``; refuses empty text and
    text longer than the model's context."""
    if not text.strip():
        raise UserInputError(f"{source} is empty: give some text to score")
    ids = prompt_ids(model, text)
    lead = 1 if getattr(model.preprocessor, "add_start_token", False) else 0
    limit = model.max_sequence_length
    if len(ids) > limit:
        raise UserInputError(f"{source} is {len(ids)} tokens (start token included), longer "
                             f"than the model's context of {limit} tokens "
                             "(max_sequence_length); shorten it or score it in parts")
    return ids, lead


def score_ids(model: Any, ids: list[int], lead: int, top: int = 0) -> Any:
    """The per-token DataFrame of :func:`score_text` for ``ids`` (``lead`` tokens not
    scored: the start token)."""
    import pandas as pd

    from samplerlab.traces.teacher import Scorer

    columns = Scorer(model, top).score([ids], batch_size=1)[0]
    texts = TokenTexts(model.tokenizer)
    keep = slice(lead, len(ids))
    token_ids = columns["token_id"][keep]
    rank = columns["model_rank"][keep]
    frame = pd.DataFrame({
        "position": np.arange(len(token_ids), dtype=np.int32),
        "token_id": token_ids.astype(np.int32),
        "token_text": texts(token_ids),
        "model_prob": np.exp(columns["model_logp"][keep]).astype(np.float32),
        "model_rank": pd.Series(rank, dtype="Int32").mask(rank < 0),
        "model_entropy": columns["model_entropy"][keep].astype(np.float32),
    })
    if top:
        top_ids = columns["top_ids"][keep]
        frame["top_ids"] = list(top_ids.astype(np.int32))
        frame["top_probs"] = list(np.exp(columns["top_logp"][keep]).astype(np.float32))
        frame["top_texts"] = [list(t) for t in texts(top_ids)]
    return frame


def score_text(text: str, preset: str = "samplerlab:tiny-en", *, model: Any = None,
               top: int = 0, sequence_length: int = 128) -> Any:
    """Score ``text`` token by token under a causal LM, teacher-forced.

    Args:
        text: the text.
        preset: the model (a KerasHub preset, a preset directory or ``samplerlab:NAME``),
            loaded unless ``model`` is given.
        model: an already loaded :class:`samplerlab.models.LoadedModel`.
        top: how many most probable alternatives to list per token.
        sequence_length: the preprocessor's sequence length when loading ``preset``.

    Returns:
        A pandas DataFrame, one row per token of the text: ``position``, ``token_id``,
        ``token_text``, ``model_prob``, ``model_rank``, ``model_entropy`` (nats) and, with
        ``top``, ``top_ids``/``top_probs``/``top_texts``.

    Example:

    ```python
    import samplerlab

    df = samplerlab.score_text("The cat sat on the mat.", top=3)  # samplerlab:tiny-en
    print(df[["token_text", "model_prob", "model_rank"]])  # one row per token
    ```
    """
    if model is None:
        from samplerlab.models import load_model

        model = load_model(preset, sequence_length)
    check_top(model, top)
    ids, lead = text_ids(model, text)
    return score_ids(model, ids, lead, top)


def check_top(model: Any, top: int, field: str = "top") -> None:
    from samplerlab.traces.table import vocabulary_size

    vocab = vocabulary_size(model)
    if top < 0 or top > vocab:
        raise UserInputError(f"must be between 0 and the vocabulary size ({vocab}), got "
                             f"{top}", field=field)
