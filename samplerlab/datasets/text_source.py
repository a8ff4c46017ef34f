"""A plain text file: one text per line, or per blank-line-separated paragraph."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Literal

from samplerlab.datasets.base import TextSource, file_digest, require_file
from samplerlab.errors import DatasetError


class TextFileSource(TextSource):
    """Texts from a UTF-8 file, split into lines or paragraphs; blank texts are skipped.

    Example:

    ```python
    from pathlib import Path
    from samplerlab.datasets.text_source import TextFileSource

    Path("d.txt").write_text("a b\\nc d\\n\\ne f\\n")
    assert list(TextFileSource("d.txt", unit="paragraph").texts()) == ["a b\\nc d", "e f"]
    ```
    """

    def __init__(self, path: str, unit: Literal["line", "paragraph"] = "line") -> None:
        self.path = path
        self.unit = unit
        self.params = {"path": path, "unit": unit}

    def _read(self) -> str:
        try:
            return require_file(self.path).read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise DatasetError(f"'{self.path}' is not UTF-8 text (byte {exc.start}); save it "
                               "as UTF-8",
                               field="path") from None

    def check(self) -> None:
        p = require_file(self.path)
        with p.open("rb") as f:
            head = f.read(1 << 16)
        if not head.strip():
            raise DatasetError(f"dataset file '{self.path}' is empty", field="path")

    def texts(self) -> Iterator[str]:
        text = self._read()
        parts = text.splitlines() if self.unit == "line" else re.split(r"\n\s*\n", text)
        for part in parts:
            if part.strip():
                yield part.strip()

    def fingerprint(self) -> dict[str, Any]:
        return {"sha256": file_digest(require_file(self.path))}


