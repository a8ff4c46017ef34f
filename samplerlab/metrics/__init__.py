"""Built-in metrics, registered through the same hook a third-party plugin uses."""

from samplerlab import hookimpl


@hookimpl
def register_metrics(register):
    pass
