"""Datasets: sources of raw texts for fine-tuning and for prompts.

Built-ins register through the same ``register_datasets`` hook a third-party plugin uses.
A factory returns a :class:`TextSource`; its module is imported only when it is built, so
validating a spec never imports TensorFlow.

Example:

```python
from samplerlab.plugins import registry
source = registry("datasets")["inline"].build(texts=["a b", "c"])
assert list(source.texts()) == ["a b", "c"]
```
"""

from __future__ import annotations

from typing import Literal

from samplerlab.datasets.base import TextSource
from samplerlab.hookspecs import hookimpl

__all__ = ["TextSource", "register_datasets"]


def tfds(name: str, split: str = "train", field: str | None = None,
         data_dir: str | None = None, manual_dir: str | None = None, download: bool = True):
    """A TensorFlow Datasets split (e.g. reddit_tifu); field unset = the supervised input."""
    from samplerlab.datasets.tfds_source import TfdsSource

    return TfdsSource(name, split, field, data_dir, manual_dir, download)


def chinese_poetry(dir: str | None = None, collection: Literal["tang", "song"] = "tang",
                   field: str = "paragraphs"):
    """Poems of a chinese-poetry checkout, "".join(paragraphs) each (default: shipped excerpt)."""
    from samplerlab.datasets.poetry_source import ChinesePoetrySource

    return ChinesePoetrySource(dir, collection, field)


def jsonl(path: str, field: str = "text"):
    """A local JSON-lines file; each line's field is one text."""
    from samplerlab.datasets.jsonl_source import JsonlSource

    return JsonlSource(path, field)


def text(path: str, unit: Literal["line", "paragraph"] = "line"):
    """A local UTF-8 text file; one text per line (unit: line) or per paragraph."""
    from samplerlab.datasets.text_source import TextFileSource

    return TextFileSource(path, unit)


def inline(texts: list[str]):
    """Texts written in the spec itself (texts: [...])."""
    from samplerlab.datasets.inline_source import InlineSource

    return InlineSource(texts)


@hookimpl
def register_datasets(register):
    for factory in (tfds, chinese_poetry, jsonl, text, inline):
        register(factory.__name__, factory)
