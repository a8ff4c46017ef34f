"""Built-in datasets, registered through the same hook a third-party plugin uses."""

from samplerlab import hookimpl


@hookimpl
def register_datasets(register):
    pass
