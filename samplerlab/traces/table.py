"""``traces.parquet``: one row per generated token, typed and compressed.

Columns (:func:`schema`): ``cell_id`` (string), ``prompt_index``, ``sample_index``,
``position`` (0-based within the continuation), ``token_id``, ``model_rank`` (int32);
``token_text`` (string); ``model_prob``, ``model_entropy`` (float32, nats);
``sampler_prob`` (float32), ``kept_size`` (int32), ``top_ids`` (list<int32>),
``top_probs`` (list<float32>), ``top_texts`` (list<string>), all nullable: empty where the
sampler's final distribution is unknown or no alternatives were asked for.

A generation's rows are its continuation's tokens exactly as ``samples.jsonl`` lists them
(``token_ids``): the prompt and the end token are not traced. Each cell's rows are
written atomically as ``cells/<cell-id>.traces.parquet`` before the cell's record, and
``traces.parquet`` is rebuilt from the finished cells (plus ``cells/reference.traces.parquet``
when the spec asks for reference traces), like ``samples.jsonl``.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from samplerlab.errors import UserInputError
from samplerlab.results import RunDir

REFERENCE_CELL = "reference"
COMPRESSION = "zstd"


def schema() -> Any:
    """The Arrow schema of ``traces.parquet``."""
    import pyarrow as pa

    return pa.schema([
        ("cell_id", pa.string()), ("prompt_index", pa.int32()),
        ("sample_index", pa.int32()), ("position", pa.int32()),
        ("token_id", pa.int32()), ("token_text", pa.string()),
        ("model_prob", pa.float32()), ("model_rank", pa.int32()),
        ("model_entropy", pa.float32()), ("sampler_prob", pa.float32()),
        ("kept_size", pa.int32()), ("top_ids", pa.list_(pa.int32())),
        ("top_probs", pa.list_(pa.float32())), ("top_texts", pa.list_(pa.string())),
    ])


def vocabulary_size(model: Any) -> int:
    """The width of the model's logits (a :class:`~samplerlab.models.LoadedModel`)."""
    return int(model.causal_lm.backbone.vocabulary_size)


class TokenTexts:
    """Each token id's text, detokenized once (a batch call for the ids not seen yet)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.known: dict[int, str] = {}

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        """An object array of texts, shaped like ``ids``."""
        ids = np.asarray(ids)
        unique = np.unique(ids)
        missing = [int(i) for i in unique if int(i) not in self.known]
        if missing:
            texts = self.tokenizer.detokenize([[i] for i in missing])
            if hasattr(texts, "numpy"):
                texts = texts.numpy()
            for i, text in zip(missing, list(texts), strict=True):
                self.known[i] = (text.decode("utf-8", errors="replace")
                                 if isinstance(text, bytes) else str(text))
        lookup = np.array([self.known[int(i)] for i in unique], dtype=object)
        return lookup[np.searchsorted(unique, ids)] if ids.size else ids.astype(object)


class TraceRows:
    """Collects a cell's trace rows, batch by batch, into one Arrow table.

    Example:

    ```python
    import numpy as np
    from samplerlab.traces.table import TokenTexts, TraceRows

    # One generate call's trace (what TraceObserver returns): (batch, max_length) arrays.
    shape = (2, 24)
    trace = {"token_id": np.full(shape, 464), "model_logp": np.full(shape, -1.5),
             "model_rank": np.ones(shape, int), "model_entropy": np.full(shape, 2.0)}
    rows = TraceRows("000-greedy", TokenTexts(model.tokenizer))  # model: a LoadedModel
    rows.add(trace, starts=[3, 5], lengths=[12, 9], prompt_indices=[0, 1],
             sample_indices=[0, 0])
    assert rows.table().num_rows == 21  # the generated tokens of both rows
    ```
    """

    def __init__(self, cell_id: str, texts: TokenTexts) -> None:
        self.cell_id = cell_id
        self.texts = texts
        self.parts: list[dict[str, np.ndarray]] = []

    def add(self, trace: dict[str, np.ndarray], starts: list[int], lengths: list[int],
            prompt_indices: list[int], sample_indices: list[int]) -> None:
        """Rows of one generate call: row ``r`` of ``trace`` has ``lengths[r]`` continuation
        tokens from position ``starts[r]`` on (rows past ``len(starts)`` are padding)."""
        lengths = np.asarray(lengths, dtype=np.int64)
        rows = np.repeat(np.arange(len(lengths)), lengths)
        within = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        cols = np.repeat(np.asarray(starts, dtype=np.int64), lengths) + within
        part = {name: np.asarray(values)[rows, cols] for name, values in trace.items()}
        part["prompt_index"] = np.repeat(np.asarray(prompt_indices, dtype=np.int32), lengths)
        part["sample_index"] = np.repeat(np.asarray(sample_indices, dtype=np.int32), lengths)
        part["position"] = within.astype(np.int32)
        self.parts.append(part)

    def table(self) -> Any:
        merged = {k: np.concatenate([p[k] for p in self.parts]) for k in self.parts[0]} \
            if self.parts else {}
        return arrays_to_table(self.cell_id, merged, self.texts)


def arrays_to_table(cell_id: str, columns: dict[str, np.ndarray], texts: TokenTexts) -> Any:
    """An Arrow table of :func:`schema` from flat per-token arrays: ``prompt_index``,
    ``sample_index``, ``position``, ``token_id``, ``model_logp``, ``model_rank``,
    ``model_entropy``, and optionally ``sampler_logp``, ``kept_size`` (-1: none) and
    ``top_ids``/``top_logp`` (``(rows, top)``)."""
    import pyarrow as pa

    n = len(columns.get("token_id", ()))
    if n == 0:
        return schema().empty_table()

    def floats(name: str) -> Any:
        values = columns.get(name)
        if values is None:
            return pa.nulls(n, pa.float32())
        probs = np.exp(values.astype(np.float64)).astype(np.float32)
        return pa.array(probs, pa.float32(), mask=np.isnan(probs))

    kept = columns.get("kept_size")
    token_ids = columns["token_id"].astype(np.int32)
    data = {
        "cell_id": pa.array(np.full(n, cell_id, dtype=object), pa.string()),
        "prompt_index": pa.array(columns["prompt_index"], pa.int32()),
        "sample_index": pa.array(columns["sample_index"], pa.int32()),
        "position": pa.array(columns["position"], pa.int32()),
        "token_id": pa.array(token_ids, pa.int32()),
        "token_text": pa.array(texts(token_ids), pa.string()),
        "model_prob": floats("model_logp"),
        "model_rank": pa.array(columns["model_rank"], pa.int32()),
        "model_entropy": pa.array(columns["model_entropy"], pa.float32()),
        "sampler_prob": floats("sampler_logp"),
        "kept_size": (pa.array(kept, pa.int32(), mask=kept < 0) if kept is not None
                      else pa.nulls(n, pa.int32())),
    }
    top_ids = columns.get("top_ids")
    if top_ids is not None and top_ids.ndim == 2 and top_ids.shape[1] > 0:
        width = top_ids.shape[1]
        offsets = pa.array(np.arange(0, (n + 1) * width, width, dtype=np.int32))
        probs = np.exp(columns["top_logp"].astype(np.float64)).astype(np.float32)
        data["top_ids"] = pa.ListArray.from_arrays(
            offsets, pa.array(top_ids.reshape(-1).astype(np.int32), pa.int32()))
        data["top_probs"] = pa.ListArray.from_arrays(
            offsets, pa.array(probs.reshape(-1), pa.float32()))
        data["top_texts"] = pa.ListArray.from_arrays(
            offsets, pa.array(texts(top_ids.reshape(-1)), pa.string()))
    else:
        for name, kind in (("top_ids", pa.int32()), ("top_probs", pa.float32()),
                           ("top_texts", pa.string())):
            data[name] = pa.nulls(n, pa.list_(kind))
    return pa.Table.from_pydict(data, schema=schema())


# ----------------------------------------------------------------------------- files
def parquet_bytes(table: Any) -> bytes:
    """An Arrow table as the bytes of a zstd-compressed Parquet file."""
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression=COMPRESSION)
    return buffer.getvalue()


def merged_traces(paths: list[Path]) -> bytes | None:
    """The trace files among ``paths`` that exist, concatenated in order, as Parquet bytes
    (``traces.parquet``); None when none exists."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = [pq.read_table(p, schema=schema()) for p in paths if p.is_file()]
    return parquet_bytes(pa.concat_tables(tables)) if tables else None


def load_traces(run_dir: str | Path, columns: list[str] | None = None) -> Any:
    """``traces.parquet`` of a run as a pandas DataFrame, one row per generated token.

    Columns keep their Arrow types (``pd.ArrowDtype``): integers stay int32, the nullable
    ``sampler_prob``/``kept_size`` stay nullable, ``top_*`` stay lists.

    Example:

    ```python
    import samplerlab

    df = samplerlab.load_traces(run_dir)  # run_dir: a run with generation.trace: true
    print(df.groupby("cell_id")["model_prob"].mean())
    ```
    """
    import pandas as pd
    import pyarrow.parquet as pq

    path = RunDir(run_dir).traces_path
    if not path.is_file():
        raise UserInputError(f"no {RunDir.TRACES} in '{run_dir}' (run with generation.trace: "
                             "true to record per-token traces)")
    return pq.read_table(path, columns=columns).to_pandas(types_mapper=pd.ArrowDtype)
