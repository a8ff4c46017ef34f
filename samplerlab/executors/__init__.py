"""Executors: where a run's cells execute. ``local`` runs them here, one after another;
``ray`` runs one Ray task per cell. Both hand finished cells to the runner, which alone
writes results."""

from __future__ import annotations

from typing import Any

from samplerlab.errors import UserInputError
from samplerlab.executors.base import CellOutcome, Executor, RunJob, run_cell
from samplerlab.executors.local import LocalExecutor
from samplerlab.executors.ray import RayExecutor

EXECUTORS = ("local", "ray")

__all__ = ["EXECUTORS", "CellOutcome", "Executor", "LocalExecutor", "RayExecutor", "RunJob",
           "make_executor", "run_cell"]


def make_executor(name: str, *, ray_address: str | None = None,
                  ray_gpus_per_cell: float | None = None) -> Any:
    """A remote executor by name, connected now (a wrong address fails before any model
    loads), or ``None`` for ``local`` (the runner builds it around its loaded model)."""
    if name not in EXECUTORS:
        raise UserInputError(f"unknown executor '{name}' (known: {', '.join(EXECUTORS)})",
                             field="--executor")
    if name == "local":
        if ray_address is not None or ray_gpus_per_cell is not None:
            raise UserInputError("--ray-address and --ray-gpus-per-cell need --executor ray; "
                                 "add --executor ray or drop them", field="--executor")
        return None
    executor = RayExecutor(ray_address or "local", gpus_per_cell=ray_gpus_per_cell)
    executor.connect()
    return executor
