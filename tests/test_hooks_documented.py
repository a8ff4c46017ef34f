"""Every hook is documented and exercised (as datasette's test_plugins.py does).

A new hook in ``samplerlab.hookspecs`` fails these tests until docs/writing-plugins.md
has a section for it and some test implements it.
"""

import re
from pathlib import Path

import pytest

from samplerlab import hookspecs

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "writing-plugins.md"
HOOKS = sorted(name for name in dir(hookspecs)
               if name.startswith("register_") and callable(getattr(hookspecs, name)))


def test_there_are_hooks_to_check():
    assert {"register_samplers", "register_metrics", "register_datasets",
            "register_processors", "register_commands"} <= set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_documentation_section(hook):
    headings = re.findall(r"^#+\s+(.+?)\s*$", DOCS.read_text(encoding="utf-8"), re.M)
    assert any(f"`{hook}`" in h for h in headings), f"no heading naming `{hook}` in {DOCS}"


def _hook_implementations() -> str:
    """Source of every test file and test plugin (the example plugin's tests included)."""
    roots = [REPO / "tests", REPO / "plugins"]
    return "\n".join(p.read_text(encoding="utf-8") for root in roots
                     for p in root.rglob("*.py"))


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_implemented_by_a_test_plugin(hook):
    # A test (or a plugin a test installs) must define the hook implementation itself.
    assert re.search(rf"def {hook}\((register|cli)\)", _hook_implementations()), (
        f"no test plugin implements {hook}")


# The metric and dataset examples of docs/writing-plugins.md, as a plugin file: loading it
# exercises register_metrics and register_datasets the way a third party uses them.
DOC_EXAMPLE_PLUGIN = '''
import numpy as np
import samplerlab
from samplerlab.datasets.base import TextSource, require_file
from samplerlab.metrics.base import Metric


class MeanChars(Metric):
    name = "mean_chars"

    def columns(self):
        return ["mean_chars"]

    def stats(self, samples, context):
        return np.array([[len(s["text"])] for s in samples], dtype=float)

    def aggregate(self, stats):
        return {"mean_chars": float(stats[:, 0].mean())}


class Lines(TextSource):
    def __init__(self, path: str):
        self.path = path
        self.params = {"path": path}

    def check(self):
        require_file(self.path, field="path")

    def texts(self):
        with open(self.path, encoding="utf-8") as f:
            yield from (line.rstrip("\\n") for line in f)


@samplerlab.hookimpl
def register_metrics(register):
    register("mean_chars", lambda: MeanChars(), description="mean characters per sample")


@samplerlab.hookimpl
def register_datasets(register):
    register("lines", lambda path: Lines(path), description="one text per line of a file")
'''


def test_the_documented_metric_and_dataset_plugins_work(tmp_path):
    from samplerlab.errors import DatasetError
    from samplerlab.plugins import load_plugin, registry

    plugin = tmp_path / "doc_example.py"
    plugin.write_text(DOC_EXAMPLE_PLUGIN, encoding="utf-8")
    assert load_plugin(str(plugin)) == "doc_example"

    metric = registry("metrics")["mean_chars"]
    assert metric.plugin == "doc_example"
    built = metric.build()
    assert built.aggregate(built.stats([{"text": "ab"}, {"text": "abcd"}], None)) == {
        "mean_chars": 3.0}

    data = tmp_path / "prompts.txt"
    data.write_text("first line\nsecond line\n", encoding="utf-8")
    source = registry("datasets")["lines"].build(path=str(data))
    source.check()
    assert list(source.take(5)) == ["first line", "second line"]
    with pytest.raises(DatasetError) as info:
        registry("datasets")["lines"].build(path=str(tmp_path / "missing.txt")).check()
    assert info.value.field == "path"


def test_the_doc_example_plugin_is_the_one_in_the_docs():
    # Keep the two in step: every class the plugin defines is shown in the docs.
    docs = DOCS.read_text(encoding="utf-8")
    for line in ("class MeanChars(Metric):", "class Lines(TextSource):",
                 'register("mean_chars", lambda: MeanChars()',
                 'register("lines", lambda path: Lines(path)'):
        assert line in docs and line in DOC_EXAMPLE_PLUGIN
