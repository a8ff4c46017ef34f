"""The ``xtc`` sampler's factory (the class is in :mod:`samplerlab.samplers.xtc_sampler`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field


def xtc(threshold: Annotated[float, Field(ge=0, le=1)] = 0.1,
        probability: Annotated[float, Field(ge=0, le=1)] = 0.5,
        temperature: Annotated[float, Field(gt=0)] = 1.0,
        seed: int | None = None):
    """Exclude Top Choices: sometimes remove all likely tokens but the least likely one."""
    from samplerlab.samplers.xtc_sampler import XTCSampler

    return XTCSampler(threshold=threshold, probability=probability,
                      temperature=temperature, seed=seed)
