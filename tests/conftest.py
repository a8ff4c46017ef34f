"""Shared fixtures: a tiny real-KerasHub GPT-2 preset on disk, and spec writing helpers."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

os.environ.setdefault("KERAS_BACKEND", "jax")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
EXAMPLE_PLUGIN = REPO / "plugins" / "samplerlab-example"


@pytest.fixture(scope="session")
def tiny_preset(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer GPT-2 (real GPT-2 vocabulary) saved with save_to_preset."""
    from samplerlab.models import build_tiny_causal_lm, save_preset

    path = tmp_path_factory.mktemp("presets") / "tiny"
    return save_preset(build_tiny_causal_lm(seed=0), path)


@pytest.fixture(scope="session")
def tiny_model(tiny_preset):
    """The tiny preset loaded through the same from_preset path users hit (shared: a test
    must leave it as it found it, see ``_shared_models_unchanged``)."""
    from samplerlab.models import load_model

    return _shared("tiny_model", load_model(str(tiny_preset), sequence_length=64))


@pytest.fixture(scope="session")
def embedded_model():
    """The trained embedded model ``samplerlab:tiny-en`` (realistic distributions; shared
    like ``tiny_model``)."""
    from samplerlab.models import load_model

    return _shared("embedded_model", load_model("samplerlab:tiny-en", sequence_length=64))


# ------------------------------------------------------------- shared-model guard
# The session's shared models (fixture name -> [model, state]), and what compile() and
# generate() set on a KerasHub CausalLM (its Keras Trainer's compile state included).
SHARED_MODELS: dict[str, list] = {}
COMPILED_STATE = ("sampler", "generate_function", "optimizer", "loss", "compiled",
                  "jit_compile", "train_function", "test_function", "predict_function")


def _shared(name: str, model):
    """Register ``model`` as the shared model of fixture ``name``, with its state now."""
    SHARED_MODELS[name] = [model, _model_state(model)]
    return model


def _describe(value) -> str:
    """A value as the guard compares it: plain values by value, objects by identity."""
    if value is None or isinstance(value, bool | int | float | str):
        return repr(value)
    return f"{type(value).__name__} at {id(value):#x}"


def _model_state(model) -> dict[str, str]:
    """A digest of every weight of ``model``'s CausalLM and its compiled state."""
    lm = model.causal_lm
    state = {f"weight {w.path}": hashlib.blake2b(np.ascontiguousarray(np.asarray(w.value)),
                                                 digest_size=16).hexdigest()
             for w in lm.weights}
    state.update({name: _describe(getattr(lm, name, None)) for name in COMPILED_STATE})
    return state


def _changes(before: dict[str, str], after: dict[str, str]) -> str:
    names = sorted(set(before) | set(after), key=lambda n: (n.startswith("weight"), n))
    changed = [n for n in names if before.get(n) != after.get(n)]
    weights = [n.removeprefix("weight ") for n in changed if n.startswith("weight ")]
    parts = [f"{n} ({before.get(n, 'absent')} -> {after.get(n, 'absent')})"
             for n in changed if not n.startswith("weight ")]
    if weights:
        parts.append(f"{len(weights)} weight(s): {', '.join(weights[:3])}"
                     f"{', ...' if len(weights) > 3 else ''}")
    return "; ".join(parts)


@pytest.fixture(autouse=True)
def _shared_models_unchanged(request):
    """Fail the test that changed a shared model's weights or compiled state (the test
    itself or a fixture it uses): later tests would otherwise see what it left."""
    yield
    changed = []
    for name, entry in SHARED_MODELS.items():
        if name not in request.fixturenames:
            continue  # a test that does not use the model cannot have changed it
        model, before = entry
        after = _model_state(model)
        if after != before:
            changed.append(f"{name}: {_changes(before, after)}")
            entry[1] = after  # the next test is judged on its own changes only
    if changed:
        pytest.fail("this test changed a shared session model; give it its own load "
                    "(load_model(str(tiny_preset)), ...) or leave the model as it found it: "
                    + " | ".join(changed), pytrace=False)


@pytest.fixture
def engine_tokens():
    """``run(adapter, sampler, inputs, stop=None, programs=None)``: token ids from
    samplerlab's engine (a compiled generate program over ``adapter``), as NumPy. Pass a
    :class:`~samplerlab.engine.programs.ProgramCache` to count or share compiles."""
    from samplerlab.engine.programs import ProgramCache

    def run(adapter, sampler, inputs, stop=None, programs=None):
        programs = programs if programs is not None else ProgramCache(adapter, persistent=False)
        out = programs.get(sampler, inputs, stop)(sampler, inputs)
        return np.asarray(out["token_ids"])

    return run


@pytest.fixture
def keras_hub_tokens():
    """``run(lm, sampler, inputs, stop=None)``: token ids from KerasHub's own compiled
    ``generate`` function (``compile(sampler=...)`` + ``make_generate_function()``).

    It compiles a sibling task around ``lm``'s backbone (the same weights, not a copy), so
    ``lm`` itself, a shared session model, is left as it was."""

    def run(lm, sampler, inputs, stop=None):
        sibling = type(lm)(backbone=lm.backbone, preprocessor=lm.preprocessor)
        sibling.compile(sampler=sampler)
        outputs = sibling.make_generate_function()(inputs, stop_token_ids=stop)
        return np.asarray(outputs["token_ids"])

    return run


@pytest.fixture(autouse=True)
def _fresh_plugins():
    """Each test starts from the built-in and installed plugins only."""
    from samplerlab.plugins import reset_plugin_manager

    reset_plugin_manager()
    yield
    reset_plugin_manager()


@pytest.fixture
def write_spec(tmp_path):
    """Write a spec (dict or YAML text) to a file and return its path."""

    def write(content, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def base_spec(tiny_preset) -> dict:
    """A small valid spec on the tiny preset; tests copy and change it."""
    return {
        "name": "unit",
        "seed": 7,
        "model": {"preset": str(tiny_preset), "sequence_length": 64},
        "prompts": ["I like basketball", "My trip to Yosemite was"],
        "generation": {"max_length": 16, "samples_per_prompt": 1, "batch_size": 2},
        "samplers": ["greedy"],
        "metrics": ["rep_n"],
    }


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"../shared not present at {SHARED}; skipping tests that need it")
    return SHARED


def _pip_install(source: Path, target: Path) -> Path:
    """``pip install`` a package directory (offline, no deps) into a private site directory.

    Tests put ``target`` on ``sys.path`` (``monkeypatch.syspath_prepend``, or PYTHONPATH for
    a subprocess): the package's entry points in group ``samplerlab`` are then found exactly
    as for a user's installed package.
    """
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", "--target", str(target),
                    str(source)], check=True, capture_output=True)
    return target


def _subprocess_env(*paths: Path, **extra: str) -> dict[str, str]:
    """The environment for a child ``python``: ``paths`` and this checkout first on its path."""
    import samplerlab

    checkout = Path(samplerlab.__file__).resolve().parents[1]
    python_path = [str(p) for p in (*paths, checkout)]
    if os.environ.get("PYTHONPATH"):
        python_path.append(os.environ["PYTHONPATH"])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(python_path), **extra}


@pytest.fixture(scope="session")
def installed_example(tmp_path_factory) -> Path:
    """The example plugin pip-installed into a private site directory (see pip_install)."""
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources.
    source = tmp_path_factory.mktemp("src") / EXAMPLE_PLUGIN.name
    shutil.copytree(EXAMPLE_PLUGIN, source,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    return _pip_install(source, tmp_path_factory.mktemp("site"))


@pytest.fixture(scope="session")
def pip_install():
    """``pip_install(source_dir, target_dir)``: see :func:`_pip_install`."""
    return _pip_install


@pytest.fixture(scope="session")
def subprocess_env():
    """``subprocess_env(*paths, **variables)``: see :func:`_subprocess_env`."""
    return _subprocess_env

@pytest.fixture(scope="session")
def family_preset(tmp_path_factory):
    """``family_preset(name)``: a tiny model of a family of ``samplerlab.models.family.
    FAMILIES`` saved with ``save_to_preset``, built once per session."""
    from samplerlab.models import build_tiny_family, save_preset

    root = tmp_path_factory.mktemp("family-presets")
    built: dict[str, Path] = {}

    def preset(name: str) -> Path:
        if name not in built:
            built[name] = save_preset(build_tiny_family(name, sequence_length=32), root / name)
        return built[name]

    return preset
