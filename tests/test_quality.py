"""Quality as the literature measures it: a metrics model, MAUVE, coherence, the human row.

One small run (dataset prompts with reference continuations, a random GPT-2 generator on
the real GPT-2 vocabulary, the embedded ``samplerlab:tiny-en`` as the metrics model with
another tokenizer) is shared by the end-to-end tests; the peers (mauve-text, Hugging Face
transformers) are checked on fixed features and texts.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import yaml

import samplerlab
from samplerlab.cli import main
from samplerlab.metrics.base import MetricContext
from samplerlab.metrics.perplexity import Perplexity, prompt_ids

PASSAGES = [
    "The old lighthouse keeper climbed the stairs every night to light the lamp",
    "A small boat drifted past the harbour while the gulls circled above the masts",
    "My grandmother kept a garden full of roses and tomatoes behind her narrow house",
    "The train left the station late because a cow was standing on the tracks again",
    "We walked along the river until the path ended at a wooden bridge in the fog",
]
SCORER = "samplerlab:tiny-en"


def quality_spec(tiny_preset, **extra) -> dict:
    return {
        "name": "quality", "seed": 11,
        "model": {"preset": str(tiny_preset), "sequence_length": 32},
        "prompts": {"dataset": {"source": "inline", "texts": PASSAGES}, "take": 4,
                    "prefix_words": 4},
        "generation": {"max_length": 20, "samples_per_prompt": 2, "batch_size": 8},
        "samplers": ["greedy", {"name": "top_k", "params": {"k": [5, 50]}}],
        "metrics": ["rep_n", "diversity", "distinct_n", "self_bleu", "zipf", "length",
                    "perplexity", "coherence",
                    {"name": "mauve", "params": {"bootstrap_samples": 5}}],
        "metrics_model": {"preset": SCORER, "batch_size": 8},
        **extra,
    }


@pytest.fixture(scope="module")
def scored_run(tiny_preset, tmp_path_factory):
    """The run, and the cells already recorded each time a model was loaded."""
    import samplerlab.models as models

    root = tmp_path_factory.mktemp("quality")
    loads = []
    real = models.load_model

    def counting(preset, *args, **kwargs):
        run_dirs = list(root.glob("quality/*/cells"))
        loads.append((preset, len(list(run_dirs[0].glob("*.json"))) if run_dirs else 0))
        return real(preset, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(models, "load_model", counting)
        result = samplerlab.run(samplerlab.load_spec(quality_spec(tiny_preset)),
                                results_root=root, progress=False)
    return result, loads


@pytest.fixture(scope="module")
def scorer():
    from samplerlab.models import load_model

    return load_model(SCORER, sequence_length=32, fast_decoding=False)


def _records(run_dir) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((run_dir / "cells").glob("*.json"))}


# ----------------------------------------------------------------------- end to end
def test_the_metrics_model_loads_once_after_every_cell_has_generated(scored_run):
    result, loads = scored_run
    assert result.status == "complete"
    assert [preset for preset, _ in loads].count(SCORER) == 1
    assert dict(loads)[SCORER] == 3  # all three cell records existed when it loaded
    for record in _records(result.run_dir).values():
        assert "metrics_pending" not in record and record["metric_errors"] == {}


def test_perplexity_under_a_metrics_model_with_another_tokenizer_rescores_the_text(
        scored_run, scorer):
    result, _ = scored_run
    run = result.run_dir
    for cell_id, record in _records(run).items():
        samples = [json.loads(line) for line in (run / "cells" / f"{cell_id}.jsonl")
                   .read_text().splitlines()]
        metric = Perplexity()
        context = MetricContext(model=scorer, tokenized_by_model=False)
        expected = metric.aggregate(metric.stats(samples, context))["perplexity"]
        assert record["metrics"]["perplexity"] == pytest.approx(expected, rel=1e-5)
    assert scorer.tokenizer.vocabulary_size() != 50257  # the generator's is GPT-2's


def test_metrics_table_has_a_human_row_and_gaps_to_it(scored_run):
    result, _ = scored_run
    frame = pd.read_csv(result.run_dir / "metrics.csv")
    human = frame[frame["status"] == "human"]
    cells = frame[frame["status"] == "done"]
    assert list(human["label"]) == ["human"] and len(cells) == 3
    human = human.iloc[0]
    for col in ("perplexity", "zipf", "self_bleu", "rep_2", "distinct_2", "coherence"):
        assert math.isfinite(human[col]), col
    assert math.isnan(human["mauve"])  # MAUVE compares a cell with the human text
    for _, cell in cells.iterrows():
        for col in ("perplexity", "zipf", "self_bleu", "rep_4", "distinct_1"):
            assert cell[f"gap_{col}"] == pytest.approx(abs(cell[col] - human[col]),
                                                       nan_ok=True)
        assert 0 <= cell["mauve"] <= 1 and cell["mauve_ci_low"] <= cell["mauve_ci_high"]
        assert -1 <= cell["coherence"] <= 1


def test_human_texts_are_the_references_cut_to_the_generation_budget(scored_run, tiny_model):
    result, _ = scored_run
    human = [json.loads(line) for line in
             (result.run_dir / "human.jsonl").read_text().splitlines()]
    assert len(human) == 4
    for sample, passage in zip(human, PASSAGES, strict=False):
        prompt = " ".join(passage.split()[:4])
        budget = 20 - len(prompt_ids(tiny_model.preprocessor, prompt))
        assert sample["prompt"] == prompt
        assert sample["num_tokens"] == min(budget, len(np.asarray(tiny_model.tokenizer(
            " " + passage.split(maxsplit=4)[4]))))
        assert passage.endswith(sample["text"].strip()) or \
            sample["text"].strip() in passage
        assert sample["stop_reason"] == ("max_length" if sample["num_tokens"] == budget
                                         else "end_token")


def test_report_shows_the_metrics_model_the_human_row_the_gaps_and_the_frontier(scored_run):
    result, _ = scored_run
    report = (result.run_dir / "report.md").read_text(encoding="utf-8")
    assert f"- **Scoring model** (perplexity, MAUVE, coherence): `{SCORER}` (metrics_model)" \
        in report
    assert "SimCSE" in report and "last token" in report
    assert "| human | human |" in report
    assert "## Gap to human" in report
    assert "### human" in report  # human texts next to the sample generations
    plots = [line for line in report.splitlines() if line.startswith("![")]
    assert plots[0] == "![frontier](plots/frontier.png)"
    assert (result.run_dir / "plots" / "frontier.png").stat().st_size > 0


def test_a_run_stopped_before_its_model_metrics_scores_them_on_resume(scored_run, tmp_path):
    import shutil

    from samplerlab.runner import resume_run

    run_dir = shutil.copytree(scored_run[0].run_dir, tmp_path / "run")
    before = _records(run_dir)
    for cell_id, record in before.items():  # as a run killed after its last cell left it
        kept = {k: v for k, v in record["metrics"].items()
                if not k.startswith(("perplexity", "coherence", "mauve", "gap_"))}
        pending = {**record, "metrics": kept,
                   "metrics_pending": ["perplexity", "coherence", "mauve"]}
        (run_dir / "cells" / f"{cell_id}.json").write_text(json.dumps(pending))
    (run_dir / "human.json").unlink()
    assert resume_run(run_dir, progress=False).status == "complete"
    after = _records(run_dir)
    for cell_id, record in after.items():
        assert "metrics_pending" not in record
        for col in ("perplexity", "coherence", "mauve", "mauve_ci_low", "gap_perplexity"):
            assert record["metrics"][col] == pytest.approx(before[cell_id]["metrics"][col],
                                                           rel=1e-5), col
    assert json.loads((run_dir / "human.json").read_text())["num_samples"] == 4


def test_a_metrics_model_that_fails_to_load_late_keeps_the_samples(tiny_preset, tmp_path, capsys):
    broken = tmp_path / "broken-scorer"
    broken.mkdir()
    # A GPT-2 backbone config without weights: passes the early check, fails to load.
    (broken / "config.json").write_text(json.dumps({"registered_name": "keras_hub>GPT2Backbone",
                                                    "config": {}}))
    spec = quality_spec(tiny_preset, metrics_model={"preset": str(broken)})
    spec["samplers"] = ["greedy"]
    spec["metrics"] = ["rep_n", "perplexity"]
    result = samplerlab.run(samplerlab.load_spec(spec), results_root=tmp_path / "r",
                            progress=False)
    assert result.status == "complete"
    (record,) = _records(result.run_dir).values()
    assert record["num_samples"] == 8 and record["metrics"]["rep_2"] >= 0
    assert math.isnan(record["metrics"]["perplexity"])
    assert "could not load" in record["metric_errors"]["perplexity"]
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert "could not load" in manifest["metrics_model"]["error"]
    assert "could not load" in capsys.readouterr().err
    frame = pd.read_csv(result.run_dir / "metrics.csv")
    assert list(frame["status"]) == ["done", "human"]  # the text metrics of human text


# ------------------------------------------------------------------------ bad input
def _refused(tmp_path, monkeypatch, capsys, spec: dict, *fragments: str) -> None:
    import samplerlab.models as models

    def no_loading(*a, **k):
        raise AssertionError("a model was loaded for a spec that should have been refused")

    monkeypatch.setattr(models, "load_model", no_loading)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "case.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    code = main(["run", str(path), "--results-root", str(tmp_path / "results")])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, lines
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(("change", "fragments"), [
    ({"metrics_model": {"preset": "./no/such/scorer"}},
     ("metrics_model.preset", "does not exist")),
    ({"metrics_model": {"preset": "samplerlab:nope"}}, ("metrics_model.preset", "no embedded")),
    ({"metrics_model": {"sequence_length": 5000}},
     ("metrics_model.sequence_length", "context length")),
    ({"prompts": ["I like basketball", "My trip"]}, ("metrics[8]", "human text", "dataset")),
    ({"prompts": {"dataset": {"source": "inline", "texts": PASSAGES}, "take": 1,
                  "prefix_words": 4}, "generation": {"max_length": 20,
                                                     "samples_per_prompt": 1}},
     ("metrics[8]", "at least 2 generations per cell", "makes 1")),
    ({"human": {"path": "missing.txt"}}, ("human.path", "does not exist")),
    ({"human": {"path": "latin1.txt"}}, ("human.path", "not UTF-8")),
    ({"human": {"path": "one.txt"}}, ("human.path", "1 text(s)", "at least 2")),
], ids=["scorer-dir-missing", "scorer-embedded-unknown", "scorer-window-too-long",
        "mauve-without-human-text", "mauve-with-one-generation", "human-file-missing",
        "human-file-not-utf8", "human-file-one-text"])
def test_bad_quality_input_is_one_line_and_exit_2_before_any_model_loads(
        tiny_preset, tmp_path, monkeypatch, capsys, change, fragments):
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 au lait\nun th\xe9\n".encode("latin-1"))
    (tmp_path / "one.txt").write_text("a single human text\n", encoding="utf-8")
    _refused(tmp_path, monkeypatch, capsys, {**quality_spec(tiny_preset), **change},
             *fragments)


def test_a_human_file_replaces_the_references(tiny_preset, tmp_path):
    from samplerlab.metrics.human import human_samples
    from samplerlab.models import load_model

    (tmp_path / "human.txt").write_text("first human text here\n\nsecond one\nthird\n",
                                        encoding="utf-8")
    loaded = samplerlab.load_spec(quality_spec(
        tiny_preset, human={"path": str(tmp_path / "human.txt"), "take": 2}))
    generator = load_model(str(tiny_preset), sequence_length=32)
    samples = human_samples(loaded.spec, [], generator)
    assert [s["text"] for s in samples] == ["first human text here", "second one"]
    assert all(s["prompt"] == "" and s["source"] == "file" for s in samples)


# ---------------------------------------------------------------------------- peers
def test_mauve_equals_mauve_texts_own_function_on_the_same_features():
    import mauve

    from samplerlab.metrics.mauve import Mauve, MauveFeatures

    rng = np.random.default_rng(0)
    p = rng.normal(size=(60, 16))
    q = rng.normal(size=(40, 16)) + 0.4
    expected = mauve.compute_mauve(p_features=p, q_features=q).mauve  # its defaults
    assert Mauve().aggregate(MauveFeatures(p, q))["mauve"] == expected


def test_mauve_features_are_the_last_token_state_and_it_has_an_interval(tiny_model):
    from samplerlab.metrics.features import embed
    from samplerlab.metrics.scoring import build_metrics, score_cell

    texts = [f" the cat number {i} sat on the mat" for i in range(6)]
    samples = [{"text": t, "prompt": "Once", "prompt_index": i, "reference": f" dog {i} ran"}
               for i, t in enumerate(texts)]
    metric = build_metrics([{"name": "mauve", "params": {"bootstrap_samples": 10}}])[0]
    context = MetricContext(model=tiny_model, n_bootstrap=100)
    stats = metric.stats(samples, context)
    ids = [int(t) for t in np.asarray(tiny_model.tokenizer(texts[2]))]
    hidden = np.asarray(tiny_model.causal_lm.backbone(
        {"token_ids": np.array([ids]), "padding_mask": np.ones((1, len(ids)), bool)}))[0]
    np.testing.assert_allclose(stats.p[2], hidden[-1], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stats.q, embed(tiny_model, [s["reference"] for s in samples]),
                               rtol=1e-5, atol=1e-6)
    scores = score_cell(samples, [metric], context)
    row = scores.values
    assert scores.errors == {} and 0 <= row["mauve"] <= 1
    assert row["mauve_ci_low"] <= row["mauve_ci_high"]


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
def test_mauve_keeps_torch_out_of_the_jax_process():
    import jax.numpy as jnp

    from samplerlab.metrics.mauve import require_mauve

    assert require_mauve().compute_mauve.__globals__["FOUND_TORCH"] is False
    assert "torch" not in sys.modules and float(jnp.ones(2).sum()) == 2.0


def test_coherence_is_the_cosine_of_mean_pooled_states(tiny_model):
    from samplerlab.metrics.coherence import Coherence

    samples = [{"prompt": "The cat", "text": " sat on the mat"},
               {"prompt": "", "text": " no prompt: left out"}]
    got = Coherence().aggregate(Coherence().stats(samples, MetricContext(model=tiny_model)))

    def mean_state(text):
        ids = [int(t) for t in np.asarray(tiny_model.tokenizer(text))]
        hidden = np.asarray(tiny_model.causal_lm.backbone(
            {"token_ids": np.array([ids]), "padding_mask": np.ones((1, len(ids)), bool)}))
        return hidden[0].mean(axis=0)

    a, b = mean_state("The cat"), mean_state(" sat on the mat")
    expected = a @ b / np.linalg.norm(a) / np.linalg.norm(b)
    assert got["coherence"] == pytest.approx(expected, rel=1e-4)


HF_SCRIPT = textwrap.dedent("""
    import json, math, sys
    import torch, transformers

    directory, pairs = sys.argv[1], json.loads(sys.argv[2])
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    model = transformers.AutoModelForCausalLM.from_pretrained(directory).eval()
    start = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    total, count, ids_out = 0.0, 0, []
    for prompt, text in pairs:
        context = [start] + tokenizer(prompt)["input_ids"]
        continuation = tokenizer(text)["input_ids"]
        ids = torch.tensor([context + continuation])
        labels = ids.clone()
        labels[0, : len(context)] = -100  # the loss covers the continuation only
        with torch.no_grad():
            loss = model(input_ids=ids, labels=labels).loss.item()
        total += loss * len(continuation)
        count += len(continuation)
        ids_out.append(continuation)
    print(json.dumps({"perplexity": math.exp(total / count), "ids": ids_out}))
""")


@pytest.mark.skipif(importlib.util.find_spec("transformers") is None
                    or importlib.util.find_spec("torch") is None,
                    reason="transformers/torch not installed (pip install 'samplerlab[bench]')")
def test_perplexity_under_a_metrics_model_equals_transformers_loss_on_the_exported_weights(
        tiny_model, tmp_path):
    pairs = [("Hello there", " my old friend, how are you?"),
             ("The cat", " sat on the mat and looked around the room."),
             ("A", " b c d")]
    tiny_model.causal_lm.export_to_transformers(str(tmp_path / "hf"))
    out = subprocess.run([sys.executable, "-c", HF_SCRIPT, str(tmp_path / "hf"),
                          json.dumps(pairs)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    theirs = json.loads(out.stdout.strip().splitlines()[-1])
    samples = [{"prompt": p, "text": t} for p, t in pairs]
    metric = Perplexity()
    ours = metric.aggregate(metric.stats(samples, MetricContext(model=tiny_model)))
    assert theirs["ids"] == [[int(i) for i in np.asarray(tiny_model.tokenizer(t))]
                             for _, t in pairs]
    assert ours["perplexity"] == pytest.approx(theirs["perplexity"], rel=1e-4)


# ------------------------------------------------------------------- label placement
def test_spread_keeps_order_gap_and_bounds_with_least_displacement():
    from samplerlab.plots import spread

    np.testing.assert_allclose(spread(np.array([0.5, 0.5, 0.5]), 0.1), [0.4, 0.5, 0.6])
    np.testing.assert_allclose(spread(np.array([0.1, 0.5, 0.9]), 0.1), [0.1, 0.5, 0.9])
    placed = spread(np.array([0.0, 0.0, 0.99, 1.0]), 0.1)
    assert placed[0] >= 0 and placed[-1] <= 1 + 1e-12
    assert np.all(np.diff(placed) >= 0.1 - 1e-12)


def test_labels_of_coinciding_points_never_overlap():
    from samplerlab.plots import _labelled_figure, _pyplot, label_points

    plt, _ = _pyplot()
    labels = [f"top_p(p=0.{i})" for i in range(12)] + ["greedy", "human"]
    fig, ax = _labelled_figure(plt, len(labels))
    xs = [0.5] * 12 + [0.1, 0.9]
    ys = [0.3] * 12 + [0.31, 0.29]
    ax.scatter(xs, ys)
    texts = label_points(ax, xs, ys, labels)
    from matplotlib.text import Text

    fig.canvas.draw()
    boxes = [Text.get_window_extent(t) for t in texts]  # the text, not its leader line
    plt.close(fig)
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert not boxes[i].overlaps(boxes[j]), (labels[i], labels[j])


def test_pareto_front_keeps_only_undominated_cells():
    from samplerlab.plots import pareto_front

    x = np.array([0.1, 0.5, 0.9, 0.4, 0.5])
    y = np.array([0.9, 0.6, 0.2, 0.5, 0.1])
    assert list(pareto_front(x, y)) == [0, 1, 2]
    assert list(pareto_front(x, y, maximize_y=False)) == [4, 2]  # perplexity: lower
