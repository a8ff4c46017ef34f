"""``samplerlab score``, ``compare`` and ``plot`` through the real CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from samplerlab.cli import app, main

sys.path.insert(0, str(Path(__file__).parent))
from test_plots_report import write_run  # noqa: E402

runner = CliRunner()

LINES = [
    {"output": "a b a b a", "method": "greedy"},
    {"output": "c d e f g h i", "method": "greedy"},
    {"output": "春眠不觉晓春眠不觉晓", "method": "poem"},
]


@pytest.fixture
def jsonl(tmp_path) -> Path:
    path = tmp_path / "gens.jsonl"
    path.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in LINES) + "\n\n",
                    encoding="utf-8")
    return path


def test_score_groups_and_writes_csv(jsonl, tmp_path):
    out = tmp_path / "scores.csv"
    result = runner.invoke(app, ["score", str(jsonl), "--text-field", "output",
                                 "--group-field", "method", "-m", "rep_n", "-m", "distinct_n",
                                 "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "greedy" in result.output and "poem" in result.output
    frame = pd.read_csv(out).set_index("group")
    # greedy pools "a b a b a" (2 distinct of 3 bigrams) and 7 words (5 of 5): 12.5%.
    assert frame.loc["greedy", "rep_2"] == pytest.approx(12.5)
    assert frame.loc["greedy", "n"] == 2
    assert frame.loc["poem", "rep_2"] == pytest.approx(37.5)
    assert frame.loc["poem", "distinct_1"] == pytest.approx(0.5)  # 5 characters of 10
    assert {"rep_2_ci_low", "rep_2_ci_high"} <= set(frame.columns)


def test_score_defaults_to_the_text_metrics_in_one_group(jsonl, tmp_path):
    out = tmp_path / "scores.csv"
    result = runner.invoke(app, ["score", str(jsonl), "--text-field", "output",
                                 "--output", str(out)])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert list(frame["group"]) == ["all"] and frame["n"][0] == 3
    for col in ("rep_4", "diversity", "distinct_2", "self_bleu", "zipf", "mean_words"):
        assert col in frame.columns


@pytest.mark.parametrize("args, message", [
    (["--text-field", "text"], "gens.jsonl:1: no string field 'text'"),
    (["--text-field", "output", "--group-field", "nope"], "no field 'nope'"),
    (["--text-field", "output", "-m", "perplexity"], "perplexity needs a model"),
    (["--text-field", "output", "-m", "latency"], "latency needs the timing of a run"),
    (["--text-field", "output", "-m", "rep_m"], "unknown metric 'rep_m'; did you mean rep_n"),
])
def test_score_bad_input_is_one_line_and_exit_2(jsonl, capsys, args, message):
    assert main(["score", str(jsonl), *args]) == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split())


def test_score_rejects_a_line_that_is_not_json(tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n{not json}\n', encoding="utf-8")
    assert main(["score", str(path)]) == 2
    assert "bad.jsonl:2: not valid JSON" in " ".join(capsys.readouterr().err.split())


def test_plot_command_redraws_plots_and_report(tmp_path):
    run = write_run(tmp_path)
    result = runner.invoke(app, ["plot", str(run)])
    assert result.exit_code == 0, result.output
    assert (run / "report.md").is_file() and (run / "plots" / "metric_rep_4.png").is_file()


def test_compare_pairs_cells_and_reports_differences(tmp_path):
    run_a = write_run(tmp_path / "a")
    run_b = write_run(tmp_path / "b")
    # Make B's greedy cell repeat less: its samples and metrics.csv row change.
    lines = (run_b / "samples.jsonl").read_text(encoding="utf-8").splitlines()
    samples = [json.loads(line) for line in lines]
    for s in samples:
        if s["cell_id"] == "000-greedy":
            s["text"] = "completely different words appear in this sentence here"
    (run_b / "samples.jsonl").write_text("\n".join(json.dumps(s) for s in samples) + "\n")
    from samplerlab.metrics.scoring import build_metrics, score_samples

    frame = pd.read_csv(run_b / "metrics.csv")
    greedy = [s for s in samples if s["cell_id"] == "000-greedy"]
    new = score_samples(greedy, build_metrics(["rep_n"]))
    frame.loc[frame["cell_id"] == "000-greedy", "rep_4"] = new["rep_4"]
    frame.to_csv(run_b / "metrics.csv", index=False)
    out = tmp_path / "cmp.csv"
    result = runner.invoke(app, ["compare", str(run_a), str(run_b), "-m", "rep_4",
                                 "-m", "tokens_per_s", "--output", str(out)])
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(out)
    assert set(rows["label"]) == {"greedy", "top_k(k=5)", "top_k(k=50)", "top_p(p=0.9)"}
    greedy_rep4 = rows[(rows["label"] == "greedy") & (rows["metric"] == "rep_4")].iloc[0]
    assert greedy_rep4["a"] == pytest.approx(20.0)
    assert greedy_rep4["b"] == 0.0
    assert greedy_rep4["difference"] == pytest.approx(-20.0)
    assert greedy_rep4["ci_low"] <= -20.0 <= greedy_rep4["ci_high"] <= 0
    same = rows[(rows["label"] == "top_k(k=5)") & (rows["metric"] == "rep_4")].iloc[0]
    assert same["difference"] == 0 and same["ci_low"] == same["ci_high"] == 0
    assert "B - A" in result.output


def test_compare_without_matching_cells_is_a_user_error(tmp_path, capsys):
    run_a = write_run(tmp_path / "a")
    run_b = write_run(tmp_path / "b")
    frame = pd.read_csv(run_b / "metrics.csv")
    frame["cell_id"] = "x-" + frame["cell_id"]
    frame["label"] = "other"
    frame.to_csv(run_b / "metrics.csv", index=False)
    assert main(["compare", str(run_a), str(run_b)]) == 2
    assert "no cell of" in capsys.readouterr().err


def test_metrics_command_lists_builtins_with_parameters():
    result = runner.invoke(app, ["metrics"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for name in ("rep_n", "diversity", "distinct_n", "self_bleu", "zipf", "perplexity",
                 "length", "latency", "mauve"):
        assert name in result.output
    assert "max_samples" in result.output
