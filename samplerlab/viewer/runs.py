"""Finding run directories and reading them for the viewer, without ever writing to them.

A run directory is recognised by its manifest (``results/<name>/<run-id>/``). The
viewer reads only files :class:`~samplerlab.results.RunDir` names inside the run
directories it serves; every
damaged or missing file becomes a :class:`Problem` that the pages show, while the rest of
the run is still served.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from samplerlab.errors import UserInputError
from samplerlab.results import RunDir
from samplerlab.viewer.problems import Problem

# Files of a run that the viewer serves as they are (and nothing else but plots/*.png).
RAW_FILES = {
    RunDir.SPEC: "text/plain; charset=utf-8",
    RunDir.MANIFEST: "application/json",
    RunDir.METRICS: "text/csv; charset=utf-8",
    RunDir.LATENCY: "text/csv; charset=utf-8",
    RunDir.REPORT: "text/markdown; charset=utf-8",
    RunDir.SAMPLES: "application/x-ndjson",
}
# How deep under a folder given to ``samplerlab view`` runs are looked for
# (``results/<name>/<run-id>`` is two levels below the results root).
SEARCH_DEPTH = 2


def _file_signature(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


@dataclass
class Run:
    """One served run directory: its manifest, read lazily cached files, and its problems."""

    key: tuple[str, str]
    path: Path
    manifest: dict[str, Any] = field(default_factory=dict)
    manifest_problem: Problem | None = None
    _cache: dict[str, tuple[Any, Any]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # -- identity ------------------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self.manifest.get("name") or self.path.parent.name)

    @property
    def run_id(self) -> str:
        return str(self.manifest.get("run_id") or self.path.name)

    @property
    def url(self) -> str:
        """``/runs/<experiment>/<run-id>/``, each segment percent-encoded."""
        return "/runs/" + "/".join(quote(part, safe="") for part in self.key) + "/"

    # -- manifest facts ------------------------------------------------------------
    @property
    def status(self) -> str:
        if self.manifest_problem is not None:
            return "unreadable"
        return str(self.manifest.get("status") or "unknown")

    @property
    def files(self) -> RunDir:
        """The run directory (file names, the manifest's facts), read-only here."""
        return RunDir(self.path, self.manifest)

    @property
    def cells(self) -> list[dict[str, Any]]:
        return self.files.cells

    @property
    def model(self) -> str:
        model = self.manifest.get("model")
        if isinstance(model, dict):
            return str(model.get("preset") or model.get("path") or "?")
        return "?"

    @property
    def started(self) -> str:
        return str(self.manifest.get("started") or "")

    def cell_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for cell in self.cells:
            status = str(cell.get("status") or "pending")
            counts[status] = counts.get(status, 0) + 1
        return counts

    def why(self) -> list[str]:
        """Why the run is not complete (empty for a complete run): one line per reason."""
        if self.manifest_problem is not None:
            return [str(self.manifest_problem)]
        status = self.status
        counts = self.cell_counts()
        done, total = counts.get("done", 0) + counts.get("failed", 0), len(self.cells)
        reasons = []
        for cell in self.cells:
            if cell.get("status") == "failed":
                error = str(cell.get("error") or "unknown error").strip().splitlines()
                reasons.append(f"cell {cell.get('label') or cell.get('id')} failed: "
                               f"{error[0] if error else 'unknown error'}")
        if status == "interrupted":
            reasons.insert(0, f"interrupted after {done} of {total} cells (finish it with "
                              f"samplerlab run --resume {self.path})")
        elif status == "running":
            reasons.insert(0, f"running, or killed before it could record an interruption: "
                              f"{done} of {total} cells finished")
        elif status not in ("complete", "failed") and status != "unknown":
            reasons.insert(0, f"status {status}: {done} of {total} cells finished")
        return reasons

    # -- files ---------------------------------------------------------------------
    def file(self, name: str) -> Path | None:
        """A file of the run by its plain name, or None (no traversal, no symlinks).

        Only names in :data:`RAW_FILES`, the traces and the ratings and plot files under
        ``plots/`` are ever opened.
        """
        return safe_child(self.path, name)

    def plots(self) -> list[Path]:
        """The PNG files directly under ``plots/`` (symlinks left out), in report order."""
        from samplerlab.plots import ordered_plots

        if safe_child(self.path, RunDir.PLOTS, directory=True) is None:
            return []
        return ordered_plots(self.path)

    def plot(self, name: str) -> Path | None:
        plots_dir = safe_child(self.path, RunDir.PLOTS, directory=True)
        if plots_dir is None or not name.lower().endswith(".png"):
            return None
        return safe_child(plots_dir, name)

    def memo(self, name: str, key: Any, compute: Any) -> Any:
        """``compute()``, kept under ``name`` until ``key`` changes."""
        with self._lock:
            hit = self._cache.get(name)
            if hit is not None and hit[0] == key:
                return hit[1]
        value = compute()
        with self._lock:
            self._cache[name] = (key, value)
        return value

    def cached(self, name: str, path: Path, load: Any) -> Any:
        """``load(path)``, kept until the file changes (mtime and size)."""
        return self.memo(name, _file_signature(path), lambda: load(path))

    def spec_text(self) -> tuple[str | None, Problem | None]:
        path = self.file(RunDir.SPEC)
        if path is None:
            return None, Problem(RunDir.SPEC, "missing")
        try:
            return path.read_text(encoding="utf-8"), None
        except (OSError, UnicodeDecodeError) as exc:
            return None, Problem(RunDir.SPEC, f"cannot be read: {exc}")

    def metrics(self) -> tuple[Any, Problem | None]:
        """``metrics.csv`` as a DataFrame (params parsed), or the problem with it."""
        path = self.file(RunDir.METRICS)
        if path is None:
            why = f" (the run is {self.status})" if self.status != "complete" else ""
            return None, Problem(RunDir.METRICS, f"missing{why}")
        try:
            return self.cached("metrics", path, lambda _: self.files.read_metrics()), None
        except Exception as exc:  # noqa: BLE001 - pandas raises many kinds; shown, not fatal
            return None, Problem(RunDir.METRICS, f"cannot be read: {type(exc).__name__}: {exc}")

    def samples(self):
        """The :class:`~samplerlab.viewer.samples.SampleIndex` of ``samples.jsonl``."""
        from samplerlab.viewer.samples import SampleIndex

        path = self.file(RunDir.SAMPLES)
        if path is None:
            return SampleIndex.empty(Problem(RunDir.SAMPLES, "missing"))
        return self.cached("samples", path, SampleIndex.load)

    def traces(self):
        """The run's :class:`~samplerlab.viewer.traces.Traces`, or None without traces.parquet."""
        from samplerlab.viewer.traces import Traces

        path = self.file(RunDir.TRACES)
        if path is None:
            return None
        return self.cached("traces", path, Traces.open)

    @property
    def ratings_path(self) -> Path:
        return self.files.ratings_path


def safe_child(parent: Path, name: str, directory: bool = False) -> Path | None:
    """``parent/name`` when ``name`` is one plain path segment naming an existing regular
    file (or directory) that is not a symlink; None otherwise.

    Refuses ``..``, ``.``, absolute names, separators, NUL and symlinks, so a URL can never
    reach a file outside the run directory.
    """
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        return None
    candidate = parent / name
    try:
        if candidate.is_symlink():
            return None
        if directory and not candidate.is_dir():
            return None
        if not directory and not candidate.is_file():
            return None
        if not candidate.resolve().is_relative_to(parent.resolve()):
            return None
    except OSError:
        return None
    return candidate


def _load_run(path: Path, key: tuple[str, str]) -> Run:
    files = RunDir.read(path)
    problem = Problem(RunDir.MANIFEST, files.problem) if files.problem else None
    return Run(key=key, path=path, manifest=files.manifest, manifest_problem=problem)


class Catalog:
    """The runs a viewer serves: given run directories, or every run under a root.

    Keys are ``(experiment folder, run folder)``, made unique with a ``~2``, ``~3``
    suffix when two served runs share both names. ``refresh()`` picks up new runs under
    the searched folders and re-reads changed manifests.
    """

    def __init__(self, paths: list[Path]) -> None:
        self.paths = [Path(p) for p in paths]
        self.runs: dict[tuple[str, str], Run] = {}
        self.problems: list[Problem] = []
        self._signatures: dict[Path, tuple[int, int] | None] = {}
        self._lock = threading.Lock()
        self.refresh()

    @classmethod
    def from_arguments(cls, run_dirs: list[Path], results_root: Path) -> Catalog:
        """The catalog of ``samplerlab view [RUN_DIR ...]``; raises when nothing can be served."""
        if not run_dirs:
            if not results_root.is_dir():
                raise UserInputError(f"results root '{results_root}' does not exist (run an "
                                     "experiment first, or pass RUN_DIR / --results-root)")
            return cls([results_root])
        catalog = cls(list(run_dirs))
        if not catalog.runs:
            raise UserInputError("; ".join(str(p) for p in catalog.problems)
                                 or "no run directories to serve")
        return catalog

    def refresh(self) -> None:
        found: list[Path] = []
        problems: list[Problem] = []
        for path in self.paths:
            runs = find_runs(path)
            if not runs:
                problems.append(Problem(str(path), _not_a_run(path)))
            found += runs
        with self._lock:
            old = {run.path: run for run in self.runs.values()}
            runs: dict[tuple[str, str], Run] = {}
            for path in dict.fromkeys(p.resolve() for p in found):
                key = _unique_key((path.parent.name, path.name), runs)
                signature = _file_signature(RunDir(path).manifest_path)
                run = old.get(path)
                if run is None or run.key != key or self._signatures.get(path) != signature:
                    previous = run
                    run = _load_run(path, key)
                    if previous is not None:
                        run._cache = previous._cache  # file caches check their own files
                self._signatures[path] = signature
                runs[key] = run
            self.runs = runs
            self.problems = problems

    def get(self, experiment: str, run_id: str) -> Run | None:
        run = self.runs.get((experiment, run_id))
        if run is None:
            self.refresh()
            run = self.runs.get((experiment, run_id))
        return run

    def sorted_runs(self) -> list[Run]:
        """Newest first (by start time, then name)."""
        return sorted(self.runs.values(), key=lambda r: (r.started, r.key), reverse=True)


def _unique_key(key: tuple[str, str], taken: dict) -> tuple[str, str]:
    if key not in taken:
        return key
    n = 2
    while (key[0], f"{key[1]}~{n}") in taken:
        n += 1
    return (key[0], f"{key[1]}~{n}")


def find_runs(path: Path, depth: int = SEARCH_DEPTH) -> list[Path]:
    """``path`` itself when it is a run directory, else the run directories below it
    (``depth`` levels at most; symlinked folders are not followed)."""
    if RunDir.is_run(path):
        return [path]
    if depth == 0 or not path.is_dir():
        return []
    found = []
    try:
        children = sorted(path.iterdir())
    except OSError:
        return []
    for child in children:
        if child.is_dir() and not child.is_symlink() and not child.name.startswith("."):
            found += find_runs(child, depth - 1)
    return found


def _not_a_run(path: Path) -> str:
    if not path.exists():
        return "does not exist"
    if not path.is_dir():
        return f"is not a directory (expected a run directory holding {RunDir.MANIFEST})"
    return f"not a samplerlab run directory (no {RunDir.MANIFEST}) and no run directories under it"


def number(value: Any) -> float:
    """A float from a table cell; NaN for anything that is not a number."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out
