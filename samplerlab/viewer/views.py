"""What the pages show, computed from a :class:`~samplerlab.viewer.runs.Run`.

Shared by the web app (:mod:`samplerlab.viewer.app`) and the static export
(:mod:`samplerlab.viewer.export`), so both show the same tables from the same code; the
templates only lay them out (and escape every value).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from samplerlab.metrics.scoring import MAIN_COLUMNS, format_value, metric_columns
from samplerlab.ratings import RatingsError, RatingsStore
from samplerlab.viewer.highlight import Highlighted, highlight
from samplerlab.viewer.problems import Problem
from samplerlab.viewer.runs import Run, number
from samplerlab.viewer.samples import Page, SampleIndex

REP_NS = (2, 3, 4)
DEFAULT_REP_N = 4


@dataclass
class TableCell:
    """One table cell: the text shown and the value it sorts by."""

    text: str
    sort: float | str


@dataclass
class MetricTable:
    columns: list[str]
    rows: list[dict[str, Any]]  # label, cell_id, status, values: list[TableCell]


def metric_table(frame: Any) -> MetricTable:
    """Every metric column with a value, main columns first; ``value [low, high]``."""
    present = [c for c in metric_columns(list(frame.columns)) if frame[c].notna().any()]
    columns = [c for c in MAIN_COLUMNS if c in present] + \
        [c for c in present if c not in MAIN_COLUMNS]
    rows = []
    for r in frame.to_dict("records"):
        values = []
        for c in columns:
            value = number(r.get(c))
            values.append(TableCell(format_value(r.get(c), r.get(f"{c}_ci_low"),
                                            r.get(f"{c}_ci_high")),
                               value if not math.isnan(value) else ""))
        rows.append({"label": str(r.get("label", "")), "cell_id": str(r.get("cell_id", "")),
                     "status": str(r.get("status", "")), "values": values,
                     "params": r.get("params") or {}})
    return MetricTable(columns, rows)


@dataclass
class RatingsSummary:
    judgements: int = 0
    raters: int = 0
    cells: list[Any] = field(default_factory=list)  # samplerlab.ratings.CellRating
    problem: Problem | None = None


def ratings_summary(run: Run, labels: dict[str, str] | None = None) -> RatingsSummary:
    """Win rates and Bradley–Terry scores of the run's judgements (cached until they change)."""
    store = RatingsStore(run.ratings_path)
    if not store.exists():
        return RatingsSummary()
    try:
        judgements = store.judgements()
    except RatingsError as exc:
        return RatingsSummary(problem=Problem(run.ratings_path.name, exc.problem))
    if not judgements:
        return RatingsSummary()
    labels = labels or cell_labels(run)
    key = (len(judgements), judgements[-1]["id"], tuple(labels.items()))

    def fit() -> RatingsSummary:
        from samplerlab.ratings import rate_cells

        return RatingsSummary(len(judgements), len({j["rater"] for j in judgements}),
                              rate_cells(judgements, labels, seed=run.files.seed()))

    return run.memo("ratings", key, fit)


def cell_labels(run: Run) -> dict[str, str]:
    """Cell id -> label, in the run's cell order (manifest first, then samples)."""
    labels = run.files.cell_labels()
    for cell in run.samples().cells.values():
        labels.setdefault(cell.id, cell.label)
    return labels


def manifest_facts(run: Run) -> list[tuple[str, str]]:
    """The manifest's top-level facts worth a glance, as (name, text)."""
    m = run.manifest
    facts = [("name", run.name), ("run id", run.run_id), ("status", run.status),
             ("started", str(m.get("started") or "-")), ("finished", str(m.get("finished") or "-")),
             ("model", run.model), ("seed", str(m.get("seed", "-"))),
             ("backend", str(m.get("backend") or "-")),
             ("devices", ", ".join(map(str, m.get("devices") or [])) or "-"),
             ("git revision", str(m.get("git_revision") or "-")),
             ("compiled programs", str(m.get("compile_count", "-")))]
    versions = m.get("versions")
    if isinstance(versions, dict):
        facts.append(("versions", ", ".join(f"{k} {v}" for k, v in versions.items())))
    for note in m.get("notes") or []:
        facts.append(("note", str(note)))
    return facts


def manifest_json(run: Run) -> str:
    return json.dumps(run.manifest, indent=2, ensure_ascii=False, default=str)


def cell_rows(run: Run) -> list[dict[str, Any]]:
    """The manifest's cells: status, error, samples, compile time and speed."""
    rows = []
    for c in run.cells:
        timing = c.get("timing") if isinstance(c.get("timing"), dict) else {}
        rows.append({"id": str(c.get("id")), "label": str(c.get("label") or c.get("id")),
                     "status": str(c.get("status") or "-"),
                     "params": json.dumps(c.get("params") or {}, ensure_ascii=False,
                                          sort_keys=True),
                     "error": str(c.get("error") or ""),
                     "samples": str(c.get("num_samples", "-")),
                     "compile_s": format_value(timing.get("compile_s")),
                     "tokens_per_s": format_value(timing.get("tokens_per_s"))})
    return rows


@dataclass
class Card:
    """One continuation on the samples page."""

    cell_id: str
    sample_index: int
    highlighted: Highlighted
    num_tokens: int | None
    stop_reason: str
    line: int


def cards(page: Page, n: int, query: str | None) -> dict[tuple[str, int], Card]:
    return {key: Card(s.cell_id, s.sample_index, highlight(s.text, n, query), s.num_tokens,
                      s.stop_reason, s.line)
            for key, s in page.grid.items()}


def rep_n(value: Any) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        return DEFAULT_REP_N
    return n if n in REP_NS else DEFAULT_REP_N


def all_pages(samples: SampleIndex) -> list[Page]:
    """One page per prompt with every cell and every sample (the static export)."""
    cells = list(samples.cells.values())
    return [samples.prompt_page(i, cells) for i in samples.prompts]
