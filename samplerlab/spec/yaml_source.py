"""Reading a spec file: UTF-8, safe YAML, and the line of every field for error messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from samplerlab.errors import UserInputError


def dotted(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def line_for(lines: dict[tuple, int], loc: tuple) -> int | None:
    loc = tuple(loc)
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return lines.get((), None)


def _index_lines(node: yaml.Node, path: tuple, out: dict[tuple, int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            k = key.value
            out[path + (k,)] = key.start_mark.line + 1
            _index_lines(value, path + (k,), out)
            out[path + (k,)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, path + (i,), out)


def read_yaml(text: str, path: str | None) -> tuple[Any, dict[tuple, int]]:
    lines: dict[tuple, int] = {}
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=yaml.SafeLoader)  # noqa: S506 - SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        if "python/" in problem or "could not determine a constructor" in problem:
            problem = (f"{problem}: specs are data, YAML tags that construct objects are "
                       "not allowed")
        raise UserInputError(f"YAML error: {problem}", file=path,
                             line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise UserInputError(f"YAML error: {exc}", file=path) from None
    if node is not None:
        _index_lines(node, (), lines)
    return data, lines


def read_spec_file(path: str | Path) -> str:
    p = Path(path)
    if not p.exists():
        raise UserInputError("spec file not found", file=str(path))
    if p.is_dir():
        raise UserInputError("is a directory, expected a YAML spec file", file=str(path))
    data = p.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UserInputError(f"not UTF-8 text (byte {exc.start}); save the spec as UTF-8",
                             file=str(path), line=line) from None
    if not text.strip():
        raise UserInputError("the spec file is empty; start from experiments/quickstart.yaml "
                             "(samplerlab schema prints every field)", file=str(path))
    return text
