"""Run directories written by hand (no model): what the viewer reads, in the runner's layout.

Used by the viewer's and the ratings' tests and by tests/benchmarks/test_bench_viewer.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

XSS_PROMPTS = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>"]


def cell(index: int, sampler: str, label: str | None = None, **params: Any) -> dict[str, Any]:
    suffix = "-".join(f"{k}={v}" for k, v in params.items())
    cell_id = f"{index:03d}-{sampler}" + (f"-{suffix}" if suffix else "")
    return {"id": cell_id, "index": index, "label": label or cell_id, "sampler": sampler,
            "params": params}


def default_text(cell: dict[str, Any], prompt_index: int, sample_index: int) -> str:
    return (f"continuation {sample_index} of prompt {prompt_index} by {cell['label']}: "
            "the cat sat on the mat and the cat sat on the mat")


def write_run(root: Path, name: str = "demo", run_id: str = "r1", *,
              cells: list[dict[str, Any]] | None = None,
              prompts: list[str] | None = None, references: list[str | None] | None = None,
              samples_per_prompt: int = 2,
              text: Callable[[dict[str, Any], int, int], str] = default_text,
              status: str = "complete", failed: dict[str, str] | None = None,
              started: str = "2026-01-01T00:00:00+00:00", metrics: bool = True,
              token_ids: bool = True) -> Path:
    """A run directory with spec.yaml, manifest.json, samples.jsonl and metrics.csv.

    ``failed`` maps cell ids to errors: those cells have no samples and status failed.
    """
    cells = cells or [cell(0, "greedy", "greedy"), cell(1, "top_k", "top_k(k=5)", k=5)]
    prompts = prompts or ["I like basketball", "My trip to Yosemite was"]
    references = references or [None] * len(prompts)
    failed = failed or {}
    run = root / name / run_id
    run.mkdir(parents=True)
    spec = {"name": name, "seed": 7, "model": {"preset": "samplerlab:tiny-en"},
            "prompts": prompts, "generation": {"max_length": 32,
                                               "samples_per_prompt": samples_per_prompt},
            "samplers": [{"name": c["sampler"], "params": c["params"]} for c in cells],
            "metrics": ["rep_n", "length"]}
    (run / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    lines, rows, manifest_cells = [], [], []
    for c in cells:
        base = {"cell_id": c["id"], "cell_index": c["index"], "label": c["label"],
                "sampler": c["sampler"], "params": json.dumps(c["params"], sort_keys=True)}
        if c["id"] in failed:
            manifest_cells.append({**c, "status": "failed", "error": failed[c["id"]],
                                   "timing": None, "num_samples": 0})
            rows.append({**base, "status": "failed"})
            continue
        count = 0
        for p, prompt in enumerate(prompts):
            for s in range(samples_per_prompt):
                t = text(c, p, s)
                sample = {"cell_id": c["id"], "cell_index": c["index"], "sampler": c["sampler"],
                          "label": c["label"], "params": c["params"], "prompt_index": p,
                          "sample_index": s, "prompt": prompt, "reference": references[p],
                          "seed": 7 + s, "text": t, "num_tokens": len(t.split()),
                          "prompt_tokens": 4,
                          "stop_reason": "end_token" if (p + s) % 3 == 0 else "max_length",
                          "batch_index": 0, "batch_seconds": 0.1}
                if token_ids:
                    sample["token_ids"] = list(range(len(t.split())))
                lines.append(json.dumps(sample, ensure_ascii=False))
                count += 1
        manifest_cells.append({**c, "status": "done", "error": None, "num_samples": count,
                               "timing": {"compile_s": 1.0, "tokens_per_s": 100.0 + c["index"]}})
        rows.append({**base, "status": "done", "rep_2": 10.0 + c["index"],
                     "rep_2_ci_low": 5.0, "rep_2_ci_high": 15.0 + c["index"],
                     "mean_tokens": 20.0 - c["index"], "mean_tokens_ci_low": 18.0 - c["index"],
                     "mean_tokens_ci_high": 22.0})
    (run / "samples.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    if metrics:
        import pandas as pd

        pd.DataFrame(rows).to_csv(run / "metrics.csv", index=False)
    manifest = {"name": name, "run_id": run_id, "seed": 7, "status": status,
                "started": started, "finished": None if status == "running" else started,
                "model": {"preset": "samplerlab:tiny-en"}, "backend": "jax",
                "devices": ["cpu:0"], "versions": {"samplerlab": "0.1.0"}, "notes": [],
                "cells": manifest_cells}
    (run / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return run


def write_traces(run: Path, generations: list[tuple[str, int, int]], tokens: list[str],
                 top_texts: list[str] | None = None) -> Path:
    """``traces.parquet`` in issue #14's schema: ``tokens`` for each generation."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    top_texts = top_texts or ["alt-a", "alt-b"]
    rows: dict[str, list] = {k: [] for k in (
        "cell_id", "prompt_index", "sample_index", "position", "token_id", "token_text",
        "model_prob", "model_rank", "model_entropy", "sampler_prob", "kept_size", "top_ids",
        "top_probs", "top_texts")}
    for cell_id, p, s in generations:
        for i, tok in enumerate(tokens):
            prob = (i + 1) / (len(tokens) + 1)
            values = (cell_id, p, s, i, 100 + i, tok, prob, i % 3, 0.5 + i, None if i else 0.9,
                      None if i else 40, [100 + i, 7], [prob, 0.01], [tok, *top_texts[:1]])
            for key, value in zip(rows, values, strict=True):
                rows[key].append(value)
    schema = pa.schema([
        ("cell_id", pa.string()), ("prompt_index", pa.int32()), ("sample_index", pa.int32()),
        ("position", pa.int32()), ("token_id", pa.int32()), ("token_text", pa.string()),
        ("model_prob", pa.float32()), ("model_rank", pa.int32()),
        ("model_entropy", pa.float32()), ("sampler_prob", pa.float32()),
        ("kept_size", pa.int32()), ("top_ids", pa.list_(pa.int32())),
        ("top_probs", pa.list_(pa.float32())), ("top_texts", pa.list_(pa.string()))])
    path = run / "traces.parquet"
    pq.write_table(pa.table(rows, schema=schema), path)
    return path


def snapshot(run: Path) -> dict[str, tuple[int, bytes]]:
    """Every file of the run but ratings.sqlite (and its WAL files): size and content."""
    return {str(p.relative_to(run)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(run.rglob("*")) if p.is_file()
            and not p.name.startswith("ratings.sqlite")}
