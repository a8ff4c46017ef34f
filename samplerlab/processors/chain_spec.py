"""Reading a ``chain`` sampler's ``processors`` list: normalise, validate, build.

Each item of the list is one of::

    top_k                          # a bare name: the processor with its defaults
    {top_k: 40}                    # name: value  -> sets the factory's first parameter
    {repetition_penalty: {penalty: 1.3, include_prompt: false}}   # name: {params}
    {name: top_p, p: 0.95}         # explicit name plus parameters

Validation imports no Keras: names are looked up in
``samplerlab.plugins.registry("processors")`` and parameters checked against each
factory's annotations, so a bad chain is refused before any model loads, with a
:class:`~samplerlab.errors.ParameterError` naming the item, e.g.
``processors[2].top_p: ...``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from samplerlab.errors import ParameterError


@dataclass(frozen=True)
class ProcessorItem:
    """One normalised entry: where it sits, its processor name and its parameters."""

    position: int
    name: str
    params: dict[str, Any]
    where: str  # where the item's parameters sit, e.g. "processors[2].top_p"
    scalar: bool = False  # written as {name: value}: the value itself is the parameter


def _registry():
    from samplerlab.plugins import registry

    return registry("processors")


def normalize(items: Any) -> list[ProcessorItem]:
    """Turn the user's list into :class:`ProcessorItem` s; raise on a malformed item."""
    if not isinstance(items, (list, tuple)):
        raise ParameterError(f"processors must be a list, got {type(items).__name__}; e.g. "
                             "processors: [{repetition_penalty: 1.2}, {top_k: 40}]",
                             field="processors")
    registry = _registry()
    out = []
    for i, item in enumerate(items):
        at = f"processors[{i}]"
        if isinstance(item, str):
            name, params, where = item, {}, f"{at}.{item}"
        elif isinstance(item, dict) and "name" in item:
            name, params, where = item["name"], {k: v for k, v in item.items()
                                                 if k != "name"}, at
        elif isinstance(item, dict) and len(item) == 1:
            (name, value), = item.items()
            where = f"{at}.{name}"
            if isinstance(value, dict):
                params = dict(value)
            elif value is None:
                params = {}
            else:
                params = _shorthand(registry, name, value, where)
                out.append(ProcessorItem(i, name, params, where, scalar=True))
                continue
        else:
            raise ParameterError(
                f"expected a processor name, {{name: value}} or {{name: NAME, "
                f"param: value, ...}}, got {item!r}", field=at)
        _check_name(registry, name, at)
        out.append(ProcessorItem(i, name, params, where))
    return out


def _check_name(registry: Any, name: Any, at: str) -> None:
    if not isinstance(name, str) or name not in registry:
        from samplerlab.plugins import unknown_name_message

        raise ParameterError(unknown_name_message("processors", str(name), list(registry)),
                             field=at)


def _shorthand(registry: Any, name: str, value: Any, where: str) -> dict[str, Any]:
    """``{name: value}`` sets the factory's first parameter."""
    _check_name(registry, name, where.rsplit(".", 1)[0])
    params = registry[name].parameters()
    if not params:
        raise ParameterError(f"{name} takes no parameters (got {value!r}); write it as the "
                             f"bare name {name}", field=where)
    return {params[0].name: value}


def validate(items: Any) -> list[ProcessorItem]:
    """Normalise and validate every item; return the normalised list."""
    registry = _registry()
    normalized = normalize(items)
    for item in normalized:
        try:
            registry[item.name].validate(item.params)
        except ParameterError as exc:
            where = item.where
            if exc.field and not item.scalar and exc.field.split("[")[0] in item.params:
                where = f"{where}.{exc.field}"
            raise ParameterError(exc.problem, field=where) from None
    return normalized


def build(items: Any) -> list[Any]:
    """Validate, then build the processors in order."""
    registry = _registry()
    return [registry[item.name].factory(**item.params) for item in validate(items)]


def expand_sweeps(items: Any) -> list[list[dict[str, Any]]]:
    """Expand list values inside processor entries into one processor list per combination.

    ``[{top_k: [10, 40]}, {temperature: [0.7, 1.0]}]`` gives four lists, each in the
    explicit form (``{name: top_k, k: 10}``, ...). Lists that a processor's parameter
    itself takes are not sweep axes. The runner calls this when expanding a spec's cells;
    each result is validated like any ``processors`` value. Cells differing only in these
    values share a structure key, so they reuse one compiled generate function.
    """
    import itertools

    registry = _registry()
    normalized = normalize(_flag_lists(items))
    axes: list[tuple[int, str, list[Any]]] = []
    for item in normalized:
        entry = registry[item.name]
        for key, value in item.params.items():
            if isinstance(value, _Sweep):
                axes.append((item.position, key, value.values))
            elif isinstance(value, list) and not entry.list_valued(key):
                axes.append((item.position, key, value))
    base = [{"name": item.name, **{k: (v.values if isinstance(v, _Sweep) else v)
                                   for k, v in item.params.items()}} for item in normalized]
    out = []
    for combo in itertools.product(*(values for _, _, values in axes)):
        chain = [dict(entry) for entry in base]
        for (position, key, _), value in zip(axes, combo, strict=True):
            chain[position][key] = value
        out.append(chain)
    return out


class _Sweep:
    """A shorthand ``{name: [v1, v2]}`` value, kept apart from the factory's own lists."""

    def __init__(self, values: list[Any]) -> None:
        self.values = values


def _flag_lists(items: Any) -> Any:
    # `{top_k: [10, 40]}` would otherwise reach _shorthand as a list value; mark it so
    # the shorthand maps it to the first parameter as a sweep.
    if not isinstance(items, (list, tuple)):
        return items
    return [{next(iter(item)): _Sweep(next(iter(item.values())))}
            if isinstance(item, dict) and len(item) == 1 and "name" not in item
            and isinstance(next(iter(item.values())), list) else item for item in items]
