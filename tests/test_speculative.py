"""Speculative decoding: the target's greedy tokens under greedy acceptance, the base
sampler's distribution under rejection sampling, every draft token accepted when the
draft is the target, and drafts that do not fit refused before anything generates."""

from __future__ import annotations

import json

import numpy as np
import pytest

from samplerlab.engine.programs import ProgramCache
from samplerlab.engine.seeds import reset_sampler_seed
from samplerlab.models.adapters import adapter_for
from samplerlab.samplers.speculative_sampler import SpeculativeSampler

PROMPTS = ["My trip to Yosemite was", "The", "Once upon a time in a land"]


@pytest.fixture(scope="module")
def draft_preset(tmp_path_factory):
    """A 1-layer GPT-2 with the tiny target's tokenizer (random weights of its own)."""
    from samplerlab.models import build_tiny_causal_lm, save_preset

    return save_preset(build_tiny_causal_lm(num_layers=1, seed=1),
                       tmp_path_factory.mktemp("drafts") / "draft")


@pytest.fixture(scope="module")
def draft(draft_preset):
    from samplerlab.models import load_model

    return load_model(str(draft_preset), sequence_length=64)


def _speculative(draft_adapter, gamma=3, base=None, seed=None):
    sampler = SpeculativeSampler(gamma, base_sampler=base, seed=seed)
    sampler.attach_models({"draft": draft_adapter})
    return sampler


def _top_k(k=5, temperature=1.0, seed=1):
    from samplerlab.samplers.top_k import TopKSampler

    return TopKSampler(k=k, temperature=temperature, seed=seed)


# ------------------------------------------------------------------- greedy
def test_greedy_acceptance_gives_exactly_the_targets_greedy_tokens(tiny_model, draft,
                                                                   engine_tokens):
    import keras_hub

    inputs = tiny_model.preprocessor.generate_preprocess(PROMPTS, sequence_length=32)
    stop = (tiny_model.end_token_id,)
    greedy = engine_tokens(tiny_model.adapter, keras_hub.samplers.GreedySampler(), inputs, stop)
    sampler = _speculative(draft.adapter, 4)
    np.testing.assert_array_equal(engine_tokens(tiny_model.adapter, sampler, inputs, stop),
                                  greedy)
    stats = sampler.last_loop_stats()
    assert stats["proposed"] > 0 and stats["target_passes"] < 32


def test_verification_across_attention_buckets_keeps_greedys_tokens(tiny_model, draft,
                                                                     engine_tokens):
    """max_length 150: the k + 1 verified positions attend over 64-, 128- and 150-key
    prefixes of the cache (a pass can straddle two buckets)."""
    import keras_hub

    inputs = tiny_model.preprocessor.generate_preprocess(PROMPTS, sequence_length=150)
    greedy = engine_tokens(tiny_model.adapter, keras_hub.samplers.GreedySampler(), inputs)
    np.testing.assert_array_equal(
        engine_tokens(tiny_model.adapter, _speculative(draft.adapter, 4), inputs), greedy)


def test_it_runs_under_keras_hubs_own_generate_too(tiny_model, draft, keras_hub_tokens):
    import keras_hub

    inputs = tiny_model.preprocessor.generate_preprocess(PROMPTS, sequence_length=24)
    greedy = keras_hub_tokens(tiny_model.causal_lm, keras_hub.samplers.GreedySampler(), inputs)
    ours = keras_hub_tokens(tiny_model.causal_lm, _speculative(draft.adapter, 2), inputs)
    np.testing.assert_array_equal(ours, greedy)


def test_a_draft_that_is_the_target_has_every_token_accepted(tiny_model, engine_tokens):
    """Greedy acceptance here; under rejection sampling in the run test below, whose draft
    is the target too."""
    inputs = tiny_model.preprocessor.generate_preprocess(PROMPTS, sequence_length=32)
    sampler = _speculative(tiny_model.adapter, 4)
    engine_tokens(tiny_model.adapter, sampler, inputs)
    stats = sampler.last_loop_stats()
    assert stats["proposed"] > 0
    assert stats["accepted"] == stats["proposed"]


# -------------------------------------------------------------- stochastic
@pytest.fixture(scope="module")
def tiny_pair():
    """The conformance kit's 96-token GPT-2 as the target, and a draft that is a noisy
    copy of it (acceptance ~0.6: accepted drafts, residual draws and the all-accepted
    token all occur)."""
    import keras_hub

    from samplerlab.testing import tiny_causal_lm

    target = tiny_causal_lm()
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=96, num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32,
        max_sequence_length=64, dropout=0.0)
    draft = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)
    rng = np.random.default_rng(0)
    draft.set_weights([w + 0.1 * w.std() * rng.normal(size=w.shape)
                       for w in target.get_weights()])
    return adapter_for(target), adapter_for(draft)


def _draws(adapter, sampler, batch, calls):
    """Tokens 3..7 of ``batch * calls`` generations of one 3-token prompt."""
    prompt = np.zeros((batch, 8), dtype="int32")
    prompt[:, :3] = [5, 17, 42]
    inputs = {"token_ids": prompt, "padding_mask": prompt > 0}
    program = ProgramCache(adapter, persistent=False).get(sampler, inputs, None)
    out = []
    for call in range(calls):
        reset_sampler_seed(sampler, 1000 + call)
        out.append(np.asarray(program(sampler, inputs)["token_ids"])[:, 3:])
    return np.concatenate(out)


def _p_values(a, b):
    """Chi-square homogeneity test per position; tokens seen fewer than 10 times pooled."""
    from scipy import stats

    values = []
    for position in range(a.shape[1]):
        table = np.stack([np.bincount(a[:, position], minlength=96),
                          np.bincount(b[:, position], minlength=96)])
        rare = table.sum(axis=0) < 10
        table = np.concatenate([table[:, ~rare], table[:, rare].sum(axis=1, keepdims=True)],
                               axis=1)
        values.append(stats.chi2_contingency(table[:, table.sum(axis=0) > 0])[1])
    return np.array(values)


@pytest.mark.parametrize("base", ["random", "top_k"])
def test_rejection_sampling_draws_the_base_samplers_distribution(tiny_pair, base):
    from samplerlab.samplers.random import RandomSampler

    target, draft = tiny_pair

    def make_base():
        return (RandomSampler(temperature=0.01, seed=1) if base == "random"
                else _top_k(k=8, temperature=0.01))

    alone = _draws(target, make_base(), 64, 30)
    speculative = _speculative(draft, 3, make_base(), seed=2)
    # Batch 4: rows advance together by the fewest accepted tokens, and still often
    # accept all three.
    ours = _draws(target, speculative, 4, 480)
    assert _p_values(alone, ours).min() > 1e-3
    # The test tells the draft from the target: the draft alone fails it.
    assert _p_values(alone, _draws(draft, make_base(), 64, 30)).max() < 1e-6


def test_the_bases_distributions_keep_keras_hubs_token_sets():
    import keras_hub

    from samplerlab.samplers.top_p import TopPSampler

    logits = np.random.default_rng(3).normal(size=(4, 50)).astype("float32") * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    order = np.argsort(-probs, axis=1)
    top_k = SpeculativeSampler(2, base_sampler=keras_hub.samplers.TopKSampler(k=7))
    kept = np.asarray(top_k.distribution(logits)) > 0
    np.testing.assert_array_equal(kept.sum(axis=1), 7)
    assert all(kept[r, order[r, :7]].all() for r in range(4))
    top_p = SpeculativeSampler(2, base_sampler=TopPSampler(p=0.6))
    dist = np.asarray(top_p.distribution(logits))
    for r in range(4):   # KerasHub: keep a token when the mass sorted before it is <= p
        before = np.concatenate([[0.0], np.cumsum(probs[r, order[r]])[:-1]])
        np.testing.assert_array_equal(dist[r, order[r]] > 0, before <= 0.6)
        np.testing.assert_allclose(dist[r].sum(), 1.0, rtol=1e-6)


# ------------------------------------------------------------- the plugin
def test_it_conforms_with_greedy_and_with_sampled_acceptance(sampler_conformance, tiny_pair):
    from samplerlab.samplers.top_p import TopPSampler

    _, draft = tiny_pair

    def greedy_speculative():
        return _speculative(draft, 3)

    def sampled_speculative(seed=None):
        return _speculative(draft, 2, TopPSampler(p=0.9), seed=seed)

    assert "batch consistency" in sampler_conformance(greedy_speculative).checks
    sampler_conformance(sampled_speculative)


def test_the_base_is_validated_and_its_lists_are_sweeps():
    from samplerlab.errors import ParameterError
    from samplerlab.plugins import registry

    entry = registry("samplers")["speculative"]
    with pytest.raises(ParameterError, match="cannot be a speculative base"):
        entry.validate({"draft": "samplerlab:tiny-en", "base": "beam"})
    with pytest.raises(ParameterError, match="top_p base takes no k"):
        entry.validate({"draft": "samplerlab:tiny-en", "base": {"name": "top_p",
                                                                 "params": {"k": 3}}})
    with pytest.raises(ParameterError, match="greater than 0"):
        entry.validate({"draft": "samplerlab:tiny-en", "base": {"name": "random", "params": {
            "temperature": 0}}})
    from samplerlab.spec.cells import expand_cells
    from samplerlab.spec.schema import SamplerSpec

    cells = expand_cells([SamplerSpec(name="speculative", params={
        "draft": "samplerlab:tiny-en", "base": {"name": "top_k", "params": {"k": [5, 10]}}})],
        registry("samplers"))
    assert [c.params["base"]["params"]["k"] for c in cells] == [5, 10]


def test_a_run_records_acceptance_and_the_speedup_over_its_base(base_spec, write_spec,
                                                                 tmp_path, tiny_preset):
    import samplerlab

    spec = {**base_spec, "metrics": ["length"], "samplers": [
        {"name": "speculative", "params": {"draft": str(tiny_preset),
                                           "num_speculative_tokens": 3,
                                           "base": {"name": "top_k", "params": {"k": 4}}}}]}
    result = samplerlab.run(write_spec(spec), results_root=tmp_path, progress=False)
    assert result.status == "complete"
    record = json.loads(next((result.run_dir / "cells").glob("*.json")).read_text())
    speculative = record["timing"]["speculative"]
    assert speculative["acceptance_rate"] == 1.0     # the draft is the target
    assert speculative["accepted_per_pass"] > 1
    assert speculative["speedup"] > 0 and speculative["base_tokens_per_s"] > 0
    row = result.metrics.iloc[0]
    assert row["acceptance_rate"] == 1.0 and row["speedup"] == pytest.approx(
        speculative["speedup"])


def test_a_draft_with_another_vocabulary_stops_the_run_before_generation(
        base_spec, write_spec, tmp_path, capsys, monkeypatch):
    import keras_hub

    from samplerlab.cli import main
    from samplerlab.models import build_tiny_causal_lm, save_preset

    pieces = ["<|endoftext|>", *"abcdefgh", "\u0120", "ab"]   # \u0120: byte-level BPE's space
    tokenizer = keras_hub.models.GPT2Tokenizer(
        vocabulary={piece: i for i, piece in enumerate(pieces)}, merges=["a b"])
    other = save_preset(build_tiny_causal_lm(tokenizer=tokenizer), tmp_path / "other")
    spec = {**base_spec, "samplers": [{"name": "speculative", "params": {"draft": str(other)}}]}
    monkeypatch.chdir(tmp_path)
    code = main(["run", str(write_spec(spec)), "--results-root", str(tmp_path / "results")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1
    assert "samplers[0].params.draft" in err[0] and "does not share the target's tokenizer" \
        in err[0] and "11 tokens against the target's 50257" in err[0]
    assert not (tmp_path / "results").exists()
