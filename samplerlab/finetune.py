"""Fine-tuning a KerasHub causal LM on texts, as the KerasHub GPT-2 tutorial does.

The recipe (the tutorial's defaults, every value overridable): batch the raw strings with
``tf.data``, ``take`` the first N batches, Adam with ``PolynomialDecay(lr -> end_lr over
all steps)``, ``SparseCategoricalCrossentropy(from_logits=True)``,
``weighted_metrics=["accuracy"]``, and ``causal_lm.fit``, which runs the attached
preprocessor (tokenise, pack to ``sequence_length``, shift labels) on each batch.

The example of :func:`fit_texts` fine-tunes a tiny model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from samplerlab.models.family import family_of
from samplerlab.results import RunDir

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("polynomial_decay", "constant")
DISTRIBUTIONS = (None, "none", "data_parallel")
# The loss curve's files, named as in a run directory (it is copied there).
LOSS_CURVE_CSV = RunDir.FINETUNE_LOSS
LOSS_CURVE_PNG = RunDir.FINETUNE_LOSS_PLOT


# ------------------------------------------------------------------ the training recipe
def batch_sizes(n_texts: int, batch_size: int, take_batches: int | None) -> list[int]:
    """Sizes of the batches one epoch sees: full batches, a last partial one, cut to take."""
    sizes = [batch_size] * (n_texts // batch_size)
    if n_texts % batch_size:
        sizes.append(n_texts % batch_size)
    return sizes[:take_batches] if take_batches is not None else sizes


def learning_rate_schedule(learning_rate: float, *, end_learning_rate: float = 0.0,
                           schedule: str = "polynomial_decay", total_steps: int = 1) -> Any:
    """The tutorial's ``PolynomialDecay(lr -> end_lr over total_steps)``, or a constant."""
    import keras

    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    if schedule == "constant":
        return learning_rate
    return keras.optimizers.schedules.PolynomialDecay(
        learning_rate, decay_steps=max(1, total_steps), end_learning_rate=end_learning_rate)


def make_optimizer(name: str, learning_rate: Any, *, weight_decay: float | None = None) -> Any:
    """The tutorial's optimizer (Adam), or AdamW / SGD, over a rate or a schedule."""
    import keras

    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    if name == "adamw":
        kwargs = {"weight_decay": weight_decay} if weight_decay is not None else {}
        return keras.optimizers.AdamW(learning_rate, **kwargs)
    return keras.optimizers.SGD(learning_rate)


def text_dataset(texts: Sequence[str], batch_size: int, take_batches: int | None = None,
                 shuffle_buffer: int | None = None, seed: int = 0,
                 as_responses: bool = False) -> Any:
    """Raw strings batched like the tutorial: ``batch(b).cache().prefetch().take(n)``.

    ``as_responses``: each batch as ``{"prompts": "", "responses": texts}``, for
    preprocessors that train on prompt/response pairs (Gemma 3).
    """
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(tf.constant(list(texts), dtype=tf.string))
    if shuffle_buffer:
        # Off by default (the tutorial does not shuffle); useful when training from scratch.
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if take_batches is not None:
        ds = ds.take(take_batches)
    if as_responses:
        ds = ds.map(lambda t: {"prompts": tf.fill(tf.shape(t), ""), "responses": t})
    return ds.cache().prefetch(tf.data.AUTOTUNE)


def _loss_recorder(sizes: list[int], steps_per_epoch: int, schedule_fn: Any) -> Any:
    """A Keras callback recording one dict per training step.

    Keras reports the *running* mean loss of the epoch (weighted by batch size); the
    loss of each step is recovered from two consecutive means so the curve is not smoothed.
    """
    import keras

    class LossRecorder(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.records: list[dict[str, Any]] = []
            self._epoch = 0
            self._seen = 0
            self._prev_total = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self._epoch, self._seen, self._prev_total = epoch, 0, 0.0

        def on_train_batch_end(self, batch, logs=None):
            logs = logs or {}
            size = sizes[batch] if batch < len(sizes) else sizes[-1]
            self._seen += size
            mean = float(logs.get("loss", float("nan")))
            total = mean * self._seen
            step = self._epoch * steps_per_epoch + batch + 1
            self.records.append({
                "epoch": self._epoch + 1,
                "step": step,
                "batch_loss": (total - self._prev_total) / size,
                "loss": mean,
                "accuracy": float(logs.get("accuracy", float("nan"))),
                "learning_rate": float(schedule_fn(step - 1)),
                "time": time.time(),
            })
            self._prev_total = total

    return LossRecorder()


def _rich_progress(total_steps: int, console: Any = None) -> Any:
    """A Keras callback drawing a rich progress bar with the running loss and accuracy."""
    import keras
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    class RichProgress(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.progress = Progress(
                TextColumn("fine-tuning"), BarColumn(), MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[acc]:.4f}"),
                TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False)
            self.progress.start()
            self.task = self.progress.add_task("fit", total=total_steps, loss=float("nan"),
                                               acc=float("nan"))

        def on_train_batch_end(self, batch, logs=None):
            logs = logs or {}
            self.progress.update(self.task, advance=1, loss=float(logs.get("loss", 0.0)),
                                 acc=float(logs.get("accuracy", 0.0)))

        def on_train_end(self, logs=None):
            self.progress.stop()

    return RichProgress()


def data_parallel_distribution() -> Any:
    """``keras.distribution.DataParallel`` over every local device."""
    import keras

    return keras.distribution.DataParallel(devices=keras.distribution.list_devices())


def _distribute_variables(causal_lm: Any, distribution: Any) -> None:
    """Lay out already-built variables as the distribution wants (replicated for DataParallel).

    The model was built before the distribution existed, so its weights sit on one device;
    JAX refuses a step that mixes them with a batch sharded over several devices.
    """
    from samplerlab.models.internals import relayout_variable

    for variable in causal_lm.variables:
        relayout_variable(variable, distribution.get_variable_layout(variable))


def enable_lora(causal_lm: Any, rank: int) -> int:
    """KerasHub's ``backbone.enable_lora(rank)`` on the family's attention projections:
    every base weight frozen, low-rank query/value updates trainable. Returns how many
    LoRA weights train.

    Raises:
        ValueError: when no layer of the backbone takes LoRA.
    """
    family = family_of(type(causal_lm).__name__)
    backbone = causal_lm.backbone
    backbone.enable_lora(rank, target_layer_names=list(family.lora_layers)
                         if family is not None and family.lora_layers else None)
    lora = [w for w in backbone.trainable_weights if "lora_kernel" in w.path]
    if not lora:
        raise ValueError(f"KerasHub's enable_lora found no query/value layers in "
                         f"{type(backbone).__name__}; LoRA cannot fine-tune it")
    return len(lora)


def _restore_sentencepiece(causal_lm: Any) -> None:
    """Re-create a SentencePiece tokenizer's TensorFlow resource from its own proto.

    ``keras.utils.set_random_seed`` calls ``tf.random.set_seed``, which clears
    TensorFlow's eager caches and with them the resource a SentencePiece tokenizer built
    earlier holds; ``fit``'s tf.data pipeline would then fail with "Resource
    ...SentencepieceOp... does not exist" (Llama, Gemma, Mistral, Phi-3, ...).
    """
    preprocessor = getattr(causal_lm, "preprocessor", None)
    tokenizer = getattr(preprocessor, "tokenizer", None)
    if getattr(tokenizer, "proto", None) is not None:
        tokenizer.set_proto(tokenizer.proto)


def fit_texts(causal_lm: Any, texts: Iterable[str], *, batch_size: int = 32, epochs: int = 1,
              take_batches: int | None = None, learning_rate: float = 5e-5,
              end_learning_rate: float = 0.0, schedule: str = "polynomial_decay",
              optimizer: str = "adam", seed: int = 0, distribution: Any = None,
              progress: Any = True, callbacks: Sequence[Any] = (),
              weight_decay: float | None = None,
              shuffle_buffer: int | None = None,
              lora_rank: int | None = None) -> list[dict[str, Any]]:
    """Fine-tune (or train from scratch) a KerasHub causal LM on raw strings, in place.

    Args:
        causal_lm: a ``keras_hub.models.CausalLM`` with its preprocessor attached; its
            ``sequence_length`` decides how each text is packed (longer texts are cut).
        texts: the training texts (any iterable of str; materialised once).
        batch_size: texts per step (the tutorial: 32, 16 for poems).
        epochs: passes over the (taken) batches.
        take_batches: use only the first N batches per epoch (the tutorial's ``take(500)``).
        learning_rate: initial learning rate (5e-5 fine-tuning; ~1e-3 from scratch).
        end_learning_rate: learning rate reached at the last step under polynomial decay.
        schedule: ``"polynomial_decay"`` (the tutorial) or ``"constant"``.
        optimizer: ``"adam"`` (the tutorial), ``"adamw"`` or ``"sgd"``.
        seed: seeds Keras (dropout, shuffling) so a run is repeatable.
        distribution: ``None``/``"none"``, ``"data_parallel"`` (DataParallel over all local
            devices), or a ``keras.distribution.Distribution`` instance.
        progress: ``True`` for a rich progress bar, a ``rich.console.Console`` to draw it
            on, or ``False`` for silence.
        callbacks: extra Keras callbacks.
        weight_decay: AdamW's weight decay (ignored by the other optimizers).
        shuffle_buffer: shuffle texts through a buffer of this size each epoch (off by
            default, as in the tutorial).
        lora_rank: fine-tune with LoRA at this rank (KerasHub's ``backbone.enable_lora``:
            every base weight frozen, low-rank updates of the attention's query and value
            projections trained). ``save_to_preset`` then saves the merged weights.

    Returns:
        One dict per step: ``epoch``, ``step`` (1-based, global), ``batch_loss`` (this
        step's loss), ``loss`` and ``accuracy`` (running means over the epoch, as Keras
        shows them), ``learning_rate`` (used at that step) and ``time`` (Unix seconds).

    Example:

    ```python
    from samplerlab.finetune import fit_texts
    from samplerlab.models import build_tiny_family

    lm = build_tiny_family("gpt2", num_layers=1, sequence_length=16)  # a tiny GPT2CausalLM
    history = fit_texts(lm, ["the cat sat on the mat"] * 8, batch_size=4, epochs=2,
                        learning_rate=1e-2, progress=False)
    assert [r["step"] for r in history] == [1, 2, 3, 4]  # 2 batches, 2 epochs
    assert history[-1]["loss"] < history[0]["loss"]
    ```
    """
    import keras

    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    if not texts:
        raise ValueError("no non-empty texts to train on")
    if batch_size < 1 or epochs < 1 or (take_batches is not None and take_batches < 1):
        raise ValueError("batch_size, epochs and take_batches must be >= 1")
    if distribution not in DISTRIBUTIONS and isinstance(distribution, str):
        raise ValueError(f"distribution must be none or data_parallel, got {distribution!r}")

    keras.utils.set_random_seed(seed)
    _restore_sentencepiece(causal_lm)
    sizes = batch_sizes(len(texts), batch_size, take_batches)
    steps_per_epoch = len(sizes)
    total_steps = steps_per_epoch * epochs
    if distribution == "data_parallel":
        distribution = data_parallel_distribution()
    elif distribution == "none":
        distribution = None
    family = family_of(type(causal_lm).__name__)
    ds = text_dataset(texts, batch_size, take_batches, shuffle_buffer, seed,
                      as_responses=bool(family and family.prompt_response))
    if lora_rank is not None:
        enable_lora(causal_lm, lora_rank)
    # Under a distribution, the optimizer and metric variables must be created inside its
    # scope too, so everything the train step touches shares one device mesh.
    with distribution.scope() if distribution is not None else contextlib.nullcontext():
        if distribution is not None:
            _distribute_variables(causal_lm, distribution)
        lr = learning_rate_schedule(learning_rate, end_learning_rate=end_learning_rate,
                                    schedule=schedule, total_steps=total_steps)
        causal_lm.compile(
            optimizer=make_optimizer(optimizer, lr, weight_decay=weight_decay),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            weighted_metrics=["accuracy"],
        )

        def schedule_fn(step: int) -> float:
            return float(lr(step)) if callable(lr) else float(lr)

        recorder = _loss_recorder(sizes, steps_per_epoch, schedule_fn)
        all_callbacks = [recorder, *callbacks]
        if progress:
            console = None if progress is True else progress
            all_callbacks.append(_rich_progress(total_steps, console))
        causal_lm.fit(ds, epochs=epochs, verbose=0, shuffle=False, callbacks=all_callbacks)
    return recorder.records


# ------------------------------------------------------------------ from a spec, cached
@dataclass
class FinetuneResult:
    """Where a fine-tuned preset lives and how it was obtained."""

    key: str
    directory: Path
    preset_dir: Path
    reused: bool
    loss_csv: Path
    loss_png: Path | None
    history: list[dict[str, Any]]


def finetune_key_material(loaded_spec: Any, source: Any) -> dict[str, Any]:
    """Everything that decides the fine-tuned weights: model, data, hyperparameters, seed."""
    spec = loaded_spec.spec
    ft = spec.finetune
    return {
        "base_preset": spec.model.preset,
        "sequence_length": spec.model.sequence_length,
        "dtype_policy": spec.model.dtype_policy,
        "data": {"source": ft.dataset.source, **ft.dataset.params,
                 "fingerprint": source.fingerprint()},
        "hyperparameters": {"batch_size": ft.batch_size, "take_batches": ft.take_batches,
                            "epochs": ft.epochs,
                            "optimizer": ft.optimizer.model_dump(mode="json"),
                            # only when set: keys of full fine-tuning stay as they were
                            **({"lora_rank": ft.lora_rank} if ft.lora_rank else {})},
        "seed": spec.seed,
    }


def finetune_key(material: dict[str, Any]) -> str:
    """A short, stable hash of :func:`finetune_key_material`."""
    text = json.dumps(material, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def write_loss_curve(history: list[dict[str, Any]], directory: Path,
                     title: str = "fine-tuning") -> tuple[Path, Path | None]:
    """Save the per-step history as CSV and a seaborn line plot (PNG)."""
    import pandas as pd

    directory.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(history)
    csv_path = directory / LOSS_CURVE_CSV
    frame.to_csv(csv_path, index=False)
    if frame.empty:
        return csv_path, None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    long = frame.melt(id_vars=["step"], value_vars=["batch_loss", "loss"],
                      var_name="curve", value_name="value")
    long["curve"] = long["curve"].map({"batch_loss": "loss per step",
                                       "loss": "running mean (epoch)"})
    fig, ax = plt.subplots(figsize=(7, 4))
    sns.lineplot(data=long, x="step", y="value", hue="curve", ax=ax)
    ax.set(xlabel="training step", ylabel="cross-entropy loss", title=title)
    fig.tight_layout()
    png_path = directory / LOSS_CURVE_PNG
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return csv_path, png_path


def finetune_from_spec(loaded_spec: Any, *, results_root: str | Path,
                       console: Any = None) -> FinetuneResult:
    """Fine-tune as ``spec.finetune`` says, or reuse the cached preset with the same key.

    Training runs on a fresh load of the spec's model, never on a model someone holds
    (a caller's model keeps its weights); that copy is freed once the preset is saved.
    """
    from samplerlab.datasets.build import build_source, located

    ft = loaded_spec.spec.finetune
    loc = ("finetune", "dataset")
    source = build_source(loaded_spec, ft.dataset, loc, check=True)
    with located(loaded_spec, loc):
        material = finetune_key_material(loaded_spec, source)
    key = finetune_key(material)
    directory = Path(results_root) / "_finetuned" / key
    preset_dir = directory / "preset"
    if ft.cache and (directory / "key.json").is_file() and (preset_dir / "config.json").is_file():
        _say(console, f"reusing fine-tuned model {directory} (same base preset, data, "
                      "hyperparameters and seed)")
        history = _read_history(directory / LOSS_CURVE_CSV)
        png = directory / LOSS_CURVE_PNG
        return FinetuneResult(key, directory, preset_dir, True, directory / LOSS_CURVE_CSV,
                              png if png.is_file() else None, history)

    needed = ft.batch_size * ft.take_batches if ft.take_batches else None
    with located(loaded_spec, loc):
        texts = list(source.take(needed))
    if not texts:
        raise loaded_spec.error("the dataset yielded no texts to fine-tune on; check its "
                                "field, split and take", loc)
    _say(console, f"fine-tuning {loaded_spec.spec.model.preset} on {len(texts)} texts "
                  f"from {ft.dataset.source} (key {key})")
    tmp = directory.with_name(f".{key}.tmp")
    history = _train_and_save(loaded_spec, texts, tmp, console)
    write_loss_curve(history, tmp, title=f"fine-tuning {loaded_spec.spec.model.preset}")
    (tmp / "key.json").write_text(json.dumps(material, indent=2, ensure_ascii=False,
                                             sort_keys=True, default=str))
    if directory.exists():
        shutil.rmtree(directory)
    tmp.rename(directory)
    _say(console, f"saved fine-tuned preset to {preset_dir}")
    png = directory / LOSS_CURVE_PNG
    return FinetuneResult(key, directory, preset_dir, False, directory / LOSS_CURVE_CSV,
                          png if png.is_file() else None, history)


def _train_and_save(loaded_spec: Any, texts: list[str], tmp: Path,
                    console: Any) -> list[dict[str, Any]]:
    """Train a fresh load of the spec's model on ``texts`` and save it to ``tmp/preset``.

    The preset goes to a temporary sibling (renamed by the caller once complete), so an
    interrupted run leaves no half preset that a later run would mistake for a finished
    one. The trained copy lives only inside this function.
    """
    from samplerlab.models import load_spec_model, save_preset

    ft = loaded_spec.spec.finetune
    opt = ft.optimizer
    trainee = load_spec_model(loaded_spec.spec.model)
    history = fit_texts(
        trainee.causal_lm, texts, batch_size=ft.batch_size, epochs=ft.epochs,
        take_batches=ft.take_batches, learning_rate=opt.learning_rate,
        end_learning_rate=opt.end_learning_rate, schedule=opt.schedule, optimizer=opt.name,
        weight_decay=opt.weight_decay, seed=loaded_spec.spec.seed,
        # A model-parallel model trains under the distribution its weights are laid out by.
        distribution=(ft.distribution if ft.distribution != "none"
                      else trainee.distribution),
        progress=console if console is not None else True, lora_rank=ft.lora_rank)
    if tmp.exists():
        shutil.rmtree(tmp)
    save_preset(trainee.causal_lm, tmp / "preset")
    return history


def maybe_finetune(loaded_spec: Any, loaded_model: Any, *, results_root: str | Path,
                   run_dir: str | Path | None = None, console: Any = None) -> Any:
    """Fine-tune when the spec asks for it and return the model to sample from.

    Without ``finetune:`` the loaded model is returned as it is. Otherwise the fine-tuned
    preset under ``<results_root>/_finetuned/<key>/preset`` is (trained and saved, or
    reused and) loaded, its loss curve is copied to ``run_dir`` (``finetune_loss.csv``,
    ``plots/finetune_loss.png``) with a ``finetune.json`` summary, and the returned
    :class:`~samplerlab.models.LoadedModel` carries a note saying what happened.
    """
    from samplerlab.models import load_spec_model

    if loaded_spec.spec.finetune is None:
        return loaded_model
    result = finetune_from_spec(loaded_spec, results_root=results_root, console=console)
    if run_dir is not None:
        copy_to_run_dir(result, Path(run_dir))
    model_spec = loaded_spec.spec.model
    tuned = load_spec_model(model_spec, preset=str(result.preset_dir))
    if tuned.context_length is None and loaded_model.context_length is not None:
        # A preset saved from a Hugging Face checkpoint keeps no config.json: the base
        # model's context length still holds.
        tuned.family = dataclasses.replace(
            tuned.family, context_length=loaded_model.context_length,
            context_source=loaded_model.family.context_source)
    verb = "reused" if result.reused else "fine-tuned"
    tuned.notes = [*loaded_model.notes, f"{verb} {model_spec.preset} -> {result.preset_dir}"]
    tuned.preset = model_spec.preset
    return tuned


def copy_to_run_dir(result: FinetuneResult, run_dir: Path) -> None:
    """Put the loss curve and a summary of the fine-tuning into a run directory."""
    run = RunDir(run_dir)
    run.path.mkdir(parents=True, exist_ok=True)
    shutil.copy2(result.loss_csv, run.finetune_loss_path)
    if result.loss_png is not None:
        run.plots_dir.mkdir(exist_ok=True)
        shutil.copy2(result.loss_png, run.finetune_loss_plot_path)
    last = result.history[-1] if result.history else {}
    summary = {"key": result.key, "preset_dir": str(result.preset_dir),
               "reused": result.reused, "steps": len(result.history),
               "first_loss": result.history[0]["batch_loss"] if result.history else None,
               "last_loss": last.get("batch_loss"), "last_accuracy": last.get("accuracy")}
    run.finetune_summary_path.write_text(json.dumps(summary, indent=2))


def _read_history(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    import pandas as pd

    return pd.read_csv(path).to_dict("records")


def _say(console: Any, message: str) -> None:
    if console is not None:
        console.print(message)
