"""The Ray executor: one Ray task per cell, on a local or remote cluster.

The driver (the process that ran ``samplerlab run``) does everything that must happen
once: validate the spec, load the model to check the prompts, create the run directory,
fine-tune. Each task loads :attr:`RunJob.preset` with every setting of the spec's model
section, :attr:`RunJob.model` (once per worker process: a worker that runs several cells
keeps its model and compiled programs), runs the cell
with the same :func:`~samplerlab.executors.base.run_cell` the local executor uses, and
returns its :class:`~samplerlab.executors.base.CellOutcome`; the runner writes it. A task
that fails fails its own cell.

A local preset directory (the fine-tuned one, typically) reaches workers on other
machines through Ray's object store: the driver packs it once, and a worker unpacks it
into its node's temporary directory and loads that copy.

Example:

```python
import samplerlab
from samplerlab.executors import RayExecutor

loaded = samplerlab.load_spec({"name": "doc", "model": {"preset": "samplerlab:tiny-en"},
                               "prompts": ["Keras is"], "samplers": ["greedy"],
                               "generation": {"max_length": 8}, "metrics": ["length"]})
result = samplerlab.run(loaded, executor=RayExecutor(address="local"), progress=False)
assert result.status == "complete"
```

Ray is an optional dependency: ``pip install 'samplerlab[ray]'``.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import socket
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from samplerlab.errors import UserInputError
from samplerlab.executors.base import CellOutcome, OnBatch, RunJob, failed_outcome

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
    from samplerlab.executors.ray import resolve_gpus_per_cell
    assert resolve_gpus_per_cell(None, {"CPU": 8, "GPU": 4}) == 1.0
    assert resolve_gpus_per_cell(None, {"CPU": 2}) == 0.0
    assert resolve_gpus_per_cell(0.5, {"GPU": 1}) == 0.5  # two cells share a GPU
    ```
    """
    if requested is None:
        return 1.0 if cluster.get("GPU", 0) > 0 else 0.0
    if requested < 0:
        raise UserInputError(f"must be 0 or more, got {requested}", field="--ray-gpus-per-cell")
    available = cluster.get("GPU", 0)
    if requested > 0 and requested > available:
        raise UserInputError(f"{requested} GPU(s) per cell asked, but the Ray cluster has "
                             f"{available:g}, so no cell could ever be scheduled; ask for at "
                             f"most {available:g} (0 runs on CPUs)",
                             field="--ray-gpus-per-cell")
    return float(requested)


# ----------------------------------------------------------------------- in the worker
# Per worker process: the model last loaded and the local executor running on it (its
# engines keep their compiled programs). One model at a time, since a worker rarely
# serves two specs and models are large.
_WORKER: dict[str, Any] = {"model_key": None, "model": None, "executor": None,
                           "plugins": set()}


def _load_plugins(targets: tuple[str, ...]) -> None:
    from samplerlab.plugins import get_plugin_manager

    manager = get_plugin_manager()
    for target in targets:
        if target not in _WORKER["plugins"]:
            manager.load(target)
            _WORKER["plugins"].add(target)


def _worker_model(job: RunJob, shipped: list | None) -> Any:
    """This worker's model for ``job`` (the spec's whole model section at ``job.preset``),
    loaded once."""
    from samplerlab.executors.local import LocalExecutor
    from samplerlab.models import load_spec_model

    key = (job.model.model_dump_json(), job.preset, shipped is not None)
    if _WORKER["model_key"] != key:
        _WORKER.update(model=None, executor=None)  # free the previous model first
        model = load_spec_model(job.model, preset=_worker_preset(job.preset, shipped))
        _WORKER.update(model_key=key, model=model, executor=LocalExecutor())
    return _WORKER["model"]


def run_cell_task(job: RunJob, cell: Any, shipped: list | None = None) -> CellOutcome:
    """Run one cell where this is called (a Ray worker); return its outcome.

    ``shipped`` is ``[ObjectRef]`` of the packed preset directory when the driver shipped
    it, else ``None`` (the worker reads ``job.preset`` itself).
    """
    _load_plugins(job.plugins)
    model = _worker_model(job, shipped)
    outcome = next(_WORKER["executor"].run(job, [cell], model=model))
    outcome.record["worker"] = {**_worker_identity(), "model": model.path}
    return outcome


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


def _worker_preset(reference: str, shipped: list | None) -> str:
    """``reference`` itself, or where this node unpacked the shipped copy of it."""
    if shipped is None:
        return reference
    import ray

    return str(unpack_preset(ray.get(shipped[0])))


# --------------------------------------------------------------- shipping presets
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


# ------------------------------------------------------------------------- driver
class RayExecutor:
    """Runs cells as Ray tasks and yields each outcome as its task returns.

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
            store; ``None``: only when the cluster has more than one node (a single
            machine reads the directory directly).
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
        self._description: dict[str, Any] = {"name": self.name, "address": self.address}
        # The driver loads the model too (prompt checks, fine-tuning): on a GPU it must not
        # grab most of the memory that the tasks on the same GPU will need.
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

    def connect(self) -> None:
        """Connect to Ray now (the CLI does this before loading the model, so a wrong
        address fails fast); an existing connection in this process is used as it is."""
        ray = require_ray()
        if ray.is_initialized():
            return
        kwargs: dict[str, Any] = {"logging_level": logging.WARNING}
        if self.address == LOCAL:
            kwargs["include_dashboard"] = False
        else:
            kwargs["address"] = self.address
        try:
            ray.init(**kwargs)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise UserInputError(f"could not connect to Ray at '{self.address}': "
                                 f"{type(exc).__name__}: {str(exc).splitlines()[0]}; start "
                                 "the cluster (ray start --head) or pass --ray-address local",
                                 field="--ray-address") from None
        self._owns_connection = True

    def run(self, job: RunJob, cells: Sequence[Any], *, model: Any,
            on_batch: OnBatch | None = None) -> Iterator[CellOutcome]:
        """Submit one task per cell (each worker loads its own model: ``model``, the
        driver's, is not shipped); yield each outcome as its task returns."""
        ray = require_ray()
        self.connect()
        cluster = ray.cluster_resources()
        gpus = resolve_gpus_per_cell(self.gpus_per_cell, cluster)
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        shipped = self._shipped(ray, job.preset, nodes)
        self._description = {
            "name": self.name, "address": self.address, "nodes": nodes,
            "gpus_per_cell": gpus, "cpus_per_cell": self.cpus_per_cell,
            "cluster": {k: v for k, v in cluster.items() if k in ("CPU", "GPU", "memory")},
            "model": job.preset, "preset_shipped": shipped is not None}
        task = self._remote(ray, gpus)
        pending = {task.remote(job, cell, shipped): cell for cell in cells}
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    yield self._outcome(ray, ref, pending.pop(ref), job.spec_seed)
        finally:
            for ref in pending:  # interrupted: nothing left running for this run
                ray.cancel(ref, force=True)

    def describe(self) -> dict[str, Any]:
        return dict(self._description)

    def close(self) -> None:
        """Shut down a cluster this executor started (a joined one is left running)."""
        if self._owns_connection:
            require_ray().shutdown()
            self._owns_connection = False

    def _remote(self, ray: Any, gpus: float) -> Any:
        options: dict[str, Any] = {"num_cpus": self.cpus_per_cell, "num_gpus": gpus,
                                   "max_retries": self.max_retries}
        if 0 < gpus < 1:
            options["runtime_env"] = {"env_vars": {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}}
        return ray.remote(run_cell_task).options(**options)

    def _shipped(self, ray: Any, reference: str, nodes: int) -> list | None:
        ship = self.ship_preset if self.ship_preset is not None else nodes > 1
        if not ship or not Path(reference).is_dir():
            return None
        # Wrapped in a list so Ray does not resolve it for every task: a worker fetches it
        # when it loads the model, once per process.
        return [ray.put(pack_preset(reference))]

    @staticmethod
    def _outcome(ray: Any, ref: Any, cell: Any, spec_seed: int) -> CellOutcome:
        """The task's outcome; a task that raised or died becomes a failed cell."""
        try:
            return ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - any task failure fails its cell only
            cause = getattr(exc, "cause", None) or exc
            message = str(cause).strip().splitlines()
            error = f"ray task failed: {type(cause).__name__}: {message[0] if message else ''}"
            return failed_outcome(cell, spec_seed, error)


def ray_executor(
    address: Annotated[str, Field(description=(
        "local (start a local cluster; default), auto (join this machine's cluster) or an "
        "address such as ray://head:10001"))] = LOCAL,
    gpus_per_cell: Annotated[float | None, Field(ge=0, description=(
        "GPUs per cell's task (default: 1 when the cluster has GPUs, else 0; 0.5 packs two "
        "cells per GPU)"))] = None,
) -> RayExecutor:
    """One Ray task per cell, connected now (``samplerlab run --executor ray``'s options)."""
    executor = RayExecutor(address, gpus_per_cell=gpus_per_cell)
    executor.connect()
    return executor
