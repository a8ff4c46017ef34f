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
    check_traces(loaded)
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
    check_lengths_fit(loaded, limit, source)
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
    if finetune is not None and model.quantize is not None:
        raise loaded.error("fine-tuning trains float weights, and model.quantize quantizes "
                           "them at load time; remove model.quantize (or finetune)",
                           ("model", "quantize"))


def check_lengths_fit(loaded: LoadedSpec, limit: int | None, source: str) -> None:
    """``generation.max_length`` and ``model.sequence_length`` within the model's context
    length ``limit`` (None: the model states none), ``source`` saying where it is stated."""
    for value, loc in ((loaded.spec.generation.max_length, ("generation", "max_length")),
                       (loaded.spec.model.sequence_length, ("model", "sequence_length"))):
        if limit is not None and value > limit:
            raise loaded.error(f"{value} is beyond the model's context length ({limit}, its "
                               f"{source}); lower {'.'.join(loc)} to {limit} or less", loc)


def check_quality(loaded: LoadedSpec) -> None:
    """``metrics_model`` and ``human`` exist and are readable, and every metric that needs
    human text or several generations per cell gets them."""
    from samplerlab.metrics.human import read_human_texts
    from samplerlab.metrics.scoring import build_metrics
    from samplerlab.models import check_preset_reference, preset_max_sequence_length

    spec = loaded.spec
    scorer = spec.metrics_model
    if scorer.preset is not None:
        try:
            check_preset_reference(scorer.preset)
        except UserInputError as exc:
            raise loaded.error(exc.problem, ("metrics_model", "preset")) from None
    limit = preset_max_sequence_length(scorer.preset or spec.model.preset)
    if scorer.sequence_length is not None and limit is not None and \
            scorer.sequence_length > limit:
        raise loaded.error(f"{scorer.sequence_length} is beyond the metrics model's "
                           f"context length ({limit}); lower it",
                           ("metrics_model", "sequence_length"))
    if spec.human is not None:
        try:
            read_human_texts(spec.human)
        except UserInputError as exc:
            raise loaded.error(exc.problem, ("human", "path")) from None
    per_cell = loaded.generations_per_cell()
    for i, metric_spec in enumerate(spec.metrics):
        try:
            metric = build_metrics([metric_spec])[0]
        except UserInputError as exc:
            raise loaded.error(exc.problem, ("metrics", i, "name")) from None
        except Exception:  # noqa: BLE001, S112 - plugin code; the run reports it
            continue
        name = metric_spec.name
        if "references" in metric.requires and spec.human is None and \
                not isinstance(spec.prompts, PromptsFromDataset):
            raise loaded.error(f"{name} compares generations with human text, and list "
                               "prompts have none: take prompts from a dataset "
                               "(prompts: {dataset: ...}) or give human: {path: FILE}",
                               ("metrics", i))
        if per_cell < metric.min_rows:
            raise loaded.error(f"{name} needs at least {metric.min_rows} generations per "
                               f"cell; this spec makes {per_cell} (prompts x "
                               "generation.samples_per_prompt): raise either",
                               ("metrics", i))


def check_traces(loaded: LoadedSpec) -> None:
    """Tracing asked of a sampler whose plugin says it cannot be traced (its factory's
    ``traceable = False``), alternatives without traces, or reference traces without
    references."""
    spec = loaded.spec
    if spec.generation.trace:
        registry = get_plugin_manager().registry("samplers")
        for i, s in enumerate(spec.samplers):
            if not getattr(registry[s.name].factory, "traceable", True):
                raise loaded.error(f"sampler '{s.name}' cannot be traced (its plugin "
                                   f"'{registry[s.name].plugin}' says so); set "
                                   "generation.trace: false or run it in a spec of its own",
                                   ("samplers", i, "name"))
    if spec.generation.trace_top and not (spec.generation.trace
                                          or spec.generation.trace_reference):
        raise loaded.error("alternatives are kept only in traces; set generation.trace: true "
                           "(or trace_reference: true) or drop trace_top",
                           ("generation", "trace_top"))
    if spec.generation.trace_reference and isinstance(spec.prompts, list):
        raise loaded.error("trace_reference scores the human continuations of dataset "
                           "prompts, and a prompt list has none; take the prompts from a "
                           "dataset (prompts: {dataset: ...}) or set it to false",
                           ("generation", "trace_reference"))


def check_trace_top(loaded: LoadedSpec, vocabulary_size: int) -> None:
    """``generation.trace_top`` against the loaded model's vocabulary."""
    top = loaded.spec.generation.trace_top
    if top > vocabulary_size:
        raise loaded.error(f"{top} alternatives asked, but the model's vocabulary has "
                           f"{vocabulary_size} tokens; lower generation.trace_top",
                           ("generation", "trace_top"))
