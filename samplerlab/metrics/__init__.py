"""Built-in metrics, registered through the same hook a third-party plugin uses.

Each factory takes the metric's parameters (validated from their annotations before
anything runs) and returns a :class:`samplerlab.metrics.base.Metric`. Metric modules
are imported inside the factories so that validating a spec stays cheap.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from samplerlab.hookspecs import hookimpl

__all__ = ["Metric", "MetricContext", "register_metrics"]


def __getattr__(name: str):
    # Imported on first use, so that loading the plugin (validating a spec) skips NumPy.
    if name in ("Metric", "MetricContext", "SumPooledMetric"):
        from samplerlab.metrics import base

        return getattr(base, name)
    raise AttributeError(f"module 'samplerlab.metrics' has no attribute {name!r}")


def rep_n():
    """SimCTG repetition rate rep-2/3/4 (percent of repeated n-grams, pooled over a cell)."""
    from samplerlab.metrics.rep_n import RepN

    return RepN()


def diversity():
    """SimCTG diversity: product over n = 2..4 of (1 - rep_n / 100)."""
    from samplerlab.metrics.diversity import Diversity

    return Diversity()


def distinct_n(n: Annotated[int, Field(ge=1, le=4)] | None = None):
    """distinct-n (Li et al. 2016): distinct n-grams / n-grams over a cell (n = 1..4)."""
    from samplerlab.metrics.distinct_n import DistinctN

    return DistinctN(n=n)


def self_bleu(max_samples: Annotated[int, Field(ge=1)] | None = None, seed: int = 0):
    """Self-BLEU: mean BLEU-4 of each generation against the rest of its cell."""
    from samplerlab.metrics.self_bleu import SelfBleu

    return SelfBleu(max_samples=max_samples, seed=seed)


def zipf(units: Literal["words", "tokens"] = "words", top: Annotated[int, Field(ge=2)] = 5000,
         bootstrap_samples: Annotated[int, Field(ge=0)] = 200):
    """Zipf coefficient of the cell's word (or token) frequencies (Holtzman et al. 2020)."""
    from samplerlab.metrics.zipf import Zipf

    return Zipf(units=units, top=top, bootstrap_samples=bootstrap_samples)


def length():
    """Mean generated tokens and words, and the share stopped at the end token."""
    from samplerlab.metrics.length import Length

    return Length()


def latency():
    """Compile seconds, steady seconds per call (p50, p95) and generated tokens per second."""
    from samplerlab.metrics.latency import Latency

    return Latency()


def perplexity():
    """Perplexity of the continuations given their prompts, under the run's metrics_model."""
    from samplerlab.metrics.perplexity import Perplexity

    return Perplexity()


def coherence():
    """Coherence: cosine of the prompt's and continuation's mean-pooled metrics_model states."""
    from samplerlab.metrics.coherence import Coherence

    return Coherence()


def mauve(num_buckets: Annotated[int, Field(ge=2)] | Literal["auto"] = "auto",
          scaling_factor: Annotated[float, Field(gt=0)] = 5.0, seed: int = 25,
          bootstrap_samples: Annotated[int, Field(ge=0)] = 50):
    """MAUVE against human text (needs the mauve extra: pip install 'samplerlab[mauve]')."""
    from samplerlab.metrics.mauve import Mauve

    return Mauve(num_buckets=num_buckets, scaling_factor=scaling_factor, seed=seed,
                 bootstrap_samples=bootstrap_samples)


BUILTINS = (rep_n, diversity, distinct_n, self_bleu, zipf, length, latency, perplexity,
            coherence, mauve)


@hookimpl
def register_metrics(register):
    for factory in BUILTINS:
        register(factory.__name__, factory)
