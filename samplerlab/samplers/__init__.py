"""Built-in samplers, registered through the same hook a third-party plugin uses."""

from samplerlab.hookspecs import hookimpl
from samplerlab.samplers.builtin import BUILTIN_SAMPLERS
from samplerlab.samplers.chain import chain
from samplerlab.samplers.mirostat import mirostat
from samplerlab.samplers.speculative import speculative
from samplerlab.samplers.xtc import xtc

# Beyond KerasHub's six (issue 6): Keras is imported only when one is built.
EXTRA_SAMPLERS = {"chain": chain, "mirostat": mirostat, "xtc": xtc,
                  "speculative": speculative}


@hookimpl
def register_samplers(register):
    for name, factory in {**BUILTIN_SAMPLERS, **EXTRA_SAMPLERS}.items():
        register(name, factory, description=factory.__doc__.splitlines()[0])
