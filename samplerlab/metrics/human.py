"""The human row: human text scored with the same metrics as every cell, and the gaps to it.

Holtzman et al. (2020) judge a decoding method by how close its text comes to human
text on the same statistics (perplexity, Zipf coefficient, self-BLEU, repetition). When
the prompts come from a dataset, each prompt's **reference continuation** (the rest of
the text the prompt was cut from) is the human text; ``human: {path: FILE}`` in the spec
replaces it with a file of human texts. Either way each human text is cut to the token
budget a generation had (``generation.max_length`` minus the prompt's tokens, in the
generating model's tokens), so lengths and length-sensitive statistics compare fairly.

The runner writes the row as ``human.json`` (its metrics) and ``human.jsonl`` (its texts)
in the run directory (:class:`samplerlab.results.RunDir`); ``metrics.csv``, the report
and the plots add it as the row ``human``.
Each cell's record gets ``gap_<column> = |cell - human|`` for the columns of
:data:`GAP_COLUMNS`.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from samplerlab.errors import DatasetError, UserInputError
from samplerlab.metrics.base import as_number
from samplerlab.metrics.text import HAS_CJK

HUMAN_ID = "human"
#: Columns that get a ``gap_<column>`` (distance of a cell to the human row).
GAP_COLUMNS = ("perplexity", "zipf", "self_bleu", "rep_2", "rep_3", "rep_4", "distinct_1",
               "distinct_2", "distinct_3", "distinct_4")


def read_human_texts(human: Any) -> list[str]:
    """The texts of a ``human`` spec section (``path``, ``unit``, ``take``).

    Raises :class:`UserInputError` (field ``path``) when the file is missing, not UTF-8,
    or holds fewer than two texts.
    """
    from samplerlab.datasets.text_source import TextFileSource

    source = TextFileSource(human.path, unit=human.unit)
    try:
        texts = list(source.texts())
    except DatasetError as exc:
        raise UserInputError(exc.problem, field="path") from None
    if human.take is not None:
        texts = texts[: human.take]
    if len(texts) < 2:
        raise UserInputError(f"'{human.path}' holds {len(texts)} text(s); the human row and "
                             "MAUVE need at least 2", field="path")
    return texts


def _to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if hasattr(value, "numpy"):
        value = value.numpy()
    if hasattr(value, "item"):
        value = value.item()
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _separator(prompt: str, reference: str) -> str:
    """What stood between a prompt and its reference: nothing around CJK text, else a space
    (dataset prompts are cut at a unit boundary and stripped)."""
    if not prompt or HAS_CJK.search(prompt[-1:]) or HAS_CJK.search(reference[:1]):
        return ""
    return " "


def _cut(tokenizer: Any, text: str, budget: int) -> tuple[list[int], str, str]:
    """The first ``budget`` tokens of ``text``: ids, their text, and the stop reason a
    generation cut there would have."""
    import numpy as np

    ids = [int(t) for t in np.asarray(tokenizer(text)).ravel()]
    kept = ids[: max(budget, 0)]
    reason = "max_length" if len(ids) > len(kept) else "end_token"
    return kept, (_to_str(tokenizer.detokenize(kept)) if kept else ""), reason


def human_samples(spec: Any, prompts: list[Any], generator: Any) -> list[dict[str, Any]] | None:
    """The samples of the human row, or ``None`` when the run has no human text.

    Args:
        spec: the validated :class:`samplerlab.spec.Spec` (``human``, ``generation``).
        prompts: the run's prompts (:class:`samplerlab.data.Prompt`, with ``reference``).
        generator: the generating model: its tokenizer measures the token budget.
    """
    from samplerlab.metrics.perplexity import prompt_ids

    max_length = spec.generation.max_length
    tokenizer = generator.tokenizer
    prompt_tokens = {p.index: len(prompt_ids(generator.preprocessor, p.text)) for p in prompts}
    out: list[dict[str, Any]] = []
    if spec.human is not None:
        # No prompts: the budget of a typical prompt of the run.
        budget = max_length - int(statistics.median(prompt_tokens.values() or [1]))
        for i, text in enumerate(read_human_texts(spec.human)):
            ids, cut, reason = _cut(tokenizer, text, budget)
            out.append(_sample(i, "", cut, ids, reason, source="file"))
        return out
    for p in prompts:
        if not p.reference:
            continue
        budget = max_length - prompt_tokens[p.index]
        ids, cut, reason = _cut(tokenizer, _separator(p.text, p.reference) + p.reference, budget)
        out.append(_sample(p.index, p.text, cut, ids, reason, source="references"))
    return out or None


def _sample(index: int, prompt: str, text: str, ids: list[int], reason: str,
            source: str) -> dict[str, Any]:
    return {"cell_id": HUMAN_ID, "label": HUMAN_ID, "sampler": HUMAN_ID, "params": {},
            "prompt_index": index, "sample_index": 0, "prompt": prompt, "reference": None,
            "text": text, "token_ids": ids, "num_tokens": len(ids), "stop_reason": reason,
            "source": source}


def human_metrics(metrics: list[Any]) -> list[Any]:
    """The metrics that apply to human text: not latency (no timing), not MAUVE (which
    compares a cell *with* the human text)."""
    return [m for m in metrics if not ({"timing", "references"} & set(m.requires))]


def gap_columns(values: dict[str, Any], human: dict[str, Any]) -> dict[str, float]:
    """``gap_<col> = |cell - human|`` for each column of :data:`GAP_COLUMNS` both have."""
    out = {}
    for col in GAP_COLUMNS:
        if col in values and col in human:
            a, b = as_number(values[col]), as_number(human[col])
            out[f"gap_{col}"] = abs(a - b) if not (math.isnan(a) or math.isnan(b)) else math.nan
    return out


def human_table_row(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """The human row of ``metrics.csv`` (status ``human``) from the human row's record
    (:meth:`samplerlab.results.RunDir.human_record`), or ``None`` without one."""
    if record is None:
        return None
    return {"cell_id": HUMAN_ID, "cell_index": None, "label": HUMAN_ID, "sampler": HUMAN_ID,
            "params": "{}", "status": HUMAN_ID, **(record.get("metrics") or {})}
