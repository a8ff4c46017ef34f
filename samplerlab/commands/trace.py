"""``samplerlab trace`` (score a text token by token) and ``samplerlab self-reinforcement``."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from samplerlab.cli.options import JsonOpt
from samplerlab.cli.output import err, out
from samplerlab.errors import UserInputError

PresetOpt = Annotated[str, typer.Option("--preset", help="preset name, directory or "
                                        "samplerlab:NAME")]


def register(cli: typer.Typer) -> None:
    cli.command("trace")(trace)
    cli.command("self-reinforcement")(self_reinforcement)


# --------------------------------------------------------------------------- trace
def read_text_argument(value: str) -> tuple[str, str]:
    """``(text, how to name it)``: the file ``value`` names (UTF-8), ``-`` for standard
    input, else ``value`` itself."""
    if value == "-":
        data, source = sys.stdin.buffer.read(), "standard input"
    else:
        path = Path(value)
        if not path.is_file():
            return value, "the text"
        data, source = path.read_bytes(), f"'{value}'"
    try:
        return data.decode("utf-8"), source
    except UnicodeDecodeError as exc:
        raise UserInputError(f"{source} is not UTF-8 text (byte 0x{data[exc.start]:02x} at "
                             f"offset {exc.start}); convert it, e.g. iconv -t UTF-8") from None


def trace(
    text: Annotated[str, typer.Argument(help="the text, a UTF-8 file holding it, or - for "
                                        "standard input")],
    preset: PresetOpt = "samplerlab:tiny-en",
    top: Annotated[int, typer.Option("--top", help="most probable alternatives to list "
                                     "per token")] = 3,
    plot: Annotated[Path | None, typer.Option("--plot", help="also draw probability and "
                                              "entropy by token into this PNG")] = None,
    as_json: JsonOpt = False,
    sequence_length: Annotated[int, typer.Option("--sequence-length", min=2)] = 128,
) -> None:
    """Score a text token by token under a model (teacher-forced): each token's
    probability, rank and the entropy of the model's distribution."""
    from samplerlab.models import check_preset_reference, load_model
    from samplerlab.traces.scoring import check_top, score_ids, text_ids

    body, source = read_text_argument(text)
    if plot is not None and plot.suffix.lower() != ".png":
        raise UserInputError(f"'{plot}' must end in .png", field="--plot")
    try:
        check_preset_reference(preset)
    except UserInputError as exc:
        raise UserInputError(exc.problem, field="--preset") from None
    if top < 0:
        raise UserInputError(f"must be 0 or more, got {top}", field="--top")
    model = load_model(preset, sequence_length)
    check_top(model, top, field="--top")
    ids, lead = text_ids(model, body, source)
    frame = score_ids(model, ids, lead, top)
    if as_json:
        for row in frame.to_dict("records"):
            print(json.dumps(_json_row(row), ensure_ascii=False))
    else:
        # Piped: wide enough that a row of alternatives stays on one line.
        console = out if sys.stdout.isatty() else Console(width=200, soft_wrap=True)
        console.print(_table(frame, top), highlight=False)
    if plot is not None:
        from samplerlab.traces.plots import plot_text

        plot_text(frame, plot, title=f"{source} under {preset}")
        err.print(f"plot: {plot}", highlight=False)


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    """Plain JSON values: NumPy scalars and arrays as numbers and lists, NaN/NA as null."""
    import pandas as pd

    clean: dict[str, Any] = {}
    for key, value in row.items():
        if hasattr(value, "tolist"):
            value = value.tolist()
        elif not isinstance(value, (str, list)) and pd.isna(value):
            value = None
        clean[key] = value
    return clean


def _table(frame: Any, top: int) -> Table:
    table = Table(title="tokens under the model (teacher-forced)")
    for name in ("pos", "token", "prob", "rank", "entropy"):
        table.add_column(name, justify="right" if name != "token" else "left")
    if top:
        table.add_column(f"top {top}")
    for row in map(_json_row, frame.to_dict("records")):
        rank, prob, entropy = row["model_rank"], row["model_prob"], row["model_entropy"]
        cells = [str(row["position"]), repr(row["token_text"]),
                 "-" if prob is None else f"{prob:.4f}", "-" if rank is None else str(rank),
                 "-" if entropy is None else f"{entropy:.2f}"]
        if top:
            cells.append("  ".join(f"{t!r} {p:.3f}" for t, p in zip(row["top_texts"],
                                                                   row["top_probs"],
                                                                   strict=True)))
        table.add_row(*cells)
    return table


# ---------------------------------------------------------------- self-reinforcement
def self_reinforcement(
    preset: PresetOpt = "samplerlab:tiny-en",
    copies: Annotated[int, typer.Option("--copies", min=2, help="repetitions of each "
                                        "sentence")] = 10,
    sentences: Annotated[int, typer.Option("--sentences", min=2, help="corpus sentences "
                                           "(and as many random-token ones)")] = 200,
    min_tokens: Annotated[int, typer.Option("--min-tokens", min=1)] = 5,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1)] = 12,
    corpus: Annotated[Path | None, typer.Option("--corpus", help="a UTF-8 text of "
                                                "sentences (default: the shipped "
                                                "fortunes)")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    results_root: Annotated[Path, typer.Option("--results-root")] = Path("results"),
    run_id: Annotated[str | None, typer.Option("--run-id")] = None,
    sequence_length: Annotated[int, typer.Option(
        "--sequence-length", min=2, help="the longest context scored (the preprocessor's "
        "sequence length; 128: the embedded model's training length)")] = 128,
) -> None:
    """Measure the self-reinforcement of repeated sentences (Xu et al. 2022): the mean
    token probability of the n-th copy of a sentence against n."""
    from samplerlab.models import check_preset_reference, load_model
    from samplerlab.results import atomic_write, default_run_id, safe_run_dir
    from samplerlab.traces import repetition

    if min_tokens > max_tokens:
        raise UserInputError(f"--min-tokens ({min_tokens}) is above --max-tokens "
                             f"({max_tokens})", field="--min-tokens")
    if corpus is not None:
        if not corpus.is_file():
            raise UserInputError(f"corpus file '{corpus}' does not exist", field="--corpus")
        read_text_argument(str(corpus))  # refuses a file that is not UTF-8
    try:
        check_preset_reference(preset)
    except UserInputError as exc:
        raise UserInputError(exc.problem, field="--preset") from None
    target = safe_run_dir(results_root, "self_reinforcement", run_id or default_run_id())
    if target.exists() and any(target.iterdir()):
        raise UserInputError(f"'{target}' already exists and is not empty; choose another "
                             "--run-id", field="--run-id")
    model = load_model(preset, sequence_length)
    setup = repetition.Setup(copies=copies, sentences=sentences, min_tokens=min_tokens,
                             max_tokens=max_tokens, seed=seed,
                             corpus=corpus or repetition.CORPUS)
    try:
        results = repetition.run(model, setup)
    except ValueError as exc:
        raise UserInputError(str(exc), field="--copies") from None  # nothing written yet
    table = repetition.summary(results)
    target.mkdir(parents=True, exist_ok=True)
    # Quoted: a random-token sentence may hold a bare carriage return.
    atomic_write(target / "sentences.csv",
                 results.to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC))
    atomic_write(target / "summary.csv", table.to_csv(index=False))
    repetition.plot(results, target / "self_reinforcement.png",
                    title=f"{preset}: {results['sentence'].nunique() // 2} sentences per kind")
    atomic_write(target / "setup.json", json.dumps(
        {"preset": preset, "copies": copies, "sentences": sentences, "min_tokens": min_tokens,
         "max_tokens": max_tokens, "seed": seed, "corpus": str(setup.corpus)}, indent=2))
    out.print(_summary_table(table), highlight=False)
    out.print(f"results: {target}", highlight=False)


def _summary_table(table: Any) -> Table:
    rich_table = Table(title="self-reinforcement: mean over sentences [95% interval]")
    for name in ("kind", "n", "TP", "TP(n)/TP(1)", "IP", "WR"):
        rich_table.add_column(name, justify="left" if name == "kind" else "right")
    for row in table.to_dict("records"):
        cells = [row["kind"], str(row["n"])]
        for metric in ("tp", "gain", "ip", "wr"):
            value = row[metric]
            cells.append("-" if value != value or (metric == "gain" and row["n"] == 1) else
                         f"{value:.3f} [{row[f'{metric}_low']:.3f}, {row[f'{metric}_high']:.3f}]")
        rich_table.add_row(*cells)
    return rich_table
