"""CLI command groups; each module exposes ``register(app)`` and is loaded by ``samplerlab.cli``."""
