"""samplerlab: compare text-generation decoding methods on KerasHub causal LMs.

Plugins implement the hooks in :mod:`samplerlab.hookspecs` and mark their
implementations with :data:`hookimpl`::

    import samplerlab

    @samplerlab.hookimpl
    def register_samplers(register):
        register("my_sampler", make_my_sampler, description="...")
"""

from __future__ import annotations

import os

# Keras reads KERAS_BACKEND at import time; samplerlab is built on JAX unless the user
# chose otherwise. TensorFlow (pulled in by KerasHub's tokenizers) is silenced unless asked.
os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

from samplerlab.hookspecs import hookimpl  # noqa: E402

__version__ = "0.1.0"

__all__ = ["__version__", "hookimpl", "load_spec", "run", "load_samples", "load_traces",
           "score_text"]


def load_spec(source: str | os.PathLike | dict, overrides: list[str] | None = None,
              plugins: list[str] | None = None):
    """Load and validate an experiment spec (a YAML path or a dict); see :mod:`samplerlab.spec`."""
    from samplerlab.spec import load_spec as _load

    return _load(source, overrides=overrides, plugins=plugins)


def run(spec, **kwargs):
    """Run a spec (a path or a loaded spec) and return the :class:`samplerlab.runner.RunResult`."""
    from samplerlab.runner import run_spec

    if not hasattr(spec, "cells"):
        spec = load_spec(spec)
    return run_spec(spec, **kwargs)


def load_samples(run_dir: str | os.PathLike):
    """The samples of a finished run as a pandas DataFrame."""
    from samplerlab.results import load_samples as _load

    return _load(run_dir)


def load_traces(run_dir: str | os.PathLike, columns: list[str] | None = None):
    """The per-token traces of a run (``traces.parquet``) as a pandas DataFrame, one row
    per generated token; see :mod:`samplerlab.traces`."""
    from samplerlab.traces import load_traces as _load

    return _load(run_dir, columns)


def score_text(text: str, preset: str = "samplerlab:tiny-en", **kwargs):
    """Score ``text`` token by token under a model, teacher-forced: a pandas DataFrame of
    each token's probability, rank and entropy; see :func:`samplerlab.traces.scoring.
    score_text`."""
    from samplerlab.traces import score_text as _score

    return _score(text, preset, **kwargs)
