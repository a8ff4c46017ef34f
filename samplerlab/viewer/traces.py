"""Per-token traces (``traces.parquet``) for the tokens page.

One row per generated token, with the columns of :data:`COLUMNS` (issue #14's schema).
Opening reads only the three key columns; the tokens of one generation are read with a
Parquet filter, so a large trace file costs little per page.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samplerlab.results import RunDir
from samplerlab.viewer.problems import Problem

KEYS = ("cell_id", "prompt_index", "sample_index")
COLUMNS = (*KEYS, "position", "token_id", "token_text", "model_prob", "model_rank",
           "model_entropy", "sampler_prob", "kept_size", "top_ids", "top_probs", "top_texts")
REQUIRED = (*KEYS, "position", "token_text", "model_prob", "model_entropy")
SHADES = 10  # colour classes t0..t9 in viewer.css


@dataclass(frozen=True)
class Alternative:
    text: str
    prob: float
    chosen: bool


@dataclass(frozen=True)
class Token:
    position: int
    text: str
    prob: float
    rank: int | None
    entropy: float
    sampler_prob: float | None
    kept_size: int | None
    alternatives: list[Alternative]
    shade: int  # 0 (low probability / high entropy) .. SHADES - 1


@dataclass
class Traces:
    path: Path
    generations: list[tuple[str, int, int]] = field(default_factory=list)
    problem: Problem | None = None

    @classmethod
    def open(cls, path: Path) -> Traces:
        import pyarrow.parquet as pq

        try:
            schema = pq.read_schema(path)
            missing = [c for c in REQUIRED if c not in schema.names]
            if missing:
                return cls(path, problem=Problem(
                    RunDir.TRACES, f"missing columns {', '.join(missing)} "
                    f"(has {', '.join(schema.names)})"))
            keys = pq.read_table(path, columns=list(KEYS)).group_by(list(KEYS)).aggregate([])
        except Exception as exc:  # noqa: BLE001 - pyarrow's errors vary by damage
            return cls(path, problem=Problem(
                RunDir.TRACES, f"cannot be read: {type(exc).__name__}: {exc}"))
        rows = zip(*(keys.column(k).to_pylist() for k in KEYS), strict=True)
        generations = sorted((str(c), int(p), int(s)) for c, p, s in rows)
        return cls(path, generations)

    def tokens(self, cell_id: str, prompt_index: int, sample_index: int,
               colour: str = "prob") -> list[Token]:
        """The tokens of one generation in order; ``colour`` is ``prob`` or ``entropy``."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        available = pq.read_schema(self.path).names
        table = pq.read_table(self.path, columns=[c for c in COLUMNS if c in available],
                              filters=(pc.field("cell_id") == cell_id)
                              & (pc.field("prompt_index") == prompt_index)
                              & (pc.field("sample_index") == sample_index))
        rows = sorted(table.to_pylist(), key=lambda r: r["position"])
        entropies = [r["model_entropy"] for r in rows if _finite(r.get("model_entropy"))]
        top_entropy = max(entropies, default=0.0) or 1.0
        return [_token(r, colour, top_entropy) for r in rows]


def _finite(value: Any) -> bool:
    return value is not None and not math.isnan(value)


def _token(row: dict[str, Any], colour: str, top_entropy: float) -> Token:
    prob = float(row["model_prob"]) if _finite(row.get("model_prob")) else math.nan
    entropy = float(row["model_entropy"]) if _finite(row.get("model_entropy")) else math.nan
    if colour == "entropy":
        # Low entropy (a confident model) light, high entropy dark: relative to the
        # generation's own largest entropy.
        level = 1.0 - (entropy / top_entropy if not math.isnan(entropy) else 0.0)
    else:
        level = 0.0 if math.isnan(prob) else prob
    shade = min(SHADES - 1, max(0, int(level * SHADES)))
    texts = row.get("top_texts") or []
    probs = row.get("top_probs") or []
    ids = row.get("top_ids") or []
    chosen_id = row.get("token_id")
    alternatives = [Alternative(str(t), float(p) if p is not None else math.nan,
                                bool(ids and i < len(ids) and ids[i] == chosen_id))
                    for i, (t, p) in enumerate(zip(texts, probs, strict=False))]
    rank = row.get("model_rank")
    sampler_prob = row.get("sampler_prob")
    kept = row.get("kept_size")
    return Token(int(row["position"]), str(row.get("token_text") or ""), prob,
                 int(rank) if rank is not None else None, entropy,
                 float(sampler_prob) if _finite(sampler_prob) else None,
                 int(kept) if kept is not None else None, alternatives, shade)
