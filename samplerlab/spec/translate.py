"""Pydantic validation errors translated into one located, actionable line."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

import pydantic
from pydantic import BaseModel

from samplerlab.errors import UserInputError
from samplerlab.spec.schema import Spec
from samplerlab.spec.yaml_source import dotted, line_for


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The pydantic model class that owns the last element of an error location."""
    model: Any = Spec
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        info = model.model_fields.get(part)
        if info is None:
            return None
        model = _unwrap_model(info.annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _unwrap_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list):
        for arg in typing.get_args(annotation):
            found = _unwrap_model(arg)
            if found is not None:
                return found
    return None


def schema_error(exc: pydantic.ValidationError, path: str | None,
                  lines: dict[tuple, int]) -> UserInputError:
    errors = exc.errors()
    # Prefer the error inside the branch the user meant (dict vs list unions).
    err = errors[0]
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and (
        p in ("list[str]", "PromptsFromDataset", "str", "int", "float", "bool", "none")
        or p.startswith(("function-", "list[", "dict[")))))
    if err["type"] == "extra_forbidden":
        owner = _model_at(loc)
        known = list(owner.model_fields) if owner else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        problem = f"unknown field{hint} (valid: {', '.join(known)})" if known else "unknown field"
    elif err["type"] == "missing":
        problem = "required field is missing"
    else:
        msg = err["msg"]
        msg = msg.removeprefix("Value error, ")
        problem = msg[:1].lower() + msg[1:]
        if "input" in err and not isinstance(err["input"], (dict, list)):
            problem += f" (got {err['input']!r})"
    return UserInputError(problem, file=path, line=line_for(lines, loc),
                          field=dotted(loc) or None)
