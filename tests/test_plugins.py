"""The plugin contract: hooks, entry points, --plugin files, warnings that name the plugin."""

from __future__ import annotations

import importlib.metadata
import json
import textwrap
import warnings

import pytest

import samplerlab
from samplerlab.cli import main
from samplerlab.errors import PluginWarning, UserInputError
from samplerlab.plugins import get_plugin_manager, registry

PLUGIN_SOURCE = '''
import keras_hub
import samplerlab


def make_first_token(token_id: int = 0):
    """Always emits one fixed token (a test double)."""

    class FixedSampler(keras_hub.samplers.Sampler):
        def get_next_token(self, probabilities):
            import keras
            return keras.ops.full(keras.ops.shape(probabilities)[:1], token_id, "int32")

    return FixedSampler()


@samplerlab.hookimpl
def register_samplers(register):
    register("fixed_token", make_first_token, description="always the same token")
'''


@pytest.fixture
def plugin_file(tmp_path):
    path = tmp_path / "fixed_plugin.py"
    path.write_text(textwrap.dedent(PLUGIN_SOURCE))
    return path


def test_builtins_register_through_the_public_hook():
    entries = registry("samplers")
    assert {"greedy", "top_k", "top_p", "random", "beam", "contrastive"} <= set(entries)
    assert {entries[n].plugin for n in ("greedy", "top_k")} == {"samplerlab.samplers"}


def test_hookimpl_is_a_pluggy_marker_for_samplerlab():
    assert samplerlab.hookimpl.project_name == "samplerlab"


def test_a_plugin_file_adds_a_sampler_listed_by_the_cli(plugin_file, capsys):
    assert main(["samplers", "--plugin", str(plugin_file)]) == 0
    out = capsys.readouterr().out
    assert "fixed_token" in out and "fixed_plugin" in out and "token_id" in out


def test_parameters_of_a_plugin_are_validated_from_its_signature(plugin_file):
    get_plugin_manager().load(str(plugin_file))
    entry = registry("samplers")["fixed_token"]
    with pytest.raises(UserInputError, match="unknown parameter 'k'"):
        entry.validate({"k": 3})
    with pytest.raises(UserInputError, match="token_id"):
        entry.validate({"token_id": "x"})


def test_a_plugin_listed_in_a_spec_runs(plugin_file, base_spec, tmp_path):
    spec = {**base_spec, "plugins": [str(plugin_file)],
            "samplers": [{"name": "fixed_token", "params": {"token_id": 40}}], "metrics": []}
    result = samplerlab.run(samplerlab.load_spec(spec), results_root=tmp_path, progress=False)
    samples = samplerlab.load_samples(result.run_dir)
    assert all(ids == [40] * len(ids) and ids for ids in samples["token_ids"])


def test_a_name_taken_twice_warns_naming_the_plugin_and_keeps_the_first(tmp_path):
    path = tmp_path / "clash.py"
    path.write_text(textwrap.dedent('''
        import samplerlab

        @samplerlab.hookimpl
        def register_samplers(register):
            register("greedy", lambda: None, description="an impostor")
    '''))
    get_plugin_manager().load(str(path))
    with pytest.warns(PluginWarning, match="plugin 'clash' registered sampler 'greedy'"):
        entries = registry("samplers")
    assert entries["greedy"].plugin == "samplerlab.samplers"


def test_a_plugin_whose_hook_raises_warns_and_the_rest_works(tmp_path):
    path = tmp_path / "broken_hook.py"
    path.write_text("import samplerlab\n\n@samplerlab.hookimpl\ndef register_samplers(register):"
                    "\n    raise RuntimeError('boom')\n")
    get_plugin_manager().load(str(path))
    with pytest.warns(PluginWarning, match="broken_hook.*boom"):
        entries = registry("samplers")
    assert "top_k" in entries


class _BrokenEntryPoint(importlib.metadata.EntryPoint):
    pass


def test_an_entry_point_that_fails_to_import_warns_once_and_the_rest_works(monkeypatch):
    from samplerlab.plugins import PluginManager, reset_plugin_manager

    broken = importlib.metadata.EntryPoint(name="broken_plugin",
                                           value="samplerlab_no_such_module_xyz",
                                           group="samplerlab")
    real = importlib.metadata.entry_points

    def fake(**kwargs):
        found = list(real(**kwargs))
        return [*found, broken] if kwargs.get("group") == "samplerlab" else found

    monkeypatch.setattr(importlib.metadata, "entry_points", fake)
    reset_plugin_manager()
    with pytest.warns(PluginWarning, match="plugin 'broken_plugin'.*failed to import") as rec:
        manager = PluginManager()
    assert len([w for w in rec if "broken_plugin" in str(w.message)]) == 1
    assert "greedy" in manager.registry("samplers")


def test_the_cli_prints_a_plugin_warning_as_one_line(tmp_path, capsys):
    path = tmp_path / "clash2.py"
    path.write_text("import samplerlab\n\n@samplerlab.hookimpl\ndef register_samplers(register):"
                    "\n    register('top_k', lambda: None)\n")
    assert main(["samplers", "--plugin", str(path)]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == ["warning: plugin 'clash2' registered sampler 'top_k', which plugin "
                   "'samplerlab.samplers' already registered; kept the first"]


def test_plugins_command_lists_builtins_and_what_they_provide(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "samplerlab.samplers" in out and "built-in" in out and "greedy" in out


def test_a_missing_plugin_module_is_bad_input():
    with pytest.raises(UserInputError, match="not found"):
        get_plugin_manager().load("samplerlab_definitely_missing")


def test_warnings_do_not_fire_for_a_clean_setup():
    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginWarning)
        registry("samplers")


EXECUTOR_PLUGIN = '''
from typing import Annotated

from pydantic import Field

import samplerlab
from samplerlab.executors import LocalExecutor


class LabelledExecutor(LocalExecutor):
    """The local executor, recording its options in the manifest."""

    name = "labelled"

    def __init__(self, label, repeat):
        super().__init__()
        self.label, self.repeat = label, repeat

    def describe(self):
        return {"name": self.name, "label": self.label, "repeat": self.repeat}


def labelled(label: Annotated[str, Field(description="a label for the manifest")] = "none",
             repeat: Annotated[int, Field(ge=1, description="how many times")] = 1):
    """Cells here, with a label."""
    return LabelledExecutor(label, repeat)


@samplerlab.hookimpl
def register_executors(register):
    register("labelled", labelled)
'''


@pytest.fixture
def executor_plugin(tmp_path):
    """A third-party executor, loaded as an installed plugin is (before the CLI is built)."""
    path = tmp_path / "labelled_executor.py"
    path.write_text(EXECUTOR_PLUGIN)
    get_plugin_manager().load(str(path))
    return path


def test_a_plugin_executor_brings_its_options_to_the_run_command(executor_plugin, base_spec,
                                                                   write_spec, tmp_path, capsys):
    assert main(["run", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "--labelled-label" in help_text and "--labelled-repeat" in help_text
    assert "--ray-address" in help_text  # the built-in executor's options stay
    code = main(["run", str(write_spec(base_spec)), "--executor", "labelled",
                 "--labelled-label", "x", "--labelled-repeat", "2",
                 "--results-root", str(tmp_path), "--run-id", "l", "-q"])
    assert code == 0
    manifest = json.loads((tmp_path / "unit" / "l" / "manifest.json").read_text())
    assert manifest["executor"] == {"name": "labelled", "label": "x", "repeat": 2}
    assert manifest["status"] == "complete"


def test_bad_executor_names_and_options_are_one_line(executor_plugin, base_spec, write_spec,
                                                     capsys):
    path = str(write_spec(base_spec))
    capsys.readouterr()
    for args, message in [
            (["--labelled-label", "x"], "--labelled-label needs --executor labelled"),
            (["--executor", "ray", "--labelled-repeat", "2"],
             "--labelled-repeat needs --executor labelled"),
            (["--executor", "labeled"], "unknown executor 'labeled'; did you mean labelled")]:
        assert main(["run", path, *args]) == 2, args
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(err) == 1 and message in err[0], err
    assert main(["run", path, "--executor", "labelled", "--labelled-repeat", "0"]) == 2


def test_executors_are_listed_with_their_options(executor_plugin, capsys):
    assert main(["executors", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["local"]["plugin"] == rows["ray"]["plugin"] == "samplerlab.executors"
    assert [p["name"] for p in rows["ray"]["parameters"]] == ["address", "gpus_per_cell"]
    assert rows["labelled"]["plugin"] == "labelled_executor"
    assert rows["labelled"]["description"] == "Cells here, with a label."


def test_registering_the_ray_executor_does_not_import_ray():
    import subprocess
    import sys

    code = ("import sys; from samplerlab.plugins import registry; registry('executors'); "
            "from samplerlab.cli import build_app; build_app(); assert 'ray' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_an_installed_plugin_package_is_listed_and_runs_in_a_spec(installed_example, base_spec,
                                                                  tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(installed_example))
    from samplerlab.plugins import reset_plugin_manager

    reset_plugin_manager()
    assert main(["samplers"]) == 0
    listing = capsys.readouterr().out
    assert "top_a" in listing and "example" in listing
    spec = {**base_spec, "samplers": [{"name": "top_a", "params": {"a": [0.2, 0.5]}}]}
    result = samplerlab.run(samplerlab.load_spec(spec), results_root=tmp_path, progress=False)
    assert result.status == "complete"
    samples = samplerlab.load_samples(result.run_dir)
    assert sorted({p["a"] for p in samples["params"]}) == [0.2, 0.5]
    assert (samples["num_tokens"] > 0).all()


# ------------------------------------------------- quiet plugins (native log noise)
KERAS_HUB_PLUGIN = '''
import keras_hub  # starts TensorFlow, whose C++ logging writes to file descriptor 2
import samplerlab


@samplerlab.hookimpl
def register_samplers(register):
    register("greedy_again", keras_hub.samplers.GreedySampler)
'''

NOISY_PLUGIN = '''
import os
import warnings

import samplerlab

os.write(2, b"I0000 native notice from a C++ library\\n")
warnings.warn("plugin says: mind the gap")


@samplerlab.hookimpl
def register_samplers(register):
    pass
'''


@pytest.fixture(scope="module")
def keras_hub_plugin_site(tmp_path_factory, pip_install):
    """An installed plugin package (entry point) that imports keras_hub at module top."""
    source = tmp_path_factory.mktemp("kh-plugin")
    (source / "kh_plugin").mkdir()
    (source / "kh_plugin" / "__init__.py").write_text(KERAS_HUB_PLUGIN)
    (source / "pyproject.toml").write_text(textwrap.dedent('''
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "kh-plugin"
        version = "0.1.0"

        [project.entry-points.samplerlab]
        kh = "kh_plugin"

        [tool.setuptools]
        packages = ["kh_plugin"]
    '''))
    return pip_install(source, tmp_path_factory.mktemp("kh-site"))


def _samplerlab(args, env):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "samplerlab", *args], capture_output=True,
                          text=True, env=env, timeout=300)


def test_a_plugin_importing_keras_hub_keeps_bad_input_to_one_line(
        keras_hub_plugin_site, subprocess_env, write_spec):
    bad = write_spec({"name": "q", "prompts": ["a"], "samplers": ["gredy"]})
    env = subprocess_env(keras_hub_plugin_site)
    env.pop("SAMPLERLAB_TF_LOGS", None)
    proc = _samplerlab(["validate", str(bad)], env)
    assert proc.returncode == 2
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"error: {bad}:") and "unknown sampler 'gredy'" in line
    assert "greedy_again" in line  # the plugin was loaded (and started TensorFlow)


@pytest.mark.parametrize("show_logs", [False, True])
def test_plugin_warnings_reach_the_user_and_native_noise_does_not(
        show_logs, tmp_path, subprocess_env, write_spec):
    plugin = tmp_path / "noisy_plugin.py"
    plugin.write_text(NOISY_PLUGIN)
    spec = write_spec({"name": "q", "prompts": ["a"], "samplers": ["greedy"]})
    env = subprocess_env(SAMPLERLAB_TF_LOGS="1" if show_logs else "0")
    proc = _samplerlab(["validate", str(spec), "--plugin", str(plugin)], env)
    assert proc.returncode == 0, proc.stderr
    assert "plugin says: mind the gap" in proc.stderr
    assert ("native notice" in proc.stderr) is show_logs
