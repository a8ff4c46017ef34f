"""The family matrix's work, run in a worker process for ``tests/test_families.py``.

    python tests/families_worker.py OUT_DIR FAMILY [FAMILY ...]

For each family (a name of ``samplerlab.models.family.FAMILIES``) it builds a tiny model
of the family's own KerasHub classes, saves it with ``save_to_preset`` and runs
``samplerlab run`` on it (a few fine-tuning steps, every built-in sampler, the default
metrics and perplexity), then records what the tests compare, in ``OUT_DIR/FAMILY.json``:

* ``exit_code``/``run_dir``/``stderr``: the run;
* ``keras_hub_greedy``: the continuations KerasHub's own compiled ``generate`` gives for
  the run's prompts on the fine-tuned model (the run's ``greedy`` cell must equal them);
* ``keras_hub_auto_stop``: the stop tokens ``generate(stop_token_ids="auto")`` uses;
* ``lora_weights``: how many LoRA weights ``enable_lora`` makes trainable on it;
* ``hf``: for families KerasHub exports, the greedy continuations of the fine-tuned
  model's export, loaded by samplerlab, against KerasHub's on the model itself; else the
  exporter's refusal.

The tests run two workers at once (the CPU count CI has), so the matrix costs half its
CPU time; a failure is recorded in ``errors`` and never stops the other families.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import time
import traceback
from pathlib import Path

import yaml

PROMPTS = ["The Bionic Dog", "A celebrity is"]
MAX_LENGTH = 16
SEQUENCE_LENGTH = 32
SAMPLERS = ["greedy", {"name": "top_k", "params": {"k": 5}},
            {"name": "top_p", "params": {"p": 0.9}}, "random",
            {"name": "beam", "params": {"num_beams": 2}},
            {"name": "contrastive", "params": {"k": 2, "alpha": 0.6}},
            {"name": "chain", "params": {"processors": [{"repetition_penalty": 1.2}],
                                         "pick": "greedy"}},
            "mirostat", "xtc"]
TEXTS = ["The Bionic Dog drinks too much and kicks over the forest.",
         "A celebrity is a person who is known for his well-knownness.",
         "A critic is a man who creates nothing.", "Keras is a deep learning API."]


def spec(name: str, preset: Path) -> dict:
    """The matrix's spec for one family: every built-in sampler, fine-tuning included."""
    from samplerlab.spec.schema import DEFAULT_METRICS

    return {"name": name, "seed": 3,
            "model": {"preset": str(preset), "sequence_length": SEQUENCE_LENGTH},
            "finetune": {"dataset": {"source": "inline", "texts": TEXTS}, "batch_size": 2,
                         "take_batches": 2, "optimizer": {"learning_rate": 0.01}},
            "prompts": PROMPTS,
            "generation": {"max_length": MAX_LENGTH, "samples_per_prompt": 1, "batch_size": 2},
            "samplers": SAMPLERS, "metrics": [*DEFAULT_METRICS, "perplexity"]}


def keras_hub_greedy(lm, preprocessor, stop_token_ids) -> list[list[int]]:
    """Continuations from KerasHub's own compiled ``generate`` (greedy), split as the
    engine splits its rows."""
    import keras_hub
    import numpy as np

    from samplerlab.engine.cell import split_continuations

    inputs = preprocessor.generate_preprocess(PROMPTS, sequence_length=MAX_LENGTH)
    lm.compile(sampler=keras_hub.samplers.GreedySampler())
    out = lm.make_generate_function()(inputs, stop_token_ids=stop_token_ids)
    out = {k: np.asarray(v) for k, v in out.items()}
    return [tokens for tokens, _ in split_continuations(
        out, np.asarray(inputs["padding_mask"]), stop_token_ids)]


def auto_stop_tokens(lm) -> list[int]:
    """The stop tokens KerasHub's ``generate(stop_token_ids="auto")`` passes for this model
    (its compiled function replaced by one that records them)."""
    seen = []

    def record(inputs, stop_token_ids=None):
        seen.append([int(t) for t in stop_token_ids])
        return inputs

    lm.generate_function = record
    lm.generate(PROMPTS[:1], max_length=MAX_LENGTH)
    return seen[0]


def fine_tuned(run_dir: Path):
    """The run's fine-tuned model, loaded as the run loaded it."""
    from samplerlab.models import load_model

    manifest = json.loads((run_dir / "manifest.json").read_text())
    return load_model(manifest["model"]["finetuned"]["path"], SEQUENCE_LENGTH)


def tokenizer_json(directory: Path, special_tokens: list[str]) -> None:
    """Write ``tokenizer.json`` from the exported ``vocab.json`` and ``merges.txt`` with
    Hugging Face's ``tokenizers``, as a fast tokenizer's ``save_pretrained`` writes it
    (KerasHub's Qwen exporter writes only the slow files; its converter reads this one)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tokenizer = Tokenizer(models.BPE.from_file(str(directory / "vocab.json"),
                                               str(directory / "merges.txt")))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(special_tokens)
    tokenizer.save(str(directory / "tokenizer.json"))


# What KerasHub 0.32's Qwen exporter leaves out of config.json that its own converter
# reads: transformers' Qwen2Config writes both (these are its defaults).
QWEN2_CONFIG_DEFAULTS = {"use_sliding_window": False, "sliding_window": 4096}


def complete_checkpoint(directory: Path, special_tokens: list[str]) -> list[str]:
    """Add what a checkpoint written by transformers has and KerasHub's Qwen export lacks:
    ``tokenizer.json`` and the sliding-window keys of ``config.json``."""
    added = []
    if not (directory / "tokenizer.json").is_file():
        tokenizer_json(directory, special_tokens)
        added.append("tokenizer.json")
    config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") == "qwen2":
        missing = {k: v for k, v in QWEN2_CONFIG_DEFAULTS.items() if k not in config}
        (directory / "config.json").write_text(json.dumps({**config, **missing}))
        added.extend(f"config.json {k}" for k in missing)
    return added


def hf_round_trip(name: str, lm, stop_token_ids, reference: list, out: Path) -> dict:
    """Export the (fine-tuned) model with KerasHub's ``export_to_transformers`` and load it
    back through samplerlab: its greedy continuations, to compare with ``reference``
    (KerasHub's on the model itself), or the exporter's refusal."""
    import keras_hub
    import numpy as np

    from samplerlab.engine.cell import split_continuations
    from samplerlab.engine.programs import ProgramCache
    from samplerlab.errors import UserInputError
    from samplerlab.models import inspect_preset, load_model

    directory = out / f"{name}-hf"
    try:
        lm.export_to_transformers(str(directory))
    except ValueError as exc:
        return {"exported": False, "error": str(exc).splitlines()[0]}
    found: dict = {"exported": True, "written": sorted(p.name for p in directory.iterdir()),
                   "model_type": json.loads((directory / "config.json").read_text())
                   ["model_type"]}
    try:
        inspect_preset(str(directory))
    except UserInputError as exc:  # the export lacks the tokenizer file KerasHub reads
        found["refused"] = exc.problem
        found["completed"] = complete_checkpoint(directory,
                                                 lm.preprocessor.tokenizer.special_tokens)
    loaded = load_model(str(directory), SEQUENCE_LENGTH)
    inputs = loaded.preprocessor.generate_preprocess(PROMPTS, sequence_length=MAX_LENGTH)
    sampler = keras_hub.samplers.GreedySampler()
    out_tokens = ProgramCache(loaded.adapter, persistent=False).get(
        sampler, inputs, stop_token_ids)(sampler, inputs)
    rows = split_continuations({k: np.asarray(v) for k, v in out_tokens.items()},
                               np.asarray(inputs["padding_mask"]), stop_token_ids)
    return {**found, "directory": str(directory), "class": type(loaded.causal_lm).__name__,
            "notes": loaded.notes, "loaded_greedy": [tokens for tokens, _ in rows],
            "original_greedy": reference}


def lora_weights(lm) -> int:
    """How many LoRA weights samplerlab's ``enable_lora`` trains on the model."""
    from samplerlab.finetune import enable_lora

    return enable_lora(lm, 2)


def run_family(name: str, out: Path) -> dict:
    from samplerlab.cli import main
    from samplerlab.models.builders import build_tiny_family, save_preset

    found: dict = {"family": name, "errors": {}}
    started = time.process_time()
    # One layer: the KerasHub-path adapters run KerasHub's own layers (multi-layer parity
    # of samplerlab's fast adapters is tested in test_adapters.py); it halves the compiles.
    preset = save_preset(build_tiny_family(name, sequence_length=SEQUENCE_LENGTH,
                                           num_layers=1), out / "presets" / name)
    spec_file = out / f"{name}.yaml"
    spec_file.write_text(yaml.safe_dump(spec(name, preset)), encoding="utf-8")
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        code = main(["run", str(spec_file), "--results-root", str(out / "results"),
                     "--run-id", "matrix"])
    run_dir = out / "results" / name / "matrix"
    found.update(exit_code=code, run_dir=str(run_dir), stderr=stderr.getvalue()[-3000:])
    tuned = {}
    steps = [
        ("keras_hub_greedy", lambda: keras_hub_greedy(
            *tuned.setdefault("model", _split(fine_tuned(run_dir))))),
        ("hf", lambda: hf_round_trip(name, tuned["model"][0], tuned["model"][2],
                                     found["keras_hub_greedy"], out)),
        # Last: these replace the model's generate function and enable LoRA on it.
        ("keras_hub_auto_stop", lambda: auto_stop_tokens(tuned["model"][0])),
        ("lora_weights", lambda: lora_weights(tuned["model"][0])),
    ]
    for key, step in steps:
        try:
            found[key] = step()
        except Exception:  # noqa: BLE001 - recorded for the test to show
            found["errors"][key] = traceback.format_exc()[-3000:]
    found["cpu_seconds"] = round(time.process_time() - started, 1)
    return found


def _split(model) -> tuple:
    return model.causal_lm, model.preprocessor, model.stop_token_ids


def main(argv: list[str]) -> int:
    os.environ.setdefault("KERAS_BACKEND", "jax")
    out = Path(argv[0])
    for name in argv[1:]:
        try:
            found = run_family(name, out)
        except Exception:  # noqa: BLE001 - recorded for the test to show
            found = {"family": name, "errors": {"run": traceback.format_exc()[-3000:]}}
        (out / f"{name}.json").write_text(json.dumps(found), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
