"""Loading a spec: read, override, validate, check, expand into cells."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pydantic
import yaml

from samplerlab.errors import UserInputError
from samplerlab.plugins import get_plugin_manager
from samplerlab.spec.cells import Cell, expand_cells
from samplerlab.spec.checks import check_model, check_plugins_and_params, check_quality
from samplerlab.spec.overrides import apply_overrides, blame_override
from samplerlab.spec.schema import Spec
from samplerlab.spec.translate import schema_error
from samplerlab.spec.yaml_source import dotted, line_for, read_spec_file, read_yaml


class LoadedSpec:
    """A validated spec, where it came from, and its expanded cells."""

    def __init__(self, spec: Spec, *, path: str | None, raw: dict[str, Any],
                 lines: dict[tuple, int], cells: list[Cell]) -> None:
        self.spec = spec
        self.path = path
        self.raw = raw
        self.lines = lines
        self.cells = cells

    def __getattr__(self, item: str) -> Any:
        return getattr(self.spec, item)

    def resolved_yaml(self) -> str:
        data = self.spec.model_dump(mode="json", exclude_none=True)
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)

    def generations_per_cell(self) -> int:
        """Prompts (at most ``take`` of a dataset) times ``samples_per_prompt``."""
        prompts = self.spec.prompts
        n_prompts = len(prompts) if isinstance(prompts, list) else prompts.take
        return n_prompts * self.spec.generation.samples_per_prompt

    def error(self, problem: str, loc: tuple) -> UserInputError:
        return UserInputError(problem, file=self.path, line=line_for(self.lines, loc),
                              field=dotted(loc))


def load_spec(source: str | Path | dict[str, Any], overrides: list[str] | None = None,
              plugins: list[str] | None = None) -> LoadedSpec:
    """Read, override, validate and expand a spec; raise :class:`UserInputError` on any problem.

    ``source`` is a path to a YAML file, or an already-parsed mapping. ``plugins`` are
    extra plugin modules/files (the CLI's ``--plugin``), loaded before the spec's own.
    """
    path: str | None
    if isinstance(source, dict):
        raw, lines, path = copy.deepcopy(source), {}, None
    else:
        path = str(source)
        raw, lines = read_yaml(read_spec_file(source), path)
    if not isinstance(raw, dict):
        kind = "a list" if isinstance(raw, list) else f"a {type(raw).__name__}"
        raise UserInputError(f"a spec must be a mapping of fields (name, prompts, samplers, "
                             f"...), got {kind}", file=path, line=1 if lines else None)
    if overrides:
        raw = apply_overrides(raw, overrides)
    try:
        return _validate(raw, path, lines, plugins)
    except UserInputError as exc:
        raise blame_override(exc, overrides or []) from None


def _validate(raw: dict[str, Any], path: str | None, lines: dict[tuple, int],
              plugins: list[str] | None) -> LoadedSpec:
    try:
        spec = Spec.model_validate(raw)
    except pydantic.ValidationError as exc:
        raise schema_error(exc, path, lines) from None

    manager = get_plugin_manager()
    for target in plugins or []:
        manager.load(target)
    for i, target in enumerate(spec.plugins):
        try:
            manager.load(target)
        except UserInputError as exc:
            raise UserInputError(exc.problem, file=path, line=line_for(lines, ("plugins", i)),
                                 field=f"plugins[{i}]") from None
    loaded = LoadedSpec(spec, path=path, raw=raw, lines=lines, cells=[])
    check_plugins_and_params(loaded)
    loaded.cells = expand_cells(spec.samplers, manager.registry("samplers"))
    check_model(loaded)
    check_quality(loaded)
    return loaded


def count_generations(loaded: LoadedSpec) -> int:
    """Generations the whole run makes."""
    return len(loaded.cells) * loaded.generations_per_cell()
