"""Token ids to text, whatever the tokenizer returns (for the cell engine and stop strings)."""

from __future__ import annotations

from typing import Any

import numpy as np


def detokenize(tokenizer: Any, tokens: list[int]) -> str:
    """Text of ``tokens`` as a ``str``: tokenizers detokenize to str, bytes or a scalar
    tensor depending on their workflow."""
    if not tokens:
        return ""
    value = tokenizer.detokenize(tokens)
    if isinstance(value, str):
        return value
    if hasattr(value, "numpy"):
        value = value.numpy()
    if isinstance(value, np.ndarray):
        value = value.item()
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)

