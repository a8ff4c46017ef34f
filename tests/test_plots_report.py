"""Plots and report.md drawn from a tiny run directory written by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

CELLS = [
    {"id": "000-greedy", "index": 0, "label": "greedy", "sampler": "greedy", "params": {}},
    {"id": "001-top_k-k=5", "index": 1, "label": "top_k(k=5)", "sampler": "top_k",
     "params": {"k": 5}},
    {"id": "002-top_k-k=50", "index": 2, "label": "top_k(k=50)", "sampler": "top_k",
     "params": {"k": 50}},
    {"id": "003-top_p-p=0.9", "index": 3, "label": "top_p(p=0.9)", "sampler": "top_p",
     "params": {"p": 0.9}},
]
TEXTS = {
    "000-greedy": ["the cat sat on the mat the cat sat on the mat", "I like it I like it"],
    "001-top_k-k=5": ["the cat sat down and slept", "I like basketball a lot"],
    "002-top_k-k=50": ["a quiet evening by the river", "I like long walks | pipes"],
}


def write_run(root: Path) -> Path:
    """A finished run: three done cells (one 2-value sweep of top_k) and one failed cell."""
    from samplerlab.metrics.base import MetricContext
    from samplerlab.metrics.scoring import build_metrics, score_samples

    run = root / "results" / "demo" / "r1"
    run.mkdir(parents=True)
    spec = {"name": "demo", "seed": 7, "model": {"preset": "samplerlab:tiny-en",
                                                  "sequence_length": 64},
            "prompts": ["the cat", "I like"], "generation": {"max_length": 32,
                                                             "samples_per_prompt": 1},
            "samplers": [{"name": "greedy"}, {"name": "top_k", "params": {"k": [5, 50]}},
                         {"name": "top_p", "params": {"p": 0.9}}],
            "metrics": [{"name": m} for m in ("rep_n", "diversity", "distinct_n", "self_bleu",
                                              "length", "latency")]}
    (run / "spec.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    metrics = build_metrics(spec["metrics"])
    rows, samples_lines, manifest_cells = [], [], []
    for cell in CELLS:
        texts = TEXTS.get(cell["id"])
        base = {"cell_id": cell["id"], "cell_index": cell["index"], "label": cell["label"],
                "sampler": cell["sampler"], "params": json.dumps(cell["params"])}
        if texts is None:
            rows.append({**base, "status": "failed"})
            manifest_cells.append({**cell, "status": "failed", "timing": None,
                                   "error": "ValueError: k must be positive"})
            continue
        speed = 1.0 + cell["index"]
        timing = {"first_call_s": 3.0, "steady_call_s": [speed, speed * 1.1, speed * 0.9],
                  "compile_s": 2.0, "generated_tokens": 40, "steady_generated_tokens": 30}
        samples = [{"cell_id": cell["id"], "cell_index": cell["index"],
                    "sampler": cell["sampler"], "label": cell["label"],
                    "params": cell["params"], "prompt_index": i, "sample_index": 0,
                    "prompt": spec["prompts"][i], "reference": None, "seed": 7, "text": t,
                    "token_ids": list(range(len(t.split()))), "num_tokens": len(t.split()),
                    "prompt_tokens": 3, "stop_reason": "max_length" if i else "end_token",
                    "batch_index": 0, "batch_seconds": speed}
                   for i, t in enumerate(texts)]
        samples_lines += [json.dumps(s) for s in samples]
        scores = score_samples(samples, metrics, MetricContext(timing=timing, seed=7))
        rows.append({**base, "status": "done", **scores})
        manifest_cells.append({**cell, "status": "done", "timing": timing, "error": None,
                               "num_samples": len(samples)})
    import pandas as pd

    pd.DataFrame(rows).to_csv(run / "metrics.csv", index=False)
    (run / "samples.jsonl").write_text("\n".join(samples_lines) + "\n", encoding="utf-8")
    manifest = {"name": "demo", "run_id": "r1", "versions": {"keras": "3.x"},
                "backend": "jax", "devices": ["cpu:0"], "seed": 7, "status": "partial",
                "started": "2026-01-01T00:00:00+00:00", "finished": "2026-01-01T00:01:00+00:00",
                "cells": manifest_cells}
    (run / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return run


@pytest.fixture
def run_dir(tmp_path) -> Path:
    return write_run(tmp_path)


def test_draw_plots_writes_readable_pngs(run_dir):
    from PIL import Image

    from samplerlab.plots import draw_plots

    paths = draw_plots(run_dir)
    names = {p.name for p in paths}
    assert {"metric_rep_4.png", "metric_diversity.png", "metric_tokens_per_s.png",
            "diversity_vs_rep_4.png", "diversity_vs_tokens_per_s.png",
            "sweep_top_k_k.png", "lengths.png"} <= names
    assert not any("top_p" in n and n.startswith("sweep_") for n in names)  # a single cell
    for path in paths:
        assert path.parent == run_dir / "plots" and path.stat().st_size > 0
        with Image.open(path) as image:
            image.verify()
            assert image.format == "PNG"


def test_sweep_axes_finds_the_swept_parameter_only(run_dir):
    from samplerlab.plots import sweep_axes
    from samplerlab.results import RunDir

    frame = RunDir(run_dir).read_metrics()
    frame = frame[frame["status"] == "done"]
    axes = [(sampler, param, sorted(rows["_value"])) for sampler, param, rows in
            sweep_axes(frame)]
    assert axes == [("top_k", "k", [5, 50])]


def test_report_has_summary_table_plots_samples_and_failures(run_dir):
    from samplerlab.report import write_report

    path = write_report(run_dir)
    text = path.read_text(encoding="utf-8")
    assert path == run_dir / "report.md"
    assert text.startswith("# demo: samplerlab report")
    assert "`samplerlab:tiny-en`" in text and "max_length 32" in text
    assert "| cell | status | rep_2 |" in text
    assert "| top_k(k=5) | done |" in text
    # every plot is embedded by a relative path that exists
    embedded = [line[line.index("(") + 1:-1] for line in text.splitlines()
                if line.startswith("![")]
    assert embedded and all((run_dir / p).is_file() for p in embedded)
    assert "plots/sweep_top_k_k.png" in embedded
    # sample generations per sampler, with table pipes escaped
    assert "### greedy" in text and "### top_k" in text
    assert "> the cat sat on the mat" in text
    # the failed cell is listed with its error
    assert "## Failed cells" in text
    assert "`003-top_p-p=0.9` (top_p(p=0.9)): ValueError: k must be positive" in text


def test_report_metric_table_escapes_pipes():
    import pandas as pd

    from samplerlab.report import metric_table

    frame = pd.DataFrame([{"label": "a|b", "status": "done", "rep_2": 1.5, "rep_2_ci_low": 1.0,
                           "rep_2_ci_high": 2.0}])
    assert metric_table(frame).splitlines()[2] == \
        "| a\\|b | done | 1.500 [1.000, 2.000] |"


def test_plots_of_a_run_without_metrics_csv_is_a_user_error(tmp_path):
    from samplerlab.errors import UserInputError
    from samplerlab.plots import draw_plots

    with pytest.raises(UserInputError, match="no metrics.csv"):
        draw_plots(tmp_path)


def test_report_pairs_each_cell_with_the_first_over_the_same_prompts(run_dir):
    from samplerlab.metrics.base import MetricContext
    from samplerlab.metrics.rep_n import RepN
    from samplerlab.metrics.scoring import paired_difference
    from samplerlab.report import write_report

    text = write_report(run_dir).read_text(encoding="utf-8")
    section = text.split("## Paired differences against ")[1].split("\n## ")[0]
    assert section.startswith(CELLS[0]["label"])
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    assert lines[0] == "| cell | pairs | Δ rep_4 | Δ diversity | Δ distinct_2 |"
    done = [c for c in CELLS[1:] if c["id"] in TEXTS]
    assert [line.split(" | ")[0].lstrip("| ") for line in lines[1:]] == [c["label"]
                                                                        for c in done]
    samples = {c["id"]: [{"text": t, "prompt_index": i, "sample_index": 0}
                         for i, t in enumerate(TEXTS[c["id"]])]
               for c in CELLS if c["id"] in TEXTS}
    expected = paired_difference(samples[done[0]["id"]], samples[CELLS[0]["id"]], RepN(),
                                 MetricContext(seed=7))["rep_4"]["difference"]
    assert f"{expected:.3f}" in lines[1]


def test_missing_values_print_as_an_en_dash():
    import math

    import pandas as pd
    from rich.console import Console

    from samplerlab.metrics.scoring import format_value, summary_table
    from samplerlab.report import metric_table

    assert format_value(math.nan) == format_value(None) == "–"
    assert format_value(2.0, math.nan, 3.0) == "2.000"
    frame = pd.DataFrame([{"label": "a", "status": "done", "rep_2": math.nan, "zipf": 1.0}])
    assert metric_table(frame, ["rep_2", "zipf"]).splitlines()[2] == "| a | done | – | 1.000 |"
    console = Console(record=True, width=100)
    console.print(summary_table([{"label": "a", "status": "done", "rep_4": math.nan,
                                  "diversity": 0.5}], columns=["rep_4", "diversity"]))
    assert "–" in console.export_text()


def _with_human_row(run_dir: Path) -> Path:
    """Add a human row (as metrics.csv has it when the prompts have references)."""
    import pandas as pd

    frame = pd.read_csv(run_dir / "metrics.csv")
    human = {"cell_id": "human", "label": "human", "sampler": "human", "params": "{}",
             "status": "human", "rep_4": 0.0, "rep_4_ci_low": 0.0, "rep_4_ci_high": 0.0,
             "diversity": 0.97, "diversity_ci_low": 0.95, "diversity_ci_high": 0.99}
    pd.concat([frame, pd.DataFrame([human])]).to_csv(run_dir / "metrics.csv", index=False)
    return run_dir


def test_plots_and_report_carry_the_human_row(run_dir):
    from samplerlab.plots import draw_plots
    from samplerlab.report import write_report

    names = {p.name for p in draw_plots(_with_human_row(run_dir))}
    assert {"metric_diversity.png", "diversity_vs_rep_4.png"} <= names
    assert "frontier.png" not in names  # no quality metric (MAUVE, perplexity) in this run
    report = write_report(run_dir).read_text(encoding="utf-8")
    assert "| human | human |" in report
    assert "The `human` row scores human text with the same metrics." in report


def test_frontier_uses_perplexity_without_mauve_and_draws_sweep_paths(tmp_path):
    import pandas as pd

    from samplerlab.plots import frontier_axes, plot_frontier

    rows = [{"label": f"top_p(p={p})", "sampler": "top_p", "params": {"p": p},
             "diversity": d, "perplexity": ppl}
            for p, d, ppl in [(0.5, 0.4, 8.0), (0.8, 0.7, 20.0), (0.95, 0.9, 60.0)]]
    rows.append({"label": "greedy", "sampler": "greedy", "params": {}, "diversity": 0.2,
                 "perplexity": 3.0})
    frame = pd.DataFrame(rows)
    assert frontier_axes(frame) == ("diversity", "perplexity")
    human = {"diversity": 0.95, "perplexity": 90.0}
    path = plot_frontier(frame, tmp_path, human, metrics_model="samplerlab:tiny-en")
    assert path == tmp_path / "frontier.png" and path.stat().st_size > 0
    assert frontier_axes(frame.drop(columns=["perplexity"])) is None
