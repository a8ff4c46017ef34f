"""The ``speculative`` sampler: its parameters, checked before any model loads.

The sampler itself is :class:`samplerlab.samplers.speculative_sampler.SpeculativeSampler`;
the engine loads the ``draft`` preset (once per process,
:mod:`samplerlab.engine.extra_models`) and attaches it. This module imports no Keras.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from samplerlab.errors import ParameterError, UserInputError

#: Samplers whose distribution speculative decoding can reproduce exactly.
BASES = ("greedy", "random", "top_k", "top_p")


def _check_draft(draft: str) -> str:
    from samplerlab.models import check_preset_reference

    # ParameterError, not ValueError: pydantic lets it through with its own message.
    try:
        check_preset_reference(draft)
    except UserInputError as exc:
        raise ParameterError(exc.problem, field="draft") from None
    return draft


def base_entry(base: Any) -> tuple[str, dict[str, Any]]:
    """``top_k`` or ``{name: top_k, params: {k: 10}}`` → ``("top_k", {"k": 10})``."""
    if isinstance(base, str):
        return base, {}
    if isinstance(base, dict) and set(base) <= {"name", "params"} and "name" in base:
        return base["name"], dict(base.get("params") or {})
    raise ParameterError(f"expected a sampler name or {{name: NAME, params: {{...}}}}, got "
                         f"{base!r}", field="base")


def _check_base(base: Any) -> Any:
    from samplerlab.plugins import registry

    name, params = base_entry(base)
    if name not in BASES:
        raise ParameterError(f"'{name}' cannot be a speculative base: its distribution must "
                             f"be known exactly ({', '.join(BASES)})", field="base")
    if name == "top_p" and params.get("k") is not None:
        raise ParameterError("a top_p base takes no k (use top_k, or top_p alone)",
                             field="base.params.k")
    try:
        registry("samplers")[name].validate(params)
    except ParameterError as exc:
        raise ParameterError(exc.problem, field=f"base.params.{exc.field}") from None
    return base


def speculative(draft: Annotated[str, AfterValidator(_check_draft)],
                num_speculative_tokens: Annotated[int, Field(ge=1, le=16)] = 4,
                base: Annotated[str | dict, AfterValidator(_check_base)] | None = None,
                seed: int | None = None):
    """Speculative decoding: a draft preset proposes, the target verifies (Leviathan 2023).

    ``draft``: a preset with the target's tokenizer. ``base``: greedy (default: greedy
    acceptance, the target's greedy tokens), or ``random``/``top_k``/``top_p`` with
    parameters (``{name: top_k, params: {k: 10}}``): rejection sampling, the base
    sampler's distribution on the target, exactly.
    """
    from samplerlab.plugins import registry
    from samplerlab.samplers.speculative_sampler import SpeculativeSampler

    base_sampler = None
    if base is not None:
        name, params = base_entry(base)
        entry = registry("samplers")[name]
        if seed is not None and "seed" not in params and entry.accepts("seed"):
            params["seed"] = seed
        base_sampler = entry.build(**params)
    return SpeculativeSampler(num_speculative_tokens, base_sampler=base_sampler, seed=seed,
                              draft_preset=draft)


def extra_model_presets(params: dict[str, Any]) -> dict[str, list[str]]:
    """The draft presets a ``speculative`` entry names (a list is a sweep), by parameter."""
    draft = params.get("draft")
    return {"draft": [d for d in (draft if isinstance(draft, list) else [draft])
                      if isinstance(d, str)]}


def _expand_param(name: str, value: Any) -> list[Any]:
    """Lists inside ``base``'s parameters are sweep axes (``{name: top_k, params: {k:
    [5, 10]}}`` is two cells)."""
    if name != "base" or not isinstance(value, dict) or not isinstance(value.get("params"),
                                                                       dict):
        return [value]
    params = value["params"]
    axes = {k: v for k, v in params.items() if isinstance(v, list)}
    if not axes:
        return [value]
    return [{**value, "params": {**params, **dict(zip(axes, combo, strict=True))}}
            for combo in itertools.product(*axes.values())]


# The spec expands a factory's ``expand_param`` axes like list-valued parameters, and the
# runner loads every ``extra_model_presets`` preset right after the target.
speculative.expand_param = _expand_param
speculative.extra_model_presets = extra_model_presets
