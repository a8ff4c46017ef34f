"""A fresh install is complete: every module imports, every import is declared.

`.ci/run` installs samplerlab into a fresh virtualenv exactly as the README's second
command does and runs the suite there, so these tests see what a new user's install
holds: a module that imports a package pyproject.toml does not declare fails here, naming
the module and the package.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "samplerlab"

# Imports every module of the package, one by one, and prints what failed as JSON.
IMPORT_ALL = """
import importlib, json, pkgutil, traceback
import samplerlab

failed = {}
for info in pkgutil.walk_packages(samplerlab.__path__, "samplerlab.",
                                  onerror=lambda name: failed.setdefault(name, "walk failed")):
    if info.name.endswith(".__main__"):
        continue  # runs the CLI
    try:
        importlib.import_module(info.name)
    except BaseException as exc:
        failed[info.name] = "".join(traceback.format_exception_only(exc)).strip()
print(json.dumps({"file": samplerlab.__file__, "failed": failed}))
"""


def test_every_module_of_the_package_imports():
    # A subprocess: a fresh interpreter of this environment, no test imports before it.
    result = subprocess.run([sys.executable, "-c", IMPORT_ALL], capture_output=True,
                            text=True, cwd=REPO, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(report["file"]).resolve().is_relative_to(PACKAGE), report["file"]
    lines = [f"{module}: {error}" for module, error in sorted(report["failed"].items())]
    assert not lines, "modules that do not import:\n" + "\n".join(lines)


def third_party_imports() -> dict[str, set[str]]:
    """``{top-level module: {files importing it}}`` for every absolute import under
    samplerlab/ of a module outside the standard library and the package itself (lazy
    imports inside functions included)."""
    found: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.partition(".")[0]
                if top != "samplerlab" and top not in sys.stdlib_module_names:
                    found.setdefault(top, set()).add(path.relative_to(REPO).as_posix())
    return found


def normalized(name: str) -> str:
    """A distribution name as PEP 503 compares them (``PyYAML`` -> ``pyyaml``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_distributions() -> set[str]:
    """Every distribution pyproject.toml declares: core dependencies and every extra."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    return {normalized(re.match(r"[A-Za-z0-9._-]+", r.strip())[0]) for r in requirements}


def test_every_third_party_import_is_declared_in_pyproject():
    providers = importlib.metadata.packages_distributions()
    declared = declared_distributions()
    missing = []
    for module, files in sorted(third_party_imports().items()):
        dists = {normalized(d) for d in providers.get(module, [])}
        if not dists & declared:
            provided_by = ", ".join(sorted(dists)) or "no installed distribution"
            where = ", ".join(sorted(files)[:3]) + (", ..." if len(files) > 3 else "")
            missing.append(f"{module} (from {provided_by}; imported by {where})")
    assert not missing, ("imported by samplerlab but declared nowhere in pyproject.toml "
                         "(add it to the dependencies, or to the extra that needs it):\n"
                         + "\n".join(missing))


def test_the_scan_sees_the_imports():
    # Guards against a scan that silently finds nothing: lazy imports count too.
    found = third_party_imports()
    assert {"keras", "keras_hub", "jax", "numpy", "rich", "mauve", "ray"} <= set(found)
    assert {"safetensors", "huggingface-hub", "mauve-text", "ray"} <= declared_distributions()
