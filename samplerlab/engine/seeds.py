"""Seeds: each cell's from the spec seed and its configuration, each batch's from the cell's."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from samplerlab.models import internals


def derive_seed(*parts: Any) -> int:
    """A stable 31-bit seed from any parts (spec seed, sampler, params, ...).

    Example:

    ```python
    from samplerlab.engine.seeds import derive_seed
    assert derive_seed(1337, "top_k", {"k": 5}) == derive_seed(1337, "top_k", {"k": 5})
    assert 0 <= derive_seed("anything") < 2**31
    ```
    """
    text = json.dumps(parts, sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF


def cell_seed(spec_seed: int, cell: Any) -> int:
    """The cell's seed: its ``seed`` parameter, else derived from the spec seed and the
    cell's sampler and parameters (keyed by the configuration, not its position, so adding
    a cell to a spec changes no other cell's samples)."""
    if cell.params.get("seed") is not None:
        return int(cell.params["seed"])
    return derive_seed(spec_seed, cell.sampler, cell.params)


def batch_seed(seed: int, batch: int) -> int:
    """Batch ``batch`` of a cell starts its sampler's random state from ``seed + batch``."""
    return (seed + batch) & 0x7FFFFFFF


def reset_sampler_seed(sampler: Any, seed: int) -> None:
    """Put each KerasHub SeedGenerator of ``sampler`` in the state ``SeedGenerator(seed)`` has."""
    for generator in internals.seed_generators(sampler):
        generator.state.assign(np.array([seed, 0], dtype=generator.state.dtype))
