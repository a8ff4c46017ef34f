"""Import TensorFlow (pulled in by KerasHub's tokenizers) without its C++ start-up chatter.

TensorFlow 2.21 prints absl/oneDNN/CUDA notices straight to file descriptor 2 at import,
whatever TF_CPP_MIN_LOG_LEVEL says; they would bury samplerlab's one-line messages.
Set ``SAMPLERLAB_TF_LOGS=1`` to see them.
"""

from __future__ import annotations

import os
import sys


def import_tensorflow_quietly() -> None:
    if "tensorflow" in sys.modules or os.environ.get("SAMPLERLAB_TF_LOGS"):
        return
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # stderr replaced (pytest capture, ...)
        fd = 2
    sys.stderr.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        import tensorflow  # noqa: F401
    except ImportError:
        pass  # reported by whoever needs it, with stderr back in place
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)
