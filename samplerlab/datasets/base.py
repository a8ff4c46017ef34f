"""The interface every dataset returns: a source of raw training/prompt texts."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from samplerlab.errors import DatasetError


class TextSource:
    """A dataset of raw strings, built by a registered dataset factory.

    Subclasses implement :meth:`texts`; :meth:`check` must stay cheap (no model, no
    full read) because the spec loader calls it before anything loads, and raise
    :class:`~samplerlab.errors.DatasetError` with ``field`` naming the bad parameter.

    Example:

    ```python
    from samplerlab.datasets.base import TextSource

    class Lines(TextSource):
        def __init__(self, lines):
            self.lines = lines

        def texts(self):
            yield from self.lines

    assert list(Lines(["a", "b"]).take(1)) == ["a"]
    ```
    """

    #: parameters of the source (for display and for the fine-tuning cache key)
    params: dict[str, Any] = {}

    def check(self) -> None:
        """Raise :class:`DatasetError` when the data cannot be read (missing file, bad field)."""

    def texts(self) -> Iterator[str]:
        """Yield the texts, in the dataset's order."""
        raise NotImplementedError

    def take(self, n: int | None) -> Iterator[str]:
        """The first ``n`` non-empty texts (all when ``n`` is None)."""
        count = 0
        for text in self.texts():
            if n is not None and count >= n:
                return
            if text and text.strip():
                count += 1
                yield text

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the data beyond its parameters (file sizes, content hashes)."""
        return {}

    def tf_dataset(self) -> Any:
        """The texts as a ``tf.data.Dataset`` of scalar strings."""
        import tensorflow as tf

        return tf.data.Dataset.from_generator(
            self.texts, output_signature=tf.TensorSpec(shape=(), dtype=tf.string))


def require_file(path: str, field: str = "path") -> Path:
    """The path as a file, or a :class:`DatasetError` naming ``field``."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DatasetError(f"file '{path}' does not exist{_relative_to_cwd(p)}", field=field)
    if not p.is_file():
        raise DatasetError(f"'{path}' is not a file; give the path of a file", field=field)
    return p


def require_dir(path: str, field: str = "dir") -> Path:
    """The path as a directory, or a :class:`DatasetError` naming ``field``."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DatasetError(f"directory '{path}' does not exist{_relative_to_cwd(p)}",
                           field=field)
    if not p.is_dir():
        raise DatasetError(f"'{path}' is not a directory; give the path of a directory",
                           field=field)
    return p


def _relative_to_cwd(path: Path) -> str:
    """Where a relative path was looked for: the usual surprise behind a missing file."""
    return "" if path.is_absolute() else f" (relative paths start at {Path.cwd()})"


def file_digest(path: Path) -> str:
    """SHA-256 of a file's content (the cache key must change when the data does)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
