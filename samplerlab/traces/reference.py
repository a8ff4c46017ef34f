"""Reference traces: the human continuations of dataset prompts, scored teacher-forced.

With ``generation.trace_reference: true`` each prompt's reference (the rest of the text
it was cut from) is scored token by token under the run's model, as the model would see
it after the prompt: the prompt tokenized as ``generate`` tokenizes it (start token
included), then the reference's tokens (a space between them for space-delimited text),
up to ``generation.max_length`` tokens in all. The rows join ``traces.parquet`` as cell
``reference`` (sample index 0, no sampler-side columns), so a run compares the
probabilities of human text with its samplers' (Holtzman et al. 2020, Figure 2).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from samplerlab.prompts import CJK_CHARS
from samplerlab.traces.table import REFERENCE_CELL, TokenTexts, TraceRows
from samplerlab.traces.teacher import Scorer

_STARTS_CJK = re.compile(f"[{CJK_CHARS}]")


def prompt_ids(model: Any, text: str) -> list[int]:
    """``text`` tokenized as ``generate`` packs a prompt (the start token when the
    preprocessor adds one; no end token)."""
    ids = [int(i) for i in np.asarray(model.tokenizer(text)).reshape(-1)]
    if getattr(model.preprocessor, "add_start_token", False):
        ids = [int(model.tokenizer.start_token_id), *ids]
    return ids


def continuation_ids(model: Any, reference: str) -> list[int]:
    """The reference's tokens as a continuation of its prompt."""
    joiner = "" if _STARTS_CJK.match(reference) else " "
    return [int(i) for i in np.asarray(model.tokenizer(joiner + reference)).reshape(-1)]


def reference_traces(model: Any, prompts: list[Any], max_length: int, top: int = 0,
                     batch_size: int = 8) -> Any:
    """The ``reference`` rows of ``traces.parquet`` for the prompts that have one."""
    rows = TraceRows(REFERENCE_CELL, TokenTexts(model.tokenizer))
    items = []
    for prompt in prompts:
        if not prompt.reference:
            continue
        context = prompt_ids(model, prompt.text)
        continuation = continuation_ids(model, prompt.reference)[:max_length - len(context)]
        if continuation:
            items.append((prompt, context, context + continuation))
    scored = Scorer(model, top).score([ids for _, _, ids in items], batch_size)
    for (prompt, context, ids), columns in zip(items, scored, strict=True):
        rows.add({k: v[None] for k, v in columns.items()}, starts=[len(context)],
                 lengths=[len(ids) - len(context)], prompt_indices=[prompt.index],
                 sample_indices=[0])
    return rows.table()
