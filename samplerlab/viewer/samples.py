"""``samples.jsonl`` held in memory for the samples page: filters, search and paging.

The file is read once per change (a 10,000-generation run in a fraction of a second) into
compact records without token ids; a damaged line becomes a
:class:`~samplerlab.viewer.runs.Problem` naming the file and line, and the other lines are
still served.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samplerlab.results import RunDir
from samplerlab.viewer.problems import Problem

REQUIRED = ("cell_id", "prompt_index", "text")
MAX_PROBLEMS = 20  # listed one by one; past this, a count


@dataclass(frozen=True, slots=True)
class Sample:
    """One generation as the viewer shows it (``samples.jsonl`` without token ids)."""

    cell_id: str
    prompt_index: int
    sample_index: int
    text: str
    num_tokens: int | None
    stop_reason: str
    line: int


@dataclass(frozen=True)
class Cell:
    id: str
    label: str
    sampler: str
    params: dict[str, Any]
    index: int


@dataclass(frozen=True)
class Prompt:
    index: int
    text: str
    reference: str | None


@dataclass
class Page:
    """What the samples page shows: one prompt, its continuations by cell and sample row."""

    prompt: Prompt | None
    position: int  # 0-based position of the prompt among the matching prompts
    matching: int  # how many prompts match the filters
    cells: list[Cell]
    rows: list[int]  # sample indices shown (a window of them)
    grid: dict[tuple[str, int], Sample]
    row_start: int
    total_rows: int
    previous: int | None = None  # prompt index of the previous / next matching prompt
    next: int | None = None


@dataclass
class SampleIndex:
    samples: list[Sample] = field(default_factory=list)
    cells: dict[str, Cell] = field(default_factory=dict)
    prompts: dict[int, Prompt] = field(default_factory=dict)
    by_prompt: dict[int, list[int]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @classmethod
    def empty(cls, problem: Problem | None = None) -> SampleIndex:
        return cls(problems=[problem] if problem else [])

    @classmethod
    def load(cls, path: Path) -> SampleIndex:
        index = cls()
        skipped = 0
        with path.open(encoding="utf-8", errors="replace") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                problem = index._add(line, number)
                if problem is not None:
                    if len(index.problems) < MAX_PROBLEMS:
                        index.problems.append(problem)
                    else:
                        skipped += 1
        if skipped:
            index.problems.append(Problem(RunDir.SAMPLES,
                                          f"{skipped} more damaged lines not listed"))
        index.cells = dict(sorted(index.cells.items(), key=lambda kv: (kv[1].index, kv[0])))
        index.prompts = dict(sorted(index.prompts.items()))
        return index

    def _add(self, line: str, number: int) -> Problem | None:
        try:
            record = json.loads(line)
        except ValueError as exc:
            return Problem(RunDir.SAMPLES, f"not valid JSON ({exc}); line skipped", number)
        if not isinstance(record, dict):
            return Problem(RunDir.SAMPLES, "not a JSON object; line skipped", number)
        missing = [k for k in REQUIRED if k not in record]
        if missing:
            return Problem(RunDir.SAMPLES, f"missing {', '.join(missing)}; line skipped", number)
        try:
            prompt_index = int(record["prompt_index"])
            sample_index = int(record.get("sample_index") or 0)
            num_tokens = record.get("num_tokens")
            num_tokens = int(num_tokens) if num_tokens is not None else None
        except (TypeError, ValueError) as exc:
            return Problem(RunDir.SAMPLES, f"a number field is not a number ({exc}); line skipped",
                           number)
        cell_id = str(record["cell_id"])
        sample = Sample(cell_id, prompt_index, sample_index, str(record["text"] or ""),
                        num_tokens, str(record.get("stop_reason") or "?"), number)
        if cell_id not in self.cells:
            params = record.get("params")
            self.cells[cell_id] = Cell(cell_id, str(record.get("label") or cell_id),
                                       str(record.get("sampler") or ""),
                                       params if isinstance(params, dict) else {},
                                       _int(record.get("cell_index"), len(self.cells)))
        if prompt_index not in self.prompts:
            reference = record.get("reference")
            self.prompts[prompt_index] = Prompt(prompt_index, str(record.get("prompt") or ""),
                                                str(reference) if reference else None)
        self.by_prompt.setdefault(prompt_index, []).append(len(self.samples))
        self.samples.append(sample)
        return None

    # -- queries -------------------------------------------------------------------
    @property
    def stop_reasons(self) -> list[str]:
        return sorted({s.stop_reason for s in self.samples})

    def find(self, cell_id: str, prompt_index: int, sample_index: int) -> Sample | None:
        for position in self.by_prompt.get(prompt_index, []):
            s = self.samples[position]
            if s.cell_id == cell_id and s.sample_index == sample_index:
                return s
        return None

    def shown(self, prompt_index: int, cells: set[str], stop: str | None) -> list[Sample]:
        """The prompt's continuations that pass the cell and stop-reason filters."""
        return [s for s in (self.samples[i] for i in self.by_prompt.get(prompt_index, []))
                if s.cell_id in cells and (stop is None or s.stop_reason == stop)]

    def matching_prompts(self, cells: set[str], stop: str | None,
                         query: str | None) -> list[int]:
        """Prompt indices with a shown continuation, and (with a query) a match in the
        prompt, its reference or one of those continuations (case-insensitive)."""
        needle = query.casefold() if query else None
        out = []
        for prompt_index, prompt in self.prompts.items():
            shown = self.shown(prompt_index, cells, stop)
            if not shown:
                continue
            if needle is not None and not (
                    needle in prompt.text.casefold()
                    or (prompt.reference and needle in prompt.reference.casefold())
                    or any(needle in s.text.casefold() for s in shown)):
                continue
            out.append(prompt_index)
        return out

    def page(self, cells: list[str], stop: str | None, query: str | None,
             prompt_index: int | None, row_start: int = 0, rows_per_page: int = 10) -> Page:
        """The page of one prompt: ``prompt_index`` when it matches, else the first match."""
        chosen = [self.cells[c] for c in cells if c in self.cells]
        matching = self.matching_prompts({c.id for c in chosen}, stop, query)
        if not matching:
            return Page(None, 0, 0, chosen, [], {}, 0, 0)
        position = matching.index(prompt_index) if prompt_index in matching else 0
        page = self.prompt_page(matching[position], chosen, stop, row_start, rows_per_page)
        page.position, page.matching = position, len(matching)
        page.previous = matching[position - 1] if position > 0 else None
        page.next = matching[position + 1] if position + 1 < len(matching) else None
        return page

    def prompt_page(self, prompt_index: int, cells: list[Cell], stop: str | None = None,
                    row_start: int = 0, rows_per_page: int | None = None) -> Page:
        """One prompt's continuations from ``cells``, sample rows from ``row_start``."""
        shown = self.shown(prompt_index, {c.id for c in cells}, stop)
        all_rows = sorted({s.sample_index for s in shown})
        row_start = max(0, min(row_start, max(len(all_rows) - 1, 0)))
        rows = all_rows[row_start:row_start + rows_per_page if rows_per_page else None]
        wanted = set(rows)
        grid = {(s.cell_id, s.sample_index): s for s in shown if s.sample_index in wanted}
        return Page(self.prompts[prompt_index], 0, len(self.prompts), cells, rows, grid,
                    row_start, len(all_rows))


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default
