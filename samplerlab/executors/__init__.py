"""Executors: where a run's cells execute. ``local`` runs them here, one after another;
``ray`` runs one Ray task per cell. Both hand finished cells to the runner, which alone
writes results.

Executors are plugins: the built-in ones register through the ``register_executors`` hook
a third-party package implements too. A factory's keyword parameters are the executor's
options: ``samplerlab run --executor ray --ray-address auto`` builds the executor with
``ray_executor(address="auto")``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from samplerlab.errors import UserInputError
from samplerlab.executors.base import CellOutcome, Executor, RunJob, run_cell
from samplerlab.executors.local import LocalExecutor
from samplerlab.executors.ray import RayExecutor, ray_executor
from samplerlab.hookspecs import hookimpl

__all__ = ["CellOutcome", "Executor", "LocalExecutor", "RayExecutor", "RunJob",
           "make_executor", "run_cell"]


def local_executor() -> LocalExecutor:
    """One after another, here."""
    return LocalExecutor()


@hookimpl
def register_executors(register):
    register("local", local_executor, description="one after another, here")
    register("ray", ray_executor,
             description="one Ray task per cell; pip install 'samplerlab[ray]'")


def make_executor(name: str, options: Mapping[str, Any] | None = None) -> Executor:
    """The executor registered as ``name``, built with its ``options`` (its factory's
    keyword parameters, validated against its signature).

    A remote executor connects now, so a wrong address fails before any model loads.
    """
    from samplerlab.plugins import registry, unknown_name_message

    executors = registry("executors")
    if name not in executors:
        raise UserInputError(unknown_name_message("executors", name, list(executors)),
                             field="--executor")
    return executors[name].build(**dict(options or {}))
