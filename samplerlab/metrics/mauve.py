"""MAUVE (Pillutla et al. 2021) of the generations against human text."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from samplerlab.errors import UserInputError
from samplerlab.metrics.base import Metric, MetricContext, Samples
from samplerlab.metrics.features import embed

INSTALL_HINT = ("the mauve metric needs the optional 'mauve-text' package "
                "(pip install 'samplerlab[mauve]' or pip install mauve-text faiss-cpu)")


def require_mauve() -> Any:
    """Import ``mauve`` or raise a one-line :class:`UserInputError` saying how to get it.

    mauve-text imports torch and transformers at import time when they are installed,
    only to featurize text itself; samplerlab passes features, and torch must not load
    next to JAX (the two crash together), so they are hidden from that import.
    """
    if sys.modules.get("mauve") is not None:
        return sys.modules["mauve"]
    try:
        # What mauve needs, imported first and in the open: SciPy looks torch up in
        # sys.modules while it imports, and must not find the placeholder below.
        import faiss  # noqa: F401
        import sklearn.decomposition  # noqa: F401
        import sklearn.metrics  # noqa: F401
        import sklearn.preprocessing  # noqa: F401
    except ImportError:
        raise UserInputError(INSTALL_HINT, field="metrics") from None
    hidden = [name for name in ("torch", "transformers") if name not in sys.modules]
    try:
        sys.modules.update(dict.fromkeys(hidden))  # `import torch` raises ImportError
        import mauve
    except ImportError:
        raise UserInputError(INSTALL_HINT, field="metrics") from None
    finally:
        for name in hidden:
            sys.modules.pop(name, None)
    return mauve


@contextlib.contextmanager
def _quiet_native_stderr():
    """Swallow what native code writes to file descriptor 2 (faiss's k-means warns there
    about few points per centroid, which every cell of a small run triggers)."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), fd)
        try:
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)


@contextlib.contextmanager
def _single_threaded():
    """Run MAUVE's PCA and k-means on one thread. Its inputs are small (hundreds to a few
    thousand points), where BLAS and OpenMP threads cost more in start-up and
    spin-waiting than they save: 192 points of 128 dimensions took 1.3 s with the default
    threads and 0.0075 s with one on a shared 2-core CPU (2,000 x 768: 1.25 s and 0.58 s)."""
    import faiss
    from threadpoolctl import threadpool_limits

    saved = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        faiss.omp_set_num_threads(saved)


@dataclass
class MauveFeatures:
    """Statistics of one cell: its generations' features (rows) and the human features."""

    p: np.ndarray
    q: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return self.p.shape


def human_texts(samples: Samples, context: MetricContext) -> list[str]:
    """The human side: ``context.human`` texts, else each prompt's reference once."""
    if context.human:
        return [h.get("text") or "" for h in context.human]
    seen: dict[Any, str] = {}
    for i, s in enumerate(samples):
        if s.get("reference"):
            key = s.get("prompt_index", ("row", i))
            seen.setdefault(key, s["reference"])
    return list(seen.values())


class Mauve(Metric):
    """MAUVE between a cell's generations and human text, from the metrics model's features.

    Each text's feature is the metrics model's final hidden state at its last token
    (:func:`samplerlab.metrics.features.embed`), as in the paper (which used GPT-2
    large; here the run's ``metrics_model``). The value is exactly
    ``mauve.compute_mauve(p_features=generations, q_features=human)`` with mauve-text's
    defaults (``num_buckets="auto"``: a tenth of the samples; scaling factor 5; k-means
    on the PCA-reduced features keeping 90% of the variance, 5 restarts, seed 25). The
    human text is the run's human row (reference continuations truncated to the
    generation budget, or ``human.path``), else the samples' ``reference`` field.

    The interval is a bootstrap: each replicate draws the generations and, independently,
    the human texts with replacement and recomputes MAUVE (k-means included), so it uses
    ``bootstrap_samples`` replicates rather than the run's 1,000.

    Args:
        num_buckets: quantisation clusters (``"auto"``: a tenth of the samples).
        scaling_factor: the divergence-curve constant ``c`` (5 in the paper).
        seed: mauve-text's k-means seed.
        bootstrap_samples: bootstrap replicates for the interval (0: no interval).

    Example:

    ```python
    import numpy as np
    from samplerlab.metrics.mauve import Mauve, MauveFeatures

    rng = np.random.default_rng(0)  # stand-ins for the model's features of the texts
    generated, human = rng.normal(size=(60, 16)), rng.normal(size=(40, 16)) + 0.4
    metric = Mauve()  # raises UserInputError when mauve-text is not installed
    assert 0.0 < metric.aggregate(MauveFeatures(generated, human))["mauve"] < 1.0
    ```
    """

    name = "mauve"
    requires = frozenset({"model", "references"})
    min_rows = 2

    def __init__(self, num_buckets: int | str = "auto", scaling_factor: float = 5.0,
                 seed: int = 25, bootstrap_samples: int = 50) -> None:
        self._mauve = require_mauve()
        self.num_buckets = num_buckets
        self.scaling_factor = scaling_factor
        self.seed = seed
        self.max_bootstrap = bootstrap_samples
        self.bootstrap = bootstrap_samples > 0

    def columns(self) -> list[str]:
        return ["mauve"]

    def stats(self, samples: Samples, context: MetricContext) -> MauveFeatures:
        def features(texts: list[str]) -> np.ndarray:
            return embed(context.model, texts, "last", batch_size=context.batch_size,
                         max_tokens=context.max_tokens, memo=context.memo)

        p = features([s.get("text") or "" for s in samples])
        q = features(human_texts(samples, context))
        context.advance(len(samples))
        return MauveFeatures(p, q)

    def compute(self, p: np.ndarray, q: np.ndarray) -> float:
        """``mauve.compute_mauve`` on features, with this metric's settings."""
        if len(p) < self.min_rows or len(q) < self.min_rows:
            return float("nan")
        out = self._mauve.compute_mauve(
            p_features=p, q_features=q, num_buckets=self.num_buckets,
            mauve_scaling_factor=self.scaling_factor, seed=self.seed, verbose=False)
        return float(out.mauve)

    def aggregate(self, stats: MauveFeatures) -> dict[str, float]:
        with _single_threaded(), _quiet_native_stderr():
            return {"mauve": self.compute(stats.p, stats.q)}

    def aggregate_weighted(self, stats: MauveFeatures,
                           weights: np.ndarray) -> dict[str, np.ndarray]:
        from samplerlab.metrics.scoring import bootstrap_weights

        # The human side is an independent sample: its own draws, seeded.
        q_weights = bootstrap_weights(len(stats.q), len(weights), self.seed + 1)
        p_rows, q_rows = np.arange(len(stats.p)), np.arange(len(stats.q))
        with _single_threaded(), _quiet_native_stderr():
            values = [self.compute(stats.p[np.repeat(p_rows, w.astype(np.int64))],
                                   stats.q[np.repeat(q_rows, v.astype(np.int64))])
                      for w, v in zip(weights, q_weights, strict=True)]
        return {"mauve": np.asarray(values, dtype=float)}
