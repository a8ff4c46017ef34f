"""Built-in commands, registered through the ``register_commands`` hook a plugin uses too.

Each module adds its commands with ``register(cli)``: ``run`` (run, validate, schema),
``listing`` (samplers, metrics, processors, executors, plugins), ``generate``, ``analysis`` (plot,
compare, score), ``data`` (data fetch/show, finetune), ``view`` (view, report, ratings)
and ``trace`` (trace, self-reinforcement).
"""

from samplerlab.commands import analysis, data, generate, listing, run, trace, view
from samplerlab.hookspecs import hookimpl


@hookimpl
def register_commands(cli):
    for module in (run, listing, generate, analysis, data, view, trace):
        module.register(cli)
