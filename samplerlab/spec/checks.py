"""Checks beyond the schema: plugin names and parameters, datasets, the model reference."""

from __future__ import annotations

import itertools
import re
from typing import TYPE_CHECKING, Any

from samplerlab.datasets.build import build_source
from samplerlab.errors import UserInputError
from samplerlab.plugins import get_plugin_manager, unknown_name_message
from samplerlab.spec.cells import sweep_axes
from samplerlab.spec.schema import PromptsFromDataset

if TYPE_CHECKING:
    from samplerlab.spec.loading import LoadedSpec


def _check_entry(loaded: LoadedSpec, kind: str, name: str, params: dict[str, Any],
                 loc: tuple, *, sweep: bool = False) -> None:
    registry = get_plugin_manager().registry(kind)
    if name not in registry:
        raise loaded.error(unknown_name_message(kind, name, list(registry)), loc + ("name",))
    entry = registry[name]
    try:
        axes = sweep_axes(entry, params) if sweep else {}
    except UserInputError as exc:
        raise loaded.error(exc.problem, loc + ("params",) + _field_path(exc.field)) from None
    for k, values in axes.items():
        if not values:
            raise loaded.error("a sweep axis needs at least one value", loc + ("params", k))
    combos = itertools.product(*axes.values()) if axes else [()]
    for combo in combos:
        try:
            entry.validate({**params, **dict(zip(axes, combo, strict=False))})
        except UserInputError as exc:
            raise loaded.error(exc.problem, loc + ("params",) + _field_path(exc.field)) from None


def _field_path(field: str | None) -> tuple:
    """``processors[2].top_p`` → ``("processors", 2, "top_p")``, as YAML locations are keyed."""
    parts: list[Any] = []
    for piece in re.findall(r"[^.\[\]]+", field or ""):
        parts.append(int(piece) if piece.isdigit() else piece)
    return tuple(parts)


def check_plugins_and_params(loaded: LoadedSpec) -> None:
    spec = loaded.spec
    for i, s in enumerate(spec.samplers):
        _check_entry(loaded, "samplers", s.name, s.params, ("samplers", i), sweep=True)
    for i, m in enumerate(spec.metrics):
        _check_entry(loaded, "metrics", m.name, m.params, ("metrics", i))
    refs: list[tuple[Any, tuple]] = []
    if spec.finetune is not None:
        refs.append((spec.finetune.dataset, ("finetune", "dataset")))
    if isinstance(spec.prompts, PromptsFromDataset):
        refs.append((spec.prompts.dataset, ("prompts", "dataset")))
    for ref, loc in refs:
        registry = get_plugin_manager().registry("datasets")
        if ref.source not in registry:
            raise loaded.error(unknown_name_message("datasets", ref.source, list(registry)),
                               loc + ("source",))
        build_source(loaded, ref, loc, check=True)


def check_model(loaded: LoadedSpec) -> None:
    """The preset is a causal LM samplerlab runs, and the lengths fit its context (read
    from its config.json, no Keras)."""
    from samplerlab.models import inspect_preset, preset_context_length

    spec = loaded.spec
    model = spec.model
    try:
        directory = inspect_preset(model.preset)
    except UserInputError as exc:
        raise loaded.error(exc.problem, ("model", "preset")) from None
    stated = preset_context_length(model.preset)
    if stated is not None and model.context_length is not None \
            and model.context_length > stated[0]:
        raise loaded.error(f"{model.context_length} is beyond the context length the model "
                           f"states ({stated[0]}, its {stated[1]}); lower or remove it",
                           ("model", "context_length"))
    limit, source = stated or (model.context_length, "model.context_length")
    for value, loc, fix in ((spec.generation.max_length, ("generation", "max_length"),
                             "lower generation.max_length"),
                            (model.sequence_length, ("model", "sequence_length"),
                             "lower model.sequence_length")):
        if limit is not None and value > limit:
            raise loaded.error(f"{value} is beyond the model's context length ({limit}, its "
                               f"{source}); {fix}", loc)
    if model.distribution is not None and directory is not None \
            and not directory.family.layout_map and model.distribution.model_parallel > 1:
        from samplerlab.models import FAMILIES

        able = ", ".join(f.title for f in FAMILIES.values() if f.layout_map)
        raise loaded.error(f"{directory.family.backbone} has no layout map in KerasHub "
                           "(get_layout_map), so it cannot be sharded; model parallelism "
                           f"works for: {able}", ("model", "distribution", "model_parallel"))
    finetune = spec.finetune
    if finetune is not None and model.distribution is not None \
            and finetune.distribution != "none":
        raise loaded.error("fine-tuning with data_parallel cannot be combined with "
                           "model.distribution (the model is already laid out over the "
                           "devices); remove one", ("finetune", "distribution"))
