"""samplerlab.testing: every built-in passes the conformance check, broken samplers fail it,
and the example third-party plugin installs, is discovered and passes it too."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from samplerlab.testing import (  # noqa: F401 - the fixtures, as the pytest plugin gives them
    ConformanceError,
    check_sampler,
    processor_conformance,
    sampler_conformance,
)

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "plugins" / "samplerlab-example"
CHAIN = [{"repetition_penalty": 1.3}, {"no_repeat_ngram_size": 2}, {"top_k": 20},
         {"top_p": 0.9}, {"min_p": 0.02}, {"temperature": 0.8}]
FULL_CHECKS = ["shape and dtype", "prompt kept", "determinism (re-seeded)", "stop tokens",
               "determinism (fresh sampler)"]

@pytest.mark.parametrize("name, params, options", [
    ("greedy", {}, {}),
    # Greedy pick: the strictest variant (batch consistency too); sampling chains are
    # checked for seeding in test_chain.py.
    ("chain", {"processors": CHAIN, "pick": "greedy"}, {"deterministic": True}),
    ("mirostat", {"tau": 3.0}, {}),
    ("xtc", {"threshold": 0.02, "probability": 0.7}, {}),
    ("top_k", {"k": 5}, {}),
    ("top_p", {"p": 0.5}, {}),
    ("random", {}, {}),
    ("contrastive", {"k": 3}, {}),
    # Beam search runs until every hypothesis stops (KerasHub's rule): no strict stop
    # check. On prompts of different lengths each row keeps its own beams (test below).
    ("beam", {"num_beams": 2}, {"strict_stop": False}),
    # The kit attaches its tiny model as the declared draft (no preset is loaded).
    ("speculative", {"draft": "samplerlab:tiny-en", "num_speculative_tokens": 2}, {}),
])
def test_every_builtin_sampler_conforms(sampler_conformance, name, params, options):  # noqa: F811
    report = sampler_conformance(name, params, **options)
    assert report.checks[:5] == FULL_CHECKS
    deterministic = options.get("deterministic", name in ("greedy", "contrastive", "beam"))
    assert ("batch consistency" in report.checks) == deterministic
    assert report.checks[-1] == "sampler contract"
    assert report.capabilities.structure is not None


def test_keras_hubs_beam_sampler_fails_batch_consistency_on_ragged_prompts():
    """The defect samplerlab's ``beam`` fixes (tests/test_beam.py): KerasHub's
    BeamSampler scores beams of rows still inside their prompt."""
    import keras_hub

    def keras_hub_beam():
        return keras_hub.samplers.BeamSampler(num_beams=2)

    with pytest.raises(ConformanceError, match="failed 'batch consistency'"):
        check_sampler(keras_hub_beam, strict_stop=False)


@pytest.mark.parametrize("name, params", [
    ("no_repeat_ngram_size", {"n": 2}),
    ("dry", {"multiplier": 2.0, "allowed_length": 1, "sequence_breakers": [[5], [7, 9]]}),
])
def test_a_processor_conforms_alone_in_a_chain(processor_conformance, name, params):  # noqa: F811
    # The n-gram ban and DRY are the processors with the most index arithmetic inside the
    # loop; the others run in CHAIN above and against NumPy references in
    # test_processors.py (DRY: test_dry.py).
    report = processor_conformance(name, params)
    assert report.checks == ["processor output", *FULL_CHECKS, "sampler contract"]


# ------------------------------------------------------ the kit catches bad samplers
def unseeded(seed=None):
    """Ignores its seed: a new random stream every time it is built."""
    import keras_hub

    return keras_hub.samplers.RandomSampler(seed=None)


def ignores_stop_tokens():
    import keras_hub

    class NoStop(keras_hub.samplers.GreedySampler):
        def __call__(self, *args, stop_token_ids=None, **kwargs):
            return super().__call__(*args, stop_token_ids=None, **kwargs)

    return NoStop()


def batch_dependent():
    """Greedy on the batch-mean distribution: rows influence each other."""
    import keras
    import keras_hub

    class Mean(keras_hub.samplers.GreedySampler):
        def get_next_token(self, probabilities):
            mean = keras.ops.mean(probabilities, axis=0, keepdims=True)
            return keras.ops.argmax(probabilities + mean, axis=-1)

    return Mean()


@pytest.mark.parametrize("factory, failed", [
    (unseeded, "determinism (fresh sampler)"),
    (ignores_stop_tokens, "stop tokens"),
    (batch_dependent, "batch consistency"),
])
def test_a_broken_sampler_fails_the_check_it_breaks(factory, failed):
    with pytest.raises(ConformanceError, match=re.escape(f"failed '{failed}'")):
        check_sampler(factory)


# ----------------------------------------------------------- the pytest plugin
def test_samplerlab_declares_the_pytest_plugin_entry_point():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = project.get("entry-points", {}).get("pytest11")
    assert declared == {"samplerlab": "samplerlab.testing"}, (
        'add to pyproject.toml: [project.entry-points.pytest11] samplerlab = "samplerlab.testing"')


def test_importing_the_kit_does_not_import_keras():
    code = "import sys, samplerlab.testing; print('keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"


# --------------------------------------------------------- the example plugin
def test_the_example_plugin_installs_and_registers_through_its_entry_point(
        installed_example, monkeypatch):
    from typer.testing import CliRunner

    from samplerlab.cli import app
    from samplerlab.plugins import registry, reset_plugin_manager

    monkeypatch.syspath_prepend(str(installed_example))
    reset_plugin_manager()
    samplers, processors = registry("samplers"), registry("processors")
    assert samplers["top_a"].plugin == "example"
    assert processors["top_a"].plugin == "example"
    assert [p.name for p in samplers["top_a"].parameters()] == ["a", "temperature", "seed"]
    listing = CliRunner().invoke(app, ["samplers"], terminal_width=200)
    assert listing.exit_code == 0
    assert "top_a" in listing.output and "example" in listing.output
    # Its processor is usable in any chain, validated like the built-ins.
    samplers["chain"].validate({"processors": [{"top_a": 0.3}]})
    with pytest.raises(Exception, match="less than or equal to 1"):
        samplers["chain"].validate({"processors": [{"top_a": 3}]})
    # And a spec's parameters build a sampler that generates (the example's own tests run
    # the full conformance check).
    import numpy as np

    from samplerlab.testing import tiny_batch, tiny_causal_lm

    model, batch = tiny_causal_lm(), tiny_batch()
    model.compile(sampler=samplers["top_a"].build(a=0.3, seed=1))
    tokens = np.asarray(model.generate(batch, stop_token_ids=None)["token_ids"])
    assert tokens.shape == batch["token_ids"].shape
    np.testing.assert_array_equal(tokens[batch["padding_mask"]],
                                  batch["token_ids"][batch["padding_mask"]])
