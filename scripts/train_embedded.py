"""Build and train samplerlab's embedded default model, ``samplerlab:tiny-en``.

Two steps, both reproducible from a clean clone:

``prepare`` (run once by the maintainers; its output is committed)
    Extracts the training text from Debian's ``fortunes``, ``fortunes-min`` and
    ``fortunes-bofh-excuses`` packages and from the chinese-poetry 《全唐诗》 JSON into
    ``samplerlab/assets/corpus/``::

        cd /tmp && apt-get download fortunes fortunes-min fortunes-bofh-excuses
        for f in fortunes*.deb; do dpkg -x "$f" /tmp/fortunes-x; done
        python scripts/train_embedded.py prepare \\
            --fortunes-dir /tmp/fortunes-x/usr/share/games/fortunes \\
            --poetry-dir ../shared/datasets/chinese-poetry/全唐诗

``train`` (needs only the shipped corpus)
    Trains a byte-level BPE tokenizer in GPT-2 format on the training split, builds a
    KerasHub ``GPT2CausalLM`` from scratch, trains it with ``samplerlab.finetune.fit_texts``,
    measures held-out perplexity and saves the preset (``save_to_preset``) with
    ``metrics.json``::

        python scripts/train_embedded.py train            # the recipe in embedded.yaml
        python scripts/train_embedded.py train --measure  # tokens/s only, nothing saved
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = Path(__file__).resolve().parent / "embedded.yaml"
END_TOKEN = "<|endoftext|>"  # noqa: S105 - a vocabulary entry, not a secret
FORTUNE_SEPARATOR = "%"
# Not prose: pictures made of characters would teach the model to draw boxes.
SKIPPED_FORTUNE_FILES = {"ascii-art"}
# Regular 5- or 7-character lines (jueju and lüshi): the tutorial's "Tang poem" shape.
REGULAR_LINE = re.compile(r"^(?:[^，。？！、；：]{5}|[^，。？！、；：]{7})[，。？！；]$")
CLAUSE = re.compile(r"[^，。？！；]*[，。？！；]")
TANG_POEMS = 8000

# ---------------------------------------------------------------------------------------
# prepare: raw Debian packages + chinese-poetry JSON -> shipped corpus
# ---------------------------------------------------------------------------------------


def read_fortune_file(path: Path) -> list[str]:
    """The cookies of one strfile source file (cookies are separated by '%' lines)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    cookies, current = [], []
    for line in text.splitlines():
        if line.strip() == FORTUNE_SEPARATOR:
            cookies.append("\n".join(current).strip("\n"))
            current = []
        else:
            current.append(line.rstrip())
    cookies.append("\n".join(current).strip("\n"))
    return [c for c in cookies if c.strip()]


def prepare_fortunes(fortunes_dir: Path) -> list[str]:
    files = sorted(p for p in fortunes_dir.iterdir()
                   if p.is_file() and not p.is_symlink() and p.suffix == ""
                   and p.name not in SKIPPED_FORTUNE_FILES)
    seen, cookies = set(), []
    for path in files:
        for cookie in read_fortune_file(path):
            # Tabs only indent attributions ("\t\t-- Mark Twain"); one space keeps the tokens few.
            cookie = re.sub(r"\t+", " ", cookie)
            if cookie not in seen:  # fortunes and fortunes-min overlap
                seen.add(cookie)
                cookies.append(cookie)
    return cookies


def prepare_tang(poetry_dir: Path, limit: int = TANG_POEMS) -> list[str]:
    """The first ``limit`` regular Tang poems, paragraphs joined as in the KerasHub tutorial."""
    def order(p: Path) -> int:
        return int(p.name.split(".")[2])

    poems = []
    for path in sorted(poetry_dir.glob("poet.tang.*.json"), key=order):
        for item in json.loads(path.read_text(encoding="utf-8")):
            lines = [s for part in item["paragraphs"] for s in CLAUSE.findall(part)]
            if 4 <= len(lines) <= 8 and all(REGULAR_LINE.match(s) for s in lines):
                poems.append("".join(item["paragraphs"]))
                if len(poems) == limit:
                    return poems
    return poems


def write_corpus(corpus_dir: Path, fortunes: list[str], tang: list[str]) -> None:
    corpus_dir.mkdir(parents=True, exist_ok=True)
    sep = f"\n{FORTUNE_SEPARATOR}\n"
    (corpus_dir / "fortunes.txt").write_text(sep.join(fortunes) + "\n", encoding="utf-8")
    (corpus_dir / "tang.txt").write_text("\n".join(tang) + "\n", encoding="utf-8")


def cmd_prepare(args: argparse.Namespace) -> None:
    fortunes = prepare_fortunes(Path(args.fortunes_dir))
    tang = prepare_tang(Path(args.poetry_dir), args.tang_poems)
    write_corpus(Path(args.corpus_dir), fortunes, tang)
    print(f"wrote {len(fortunes)} fortunes and {len(tang)} Tang poems to {args.corpus_dir}")


# ---------------------------------------------------------------------------------------
# train: shipped corpus -> tokenizer -> GPT2CausalLM -> preset
# ---------------------------------------------------------------------------------------


def read_corpus(corpus_dir: Path) -> dict[str, list[str]]:
    """Documents per language: English fortunes and Tang poems."""
    fortunes = (corpus_dir / "fortunes.txt").read_text(encoding="utf-8")
    english = [d.strip("\n") for d in fortunes.split(f"\n{FORTUNE_SEPARATOR}\n") if d.strip()]
    tang = [line for line in (corpus_dir / "tang.txt").read_text(encoding="utf-8").splitlines()
            if line.strip()]
    return {"english": english, "tang": tang}


def split_holdout(docs: list[str], every: int) -> tuple[list[str], list[str]]:
    """Every ``every``-th document is held out: deterministic, spread over all sources."""
    train = [d for i, d in enumerate(docs) if i % every != every - 1]
    held = [d for i, d in enumerate(docs) if i % every == every - 1]
    return train, held


def train_bpe(texts: list[str], vocab_size: int, min_frequency: int, out_dir: Path) -> Path:
    """A byte-level BPE in GPT-2's file format (vocab.json + merges.txt), END_TOKEN last."""
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer(add_prefix_space=False)
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=min_frequency,
                            special_tokens=[END_TOKEN], show_progress=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    bpe.save_model(str(out_dir))
    vocab_path = out_dir / "vocab.json"
    vocab = end_token_last(json.loads(vocab_path.read_text(encoding="utf-8")))
    vocab_path.write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    return out_dir


def end_token_last(vocab: dict[str, int]) -> dict[str, int]:
    """Move END_TOKEN from id 0 (where `tokenizers` puts special tokens) to the last id.

    GPT-2's layout, and a necessity: KerasHub's GPT-2 preprocessor pads with id 0, and its
    samplers stop once every row holds a stop token past the prompt, so an end token of 0
    would make ``generate()`` return the prompt unchanged.
    """
    assert vocab[END_TOKEN] == 0
    moved = {token: i - 1 for token, i in vocab.items() if token != END_TOKEN}
    moved[END_TOKEN] = len(vocab) - 1
    return dict(sorted(moved.items(), key=lambda item: item[1]))


def keras_tokenizer(bpe_dir: Path):
    import keras_hub

    return keras_hub.models.GPT2Tokenizer(vocabulary=str(bpe_dir / "vocab.json"),
                                          merges=str(bpe_dir / "merges.txt"))


def pack(docs: list[str], lengths: list[int], budget: int) -> list[str]:
    """Join consecutive documents with END_TOKEN into windows of at most ``budget`` tokens.

    Short fortunes would otherwise be mostly padding; packing keeps every training token
    real, and the model learns that END_TOKEN starts a new, unrelated text (as GPT-2 does).
    A document longer than the budget gets a window of its own (the preprocessor truncates).
    """
    windows, current, used = [], [], 0
    for doc, n in zip(docs, lengths, strict=True):
        if current and used + n + 1 > budget:
            windows.append(END_TOKEN.join(current))
            current, used = [], 0
        current.append(doc)
        used += n + 1
    if current:
        windows.append(END_TOKEN.join(current))
    return windows


def token_lengths(bpe_dir: Path, docs: list[str]) -> list[int]:
    """Token counts from the Rust tokenizer: the same BPE as KerasHub's, much faster."""
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer(str(bpe_dir / "vocab.json"), str(bpe_dir / "merges.txt"))
    return [len(e.ids) for e in bpe.encode_batch(docs)]


def build_model(tokenizer, cfg: dict, seed: int):
    import keras
    import keras_hub

    keras.utils.set_random_seed(seed)
    m = cfg["model"]
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=tokenizer.vocabulary_size(), num_layers=m["num_layers"],
        num_heads=m["num_heads"], hidden_dim=m["hidden_dim"],
        intermediate_dim=m["intermediate_dim"], dropout=m["dropout"],
        max_sequence_length=m["max_sequence_length"])
    preprocessor = keras_hub.models.GPT2CausalLMPreprocessor(
        tokenizer=tokenizer, sequence_length=m["sequence_length"])
    return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=preprocessor)


def heldout_perplexity(causal_lm, windows: list[str], batch_size: int = 32) -> dict:
    """Token-level perplexity exp(mean NLL) over every real (non-padding) target token."""
    import numpy as np

    total_nll, total_tokens = 0.0, 0
    for start in range(0, len(windows), batch_size):
        x, y, w = causal_lm.preprocessor(windows[start:start + batch_size])
        logits = np.asarray(causal_lm(x, training=False), dtype=np.float64)
        logits -= logits.max(axis=-1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
        y, w = np.asarray(y), np.asarray(w, dtype=np.float64)
        nll = -np.take_along_axis(logp, y[..., None], axis=-1)[..., 0]
        total_nll += float((nll * w).sum())
        total_tokens += int(w.sum())
    mean = total_nll / max(total_tokens, 1)
    return {"perplexity": round(math.exp(mean), 3), "nll": round(mean, 5),
            "tokens": total_tokens}


def step_logger(every: int = 20):
    """Plain log lines (the rich bar needs a terminal; training usually runs in the background)."""
    import keras

    class StepLogger(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.start = time.perf_counter()
            self.step = 0

        def on_train_batch_end(self, batch, logs=None):
            self.step += 1
            if self.step % every == 0:
                print(f"step {self.step}  loss {float((logs or {}).get('loss', 0)):.4f}  "
                      f"{time.perf_counter() - self.start:.0f} s", flush=True)

    return StepLogger()


def fit(causal_lm, texts: list[str], tcfg: dict, seed: int, progress: bool) -> list[dict]:
    """Train through samplerlab's own fine-tuning path (samplerlab.finetune.fit_texts)."""
    from samplerlab.finetune import fit_texts

    return fit_texts(causal_lm, texts, batch_size=tcfg["batch_size"], epochs=tcfg["epochs"],
                     take_batches=tcfg.get("take_batches"),
                     learning_rate=tcfg["learning_rate"],
                     end_learning_rate=tcfg["end_learning_rate"], schedule=tcfg["schedule"],
                     optimizer=tcfg["optimizer"], seed=seed, progress=False,
                     callbacks=[step_logger()] if progress else [],
                     weight_decay=tcfg.get("weight_decay"),
                     shuffle_buffer=tcfg.get("shuffle_buffer"))


def cmd_train(args: argparse.Namespace) -> None:
    cfg = yaml.safe_load(Path(args.config).read_text())
    seed = int(cfg["seed"])
    os.environ.setdefault("KERAS_BACKEND", "jax")
    started = time.perf_counter()
    corpus = read_corpus(ROOT / cfg["corpus"]["dir"])
    every = int(cfg["corpus"]["holdout_every"])
    splits = {lang: split_holdout(docs, every) for lang, docs in corpus.items()}
    train_docs = [d for lang in splits for d in splits[lang][0]]

    with tempfile.TemporaryDirectory(prefix="tiny-en-") as work:
        _train(args, cfg, seed, splits, train_docs, Path(work), started)


def _train(args: argparse.Namespace, cfg: dict, seed: int, splits: dict, train_docs: list[str],
           work: Path, started: float) -> None:
    tk = cfg["tokenizer"]
    bpe_dir = train_bpe(train_docs, tk["vocab_size"], tk["min_frequency"], work / "bpe")
    tokenizer = keras_tokenizer(bpe_dir)

    budget = int(cfg["model"]["sequence_length"]) - 1  # room for the start token
    windows = {}
    for lang, (train, held) in splits.items():
        windows[lang] = (pack(train, token_lengths(bpe_dir, train), budget),
                         pack(held, token_lengths(bpe_dir, held), budget))
    train_windows = [w for lang in windows for w in windows[lang][0]]
    # A fixed shuffle so that batches mix English and Chinese (not security-relevant).
    random.Random(seed).shuffle(train_windows)  # noqa: S311
    print(f"{len(train_windows)} training windows of <= {budget + 1} tokens "
          f"({', '.join(f'{k}: {len(v[0])}' for k, v in windows.items())})", flush=True)

    causal_lm = build_model(tokenizer, cfg, seed)
    tcfg = dict(cfg["train"])
    if args.measure:
        tcfg.update(epochs=1, take_batches=args.measure)
    t0 = time.perf_counter()
    history = fit(causal_lm, train_windows, tcfg, seed, progress=not args.quiet)
    train_s = time.perf_counter() - t0
    n_batches = tcfg.get("take_batches") or math.ceil(len(train_windows) / tcfg["batch_size"])
    tokens = n_batches * tcfg["batch_size"] * cfg["model"]["sequence_length"] * tcfg["epochs"]
    print(f"trained {tcfg['epochs']} epoch(s) x {n_batches} batches in {train_s:.1f} s "
          f"(~{tokens / train_s:.0f} window tokens/s incl. compile)", flush=True)
    if args.measure:
        times = [r["time"] for r in history]
        steady = (times[-1] - times[len(times) // 2]) / (len(times) - 1 - len(times) // 2)
        per_step = tcfg["batch_size"] * cfg["model"]["sequence_length"]
        print(f"steady state: {steady:.3f} s/step = {per_step / steady:.0f} tokens/s; "
              f"one epoch = {len(train_windows) / tcfg['batch_size'] * steady / 60:.1f} min")
        return

    metrics = {"heldout": {lang: heldout_perplexity(causal_lm, windows[lang][1])
                           for lang in windows}}
    metrics.update(
        parameters=int(causal_lm.backbone.count_params()),
        vocabulary_size=int(tokenizer.vocabulary_size()),
        train_windows=len(train_windows), train_seconds=round(train_s, 1),
        total_seconds=round(time.perf_counter() - started, 1),
        final_loss=_last(history, "batch_loss"), seed=seed, config=cfg,
        versions=_versions())
    out = ROOT / cfg["output"]
    if out.exists():
        shutil.rmtree(out)
    # The preset is meant for generation: no dropout at load time.
    causal_lm.backbone.dropout = 0.0
    causal_lm.save_to_preset(str(out))
    _drop_dropout(out / "config.json")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(metrics["heldout"], indent=2))


def _drop_dropout(config_path: Path) -> None:
    """Dropout only matters while training; the saved config says 0 so nothing surprises."""
    config = json.loads(config_path.read_text())
    config["config"]["dropout"] = 0.0
    config_path.write_text(json.dumps(config, indent=4) + "\n")


def _last(records: list[dict], key: str):
    return round(float(records[-1][key]), 5) if records else None


def _versions() -> dict:
    import jax
    import keras
    import keras_hub
    import tokenizers

    return {"keras": keras.__version__, "keras_hub": keras_hub.__version__,
            "jax": jax.__version__, "tokenizers": tokenizers.__version__}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="rebuild the shipped corpus from the raw sources")
    prep.add_argument("--fortunes-dir", required=True)
    prep.add_argument("--poetry-dir", required=True)
    prep.add_argument("--corpus-dir", default=str(ROOT / "samplerlab/assets/corpus"))
    prep.add_argument("--tang-poems", type=int, default=TANG_POEMS)
    train = sub.add_parser("train", help="train the tokenizer and model; save the preset")
    train.add_argument("--config", default=str(DEFAULT_CONFIG))
    train.add_argument("--measure", type=int, default=0, metavar="BATCHES",
                       help="only time this many training batches; save nothing")
    train.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    {"prepare": cmd_prepare, "train": cmd_train}[args.command](args)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
