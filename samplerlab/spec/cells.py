"""Cells: a spec's sampler configurations, sweep axes expanded into a cartesian product."""

from __future__ import annotations

import hashlib
import itertools
import re
from typing import Any

from pydantic import BaseModel, ConfigDict

from samplerlab.plugins import Entry
from samplerlab.spec.schema import SamplerSpec


class Cell(BaseModel):
    """One sampler configuration of the sweep: the unit that runs, is timed and is saved."""

    model_config = ConfigDict(frozen=True)
    index: int
    id: str
    sampler: str
    params: dict[str, Any]
    label: str

    def factory_params(self, seed: int | None, entry: Entry) -> dict[str, Any]:
        params = dict(self.params)
        if seed is not None and "seed" not in params and entry.accepts("seed"):
            params["seed"] = seed
        return params


def _compact(value: Any) -> str:
    """A short readable form: ``[{name: top_k, k: 40}, {name: temperature, t: 0.7}]`` →
    ``top_k40,temperature0.7``."""
    if isinstance(value, dict):
        name = value.get("name")
        rest = [f"{'' if name else f'{k}='}{_compact(v)}" for k, v in value.items()
                if k != "name"]
        return (str(name) if name else "") + "".join(rest) if name else "_".join(rest)
    if isinstance(value, (list, tuple)):
        return ",".join(_compact(v) for v in value)
    return str(value)


def _slug(value: Any) -> str:
    text = re.sub(r"[^A-Za-z0-9.,+=-]+", "_", _compact(value)).strip("_")
    if len(text) > 64:
        text = text[:57] + "~" + hashlib.sha256(text.encode()).hexdigest()[:6]
    return text


def sweep_axes(entry: Entry, params: dict[str, Any]) -> dict[str, list[Any]]:
    """The parameters that vary across cells, each with its values.

    A list is a sweep axis unless the parameter's own type is a list; a factory may also
    expand a parameter itself with ``factory.expand_param(name, value) -> values`` (the
    ``chain`` sampler sweeps lists inside its ``processors`` that way).
    """
    expand = getattr(entry.factory, "expand_param", None)
    axes: dict[str, list[Any]] = {}
    for k, v in params.items():
        if isinstance(v, list) and not entry.list_valued(k):
            axes[k] = v
        elif callable(expand):
            values = expand(k, v)
            if len(values) != 1 or values[0] != v:
                axes[k] = list(values)
    return axes


def expand_cells(samplers: list[SamplerSpec], registry: dict[str, Entry]) -> list[Cell]:
    """Expand sweep axes into a cartesian product, one :class:`Cell` each."""
    cells: list[Cell] = []
    for spec in samplers:
        entry = registry[spec.name]
        axes = sweep_axes(entry, spec.params)
        fixed = {k: v for k, v in spec.params.items() if k not in axes}
        for combo in itertools.product(*axes.values()) if axes else [()]:
            params = {**fixed, **dict(zip(axes, combo, strict=False))}
            index = len(cells)
            shown = ", ".join(f"{k}={_compact(v)}" for k, v in params.items())
            label = spec.label or spec.name
            # Axes of one value (a chain's processors, normalised) tell cells nothing apart.
            swept = [(k, v) for k, v in zip(axes, combo, strict=True) if len(axes[k]) > 1]
            if swept and spec.label:
                label += "(" + ", ".join(f"{k}={_compact(v)}" for k, v in swept) + ")"
            elif not spec.label and shown:
                label += f"({shown})"
            slug = "-".join(f"{k}={_slug(v)}" for k, v in params.items())
            cell_id = f"{index:03d}-{spec.name}" + (f"-{slug}" if slug else "")
            cells.append(Cell(index=index, id=cell_id, sampler=spec.name, params=params,
                              label=label))
    return cells
