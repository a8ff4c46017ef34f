"""The run directory, ``results/<name>/<run-id>/``: every file in it is named here.

Each finished cell is written atomically (write to a temporary file, fsync, rename) as
``cells/<cell-id>.jsonl`` (its samples) and ``cells/<cell-id>.json`` (status, timing,
metrics); ``samples.jsonl`` and ``manifest.json`` are then rebuilt from those, again
atomically. A run killed at any moment therefore loses at most the cell in flight, and
``samplerlab run --resume RUN_DIR`` runs only the cells without a record.

:class:`RunDir` is the one place that knows the names of the files and folders of a run
and reads and writes the manifest, the cell records and the samples. The runner
(:mod:`samplerlab.runner`) is the only writer of the run's state (manifest, cell
records, samples); the plots, the report and the viewer's ratings write their own files
through the paths named here.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

from samplerlab.errors import UserInputError
from samplerlab.results.files import atomic_write, json_line, json_lines, now, read_json_lines

RUN_DIR_HINT = "give a results/<name>/<run-id> directory written by samplerlab run"


class RunFile:
    """A file or folder of a run directory, as a read-only attribute of :class:`RunDir`:
    ``RunFile("report.md")`` on a run is ``run.path / "report.md"`` (``under``: the name of
    another attribute of the run to join it to, e.g. a file inside ``plots/``)."""

    def __init__(self, name: str, under: str = "path") -> None:
        self.name = name
        self.under = under

    def __get__(self, run: RunDir | None, owner: type) -> Any:
        if run is None:
            return self
        return Path(getattr(run, self.under)) / self.name


class RunDir:
    """One run's directory: the name of each of its files, its manifest, records and samples.

    Example:

    ```python
    from samplerlab.results import RunDir

    run = RunDir.read(run_dir)  # run_dir: a finished run; RunDir.open(...) to resume one
    assert run.problem is None and run.manifest["status"] == "complete"
    assert len(run.samples()) == sum(c["num_samples"] for c in run.cells)
    print(run.metrics_path, run.cell_record_path(run.cells[0]["id"]))
    ```
    """

    SPEC = "spec.yaml"
    MANIFEST = "manifest.json"
    SAMPLES = "samples.jsonl"
    CELLS = "cells"
    METRICS = "metrics.csv"
    METRICS_PARQUET = "metrics.parquet"
    LATENCY = "latency.csv"
    HUMAN_RECORD = "human.json"
    HUMAN_SAMPLES = "human.jsonl"
    TRACES = "traces.parquet"
    RATINGS = "ratings.sqlite"
    REPORT = "report.md"
    PLOTS = "plots"
    TRACE_PLOTS = "traces"  # under PLOTS
    FINETUNE_LOSS = "finetune_loss.csv"
    FINETUNE_LOSS_PLOT = "finetune_loss.png"  # under PLOTS
    FINETUNE_SUMMARY = "finetune.json"
    # A cell's files under CELLS: <cell-id> and one of these.
    CELL_RECORD = ".json"
    CELL_SAMPLES = ".jsonl"
    CELL_TRACES = ".traces.parquet"

    def __init__(self, path: str | Path, manifest: dict[str, Any] | None = None,
                 problem: str | None = None) -> None:
        self.path = Path(path)
        self.manifest: dict[str, Any] = manifest if manifest is not None else {}
        #: Why the manifest could not be read (:meth:`read`), else None.
        self.problem = problem

    # -- the names of the files ------------------------------------------------------
    spec_path = RunFile(SPEC)
    manifest_path = RunFile(MANIFEST)
    samples_path = RunFile(SAMPLES)
    cells_dir = RunFile(CELLS)
    metrics_path = RunFile(METRICS)
    metrics_parquet_path = RunFile(METRICS_PARQUET)
    latency_path = RunFile(LATENCY)
    human_record_path = RunFile(HUMAN_RECORD)
    human_samples_path = RunFile(HUMAN_SAMPLES)
    traces_path = RunFile(TRACES)
    ratings_path = RunFile(RATINGS)
    report_path = RunFile(REPORT)
    plots_dir = RunFile(PLOTS)
    trace_plots_dir = RunFile(TRACE_PLOTS, under="plots_dir")
    finetune_loss_path = RunFile(FINETUNE_LOSS)
    finetune_loss_plot_path = RunFile(FINETUNE_LOSS_PLOT, under="plots_dir")
    finetune_summary_path = RunFile(FINETUNE_SUMMARY)

    def cell_record_path(self, cell_id: str) -> Path:
        return self.cells_dir / f"{cell_id}{self.CELL_RECORD}"

    def cell_samples_path(self, cell_id: str) -> Path:
        return self.cells_dir / f"{cell_id}{self.CELL_SAMPLES}"

    def cell_traces_path(self, cell_id: str) -> Path:
        return self.cells_dir / f"{cell_id}{self.CELL_TRACES}"

    def relative(self, path: Path) -> str:
        """``path`` relative to the run directory, with ``/`` (links in ``report.md``)."""
        return path.relative_to(self.path).as_posix()

    # -- creation & opening ------------------------------------------------------
    @classmethod
    def create(cls, path: Path, *, spec_yaml: str, manifest: dict[str, Any]) -> RunDir:
        """A new run directory holding the resolved spec, no samples yet and ``manifest``."""
        if path.exists() and any(path.iterdir()):
            raise UserInputError(f"run directory '{path}' already exists and is not empty "
                                 "(choose another output.run_id or use --resume)")
        run = cls(path, manifest)
        run.cells_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(run.spec_path, spec_yaml)
        atomic_write(run.samples_path, "")
        run.save_manifest()
        return run

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """A run to go on writing (``--resume``): refuses a folder that is not a run."""
        run = cls(path)
        if not run.manifest_path.is_file() or not run.spec_path.is_file():
            raise UserInputError(f"'{run.path}' is not a samplerlab run directory (no "
                                 f"{cls.MANIFEST} and {cls.SPEC}); {RUN_DIR_HINT}")
        try:
            run.manifest = json.loads(run.manifest_path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise UserInputError(f"{run.manifest_path} is not valid JSON ({exc}); the run "
                                 "cannot be resumed, start a new one") from None
        return run

    @classmethod
    def read(cls, path: str | Path) -> RunDir:
        """A run to read: its manifest, or ``{}`` and the :attr:`problem` with it."""
        run = cls(path)
        try:
            manifest = json.loads(run.manifest_path.read_text(encoding="utf-8"))
            if not isinstance(manifest, dict):
                raise ValueError("the top level is not a JSON object")
        except FileNotFoundError:
            run.problem = "missing"
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            run.problem = f"not valid JSON: {exc}"
        else:
            run.manifest = manifest
        return run

    @classmethod
    def is_run(cls, path: Path) -> bool:
        """Whether ``path`` is a run directory (it holds a manifest)."""
        return path.is_dir() and (path / cls.MANIFEST).is_file()

    # -- the manifest's facts ----------------------------------------------------
    @property
    def cells(self) -> list[dict[str, Any]]:
        """The manifest's cells (entries that are not objects left out)."""
        cells = self.manifest.get("cells")
        return [c for c in cells if isinstance(c, dict)] if isinstance(cells, list) else []

    def cell_labels(self) -> dict[str, str]:
        """Cell id -> label, in the run's cell order."""
        return {str(c.get("id")): str(c.get("label") or c.get("id")) for c in self.cells}

    def done_cells(self) -> list[str]:
        """The ids of the cells that generated, in the run's order."""
        return [c["id"] for c in self.cells if c.get("status") == "done"]

    def seed(self) -> int:
        """The run's seed (0 when the manifest has none)."""
        try:
            return int(self.manifest.get("seed") or 0)
        except (TypeError, ValueError):
            return 0

    # -- reading the files -------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        """``spec.yaml`` as a dict (``{}`` when missing or unreadable)."""
        import yaml

        try:
            data = yaml.safe_load(self.spec_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            return {}
        return data if isinstance(data, dict) else {}

    def cell_record(self, cell_id: str) -> dict[str, Any] | None:
        """``cells/<cell-id>.json``, or None when the cell has no record yet."""
        return _read_json(self.cell_record_path(cell_id))

    def cell_records(self) -> list[dict[str, Any]]:
        """Every cell record, by file name (the cells' order)."""
        paths = sorted(p for p in self.cells_dir.glob(f"*{self.CELL_RECORD}")
                       if not p.name.startswith("."))
        return [r for r in (_read_json(p) for p in paths) if r is not None]

    def finished_cells(self) -> set[str]:
        """Cells that have a complete record (done or failed)."""
        return {p.name.removesuffix(self.CELL_RECORD)
                for p in self.cells_dir.glob(f"*{self.CELL_RECORD}")
                if not p.name.startswith(".")}

    def cell_samples(self, cell_id: str) -> list[dict[str, Any]]:
        """``cells/<cell-id>.jsonl``: the samples of one cell (``[]`` without it)."""
        return read_json_lines(self.cell_samples_path(cell_id))

    def samples(self) -> list[dict[str, Any]]:
        """``samples.jsonl``: every sample of the finished cells (``[]`` without it)."""
        return read_json_lines(self.samples_path)

    def human_record(self) -> dict[str, Any] | None:
        """``human.json`` (the human row's metrics), or None."""
        return _read_json(self.human_record_path)

    def human_samples(self) -> list[dict[str, Any]]:
        """``human.jsonl`` (the human row's texts), ``[]`` without one."""
        return read_json_lines(self.human_samples_path)

    def read_metrics(self) -> Any:
        """``metrics.csv`` as a DataFrame with ``params`` parsed into dicts."""
        import pandas as pd

        if not self.metrics_path.is_file():
            raise UserInputError(f"no {self.METRICS} in '{self.path}' (not a finished "
                                 "samplerlab run); finish it with `samplerlab run --resume "
                                 f"{self.path}`")
        frame = pd.read_csv(self.metrics_path)
        if "params" in frame:
            frame["params"] = [json.loads(p) if isinstance(p, str) and p else {}
                               for p in frame["params"]]
        else:
            frame["params"] = [{} for _ in range(len(frame))]
        if "label" not in frame:
            frame["label"] = frame.get("cell_id", frame.index.astype(str))
        return frame

    # -- writing (the runner's) --------------------------------------------------
    def write_cell(self, cell_id: str, samples: list[dict[str, Any]],
                   record: dict[str, Any]) -> None:
        """Persist one cell: samples first, then the record that marks it finished."""
        atomic_write(self.cell_samples_path(cell_id), json_lines(samples))
        self.write_cell_record(cell_id, record)
        self.update_cell_status(cell_id, record)
        self.rebuild_samples()

    def write_cell_record(self, cell_id: str, record: dict[str, Any]) -> None:
        """Write (or rewrite, with later metrics) a cell's record."""
        atomic_write(self.cell_record_path(cell_id), json_line(record))

    def write_human(self, samples: list[dict[str, Any]], record: dict[str, Any]) -> None:
        """The human row: its texts, then its record."""
        atomic_write(self.human_samples_path, json_lines(samples))
        atomic_write(self.human_record_path, json_line(record))

    def write_cell_traces(self, cell_id: str, data: bytes) -> None:
        """``cells/<cell-id>.traces.parquet`` (Parquet bytes), before the cell's record."""
        atomic_write(self.cell_traces_path(cell_id), data)

    def write_traces(self, data: bytes | None) -> None:
        """``traces.parquet`` (Parquet bytes); ``None`` removes it (no cell is traced)."""
        if data is None:
            self.traces_path.unlink(missing_ok=True)
        else:
            atomic_write(self.traces_path, data)

    def write_tables(self, metrics: Any, latency: Any) -> None:
        """``metrics.csv`` (and ``metrics.parquet`` where pyarrow is installed) and
        ``latency.csv`` from two DataFrames."""
        atomic_write(self.metrics_path, metrics.to_csv(index=False))
        atomic_write(self.latency_path, latency.to_csv(index=False))
        try:
            atomic_write(self.metrics_parquet_path, metrics.to_parquet(index=False))
        except (ImportError, ValueError):
            pass

    def write_report(self, text: str) -> Path:
        atomic_write(self.report_path, text)
        return self.report_path

    def update_cell_status(self, cell_id: str, record: dict[str, Any]) -> None:
        for cell in self.manifest.get("cells", []):
            if cell["id"] == cell_id:
                cell.update({k: record.get(k) for k in ("status", "error", "timing",
                                                         "num_samples")})
        self.save_manifest()

    def sync_from_records(self) -> None:
        """Trust the cell records over the manifest (a kill can land between the two writes)."""
        for cell_id in self.finished_cells():
            record = self.cell_record(cell_id)
            if record is not None:
                self.update_cell_status(cell_id, record)

    def mark_interrupted(self) -> None:
        """Record an interruption; a Ctrl-C may land inside :meth:`write_cell`, so the
        derived files are first brought in line with the cell records, which are the truth."""
        self.sync_from_records()
        self.rebuild_samples()
        self.set_status("interrupted", finished=now())

    def rebuild_samples(self) -> None:
        """``samples.jsonl`` from the samples of the done cells, in the run's order."""
        parts = []
        for cell_id in self.done_cells():
            path = self.cell_samples_path(cell_id)
            if path.is_file():
                parts.append(path.read_text(encoding="utf-8"))
        atomic_write(self.samples_path, "".join(parts))

    def save_manifest(self) -> None:
        atomic_write(self.manifest_path, json.dumps(self.manifest, indent=2,
                                                    ensure_ascii=False, default=str))

    def set_status(self, status: str, **extra: Any) -> None:
        self.manifest["status"] = status
        self.manifest.update(extra)
        self.save_manifest()

    def add_notes(self, notes: list[str]) -> list[str]:
        """Add the notes the manifest does not hold yet; returns those added."""
        held = self.manifest.setdefault("notes", [])
        added = [n for n in dict.fromkeys(notes) if n not in held]
        held.extend(added)
        self.save_manifest()
        return added


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def safe_run_dir(root: Path, name: str, run_id: str) -> Path:
    """``root/name/run_id``, refusing anything that would land outside ``root``."""
    root = root.resolve()
    target = (root / name / run_id).resolve()
    if not target.is_relative_to(root) or target == root:
        raise UserInputError(f"run directory '{name}/{run_id}' would escape the results root "
                             f"'{root}'; use a name and run id without '..' or path "
                             "separators", field="output")
    return target


def default_run_id() -> str:
    """A run id from the local time: ``YYYYmmdd-HHMMSS``."""
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def require_run_dir(path: str | Path, *, finished: bool = False) -> Path:
    """``path`` as a run directory, or one :class:`UserInputError` line saying what is wrong
    (missing, not a run, or, with ``finished``, without its tables yet)."""
    run = RunDir(path)
    if not run.path.is_dir():
        raise UserInputError(f"run directory '{run.path}' does not exist; {RUN_DIR_HINT}")
    if not run.manifest_path.is_file():
        raise UserInputError(f"'{run.path}' is not a samplerlab run directory (no "
                             f"{RunDir.MANIFEST}); {RUN_DIR_HINT}")
    if finished and not run.metrics_path.is_file():
        raise UserInputError(f"'{run.path}' has no {RunDir.METRICS} yet (an unfinished run): "
                             f"finish it with samplerlab run --resume {run.path}")
    return run.path


def load_samples(run_dir: str | Path) -> Any:
    """``samples.jsonl`` of a run as a pandas DataFrame (one row per generation)."""
    import pandas as pd

    run = RunDir(run_dir)
    if not run.samples_path.is_file():
        raise UserInputError(f"no {RunDir.SAMPLES} in '{run_dir}'; {RUN_DIR_HINT}")
    return pd.DataFrame(run.samples())
