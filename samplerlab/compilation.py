"""JAX's persistent compilation cache, on by default, so a second process skips XLA compiles.

The cache lives in ``$SAMPLERLAB_CACHE_DIR/xla`` (default ``~/.cache/samplerlab/xla``,
honouring ``XDG_CACHE_HOME``). ``SAMPLERLAB_COMPILATION_CACHE=0`` turns it off;
``SAMPLERLAB_COMPILATION_CACHE=/some/dir`` puts it elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

_enabled: Path | None = None


def cache_root() -> Path:
    base = os.environ.get("SAMPLERLAB_CACHE_DIR")
    if base:
        return Path(base).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "samplerlab"


def compilation_cache_dir() -> Path | None:
    """Where compiled XLA programs are kept, or None when the cache is off."""
    setting = os.environ.get("SAMPLERLAB_COMPILATION_CACHE", "1").strip()
    if setting.lower() in ("0", "off", "false", "no", ""):
        return None
    if setting.lower() in ("1", "on", "true", "yes"):
        return cache_root() / "xla"
    return Path(setting).expanduser()


def enable_compilation_cache() -> Path | None:
    """Point JAX at the persistent cache (idempotent); return its directory."""
    global _enabled
    directory = compilation_cache_dir()
    if directory is None or _enabled == directory:
        return _enabled
    import jax

    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # an unwritable cache must never stop a run
    jax.config.update("jax_compilation_cache_dir", str(directory))
    # Cache every program: generate loops of small models compile in under a second.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    _enabled = directory
    return directory
