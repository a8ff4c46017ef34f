"""Factories for KerasHub's six samplers, with their parameters typed and range-checked.

top_k, top_p, random, beam and contrastive build samplerlab's versions with program parameters
(their numeric parameters are inputs of the compiled generate function, so a sweep
compiles once; top_p and random also avoid a vocabulary sort / a per-token Gumbel draw,
contrastive and beam avoid copying the cache for their candidates and beams, and beam
gives each row the beams it gets alone); greedy is KerasHub's own class.

The annotations are the validation: samplerlab checks a spec's parameters against them
(without importing Keras) before any model loads, and ``samplerlab samplers`` shows them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

Temperature = Annotated[float, Field(gt=0, description="softmax temperature, > 0")]
Seed = int | None


def greedy():
    """Pick the most probable token at every step (deterministic)."""
    import keras_hub

    return keras_hub.samplers.GreedySampler()


def top_k(k: Annotated[int, Field(ge=1)] = 5, temperature: Temperature = 1.0,
          seed: Seed = None):
    """Sample from the k most probable tokens (Fan et al. 2018)."""
    from samplerlab.samplers.top_k import TopKSampler

    return TopKSampler(k=k, temperature=temperature, seed=seed)


def top_p(p: Annotated[float, Field(gt=0, le=1)] = 0.1,
          k: Annotated[int, Field(ge=1)] | None = None,
          temperature: Temperature = 1.0, seed: Seed = None):
    """Nucleus sampling: the smallest set of tokens whose mass reaches p (Holtzman et al. 2020)."""
    from samplerlab.samplers.top_p import TopPSampler

    return TopPSampler(p=p, k=k, temperature=temperature, seed=seed)


def random(temperature: Temperature = 1.0, seed: Seed = None):
    """Sample from the full softmax distribution (ancestral sampling)."""
    from samplerlab.samplers.random import RandomSampler

    return RandomSampler(temperature=temperature, seed=seed)


def beam(num_beams: Annotated[int, Field(ge=1)] = 5, temperature: Temperature = 1.0):
    """Beam search keeping num_beams hypotheses; returns the most probable beam."""
    from samplerlab.samplers.beam import BeamSampler

    return BeamSampler(num_beams=num_beams, temperature=temperature)


def contrastive(k: Annotated[int, Field(ge=1)] = 5,
                alpha: Annotated[float, Field(ge=0, le=1)] = 0.5,
                temperature: Temperature = 1.0):
    """Contrastive search: confidence minus alpha x degeneration penalty (Su et al. 2022)."""
    from samplerlab.samplers.contrastive import FastContrastiveSampler

    return FastContrastiveSampler(k=k, alpha=alpha, temperature=temperature)


BUILTIN_SAMPLERS = {
    "greedy": greedy,
    "top_k": top_k,
    "top_p": top_p,
    "random": random,
    "beam": beam,
    "contrastive": contrastive,
}
