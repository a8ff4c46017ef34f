"""``samplerlab trace`` / ``samplerlab.score_text`` (against Hugging Face transformers as a
peer), ``samplerlab self-reinforcement``, and their bad input."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

import samplerlab
from samplerlab.cli import main

TEXT = ("A celebrity is a person who is known for his well-knownness. "
        "A celebrity is a person who is known for his well-knownness.")

# Runs in its own process: torch and JAX must not share one.
PEER = textwrap.dedent("""
    import json, sys
    import torch
    from transformers import AutoTokenizer, GPT2LMHeadModel

    directory, text, ids = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    model = GPT2LMHeadModel.from_pretrained(directory).eval()
    tokenizer = AutoTokenizer.from_pretrained(directory)
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double()
    log_probs = torch.log_softmax(logits, dim=-1)[:-1]
    targets = torch.tensor(ids[1:])
    chosen = log_probs[torch.arange(len(targets)), targets]
    print(json.dumps({
        "tokens": tokenizer(text)["input_ids"],
        "logp": chosen.tolist(),
        "rank": (log_probs > chosen[:, None]).sum(-1).tolist(),
        "entropy": (-(log_probs.exp() * log_probs).sum(-1)).tolist(),
    }))
""")


@pytest.fixture(scope="module")
def scored(embedded_model):
    return samplerlab.score_text(TEXT, model=embedded_model, top=3)


def test_score_text_gives_one_row_per_token(scored, embedded_model):
    assert "".join(scored["token_text"]) == TEXT
    assert list(scored["position"]) == list(range(len(scored)))
    assert scored["model_prob"].between(0, 1).all()
    assert (scored["model_entropy"] > 0).all()
    first = scored.iloc[0]
    assert first["top_probs"][0] >= first["model_prob"]  # the top alternative
    np.testing.assert_allclose([p[0] for p in scored["top_probs"][scored["model_rank"] == 0]],
                               scored["model_prob"][scored["model_rank"] == 0], rtol=1e-6)


@pytest.mark.skipif(importlib.util.find_spec("transformers") is None
                    or importlib.util.find_spec("torch") is None,
                    reason="the peer check needs torch and transformers "
                           "(pip install torch --index-url https://download.pytorch.org/whl/cpu "
                           "transformers)")
def test_teacher_forced_columns_equal_transformers_on_the_exported_model(
        scored, embedded_model, tmp_path):
    from samplerlab.traces.reference import prompt_ids

    embedded_model.causal_lm.export_to_transformers(str(tmp_path / "hf"))
    ids = prompt_ids(embedded_model, TEXT)
    script = tmp_path / "peer.py"
    script.write_text(PEER)
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "hf"), TEXT,
                           json.dumps(ids)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    peer = json.loads(done.stdout.strip().splitlines()[-1])
    assert peer["tokens"] == ids[1:]  # the same tokenizer, exported
    np.testing.assert_allclose(np.log(scored["model_prob"].to_numpy(np.float64)), peer["logp"],
                               atol=2e-4)
    np.testing.assert_allclose(scored["model_entropy"], peer["entropy"], atol=2e-4)
    assert list(scored["model_rank"]) == peer["rank"]


def test_the_trace_command_prints_json_lines_and_draws(tmp_path, capsys):
    source = tmp_path / "text.txt"
    source.write_text(TEXT, encoding="utf-8")
    plot = tmp_path / "tokens.png"
    assert main(["trace", str(source), "--json", "--top", "2", "--plot", str(plot)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert "".join(r["token_text"] for r in rows) == TEXT
    assert set(rows[0]) == {"position", "token_id", "token_text", "model_prob", "model_rank",
                            "model_entropy", "top_ids", "top_probs", "top_texts"}
    assert all(len(r["top_texts"]) == 2 for r in rows)
    assert plot.stat().st_size > 10_000


def test_the_trace_command_prints_a_table(capsys):
    assert main(["trace", "The cat sat on the mat."]) == 0
    out = capsys.readouterr().out
    assert "' cat'" in out and "entropy" in out


# (case, file to write: (name, bytes) or None, the TEXT argument, extra args, expected)
BAD_INPUT = [
    ("not-utf8", ("latin1.txt", b"caf\xe9 au lait"), "latin1.txt", [],
     ["'latin1.txt'", "not UTF-8", "0xe9 at offset 3"]),
    ("longer-than-context", ("long.txt", b"word " * 400), "long.txt", [],
     ["'long.txt'", "402 tokens", "context of 256 tokens"]),
    ("top-above-vocabulary", None, "Hello there", ["--top", "9000"],
     ["--top", "vocabulary size (8192)", "9000"]),
    ("top-negative", None, "Hello there", ["--top", "-1"], ["--top", "0 or more"]),
    ("empty", None, "   ", [], ["the text is empty"]),
    ("unknown-preset", None, "Hello there", ["--preset", "samplerlab:nope"],
     ["--preset", "nope"]),
]


@pytest.mark.parametrize("file,text,args,expected", [c[1:] for c in BAD_INPUT],
                         ids=[c[0] for c in BAD_INPUT])
def test_bad_trace_input_is_one_line_exit_2_and_writes_nothing(tmp_path, monkeypatch, capsys,
                                                               file, text, args, expected):
    monkeypatch.chdir(tmp_path)
    if file is not None:
        (tmp_path / file[0]).write_bytes(file[1])
    before = set(tmp_path.iterdir())
    code = main(["trace", text, "--plot", str(tmp_path / "out.png"), *args])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    for fragment in expected:
        assert fragment in lines[0], (fragment, lines[0])
    assert set(tmp_path.iterdir()) == before and captured.out == ""


def test_a_sampler_that_cannot_be_traced_is_refused_before_the_model_loads(
        write_spec, base_spec, tmp_path, capsys):
    plugin = tmp_path / "untraceable.py"
    plugin.write_text(textwrap.dedent("""
        import samplerlab

        def make_opaque():
            import keras_hub
            return keras_hub.samplers.GreedySampler()

        make_opaque.traceable = False

        @samplerlab.hookimpl
        def register_samplers(register):
            register("opaque", make_opaque, description="cannot be traced")
    """))
    spec = {**base_spec, "plugins": [str(plugin)], "samplers": ["greedy", "opaque"],
            "generation": {**base_spec["generation"], "trace": True}}
    code = main(["run", str(write_spec(spec)), "--results-root", str(tmp_path / "r")])
    line = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in line
    assert "samplers[1].name" in line and "'opaque' cannot be traced" in line
    assert not (tmp_path / "r").exists()
    untraced = {**spec, "generation": base_spec["generation"]}
    assert main(["validate", str(write_spec(untraced, "untraced.yaml"))]) == 0


def test_self_reinforcement_writes_its_measures(tmp_path, capsys):
    code = main(["self-reinforcement", "--copies", "3", "--sentences", "4", "--max-tokens",
                 "12", "--results-root", str(tmp_path), "--run-id", "s"])
    assert code == 0, capsys.readouterr().err
    run = tmp_path / "self_reinforcement" / "s"
    sentences = pd.read_csv(run / "sentences.csv")
    assert set(sentences["kind"]) == {"corpus", "random"}
    assert len(sentences) == 2 * 4 * 3
    assert sentences.loc[sentences["n"] == 1, ["ip", "wr"]].isna().all().all()
    assert sentences["tp"].between(0, 1).all()
    summary = pd.read_csv(run / "summary.csv")
    assert list(summary["n"]) == [1, 2, 3, 1, 2, 3]
    assert (summary["sentences"] == 4).all()
    assert (run / "self_reinforcement.png").is_file()
    assert json.loads((run / "setup.json").read_text())["copies"] == 3
