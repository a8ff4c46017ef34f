"""Draft models for speculative decoding: loaded once per process, same tokenizer as the target.

A sampler that proposes with a second model names it by preset (``draft_preset``; the
``speculative`` sampler's ``draft``). The runner loads every draft of a spec right after
the target (:func:`load_spec_drafts`), so a preset that cannot load, or whose vocabulary
is not the target's, stops the run in one line before anything generates; the engine
then attaches the loaded draft to each sampler that needs it (:func:`attach_draft`).
"""

from __future__ import annotations

from typing import Any

from samplerlab.errors import ModelLoadError, UserInputError

# (resolved preset, sequence length, dtype policy, fast decoding) -> LoadedModel.
_DRAFTS: dict[tuple, Any] = {}


def load_draft(preset: str, target: Any) -> Any:
    """The draft model ``preset`` for the :class:`~samplerlab.models.LoadedModel`
    ``target``: loaded like it (sequence length, dtype policy, fast decoding), once per
    process; ``target`` itself when ``preset`` names it.

    Raises:
        UserInputError: the draft's tokenizer is not the target's (field ``draft``).
        ModelLoadError: the preset cannot be loaded.
    """
    from samplerlab.models import load_model, resolve_preset

    path = resolve_preset(preset)
    if preset == target.preset or path == target.path:
        return target
    sequence_length = int(target.preprocessor.sequence_length)
    key = (path, sequence_length, target.dtype_policy, target.fast_decoding)
    if key not in _DRAFTS:
        draft = load_model(preset, sequence_length, target.dtype_policy, target.fast_decoding)
        check_same_tokenizer(preset, draft, target)
        _DRAFTS[key] = draft
    else:
        check_same_tokenizer(preset, _DRAFTS[key], target)
    return _DRAFTS[key]


def check_same_tokenizer(preset: str, draft: Any, target: Any) -> None:
    """Speculative decoding compares the two models' distributions token by token: their
    vocabularies (and end tokens) must be the same."""
    ours, theirs = draft.tokenizer.get_vocabulary(), target.tokenizer.get_vocabulary()
    if ours == theirs and draft.end_token_id == target.end_token_id:
        return
    if len(ours) != len(theirs):
        detail = f"{len(ours)} tokens against the target's {len(theirs)}"
    else:
        first = next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b),
                     None)
        detail = (f"token {first} is {ours[first]!r}, the target's {theirs[first]!r}"
                  if first is not None else
                  f"end token {draft.end_token_id}, the target's {target.end_token_id}")
    raise UserInputError(f"draft '{preset}' does not share the target's tokenizer ({detail});"
                         " speculative decoding needs one vocabulary: choose a draft trained "
                         "with the target's tokenizer", field="draft")


def attach_draft(sampler: Any, target: Any) -> None:
    """Load ``sampler.draft_preset`` for ``target`` and attach it (a no-op for samplers
    without a draft)."""
    preset = getattr(sampler, "draft_preset", None)
    if preset is not None and getattr(sampler, "draft", None) is None:
        sampler.attach_draft(load_draft(preset, target).adapter)


def load_spec_drafts(loaded: Any, target: Any) -> None:
    """Load (and check) every draft preset the spec's samplers name, with the spec's
    location in the error of one that does not fit."""
    from samplerlab.plugins import get_plugin_manager

    registry = get_plugin_manager().registry("samplers")
    for i, spec in enumerate(loaded.spec.samplers):
        names = getattr(registry[spec.name].factory, "draft_presets", None)
        if names is None:
            continue
        for preset in names(spec.params):
            try:
                load_draft(preset, target)
            except (UserInputError, ModelLoadError) as exc:
                problem = getattr(exc, "problem", None) or str(exc)
                raise loaded.error(problem, ("samplers", i, "params", "draft")) from None
