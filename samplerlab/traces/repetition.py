"""The self-reinforcement of repeated sentences (Xu et al. 2022, "Learning to Break the Loop").

Xu et al. build contexts that repeat one sentence ``s = (x_1 .. x_L)`` n times and score
them teacher-forced. With ``p_{n,l}`` the model's probability of token ``l`` of the n-th
copy given everything before it:

- ``TP(n) = mean_l p_{n,l}``: the average token probability of the n-th copy;
- ``IP(n) = mean_l [p_{n,l} > p_{1,l}]``: the share of its tokens more probable than in
  the first copy (n >= 2);
- ``WR(n) = mean_l [p_{n,l} > p_{1,l} and x_{n,l} is the argmax]``: the share that also
  became the model's top choice (the "winner rate", n >= 2).

Besides, the gain ``TP(n) / TP(1)`` of each sentence, averaged as a geometric mean (a mean
of TP over sentences is dominated by the few most probable ones; random-token sentences
sit near 1 / vocabulary).

They report that TP grows with n, almost monotonically, for sentences from a corpus and
for sentences of random tokens alike: the more often a sentence has repeated, the more
likely the model repeats it again, which is why greedy decoding gets stuck in loops.

:func:`run` does the same for any model: corpus sentences (the shipped fortunes by
default) and random-token sentences of the same lengths, each repeated ``copies`` times
(every copy the same tokens: a sentence is tokenized once, with a leading space, and its
ids repeated), scored in one forward pass per context. Every context fits the
preprocessor's sequence length (the length samplerlab generates with; for the embedded
model also the length it was trained on): positions a model never saw in training say
little about what it learned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from samplerlab.traces.reference import prompt_ids
from samplerlab.traces.teacher import Scorer

CORPUS = Path(__file__).resolve().parents[1] / "assets" / "corpus" / "fortunes.txt"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class Setup:
    """One self-reinforcement experiment.

    Attributes:
        copies: how many times each sentence is repeated (n = 1 .. copies).
        sentences: how many corpus sentences (and as many random-token ones).
        min_tokens / max_tokens: the sentence lengths used, in tokens.
        seed: which sentences are drawn and which random tokens.
        corpus: a text file of sentences (``%`` lines separate entries, as in fortunes).
    """

    copies: int = 10
    sentences: int = 200
    min_tokens: int = 5
    max_tokens: int = 12
    seed: int = 0
    corpus: Path = CORPUS


def corpus_sentences(path: Path) -> list[str]:
    """Sentences of a text file: entries split at ``%`` lines and blank lines, then at
    sentence ends; whitespace collapsed; attributions (``-- Name``) dropped."""
    text = Path(path).read_text(encoding="utf-8")
    out = []
    for block in re.split(r"\n\s*%\s*\n|\n\s*\n", text):
        flat = " ".join(block.split())
        for sentence in _SENTENCE_END.split(flat):
            sentence = sentence.strip()
            if sentence and not sentence.startswith("--") and sentence[0].isalpha():
                out.append(sentence)
    return out


def draw_sentences(model: Any, setup: Setup) -> list[tuple[str, str, list[int]]]:
    """``(kind, text, token ids)``: corpus sentences of a usable length, and as many
    random-token sentences of the same lengths (tokens drawn uniformly from the
    vocabulary, special tokens excluded)."""
    from samplerlab.traces.table import TokenTexts, vocabulary_size

    context = min(int(model.preprocessor.sequence_length), model.max_sequence_length)
    longest = min(setup.max_tokens, (context - 1) // setup.copies)
    if longest < setup.min_tokens:
        raise ValueError(f"{setup.copies} copies of a {setup.min_tokens}-token sentence "
                         f"(and the start token) do not fit a sequence length of {context}; "
                         "lower the copies or raise the sequence length")
    rng = np.random.default_rng(setup.seed)
    pool = corpus_sentences(setup.corpus)
    rng.shuffle(pool)
    chosen: list[tuple[str, str, list[int]]] = []
    seen: set[tuple[int, ...]] = set()
    for sentence in pool:
        ids = [int(i) for i in np.asarray(model.tokenizer(" " + sentence)).reshape(-1)]
        if setup.min_tokens <= len(ids) <= longest and tuple(ids) not in seen:
            seen.add(tuple(ids))
            chosen.append(("corpus", sentence, ids))
        if len(chosen) == setup.sentences:
            break
    special = {int(model.tokenizer.end_token_id), int(model.tokenizer.start_token_id)}
    allowed = np.array([i for i in range(vocabulary_size(model)) if i not in special])
    texts = TokenTexts(model.tokenizer)
    for _, _, ids in list(chosen):
        random_ids = [int(i) for i in rng.choice(allowed, size=len(ids))]
        chosen.append(("random", "".join(texts(np.array(random_ids))), random_ids))
    return chosen


def run(model: Any, setup: Setup = Setup(), batch_size: int = 8) -> Any:
    """TP, IP and WR for every sentence and copy: a DataFrame with ``kind``
    (``corpus``/``random``), ``sentence`` (index), ``text``, ``tokens``, ``n``, ``tp``,
    ``ip``, ``wr`` (IP and WR empty for n = 1) and ``log2_gain`` (``log2 TP(n)/TP(1)``)."""
    import pandas as pd

    sentences = draw_sentences(model, setup)
    lead = prompt_ids(model, "")
    contexts = [lead + ids * setup.copies for _, _, ids in sentences]
    scored = Scorer(model).score(contexts, batch_size=batch_size)
    rows = []
    for index, ((kind, text, ids), columns) in enumerate(zip(sentences, scored, strict=True)):
        length = len(ids)
        probs = np.exp(columns["model_logp"][len(lead):]).reshape(setup.copies, length)
        top = (columns["model_rank"][len(lead):] == 0).reshape(setup.copies, length)
        for n in range(1, setup.copies + 1):
            up = probs[n - 1] > probs[0]
            rows.append({"kind": kind, "sentence": index, "text": text, "tokens": length,
                         "n": n, "tp": float(probs[n - 1].mean()),
                         "log2_gain": float(np.log2(probs[n - 1].mean() / probs[0].mean())),
                         "ip": float(up.mean()) if n > 1 else np.nan,
                         "wr": float((up & top[n - 1]).mean()) if n > 1 else np.nan})
    return pd.DataFrame(rows)


def summary(results: Any) -> Any:
    """Per kind and n: mean TP, IP and WR over sentences and the geometric-mean ``gain``
    TP(n)/TP(1), each with a 95% interval (mean ± 1.96 standard errors; the gain's on the
    log scale), and the number of sentences."""
    from samplerlab.traces.plots import mean_interval

    parts = []
    for metric in ("tp", "log2_gain", "ip", "wr"):
        stats = mean_interval(results, ["kind", "n"], metric)
        parts.append(stats.rename(columns={"mean": metric, "low": f"{metric}_low",
                                           "high": f"{metric}_high", "count": "sentences"}))
    out = parts[0]
    for part in parts[1:]:
        out = out.merge(part.drop(columns="sentences"), on=["kind", "n"], how="left")
    for suffix in ("", "_low", "_high"):
        out[f"gain{suffix}"] = 2.0 ** out.pop(f"log2_gain{suffix}")
    return out


def plot(results: Any, path: Path, title: str = "") -> Path:
    """TP against n (left), its gain over the first copy (middle) and IP/WR (right), per
    kind, with 95% bands."""
    from samplerlab.traces.plots import band_lines, pyplot, save

    plt, sns = pyplot()
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(16, 4))
    band_lines(left, results, "n", "tp", "kind", bounds=(1e-12, 1.0))
    left.set(xlabel="copy n of the sentence", ylabel="TP: mean token probability (log)",
             yscale="log", title="average token probability of the n-th copy")
    band_lines(middle, results, "n", "log2_gain", "kind")
    ticks = [t for t in range(-1, 5) if t <= max(1, results["log2_gain"].max() + 0.5)]
    middle.set_yticks(ticks, [f"{2.0 ** t:g}x" for t in ticks])
    middle.set(xlabel="copy n of the sentence", ylabel="TP(n) / TP(1), geometric mean",
               title="gain over the first copy")
    later = results[results["n"] > 1]
    long = later.melt(id_vars=["kind", "sentence", "n"], value_vars=["ip", "wr"],
                      var_name="measure", value_name="rate")
    long["series"] = long["kind"] + " " + long["measure"].str.upper()
    band_lines(right, long, "n", "rate", "series", bounds=(0.0, 1.0))
    right.set(xlabel="copy n of the sentence", ylabel="share of tokens",
              title="IP (more probable than copy 1), WR (and top-1)", ylim=(0, 1.02))
    if title:
        fig.suptitle(title)
    return save(fig, path, plt)
