"""``-o dotted.key=value`` overrides, applied before validation and blamed when wrong."""

from __future__ import annotations

import copy
import re
from typing import Any

import yaml

from samplerlab.errors import UserInputError
from samplerlab.spec.yaml_source import dotted

NOT_A_MAPPING = ("cannot set a key inside a non-mapping value; override the value itself "
                 "(the dotted key one level up)")


def _size(target: Any) -> str:
    if not isinstance(target, list):
        return ""
    return f" (the list has {len(target)} item{'' if len(target) == 1 else 's'})"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``dotted.key=value`` overrides (values parsed as YAML scalars/lists)."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        where = f"override '-o {item}'"
        key, sep, value_text = item.partition("=")
        key = key.strip()
        if not sep or not key or not re.match(r"^[A-Za-z_][\w]*(\.[\w]+)*$", key):
            raise UserInputError("expected KEY=VALUE with a dotted key, e.g. "
                                 "generation.max_length=64", file=where)
        try:
            value = yaml.safe_load(value_text) if value_text.strip() else ""
        except yaml.YAMLError as exc:
            raise UserInputError(f"value is not valid YAML ({_first_line(exc)}); quote it, e.g. "
                                 "-o 'key=\"a: b\"'", file=where, field=key) from None
        parts: list[Any] = [int(p) if p.isdigit() else p for p in key.split(".")]
        target: Any = raw
        for depth, part in enumerate(parts[:-1]):
            nxt = parts[depth + 1]
            if isinstance(part, int):
                if not isinstance(target, list) or part >= len(target):
                    raise UserInputError(f"index {part} is out of range{_size(target)}",
                                         file=where, field=".".join(map(str, parts[:depth + 1])))
                if isinstance(target[part], str):  # bare sampler/metric name
                    target[part] = {"name": target[part]}
                target = target[part]
            else:
                if not isinstance(target, dict):
                    raise UserInputError(NOT_A_MAPPING, file=where,
                                         field=".".join(map(str, parts[:depth + 1])))
                if target.get(part) is None:
                    target[part] = [] if isinstance(nxt, int) else {}
                target = target[part]
        last = parts[-1]
        if isinstance(last, int):
            if not isinstance(target, list) or last >= len(target):
                raise UserInputError(f"index {last} is out of range{_size(target)}", file=where,
                                     field=key)
        elif not isinstance(target, dict):
            raise UserInputError(NOT_A_MAPPING, file=where, field=key)
        target[last] = value
    return raw


def blame_override(exc: UserInputError, overrides: list[str]) -> UserInputError:
    """Point an error at the ``-o`` override that set the field, not at the file."""
    for item in overrides:
        key = item.partition("=")[0].strip()
        where = dotted(tuple(int(p) if p.isdigit() else p for p in key.split(".")))
        if exc.field and (exc.field == where or exc.field.startswith(where + ".")
                          or exc.field.startswith(where + "[")):
            return UserInputError(exc.problem, file=f"override '-o {item}'", field=exc.field)
    return exc
