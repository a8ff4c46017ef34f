"""The layers of docs/architecture.md hold: import-linter's contracts in pyproject.toml.

The contracts (a ``layers`` contract from the commands down to hookspecs and errors, no
import cycles between siblings, the web framework kept in the viewer, no command module
imported from below) are checked by import-linter itself, as CI would run it.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _contracts() -> list[dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return config["tool"]["importlinter"]["contracts"]


def test_lint_imports_keeps_every_contract() -> None:
    """`lint-imports` (the installed console script) passes on the package as it is."""
    script = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(script), "--no-cache", "--no-logo"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    kept = [line for line in result.stdout.splitlines() if line.endswith(" KEPT")]
    assert len(kept) == len(_contracts())


def test_no_upward_import_is_ignored_without_a_reason() -> None:
    """The layers allow at most three upward imports, each named in ignore_imports with a
    comment saying why; today there are none."""
    layers = next(c for c in _contracts() if c["type"] == "layers")
    assert len(layers.get("ignore_imports", [])) <= 3


def test_every_top_level_module_has_a_layer_or_is_a_leaf_helper() -> None:
    """A new package or module under samplerlab/ gets a place in the layers (or is one of
    the few helpers every layer may use), so the contract keeps covering the tree."""
    layers = next(c for c in _contracts() if c["type"] == "layers")["layers"]
    named = {part.strip().strip("()") for layer in layers for part in layer.split("|")}
    helpers = {"__init__", "__main__", "_quiet", "compilation", "traced", "testing"}
    package = ROOT / "samplerlab"
    top = {p.stem for p in package.glob("*.py")} | {
        p.name for p in package.iterdir() if (p / "__init__.py").exists()}
    assert top - named - helpers == set()


def test_a_layer_violation_is_reported(tmp_path: Path) -> None:
    """The check can fail: a contract forbidding an import that exists is broken."""
    config = tmp_path / "contract.toml"
    config.write_text('[tool.importlinter]\nroot_package = "samplerlab"\n\n'
                      '[[tool.importlinter.contracts]]\nname = "runner below engine"\n'
                      'type = "layers"\ncontainers = ["samplerlab"]\n'
                      'layers = ["engine", "runner"]\n')
    script = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(script), "--no-cache", "--no-logo", str(config)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "samplerlab.runner" in result.stdout and "BROKEN" in result.stdout
