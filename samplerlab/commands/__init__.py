"""Built-in commands, registered through the ``register_commands`` hook a plugin uses too.

Each module adds its commands with ``register(cli)``: ``run`` (run, validate, schema),
``listing`` (samplers, metrics, processors, plugins), ``generate``, ``analysis`` (plot,
compare, score), ``data`` (data fetch/show, finetune) and ``trace`` (trace,
self-reinforcement).
"""

from samplerlab import hookimpl
from samplerlab.commands import analysis, data, generate, listing, run, trace


@hookimpl
def register_commands(cli):
    for module in (run, listing, generate, analysis, data, trace):
        module.register(cli)
