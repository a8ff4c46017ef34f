"""Per-token traces: why a sampler's text looks the way it does, token by token.

With ``generation.trace: true`` every generated token of every sample is traced inside
the compiled generate loop (:mod:`samplerlab.traces.observer`): its id and position, the
model's probability of it (temperature 1), its rank and the entropy of the model's
distribution, the probability the sampler's final distribution gave it and that
distribution's kept-set size (:mod:`samplerlab.decoding.distributions`), optionally the
top-N alternatives. They land in ``traces.parquet`` (:mod:`samplerlab.traces.table`;
:func:`load_traces`), are plotted per cell (:mod:`samplerlab.traces.plots`) and get a
report section. Text from anywhere is scored the same way, teacher-forced
(:func:`score_text`, ``samplerlab trace``), as are the human references of dataset
prompts (``generation.trace_reference``); :mod:`samplerlab.traces.repetition` measures
the self-reinforcement of repeated sentences (Xu et al. 2022).
"""

from __future__ import annotations

from typing import Any


def load_traces(run_dir: Any, columns: list[str] | None = None) -> Any:
    """``traces.parquet`` of a run as a pandas DataFrame (:func:`samplerlab.traces.table.
    load_traces`)."""
    from samplerlab.traces.table import load_traces as _load

    return _load(run_dir, columns)


def score_text(text: str, preset: str = "samplerlab:tiny-en", **kwargs: Any) -> Any:
    """Score text token by token under a model (:func:`samplerlab.traces.scoring.
    score_text`)."""
    from samplerlab.traces.scoring import score_text as _score

    return _score(text, preset, **kwargs)
