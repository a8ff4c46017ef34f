"""The ``chain`` sampler's factory (the class is in :mod:`samplerlab.samplers.chain_sampler`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator

from samplerlab.processors import chain_spec


def _check_processors(items: list) -> list:
    # Raises ParameterError (not ValueError) so pydantic lets it through unchanged and
    # the message keeps the item's location, e.g. "processors[2].top_p: ...".
    chain_spec.validate(items)
    return items


ProcessorList = Annotated[list, AfterValidator(_check_processors)]


def chain(processors: ProcessorList,
          pick: Literal["sample", "greedy"] = "sample",
          seed: int | None = None):
    """Processors in your order (penalties, truncations, temperature...), then greedy or sample.

    ``processors`` items: ``top_k`` | ``{top_k: 40}`` | ``{top_p: {p: 0.9}}`` |
    ``{name: top_p, p: 0.9}``. ``samplerlab processors`` lists them.
    """
    from samplerlab.samplers.chain_sampler import ChainSampler

    return ChainSampler(chain_spec.build(processors), pick=pick, seed=seed)


def _expand_param(name: str, value: Any) -> list[Any]:
    """Sweep axes inside ``processors`` (``[{top_k: [10, 40]}]`` is two cells)."""
    return chain_spec.expand_sweeps(value) if name == "processors" else [value]


# The spec expands a factory's ``expand_param`` axes like list-valued parameters.
chain.expand_param = _expand_param
