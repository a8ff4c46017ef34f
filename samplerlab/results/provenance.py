"""Where a run came from: package versions and the git revision of samplerlab."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path


def versions() -> dict[str, str]:
    """Python's version and those of samplerlab and the numerical packages it runs on."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for dist in ("samplerlab", "keras", "keras-hub", "jax", "jaxlib", "tensorflow",
                 "tensorflow-text"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


def git_revision() -> str | None:
    """The commit samplerlab runs from (``+dirty`` with uncommitted changes), or None."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                           capture_output=True, text=True, timeout=5, check=False).stdout
    return out.stdout.strip() + ("+dirty" if dirty.strip() else "")
