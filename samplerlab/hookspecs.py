"""Hook specifications: the contract that samplerlab plugins implement.

The ``register_<kind>`` hooks receive a ``register`` callable; a plugin calls it
once per thing it provides: ``register(name, factory, description="...")``.
``register_commands`` receives the Typer app of the ``samplerlab`` command.
"""

import pluggy

hookspec = pluggy.HookspecMarker("samplerlab")
#: Marks a plugin's hook implementations; re-exported as ``samplerlab.hookimpl``, the name
#: plugins use. Built-in plugins import it from here, not from the package root, so that
#: they do not import the root's API functions (which reach the runner: a layer above).
hookimpl = pluggy.HookimplMarker("samplerlab")


@hookspec
def register_samplers(register):
    """Register samplers: ``factory(**params)`` returns a ``keras_hub.samplers.Sampler``."""


@hookspec
def register_metrics(register):
    """Register metrics: ``factory(**params)`` returns a ``samplerlab.metrics.base.Metric``."""


@hookspec
def register_datasets(register):
    """Register datasets: ``factory(**params)`` returns a ``TextSource``."""


@hookspec
def register_processors(register):
    """Register logits processors for the ``chain`` sampler: ``factory(**params)`` → a Processor."""


@hookspec
def register_executors(register):
    """Register executors: ``factory(**options)`` returns a ``samplerlab.executors.Executor``."""


@hookspec
def register_commands(cli):
    """Register CLI commands on ``cli``, the ``samplerlab`` Typer app (``@cli.command()``)."""
