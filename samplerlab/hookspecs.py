"""Hook specifications: the contract that samplerlab plugins implement.

Every hook receives a ``register`` callable. A plugin calls it once per thing it
provides: ``register(name, factory, description="...")``.
"""

import pluggy

hookspec = pluggy.HookspecMarker("samplerlab")


@hookspec
def register_samplers(register):
    """Register sampler factories; ``factory(**params)`` returns a ``keras_hub.samplers.Sampler``."""


@hookspec
def register_metrics(register):
    """Register metric factories; ``factory(**params)`` returns a ``samplerlab.metrics.Metric``."""


@hookspec
def register_datasets(register):
    """Register dataset factories; ``factory(**params)`` returns a ``samplerlab.datasets.TextSource``."""


@hookspec
def register_processors(register):
    """Register logits processors usable in any ``chain`` sampler; ``factory(**params)`` returns a ``samplerlab.processors.Processor``."""
