"""Run a spec's cells as Ray tasks, one cell per task, into the usual results directory.

The driver (the process that ran ``samplerlab run``) does everything that must happen once:
it validates the spec, loads the model to check the prompts, creates the run directory and
fine-tunes when the spec asks for it. It then submits one Ray task per cell without a
record (so ``--resume`` works as it does locally). Each task loads the model from the
preset (cached per worker process, so a worker that runs several cells loads it once and
keeps its compiled generate function), builds the cell's sampler through the plugin
registry, runs and scores it with the same :func:`samplerlab.runner.run_cell` the local
loop uses, and returns samples and record. Only the driver writes: each cell is written
with :meth:`RunDir.write_cell` as its task finishes, so writes stay atomic and in one
process. A task that fails fails its own cell; the others go on.

Example:

```python
import samplerlab
from samplerlab.distributed import RayExecutor

loaded = samplerlab.load_spec("experiments/quickstart.yaml")
result = samplerlab.run(loaded, executor=RayExecutor(address="local"))
print(result.run_dir, result.status)
```

Ray is an optional dependency: ``pip install 'samplerlab[ray]'``.
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from samplerlab.data import Prompt
from samplerlab.errors import UserInputError
from samplerlab.results import RunDir, now
from samplerlab.spec import Cell

RAY_MISSING = ("the ray executor needs Ray, which is not installed: "
               "pip install 'samplerlab[ray]' (or pip install 'ray>=2.40')")
LOCAL = "local"


def require_ray() -> Any:
    """Import Ray, or say in one line how to install it."""
    try:
        import ray
    except ImportError:
        raise UserInputError(RAY_MISSING, field="--executor") from None
    return ray


def resolve_gpus_per_cell(requested: float | None, cluster: dict[str, float]) -> float:
    """GPUs each cell's task asks Ray for: ``requested``, or 1 when the cluster has GPUs, else 0.

    Example:

    ```python
    resolve_gpus_per_cell(None, {"CPU": 8, "GPU": 4})  # 1.0
    resolve_gpus_per_cell(None, {"CPU": 2})            # 0.0
    resolve_gpus_per_cell(0.5, {"GPU": 1})             # 0.5: two cells share a GPU
    ```
    """
    if requested is None:
        return 1.0 if cluster.get("GPU", 0) > 0 else 0.0
    if requested < 0:
        raise UserInputError(f"must be 0 or more, got {requested}", field="--ray-gpus-per-cell")
    available = cluster.get("GPU", 0)
    if requested > 0 and requested > available:
        raise UserInputError(f"{requested} GPU(s) per cell asked, but the Ray cluster has "
                             f"{available:g}; no cell could ever be scheduled",
                             field="--ray-gpus-per-cell")
    return float(requested)


# ----------------------------------------------------------------------------- tasks
@dataclass(frozen=True)
class CellJob:
    """Everything one task needs, as plain picklable values (no Keras objects).

    Attributes:
        model: preset reference the worker loads: an absolute directory, an embedded
            ``samplerlab:NAME`` or a KerasHub preset name.
        sequence_length: the preprocessor's sequence length.
        dtype_policy: the spec's ``model.dtype_policy``.
        fast_decoding: the spec's ``model.fast_decoding``.
        generation: the spec's ``generation`` section.
        metrics: the spec's ``metrics`` list.
        prompts: the prompts, already resolved by the driver.
        spec_seed: the spec's seed (each cell's seed derives from it).
        plugins: plugin files (absolute) and modules the driver loaded beyond the built-ins
            and installed entry points.
        cell: the cell to run.
    """

    model: str
    sequence_length: int
    dtype_policy: str | None
    fast_decoding: bool
    generation: Any
    metrics: list[Any]
    prompts: list[Prompt]
    spec_seed: int
    plugins: tuple[str, ...]
    cell: Cell


# Per worker process: the model last loaded and the CellRunner for each generation setting.
# One model at a time, since a worker rarely serves two specs and models are large.
_WORKER_MODEL: dict[tuple, Any] = {}
_WORKER_RUNNERS: dict[tuple, Any] = {}
_WORKER_PLUGINS: set[str] = set()


def _load_plugins(targets: tuple[str, ...]) -> None:
    from samplerlab.plugins import get_plugin_manager

    manager = get_plugin_manager()
    for target in targets:
        if target not in _WORKER_PLUGINS:
            manager.load(target)
            _WORKER_PLUGINS.add(target)


def _worker_cell_runner(job: CellJob, shipped: list | None) -> Any:
    """The worker's CellRunner for ``job``'s model and generation settings, loading once."""
    from samplerlab.models import load_model
    from samplerlab.runner import CellRunner

    model_key = (job.model, job.sequence_length, job.dtype_policy, job.fast_decoding)
    if model_key not in _WORKER_MODEL:
        _WORKER_MODEL.clear()
        _WORKER_RUNNERS.clear()
        reference = _local_preset(job.model, shipped)
        _WORKER_MODEL[model_key] = load_model(reference, job.sequence_length, job.dtype_policy,
                                              job.fast_decoding)
    runner_key = (model_key, job.generation.model_dump_json())
    if runner_key not in _WORKER_RUNNERS:
        _WORKER_RUNNERS[runner_key] = CellRunner(_WORKER_MODEL[model_key], job.generation)
    return _WORKER_RUNNERS[runner_key]


def run_cell_job(job: CellJob, shipped: list | None = None) -> tuple[list[dict], dict]:
    """Run one cell where this function is called (a Ray worker); return samples and record.

    ``shipped`` is ``[ObjectRef]`` of the packed preset directory when the driver shipped
    it (multi-node clusters without shared storage), else ``None``.
    """
    from samplerlab.metrics.scoring import build_metrics
    from samplerlab.runner import run_cell

    _load_plugins(job.plugins)
    cell_runner = _worker_cell_runner(job, shipped)
    samples, record = run_cell(cell_runner, job.cell, job.prompts, build_metrics(job.metrics),
                               job.spec_seed)
    record["worker"] = _worker_identity()
    return samples, record


def _worker_identity() -> dict[str, Any]:
    identity: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid()}
    try:
        import ray

        context = ray.get_runtime_context()
        identity["node_id"] = context.get_node_id()
        identity["gpu_ids"] = [str(g) for g in ray.get_gpu_ids()]
    except Exception:  # noqa: BLE001, S110 - identity is informative only; never fail a cell
        pass
    return identity


# ---------------------------------------------------------------- shipping presets
def pack_preset(directory: str | Path) -> bytes:
    """A preset directory as an uncompressed tar (weights do not compress)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(str(directory), arcname="preset")
    return buffer.getvalue()


def unpack_preset(blob: bytes, root: str | Path | None = None) -> Path:
    """Unpack :func:`pack_preset` output once per content into ``root``; return the preset dir."""
    digest = hashlib.sha256(blob).hexdigest()[:16]
    base = Path(root or Path(tempfile.gettempdir()) / "samplerlab-presets") / digest
    target = base / "preset"
    if (target / "config.json").is_file():
        return target
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=base, prefix=".unpack-"))
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r") as tar:
        tar.extractall(staging, filter="data")
    try:
        os.replace(staging / "preset", target)  # atomic: two workers may race here
    except OSError:
        if not (target / "config.json").is_file():
            raise
    return target


def _local_preset(reference: str, shipped: list | None) -> str:
    """``reference`` itself, or where the shipped copy was unpacked when it is not here."""
    if shipped is None or not reference.startswith("/") or Path(reference).is_dir():
        return reference
    import ray

    return str(unpack_preset(ray.get(shipped[0])))


def model_reference(runner: Any, run: RunDir) -> str:
    """What workers load: the fine-tuned preset if any, else the spec's preset, made absolute."""
    from samplerlab.models import EMBEDDED_PREFIX, is_local_reference

    finetuned = (run.manifest.get("model") or {}).get("finetuned")
    if finetuned:
        return str(Path(finetuned["path"]).resolve())
    preset = runner.spec.model.preset
    if preset.startswith(EMBEDDED_PREFIX) or not is_local_reference(preset):
        return preset  # each worker resolves it in its own installation / download cache
    return str(Path(preset).expanduser().resolve())


def extra_plugin_targets() -> tuple[str, ...]:
    """Plugins the driver loaded from files or modules (``--plugin``, spec ``plugins:``)."""
    from samplerlab.plugins import get_plugin_manager

    targets = []
    for source in get_plugin_manager().sources.values():
        kind, _, where = source.partition(" ")
        if kind == "file":
            targets.append(str(Path(where).resolve()))
        elif kind == "module":
            targets.append(where)
    return tuple(targets)


# ----------------------------------------------------------------------------- driver
class RayExecutor:
    """Runs the cells of a started run as Ray tasks; the driver writes the results.

    Args:
        address: ``"local"`` starts a local Ray cluster (``ray.init()``), ``"auto"`` joins
            the cluster this machine belongs to, anything else is passed to
            ``ray.init(address=...)`` (``ray://head:10001``, ``head:6379``). When Ray is
            already initialised in this process, that connection is used as it is.
        gpus_per_cell: GPUs each task asks for; ``None``: 1 when the cluster has GPUs,
            else 0. A fraction (0.5) packs several cells on one GPU; JAX's preallocation
            is then turned off in those workers so they can share its memory.
        cpus_per_cell: CPUs each task asks for.
        max_retries: times Ray re-runs a task whose worker process died (not a task that
            raised: that cell is recorded as failed).
        ship_preset: send a local preset directory to the workers through Ray's object
            store; ``None``: only when the cluster has more than one node (a single machine
            reads the directory directly).
    """

    name = "ray"

    def __init__(self, address: str = LOCAL, *, gpus_per_cell: float | None = None,
                 cpus_per_cell: float = 1, max_retries: int = 1,
                 ship_preset: bool | None = None) -> None:
        self.address = address or LOCAL
        self.gpus_per_cell = gpus_per_cell
        self.cpus_per_cell = cpus_per_cell
        self.max_retries = max_retries
        self.ship_preset = ship_preset
        self._owns_connection = False
        # The driver loads the model too (prompt checks, fine-tuning): on a GPU it must not
        # grab most of the memory that the tasks on the same GPU will need.
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

    def connect(self) -> None:
        """Connect to Ray now (the CLI does this before loading the model, so a wrong
        address fails fast); an existing connection in this process is used as it is."""
        ray = require_ray()
        if ray.is_initialized():
            return
        import logging

        kwargs: dict[str, Any] = {"logging_level": logging.WARNING}
        if self.address == LOCAL:
            kwargs["include_dashboard"] = False
        else:
            kwargs["address"] = self.address
        try:
            ray.init(**kwargs)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise UserInputError(f"could not connect to Ray at '{self.address}': "
                                 f"{type(exc).__name__}: {str(exc).splitlines()[0]}; start one "
                                 "with `ray start --head`, or use --ray-address local",
                                 field="--ray-address") from None
        self._owns_connection = True

    def run_cells(self, runner: Any, run: RunDir, model: Any, prompts: list[Prompt],
                  metrics: list) -> Any:
        """Submit one task per cell without a record, write each as it returns, finish."""
        ray = require_ray()
        self.connect()
        try:
            return self._run(ray, runner, run, prompts)
        finally:
            if self._owns_connection:  # a cluster we started goes away with the run
                ray.shutdown()
                self._owns_connection = False

    def _run(self, ray: Any, runner: Any, run: RunDir, prompts: list[Prompt]) -> Any:
        cluster = ray.cluster_resources()
        gpus = resolve_gpus_per_cell(self.gpus_per_cell, cluster)
        reference = model_reference(runner, run)
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        shipped = self._shipped(ray, reference, nodes)
        run.manifest["executor"] = {"name": self.name, "address": self.address, "nodes": nodes,
                                    "gpus_per_cell": gpus, "cpus_per_cell": self.cpus_per_cell,
                                    "cluster": {k: v for k, v in cluster.items()
                                                if k in ("CPU", "GPU", "memory")},
                                    "model": reference, "preset_shipped": shipped is not None}
        run.save_manifest()
        done = run.finished_cells()
        todo = [c for c in runner.loaded.cells if c.id not in done]
        task = self._remote(ray, gpus)
        base = self._job_fields(runner, reference, prompts)
        pending = {task.remote(CellJob(cell=cell, **base), shipped): cell for cell in todo}
        try:
            self._collect(ray, runner, run, pending, len(runner.loaded.cells) - len(todo))
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref, force=True)
            run.mark_interrupted()
            raise
        compiled = sum(bool((r.get("timing") or {}).get("compiled")) for r in
                       (run.cell_record(c.id) for c in todo) if r is not None)
        run.manifest["compile_count"] = (run.manifest.get("compile_count") or 0) + compiled
        return runner.finish(run)

    def _remote(self, ray: Any, gpus: float) -> Any:
        options: dict[str, Any] = {"num_cpus": self.cpus_per_cell, "num_gpus": gpus,
                                   "max_retries": self.max_retries}
        if 0 < gpus < 1:
            options["runtime_env"] = {"env_vars": {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}}
        return ray.remote(run_cell_job).options(**options)

    def _shipped(self, ray: Any, reference: str, nodes: int) -> list | None:
        ship = self.ship_preset if self.ship_preset is not None else nodes > 1
        if not ship or not Path(reference).is_dir():
            return None
        # Wrapped in a list so Ray does not fetch it for every task; a worker gets it only
        # when the directory is missing on its node.
        return [ray.put(pack_preset(reference))]

    @staticmethod
    def _job_fields(runner: Any, reference: str, prompts: list[Prompt]) -> dict[str, Any]:
        spec = runner.spec
        return {"model": reference, "sequence_length": spec.model.sequence_length,
                "dtype_policy": spec.model.dtype_policy,
                "fast_decoding": spec.model.fast_decoding, "generation": spec.generation,
                "metrics": list(spec.metrics), "prompts": list(prompts),
                "spec_seed": spec.seed, "plugins": extra_plugin_targets()}

    def _collect(self, ray: Any, runner: Any, run: RunDir, pending: dict,
                 already: int) -> None:
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn()]
        progress = Progress(*columns, console=runner.console, disable=not runner.progress)
        with progress:
            bar = progress.add_task("cells (ray)", total=len(runner.loaded.cells),
                                    completed=already)
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    cell = pending.pop(ref)
                    samples, record = self._outcome(ray, ref, cell, runner.spec.seed)
                    run.write_cell(cell.id, samples, record)
                    if record["status"] == "failed":
                        runner.console.print(f"[red]cell {cell.id} failed:[/] "
                                             f"{escape(record['error'])}", soft_wrap=True,
                                             highlight=False)
                    progress.advance(bar)

    @staticmethod
    def _outcome(ray: Any, ref: Any, cell: Cell, spec_seed: int) -> tuple[list, dict]:
        """The task's samples and record; a task that raised or died becomes a failed cell."""
        from samplerlab.runner import cell_seed

        try:
            return ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - any task failure fails its cell only
            cause = getattr(exc, "cause", None) or exc
            message = str(cause).strip().splitlines()
            error = f"ray task failed: {type(cause).__name__}: {message[0] if message else ''}"
            return [], {"id": cell.id, "label": cell.label, "sampler": cell.sampler,
                        "params": cell.params, "seed": cell_seed(spec_seed, cell),
                        "status": "failed", "error": error, "timing": None, "num_samples": 0,
                        "metrics": {}, "started": None, "finished": now()}
