"""Make samplerlab's pytest fixtures available in a development checkout too.

An installed samplerlab registers ``samplerlab.testing`` through its ``pytest11`` entry
point, and this file then does nothing. It only matters when samplerlab is importable
but was installed without that entry point.
"""

import samplerlab.testing


def pytest_configure(config):
    if not config.pluginmanager.is_registered(samplerlab.testing):
        config.pluginmanager.register(samplerlab.testing, "samplerlab.testing")
