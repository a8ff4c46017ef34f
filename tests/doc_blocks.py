"""Code blocks of the documentation, for the tests that run them.

Two sources, one fence syntax (three backticks and an info string):

* docstrings of every module under ``samplerlab/`` (the module, its classes, their methods
  and its functions): each ```python block (the body of an ``Example:`` section) is an
  example the docs test runs;
* ``docs/*.md``: a block runs only when an HTML comment right before its fence says so:
  ``<!-- test -->`` (run it on its own, as a docstring example) or ``<!-- test: plugin -->``
  (a file of the plugin that docs/writing-plugins.md builds; the block's first line is a
  comment naming the file, ``# samplerlab_topa/sampling.py``, and the blocks of one file
  are joined in the order the guide shows them).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<info>[^\n`]*)\n(?P<code>.*?)^(?P=indent)```[ \t]*$",
                   re.S | re.M)
MARKER = re.compile(r"<!--\s*test(?::\s*(?P<kind>[\w-]+))?\s*-->\s*\Z")


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its info string (``python``), its code."""

    id: str
    info: str
    code: str
    marker: str | None = None  # the md marker's kind: "" for <!-- test -->, "plugin", ...


def fenced_blocks(text: str, where: str) -> list[Block]:
    """The fenced blocks of ``text`` (a docstring or a Markdown file), dedented."""
    blocks = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        marker = MARKER.search(text[:match.start()].rstrip())
        code = "\n".join(ln[len(match["indent"]):] for ln in match["code"].splitlines())
        blocks.append(Block(f"{where}:{line}", match["info"].strip(), code + "\n",
                            None if marker is None else (marker["kind"] or "")))
    return blocks


# ---------------------------------------------------------------------------- docstrings
def samplerlab_modules() -> list[ModuleType]:
    """Every module of the package, imported (``__main__`` would run the CLI)."""
    import samplerlab

    names = sorted(m.name for m in pkgutil.walk_packages(samplerlab.__path__, "samplerlab.")
                   if not m.name.endswith(".__main__"))
    return [samplerlab, *(importlib.import_module(name) for name in names)]


def documented_objects(module: ModuleType) -> Iterator[tuple[str, object]]:
    """``("module.qualname", object)`` for the module and what it defines, methods included."""
    yield module.__name__, module
    for obj in vars(module).values():
        if getattr(obj, "__module__", None) != module.__name__:
            continue  # imported from elsewhere: documented (and collected) there
        if inspect.isfunction(obj):
            yield f"{module.__name__}.{obj.__qualname__}", obj
        elif inspect.isclass(obj):
            yield f"{module.__name__}.{obj.__qualname__}", obj
            for attr in vars(obj).values():
                function = getattr(attr, "__func__", None) or getattr(attr, "fget", None) or attr
                if inspect.isfunction(function) and function.__qualname__.startswith(
                        obj.__qualname__ + "."):
                    yield f"{module.__name__}.{function.__qualname__}", function


def docstrings() -> dict[str, str]:
    """``{"module.qualname": docstring}`` of everything under ``samplerlab/``: each
    object's own docstring (``__doc__``, not one inherited as ``inspect.getdoc`` finds)."""
    found = {}
    for module in samplerlab_modules():
        for name, obj in documented_objects(module):
            if isinstance(obj.__doc__, str) and obj.__doc__.strip():
                found[name] = inspect.cleandoc(obj.__doc__)
    return found


def docstring_examples() -> list[Block]:
    """The ```python blocks of every docstring, ids ``module.qualname`` (``[n]``: n-th)."""
    examples = []
    for name, doc in docstrings().items():
        blocks = [b for b in fenced_blocks(doc, name) if b.info == "python"]
        for n, block in enumerate(blocks):
            examples.append(Block(name if len(blocks) == 1 else f"{name}[{n}]", block.info,
                                  block.code))
    return examples


# -------------------------------------------------------------------------- Markdown docs
def doc_blocks(kind: str, paths: list[Path] | None = None) -> list[Block]:
    """The blocks of ``docs/*.md`` marked ``<!-- test -->`` (kind "") or
    ``<!-- test: KIND -->``, ids ``docs/FILE.md:LINE``."""
    paths = paths if paths is not None else sorted(DOCS.glob("*.md"))
    return [block for path in paths
            for block in fenced_blocks(path.read_text(encoding="utf-8"),
                                       path.relative_to(REPO).as_posix())
            if block.marker == kind]


def plugin_files(path: Path) -> dict[str, str]:
    """``{relative path: text}`` of the plugin a guide builds from its ``<!-- test: plugin
    -->`` blocks; each block names its file in its first line (``# path/in/package``)."""
    files: dict[str, list[str]] = {}
    for block in doc_blocks("plugin", [path]):
        first, _, rest = block.code.partition("\n")
        match = re.fullmatch(r"#\s*(?P<file>[\w./-]+)(?:\s.*)?", first.strip())
        assert match, f"{block.id}: a plugin block starts with '# FILE', not {first!r}"
        files.setdefault(match["file"], []).append(rest)
    return {name: "\n".join(parts) for name, parts in files.items()}
