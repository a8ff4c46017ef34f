"""Extra models: the models a sampler needs besides the target, loaded once per process.

A sampler names them in its capabilities (:attr:`~samplerlab.decoding.contract.
SamplerCapabilities.extra_models`: a role and a preset reference; a draft model
today). The runner loads every extra model a spec names right after the target
(:func:`load_spec_extra_models`, from the factory's ``extra_model_presets``), so a
preset that cannot load, or whose vocabulary is not the target's, stops the run in one
line before anything generates; the engine then attaches the loaded models to each
sampler that needs them (:func:`attach_extra_models`).
"""

from __future__ import annotations

from typing import Any

from samplerlab.decoding.contract import capabilities
from samplerlab.errors import ModelLoadError, UserInputError

# (resolved preset, sequence length, dtype policy, fast decoding) -> LoadedModel.
_LOADED: dict[tuple, Any] = {}


def load_extra_model(preset: str, target: Any, field: str = "model") -> Any:
    """The model ``preset`` for the :class:`~samplerlab.models.LoadedModel` ``target``:
    loaded like it (sequence length, dtype policy, fast decoding), once per process;
    ``target`` itself when ``preset`` names it.

    Raises:
        UserInputError: its tokenizer is not the target's (on ``field``).
        ModelLoadError: the preset cannot be loaded.
    """
    from samplerlab.models import load_model, resolve_preset

    path = resolve_preset(preset)
    if preset == target.preset or path == target.path:
        return target
    sequence_length = int(target.preprocessor.sequence_length)
    key = (path, sequence_length, target.dtype_policy, target.fast_decoding)
    if key not in _LOADED:
        model = load_model(preset, sequence_length, target.dtype_policy, target.fast_decoding)
        check_same_tokenizer(preset, model, target, field)
        _LOADED[key] = model
    else:
        check_same_tokenizer(preset, _LOADED[key], target, field)
    return _LOADED[key]


def check_same_tokenizer(preset: str, model: Any, target: Any, field: str = "model") -> None:
    """A sampler compares an extra model's distributions with the target's token by token:
    their vocabularies (and end tokens) must be the same."""
    ours, theirs = model.tokenizer.get_vocabulary(), target.tokenizer.get_vocabulary()
    if ours == theirs and model.end_token_id == target.end_token_id:
        return
    if len(ours) != len(theirs):
        detail = f"{len(ours)} tokens against the target's {len(theirs)}"
    else:
        first = next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b),
                     None)
        detail = (f"token {first} is {ours[first]!r}, the target's {theirs[first]!r}"
                  if first is not None else
                  f"end token {model.end_token_id}, the target's {target.end_token_id}")
    raise UserInputError(f"{field} '{preset}' does not share the target's tokenizer "
                         f"({detail}); the sampler compares the two models token by token: "
                         "choose a model trained with the target's tokenizer", field=field)


def attach_extra_models(sampler: Any, target: Any) -> None:
    """Load the extra models ``sampler`` declares, for ``target``, and attach them (a
    no-op for samplers without any, or with them attached)."""
    extra = capabilities(sampler).extra_models
    if extra and not sampler.attached_models():
        sampler.attach_models({m.role: load_extra_model(m.preset, target, m.role).adapter
                               for m in extra})


def load_spec_extra_models(loaded: Any, target: Any) -> None:
    """Load (and check) every extra model the spec's samplers name (their factory's
    ``extra_model_presets(params) -> {parameter: [preset, ...]}``), with the spec's
    location in the error of one that does not fit."""
    from samplerlab.plugins import get_plugin_manager

    registry = get_plugin_manager().registry("samplers")
    for i, spec in enumerate(loaded.spec.samplers):
        presets = getattr(registry[spec.name].factory, "extra_model_presets", None)
        if presets is None:
            continue
        for param, names in presets(spec.params).items():
            for preset in names:
                try:
                    load_extra_model(preset, target, param)
                except (UserInputError, ModelLoadError) as exc:
                    problem = getattr(exc, "problem", None) or str(exc)
                    raise loaded.error(problem, ("samplers", i, "params", param)) from None
