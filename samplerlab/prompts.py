"""Prompts for a run: the spec's list, or taken from a dataset.

``prompts: {dataset: {...}, take: N, prefix_words: K}`` takes the first N texts of the
dataset that are longer than K units, keeps the first K units as the prompt and the rest
as the human reference continuation. A unit is a whitespace-delimited word, or a single
CJK character (Chinese has no spaces between words).

Example:

```python
from samplerlab.prompts import split_prefix

assert split_prefix("My trip to Yosemite was long and cold", 3) == (
    "My trip to", "Yosemite was long and cold")
assert split_prefix("昨夜雨疏风骤，浓睡不消残酒。", 6) == ("昨夜雨疏风骤", "，浓睡不消残酒。")
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# CJK ideographs, kana, and CJK/full-width punctuation: each character is one unit.
CJK_CHARS = ("\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
             "\uff00-\uffef\U00020000-\U0002ffff")
UNIT_PATTERN = re.compile(f"[{CJK_CHARS}]|[^\\s{CJK_CHARS}]+")


@dataclass(frozen=True)
class Prompt:
    """A prompt and, when it came from a dataset, the human continuation it was cut from."""

    text: str
    index: int
    reference: str | None = None


def text_units(text: str) -> list[str]:
    """Words of space-delimited text, single characters of CJK text."""
    return UNIT_PATTERN.findall(text)


def split_prefix(text: str, prefix_units: int) -> tuple[str, str] | None:
    """``(first prefix_units units, the rest)``, or None when nothing would be left over."""
    matches = list(UNIT_PATTERN.finditer(text))
    if len(matches) <= prefix_units:
        return None
    cut = matches[prefix_units - 1].end()
    prompt, rest = text[:cut].strip(), text[cut:].strip()
    return (prompt, rest) if prompt and rest else None


def prompts_from_texts(texts: Any, take: int, prefix_words: int) -> list[Prompt]:
    """The first ``take`` texts that are longer than ``prefix_words`` units, split in two."""
    prompts: list[Prompt] = []
    for text in texts:
        if len(prompts) >= take:
            break
        parts = split_prefix(text, prefix_words)
        if parts is not None:
            prompts.append(Prompt(text=parts[0], index=len(prompts), reference=parts[1]))
    return prompts


def resolve_prompts(loaded_spec: Any) -> list[Prompt]:
    """The prompts of a spec, in order.

    Raises :class:`~samplerlab.errors.UserInputError` (located at ``prompts.dataset``) when
    the dataset cannot be read or has no text longer than ``prefix_words``.
    """
    from samplerlab.datasets.build import build_source, located

    prompts = loaded_spec.spec.prompts
    if isinstance(prompts, list):
        return [Prompt(text=p, index=i) for i, p in enumerate(prompts)]
    loc = ("prompts", "dataset")
    source = build_source(loaded_spec, prompts.dataset, loc, check=True)
    with located(loaded_spec, loc):
        out = prompts_from_texts(source.texts(), prompts.take, prompts.prefix_words)
    if not out:
        raise loaded_spec.error(f"the dataset has no text longer than prefix_words "
                                f"({prompts.prefix_words}) to cut a prompt from; lower "
                                "prompts.prefix_words", loc)
    return out
