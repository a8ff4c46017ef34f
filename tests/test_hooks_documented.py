"""Every hook is documented and exercised (as datasette's test_plugins.py does).

A new hook in ``samplerlab.hookspecs`` fails these tests until docs/writing-plugins.md
has a section for it and some test implements it.
"""

import re
from pathlib import Path

import pytest
from doc_blocks import plugin_files

from samplerlab import hookspecs

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "writing-plugins.md"
HOOKS = sorted(name for name in dir(hookspecs)
               if name.startswith("register_") and callable(getattr(hookspecs, name)))


def test_there_are_hooks_to_check():
    assert {"register_samplers", "register_metrics", "register_datasets",
            "register_processors", "register_executors", "register_commands"} <= set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_documentation_section(hook):
    headings = re.findall(r"^#+\s+(.+?)\s*$", DOCS.read_text(encoding="utf-8"), re.M)
    assert any(f"`{hook}`" in h for h in headings), f"no heading naming `{hook}` in {DOCS}"


def _hook_implementations() -> str:
    """Source of every test file and test plugin (the example plugin's tests included, and
    the plugin docs/writing-plugins.md builds, which the tests below install)."""
    roots = [REPO / "tests", REPO / "plugins"]
    return "\n".join([*(p.read_text(encoding="utf-8") for root in roots
                       for p in root.rglob("*.py")), *plugin_files(DOCS).values()])


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_implemented_by_a_test_plugin(hook):
    # A test (or a plugin a test installs) must define the hook implementation itself.
    assert re.search(rf"def {hook}\((register|cli)\)", _hook_implementations()), (
        f"no test plugin implements {hook}")


# The plugin docs/writing-plugins.md builds, taken from the guide itself: its blocks marked
# <!-- test: plugin --> are the files of a package (each block names its file), which the
# tests pip-install and use the way a third party's users do.
@pytest.fixture(scope="module")
def doc_plugin(tmp_path_factory, pip_install) -> Path:
    """The guide's plugin package, pip-installed into a private site directory."""
    source = tmp_path_factory.mktemp("doc-plugin") / "samplerlab-topa"
    for name, text in plugin_files(DOCS).items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text, encoding="utf-8")
    return pip_install(source, tmp_path_factory.mktemp("doc-plugin-site"))


@pytest.fixture
def doc_plugin_loaded(doc_plugin, monkeypatch) -> Path:
    """The guide's plugin on the path, as an installed package (its tests folder beside)."""
    from samplerlab.plugins import reset_plugin_manager

    monkeypatch.syspath_prepend(str(doc_plugin))
    reset_plugin_manager()
    return doc_plugin


def test_the_guide_builds_a_whole_plugin_package():
    files = plugin_files(DOCS)
    assert {"pyproject.toml", "samplerlab_topa/__init__.py", "samplerlab_topa/sampling.py",
            "tests/test_top_a.py"} <= set(files)
    assert 'topa = "samplerlab_topa"' in files["pyproject.toml"]
    # The hook module stays light to import: Keras only inside the factories.
    assert "import keras" not in files["samplerlab_topa/__init__.py"]


# The repository's example plugin (if installed) registers the same names; the guide's
# package comes first on the path, so it keeps them and the example's are refused.
@pytest.mark.filterwarnings("ignore:plugin 'example' registered")
def test_the_guides_plugin_registers_every_hook(doc_plugin_loaded):
    from samplerlab.plugins import get_plugin_manager, registry

    rows = {r["name"]: r for r in get_plugin_manager().plugin_rows()}
    assert rows["topa"]["source"] == "package samplerlab-topa"
    for kind, name in [("samplers", "top_a"), ("processors", "top_a"),
                       ("metrics", "mean_chars"), ("datasets", "lines")]:
        assert registry(kind)[name].plugin == "topa", (kind, name)
    assert get_plugin_manager().command_names()["topa"] == ["top-a"]


@pytest.mark.filterwarnings("ignore:plugin 'example' registered")
def test_the_guides_metric_and_dataset_work(doc_plugin_loaded, tmp_path):
    from samplerlab.errors import DatasetError
    from samplerlab.plugins import registry

    built = registry("metrics")["mean_chars"].build()
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


@pytest.mark.filterwarnings("ignore:plugin 'example' registered")
def test_the_guides_command_runs(doc_plugin_loaded, capsys):
    from samplerlab.cli import main

    assert main(["top-a", "0.6", "0.2", "0.1", "--a", "0.5"]) == 0
    assert "threshold 0.18: keeps 2 of 3" in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore:plugin 'example' registered")
@pytest.mark.parametrize("kind", ["samplers", "processors"])
def test_the_guides_sampler_and_processor_generate(doc_plugin_loaded, kind):
    # One compiled KerasHub generate each (the guide's own tests/test_top_a.py runs the
    # whole conformance kit, which tests/test_testing_kit.py runs on the example plugin).
    import numpy as np

    from samplerlab.plugins import registry
    from samplerlab.samplers.chain_sampler import ChainSampler
    from samplerlab.testing import tiny_batch, tiny_causal_lm

    built = registry(kind)["top_a"].build(a=0.2)
    sampler = built if kind == "samplers" else ChainSampler([built], pick="sample", seed=1)
    lm, batch = tiny_causal_lm(), tiny_batch()
    lm.compile(sampler=sampler)
    tokens = np.asarray(lm.generate(batch, stop_token_ids=None)["token_ids"])
    assert tokens.shape == batch["token_ids"].shape
    assert (tokens[batch["padding_mask"]] == batch["token_ids"][batch["padding_mask"]]).all()


@pytest.mark.filterwarnings("ignore:plugin 'example' registered")
def test_the_guides_final_distribution_keeps_the_top_a_set(doc_plugin_loaded):
    import numpy as np

    from samplerlab.decoding.contract import capabilities
    from samplerlab.plugins import registry

    sampler = registry("samplers")["top_a"].build(a=0.5)
    logits = np.log(np.array([[0.6, 0.2, 0.1, 0.07, 0.03]], dtype="float32"))
    log_probs, kept = (np.asarray(x) for x in capabilities(sampler).distribution(logits))
    # 0.5 * 0.6^2 = 0.18: tokens 0 and 1 stay, renormalised to 0.75 and 0.25.
    assert kept.tolist() == [2]
    np.testing.assert_allclose(np.exp(log_probs[0, :2]), [0.75, 0.25], rtol=1e-5)
    assert np.isneginf(log_probs[0, 2:]).all()


def test_the_guides_tests_import_what_the_plugin_defines(doc_plugin_loaded):
    namespace: dict = {}
    exec(compile(plugin_files(DOCS)["tests/test_top_a.py"], "test_top_a.py", "exec"),  # noqa: S102
         namespace)
    assert callable(namespace["test_top_a_is_a_conforming_sampler"])
