"""A JSON-lines file: one object per line, the text in one field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from samplerlab.datasets.base import TextSource, file_digest, require_file
from samplerlab.errors import DatasetError


class JsonlSource(TextSource):
    """Texts from the ``field`` of each line of a JSON-lines file.

    Example:

    ```python
    from pathlib import Path
    from samplerlab.datasets.jsonl_source import JsonlSource

    Path("d.jsonl").write_text('{"text": "one"}\\n{"text": "two"}\\n')
    assert list(JsonlSource("d.jsonl").texts()) == ["one", "two"]
    ```
    """

    def __init__(self, path: str, field: str = "text") -> None:
        self.path = path
        self.field = field
        self.params = {"path": path, "field": field}

    def _records(self) -> Iterator[tuple[int, Any]]:
        with require_file(self.path).open(encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DatasetError(f"{self.path}:{number}: not valid JSON ({exc.msg}); each "
                                       "line must be one JSON object",
                                       field="path") from None

    def _text(self, number: int, record: Any) -> str:
        if not isinstance(record, dict):
            raise DatasetError(f"{self.path}:{number}: expected a JSON object per line, got "
                               f"{type(record).__name__}", field="path")
        if self.field not in record:
            keys = ", ".join(sorted(record)) or "none"
            raise DatasetError(f"unknown field '{self.field}' in {self.path}; set field to one "
                               f"of the keys of line {number}: {keys}", field="field")
        value = record[self.field]
        if not isinstance(value, str):
            raise DatasetError(f"{self.path}:{number}: field '{self.field}' is "
                               f"{type(value).__name__}, not text; set field to a text field",
                               field="field")
        return value

    def check(self) -> None:
        # Reading only the first record keeps the check cheap on large files.
        for number, record in self._records():
            self._text(number, record)
            return
        raise DatasetError(f"dataset file '{self.path}' is empty", field="path")

    def texts(self) -> Iterator[str]:
        for number, record in self._records():
            yield self._text(number, record)

    def fingerprint(self) -> dict[str, Any]:
        return {"sha256": file_digest(require_file(self.path))}


