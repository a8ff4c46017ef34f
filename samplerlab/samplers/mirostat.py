"""The ``mirostat`` factory; the class is in :mod:`samplerlab.samplers.mirostat_sampler`."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field


def mirostat(tau: Annotated[float, Field(gt=0)] = 5.0,
             eta: Annotated[float, Field(gt=0, le=1)] = 0.1,
             temperature: Annotated[float, Field(gt=0)] = 1.0,
             seed: int | None = None):
    """Mirostat v2: keep the surprise of sampled tokens near tau bits (Basu et al. 2021)."""
    from samplerlab.samplers.mirostat_sampler import MirostatSampler

    return MirostatSampler(tau=tau, eta=eta, temperature=temperature, seed=seed)
