"""Texts written in the spec itself."""

from __future__ import annotations

from collections.abc import Iterator

from samplerlab.datasets.base import TextSource
from samplerlab.errors import DatasetError


class InlineSource(TextSource):
    """The texts listed in the spec.

    Example:

    ```python
    from samplerlab.datasets.inline_source import InlineSource

    assert list(InlineSource(["x y", "z"]).texts()) == ["x y", "z"]
    ```
    """

    def __init__(self, texts: list[str]) -> None:
        self._texts = list(texts)
        self.params = {"texts": self._texts}

    def check(self) -> None:
        if not any(t.strip() for t in self._texts):
            raise DatasetError("the inline dataset has no non-empty text; put at least one in "
                               "texts", field="texts")

    def texts(self) -> Iterator[str]:
        yield from self._texts


