"""The results directory: ``results/<name>/<run-id>/``, written so finished work is never lost.

Each finished cell is written atomically (write to a temporary file, fsync, rename) as
``cells/<cell-id>.jsonl`` (its samples) and ``cells/<cell-id>.json`` (status, timing,
metrics); ``samples.jsonl`` and ``manifest.json`` are then rebuilt from those, again
atomically. A run killed at any moment therefore loses at most the cell in flight, and
``samplerlab run --resume RUN_DIR`` runs only the cells without a record.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from samplerlab.errors import UserInputError

MANIFEST = "manifest.json"
SPEC = "spec.yaml"
SAMPLES = "samples.jsonl"
CELLS = "cells"
RUN_DIR_HINT = "give a results/<name>/<run-id> directory written by samplerlab run"


def now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    The file gets the permissions any new file gets (``0o666`` less the umask), not the
    ``0o600`` of a temporary file, so a shared results folder stays readable.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), 0o666 & ~current_umask())
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def current_umask() -> int:
    """The process umask. Linux reports it in /proc; elsewhere it is read by setting it
    and putting it back (under a lock, so two writers never see the temporary value)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


_UMASK_LOCK = threading.Lock()

# Characters str.splitlines() breaks JSON Lines at, which json.dumps leaves unescaped
# with ensure_ascii=False (generated text holds them: byte-level BPE decodes U+0085).
_LINE_BREAKS = {"\u0085": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _json(obj: Any) -> str:
    text = json.dumps(obj, ensure_ascii=False, default=str)
    for raw, escaped in _LINE_BREAKS.items():
        text = text.replace(raw, escaped)  # only ever inside a JSON string: escape it
    return text


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
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for dist in ("samplerlab", "keras", "keras-hub", "jax", "jaxlib", "tensorflow",
                 "tensorflow-text"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


def git_revision() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                           capture_output=True, text=True, timeout=5, check=False).stdout
    return out.stdout.strip() + ("+dirty" if dirty.strip() else "")


class RunDir:
    """One run's directory and its manifest."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.manifest: dict[str, Any] = {}

    # -- creation & opening ------------------------------------------------------
    @classmethod
    def create(cls, path: Path, *, spec_yaml: str, manifest: dict[str, Any]) -> RunDir:
        if path.exists() and any(path.iterdir()):
            raise UserInputError(f"run directory '{path}' already exists and is not empty "
                                 "(choose another output.run_id or use --resume)")
        run = cls(path)
        (path / CELLS).mkdir(parents=True, exist_ok=True)
        atomic_write(path / SPEC, spec_yaml)
        atomic_write(path / SAMPLES, "")
        run.manifest = manifest
        run.save_manifest()
        return run

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        path = Path(path)
        if not (path / MANIFEST).is_file() or not (path / SPEC).is_file():
            raise UserInputError(f"'{path}' is not a samplerlab run directory (no {MANIFEST} "
                                 f"and {SPEC}); {RUN_DIR_HINT}")
        run = cls(path)
        try:
            run.manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        except ValueError as exc:
            raise UserInputError(f"{path / MANIFEST} is not valid JSON ({exc}); the run "
                                 "cannot be resumed, start a new one") from None
        return run

    # -- cells -------------------------------------------------------------------
    def cell_record(self, cell_id: str) -> dict[str, Any] | None:
        p = self.path / CELLS / f"{cell_id}.json"
        if not p.is_file():
            return None
        return json.loads(p.read_text(encoding="utf-8"))

    def finished_cells(self) -> set[str]:
        """Cells that have a complete record (done or failed)."""
        return {p.stem for p in (self.path / CELLS).glob("*.json")
                if not p.name.startswith(".")}

    def write_cell(self, cell_id: str, samples: list[dict[str, Any]],
                   record: dict[str, Any]) -> None:
        """Persist one cell: samples first, then the record that marks it finished."""
        atomic_write(self.path / CELLS / f"{cell_id}.jsonl",
                     "".join(_json(s) + "\n" for s in samples))
        atomic_write(self.path / CELLS / f"{cell_id}.json", _json(record))
        self.update_cell_status(cell_id, record)
        self.rebuild_samples()

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

    def cell_samples(self, cell_id: str) -> list[dict[str, Any]]:
        p = self.path / CELLS / f"{cell_id}.jsonl"
        if not p.is_file():
            return []
        return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line]

    def rebuild_samples(self) -> None:
        parts = []
        for cell in self.manifest.get("cells", []):
            p = self.path / CELLS / f"{cell['id']}.jsonl"
            if p.is_file() and cell.get("status") == "done":
                parts.append(p.read_text(encoding="utf-8"))
        atomic_write(self.path / SAMPLES, "".join(parts))

    # -- manifest ----------------------------------------------------------------
    def save_manifest(self) -> None:
        atomic_write(self.path / MANIFEST, json.dumps(self.manifest, indent=2,
                                                      ensure_ascii=False, default=str))

    def set_status(self, status: str, **extra: Any) -> None:
        self.manifest["status"] = status
        self.manifest.update(extra)
        self.save_manifest()


def require_run_dir(path: str | Path, *, finished: bool = False) -> Path:
    """``path`` as a run directory, or one :class:`UserInputError` line saying what is wrong
    (missing, not a run, or, with ``finished``, without its tables yet)."""
    path = Path(path)
    if not path.is_dir():
        raise UserInputError(f"run directory '{path}' does not exist; {RUN_DIR_HINT}")
    if not (path / MANIFEST).is_file():
        raise UserInputError(f"'{path}' is not a samplerlab run directory (no {MANIFEST}); "
                             f"{RUN_DIR_HINT}")
    if finished and not (path / "metrics.csv").is_file():
        raise UserInputError(f"'{path}' has no metrics.csv yet (an unfinished run): finish "
                             f"it with samplerlab run --resume {path}")
    return path


def load_samples(run_dir: str | Path):
    """``samples.jsonl`` of a run as a pandas DataFrame (one row per generation)."""
    import pandas as pd

    path = Path(run_dir) / SAMPLES
    if not path.is_file():
        raise UserInputError(f"no {SAMPLES} in '{run_dir}'; {RUN_DIR_HINT}")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return pd.DataFrame(rows)
