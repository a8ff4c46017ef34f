"""The CLI verbs other than run: validate, schema, samplers, generate, --version."""

from __future__ import annotations

import json

import jsonschema
import yaml

from samplerlab import __version__
from samplerlab.cli import main


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"samplerlab {__version__}"


def test_schema_is_json_schema_that_accepts_the_shipped_specs(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert {"name", "model", "prompts", "samplers", "metrics"} <= set(schema["properties"])
    for name in ("quickstart", "repetition"):
        spec = yaml.safe_load(open(f"experiments/{name}.yaml", encoding="utf-8"))
        jsonschema.validate(spec, schema)


def test_the_repetition_example_validates_with_its_dry_cells(capsys):
    assert main(["validate", "experiments/repetition.yaml"]) == 0
    out = capsys.readouterr().out
    assert "6 cells" in out and "processors=dry0.8" in out


def test_validate_lists_the_expanded_cells_without_loading_a_model(write_spec, base_spec,
                                                                  capsys, monkeypatch):
    import samplerlab.models as models

    monkeypatch.setattr(models, "load_model", lambda *a, **k: 1 / 0)
    spec = {**base_spec, "samplers": ["greedy", {"name": "top_p", "params": {"p": [0.5, 0.9]}}]}
    assert main(["validate", str(write_spec(spec))]) == 0
    out = capsys.readouterr().out
    assert "3 cells, 6 generations" in out
    assert "001-top_p-p=0.5" in out and "002-top_p-p=0.9" in out


def test_overrides_pass_through_validation(write_spec, base_spec, capsys):
    path = write_spec(base_spec)
    assert main(["validate", str(path), "-o", "samplers.0=top_k", "-o",
                 "samplers.0.params.k=[3,4]"]) == 0
    assert "000-top_k-k=3" in capsys.readouterr().out


def test_generate_one_liner(tiny_preset, capsys):
    code = main(["generate", "I like basketball", "--preset", str(tiny_preset), "--sampler",
                 "top_k", "-p", "k=5", "--max-length", "12", "--seed", "1"])
    assert code == 0
    assert capsys.readouterr().out.startswith("I like basketball")


def test_generate_refuses_an_unknown_sampler_in_one_line(capsys):
    assert main(["generate", "hi", "--sampler", "nucleus"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown sampler 'nucleus'") and "\n" not in err


def test_generate_refuses_a_bad_parameter(capsys):
    assert main(["generate", "hi", "--sampler", "top_p", "-p", "p=2"]) == 2
    assert "p: input should be less than or equal to 1" in capsys.readouterr().err


def test_unreachable_named_preset_fails_with_one_actionable_line(capsys, monkeypatch):
    import keras_hub

    def offline(*args, **kwargs):
        raise ConnectionError("Failed to resolve 'www.kaggle.com'")

    monkeypatch.setattr(keras_hub.models.CausalLMPreprocessor, "from_preset", offline)
    assert main(["generate", "hi", "--preset", "gpt2_base_en", "--sampler", "greedy"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "could not download KerasHub preset 'gpt2_base_en'" in err
    assert "model.preset=samplerlab:tiny-en" in err


def test_validate_imports_neither_keras_nor_jax(write_spec, subprocess_env):
    """Validating stays fast (~0.6 s): factories import their Keras classes only when built."""
    import subprocess
    import sys

    samplers = ["greedy", "top_k", "top_p", "random", "beam", "contrastive", "mirostat",
                "xtc", {"name": "chain", "params": {"processors": [
                    {"dry": 0.8}, {"repetition_penalty": 1.2}, {"top_k": 40}]}}]
    spec = write_spec({"name": "v", "prompts": ["a"], "samplers": samplers})
    code = ("import sys; from samplerlab.cli import main; code = main(['validate', sys.argv[1]]);"
            "print(code, 'keras' in sys.modules, 'jax' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code, str(spec)], capture_output=True,
                          text=True, env=subprocess_env(), timeout=120)
    assert proc.stdout.splitlines()[-1] == "0 False False", proc.stdout + proc.stderr


def test_the_app_has_every_command_when_a_registry_was_built_first():
    """Asking for a registry before the CLI (as the Python API does) still gives an app
    with every built-in command: building the registry imports the command modules,
    which import samplerlab.cli, which must not build its app half-way through."""
    import subprocess
    import sys

    code = ("from samplerlab.plugins import registry\n"
            "registry('samplers')\n"
            "from typer.testing import CliRunner\n"
            "from samplerlab.cli import app\n"
            "result = CliRunner().invoke(app, ['samplers', '--json'])\n"
            "assert result.exit_code == 0, result.output\n"
            "print('top_p' in result.output)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("True")
