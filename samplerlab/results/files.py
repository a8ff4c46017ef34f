"""Writing files so that readers never see half of one, and JSON Lines that stay one per line."""

from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any


def now() -> str:
    """The current UTC time, ISO 8601 to the second (the manifest's and records' clock)."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    The file gets the permissions any new file gets (``0o666`` less the umask), not the
    ``0o600`` of a temporary file, so a shared results folder stays readable.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), 0o666 & ~current_umask())
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def current_umask() -> int:
    """The process umask. Linux reports it in /proc; elsewhere it is read by setting it
    and putting it back (under a lock, so two writers never see the temporary value)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


_UMASK_LOCK = threading.Lock()

# Characters str.splitlines() breaks JSON Lines at, which json.dumps leaves unescaped
# with ensure_ascii=False (generated text holds them: byte-level BPE decodes U+0085).
_LINE_BREAKS = {"\u0085": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def json_line(obj: Any) -> str:
    """``obj`` as one line of JSON (UTF-8 kept, the characters that break lines escaped)."""
    text = json.dumps(obj, ensure_ascii=False, default=str)
    for raw, escaped in _LINE_BREAKS.items():
        text = text.replace(raw, escaped)  # only ever inside a JSON string: escape it
    return text


def json_lines(rows: list[dict[str, Any]]) -> str:
    """``rows`` as JSON Lines text, one :func:`json_line` each."""
    return "".join(json_line(row) + "\n" for row in rows)


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSON Lines file (blank lines skipped); ``[]`` when it does not exist."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]
