"""Poems in the layout of the chinese-poetry repository (全唐诗/poet.tang.*.json)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from samplerlab.datasets.base import TextSource, require_dir
from samplerlab.errors import DatasetError

SHIPPED_EXCERPT = Path(__file__).resolve().parent.parent / "assets" / "datasets" / "chinese-poetry"
COLLECTION_DIR = "全唐诗"
_REFETCH = "fetch a fresh copy with `samplerlab data fetch chinese-poetry DIR`"


def poem_files(root: Path, collection: str) -> list[Path]:
    """``poet.<collection>.N.json`` files under ``root`` (or ``root/全唐诗``), in N order."""
    base = root / COLLECTION_DIR if (root / COLLECTION_DIR).is_dir() else root
    files = list(base.glob(f"poet.{collection}.*.json"))

    def number(p: Path) -> tuple[int, str]:
        m = re.search(r"\.(\d+)\.json$", p.name)
        return (int(m.group(1)) if m else -1, p.name)

    return sorted(files, key=number)


class ChinesePoetrySource(TextSource):
    """One text per poem: ``"".join(paragraphs)``, as the KerasHub tutorial builds them.

    Example:

    ```python
    from samplerlab.datasets.poetry_source import ChinesePoetrySource

    poems = ChinesePoetrySource()  # the excerpt shipped with samplerlab
    assert next(poems.texts())[:12] == "秦川雄帝宅，函谷壯皇居。"
    ```
    """

    def __init__(self, dir: str | None = None, collection: str = "tang",
                 field: str = "paragraphs") -> None:
        self.dir = dir
        self.root = Path(dir).expanduser() if dir else SHIPPED_EXCERPT
        self.collection = collection
        self.field = field
        self.params = {"dir": dir, "collection": collection, "field": field}

    def files(self) -> list[Path]:
        if not self.root.exists():
            raise DatasetError(f"directory '{self.dir}' does not exist; {self._get_it()}",
                               field="dir")
        root = require_dir(str(self.root), field="dir")
        files = poem_files(root, self.collection)
        if not files:
            raise DatasetError(
                f"no poet.{self.collection}.*.json files in '{root}' or '{root / COLLECTION_DIR}' "
                f"(expected the chinese-poetry layout); {self._get_it()}", field="dir")
        return files

    def _get_it(self) -> str:
        return (f"get the corpus with `samplerlab data fetch chinese-poetry {self.dir}`, or "
                "set dir to null for the 300-poem excerpt shipped with samplerlab "
                "(e.g. -o finetune.dataset.dir=null)")

    def _poems(self, path: Path) -> list[dict[str, Any]]:
        try:
            poems = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DatasetError(f"'{path}' is not valid UTF-8 JSON ({exc}); {_REFETCH}",
                               field="dir") from None
        if not isinstance(poems, list):
            raise DatasetError(f"'{path}' holds {type(poems).__name__}, expected a list of "
                               f"poems; {_REFETCH}", field="dir")
        return poems

    def _text(self, poem: Any, path: Path) -> str:
        if not isinstance(poem, dict) or self.field not in poem:
            keys = ", ".join(sorted(poem)) if isinstance(poem, dict) else "none"
            raise DatasetError(f"unknown field '{self.field}' in {path.name}; set field to one "
                               f"of: {keys}", field="field")
        value = poem[self.field]
        return "".join(value) if isinstance(value, list) else str(value)

    def check(self) -> None:
        files = self.files()
        for path in files:
            for poem in self._poems(path):
                self._text(poem, path)
                return
        raise DatasetError(f"no poems in '{self.root}'; {self._get_it()}", field="dir")

    def texts(self) -> Iterator[str]:
        for path in self.files():
            for poem in self._poems(path):
                yield self._text(poem, path)

    def fingerprint(self) -> dict[str, Any]:
        # Names and sizes identify a copy of the corpus without reading 25 MB.
        return {"files": [[p.name, p.stat().st_size] for p in self.files()]}


