"""Hook specifications: the contract that samplerlab plugins implement.

Every hook receives a ``register`` callable. A plugin calls it once per thing it
provides: ``register(name, factory, description="...")``.
"""

import pluggy

hookspec = pluggy.HookspecMarker("samplerlab")


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
