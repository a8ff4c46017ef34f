"""samplerlab-example: top-a sampling, registered as a sampler and as a chain processor.

Top-a (BlinkDL, RWKV; also in text-generation-webui) keeps the tokens whose probability
is at least ``a * p_max**2``: a confident model (large ``p_max``) truncates hard, an
unsure one keeps many candidates. No built-in samplerlab sampler does this.
"""

from typing import Annotated

from pydantic import Field

import samplerlab

A = Annotated[float, Field(gt=0, le=1, description="ratio to the squared top probability")]


def top_a(a: A = 0.2, temperature: Annotated[float, Field(gt=0)] = 1.0,
          seed: int | None = None):
    """Top-a: sample among tokens with p >= a * p_max^2 (BlinkDL, RWKV)."""
    # Import Keras lazily: samplerlab validates specs before any model loads.
    from samplerlab_example.sampling import TopASampler

    return TopASampler(a=a, temperature=temperature, seed=seed)


def top_a_processor(a: A = 0.2):
    """Top-a as a chain processor: drop tokens with p < a * p_max^2."""
    from samplerlab_example.sampling import TopA

    return TopA(a)


@samplerlab.hookimpl
def register_samplers(register):
    register("top_a", top_a)


@samplerlab.hookimpl
def register_processors(register):
    register("top_a", top_a_processor)
