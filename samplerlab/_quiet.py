"""Keep native start-up chatter (TensorFlow, absl, oneDNN, CUDA, XLA) off the terminal.

TensorFlow 2.21 (pulled in by KerasHub's tokenizers, TFDS, and any plugin that imports
``keras_hub``) and XLA's device probing write notices straight to file descriptor 2 from
C++, whatever ``TF_CPP_MIN_LOG_LEVEL`` says. They would bury samplerlab's one-line
messages, so the code that can trigger them (loading plugins, models and TFDS datasets)
runs inside :func:`native_logs_silenced`: file descriptor 2 points at ``/dev/null``
while Python's own ``sys.stderr`` keeps writing to the terminal, so warnings, exceptions
and anything printed from Python still reach the user.

Set ``SAMPLERLAB_TF_LOGS=1`` to see the native logs (for debugging an install).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator

ENV_SHOW_LOGS = "SAMPLERLAB_TF_LOGS"
_lock = threading.Lock()
_depth = 0


@contextlib.contextmanager
def native_logs_silenced() -> Iterator[None]:
    """Send what native code writes to file descriptor 2 to ``/dev/null`` during the block.

    Python-level output is kept: when ``sys.stderr`` writes to descriptor 2 it is pointed
    at a copy of the original descriptor for the duration. Nested uses are free; usable
    as a decorator too.

    Example:

    ```python
    from samplerlab._quiet import native_logs_silenced
    with native_logs_silenced():
        import tensorflow  # no absl/oneDNN/CUDA notices; warnings.warn still shows
    ```
    """
    global _depth
    if os.environ.get(ENV_SHOW_LOGS, "") not in ("", "0"):
        yield
        return
    with _lock:
        _depth += 1
        outermost = _depth == 1
        if outermost:
            state = _redirect()
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if outermost:
                _restore(*state)


def _redirect() -> tuple[int | None, object, object]:
    try:
        sys.stderr.flush()
        python_on_fd2 = sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # replaced stream (pytest capture, ...)
        python_on_fd2 = False
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 at all: nothing to silence
        return None, None, None
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    original = sys.stderr
    replacement = None
    if python_on_fd2:
        replacement = open(os.dup(saved), "w", buffering=1,  # noqa: SIM115 - closed in _restore
                           encoding=getattr(original, "encoding", None) or "utf-8",
                           errors=getattr(original, "errors", None) or "backslashreplace")
        sys.stderr = replacement
    return saved, original, replacement


def _restore(saved: int | None, original: object, replacement: object) -> None:
    if saved is None:
        return
    if replacement is not None:
        replacement.flush()
        if sys.stderr is replacement:
            sys.stderr = original
        replacement.close()
    os.dup2(saved, 2)
    os.close(saved)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow (when installed) without its start-up notices."""
    if "tensorflow" in sys.modules:
        return
    with native_logs_silenced(), contextlib.suppress(ImportError):
        import tensorflow  # noqa: F401 - reported by whoever needs it
