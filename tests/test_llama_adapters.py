"""The Llama-style decoding adapters give KerasHub's own results, family by family.

Each family (Llama, Llama 3 with rope scaling, Mistral with a sliding window, Qwen, Qwen 3,
Gemma, Gemma 2 with soft caps and a sliding window) is a tiny randomly initialised model
of KerasHub's own classes (``samplerlab.models.build_tiny_family`` with the options below),
fed token ids.
Its adapter keeps a copy-free grouped cache, so it must match KerasHub's
``call_with_cache`` (logits, hidden states, cache contents) and, through the engine's
generate loop, give ``generate``'s tokens on ragged prompts; contrastive search over the
shared cache must choose KerasHub's ``ContrastiveSampler``'s tokens.

Every family runs the forward-pass check (a decoding step past the prompts and the
sliding windows) and shared-cache contrastive search (a first step, then candidates).
Greedy, top-k, beam and KerasHub's contrastive search over the adapter, and bfloat16,
run on one model of each attention arithmetic (Llama 3: ``dot_product_attention``'s;
Gemma 2: Gemma's own, with every Gemma 2 option on): the family-specific arithmetic is
what the forward-pass check covers, and each generate comparison compiles two programs.
"""

from __future__ import annotations

import numpy as np
import pytest

from samplerlab.models.adapters import DecodingAdapter, adapter_for
from samplerlab.models.adapters.llama import GemmaAdapter, LlamaAdapter
from samplerlab.models.builders import build_tiny_family
from samplerlab.testing import tiny_batch

# Adapter cases: the tiny model of a family (samplerlab.models.builders.TINY) with what the
# family adds set so that the tests exercise it: rope scaling, a sliding window shorter
# than a test sequence, Qwen 3's explicit head_dim, Gemma 2's post-norms and soft caps.
VARIANTS: dict[str, tuple[str, dict]] = {
    "llama": ("llama", {"rope_position_scaling_factor": 2.0}),
    "llama3": ("llama3", {  # Llama 3.1 rope scaling
        "rope_max_wavelength": 500_000, "rope_frequency_adjustment_factor": 8.0,
        "rope_low_freq_factor": 1.0, "rope_high_freq_factor": 4.0,
        "rope_pretraining_sequence_length": 32}),
    "mistral": ("mistral", {"sliding_window": 6}),
    "qwen": ("qwen", {}),  # attention biases, tied embeddings
    "qwen3": ("qwen3", {"head_dim": 16}),
    "gemma": ("gemma", {"num_key_value_heads": 2}),
    "gemma2": ("gemma", {
        "head_dim": 16, "query_head_dim_normalize": False, "use_post_ffw_norm": True,
        "use_post_attention_norm": True, "attention_logit_soft_cap": 2.0,
        "final_logit_soft_cap": 5.0, "use_sliding_window_attention": True,
        "sliding_window_size": 6}),
}
FAMILIES = list(VARIANTS)
# One model of each attention arithmetic, every Gemma 2 option on.
REPRESENTATIVES = ["llama3", "gemma2"]
VOCABULARY = 256
# Prompts of 3, 9 and 5 tokens, 20 positions: past the sliding windows (6) of the
# Mistral and Gemma 2 models, so the windows shape the results.
PROMPT_LENGTHS = (3, 9, 5)
MAX_LENGTH = 20


def _adapter_class(family: str) -> type:
    return GemmaAdapter if family.startswith("gemma") else LlamaAdapter


def _samplers():
    import keras_hub

    return {
        "greedy": lambda: keras_hub.samplers.GreedySampler(),
        "top_k": lambda: keras_hub.samplers.TopKSampler(k=5, seed=3),
        "beam": lambda: keras_hub.samplers.BeamSampler(num_beams=3),
        "contrastive": lambda: keras_hub.samplers.ContrastiveSampler(k=4, alpha=0.6),
    }


@pytest.fixture(scope="module")
def model():
    """``model(family, dtype=None)``: the family's tiny causal LM, built once per module."""
    built = {}

    def get(family: str, dtype: str | None = None):
        if (family, dtype) not in built:
            name, options = VARIANTS[family]
            lm = build_tiny_family(name, **options, **({"dtype": dtype} if dtype else {}))
            lm.preprocessor = None  # fed token ids
            built[family, dtype] = lm
        return built[family, dtype]

    return get


@pytest.fixture(scope="module")
def inputs():
    return tiny_batch(MAX_LENGTH, PROMPT_LENGTHS, vocabulary_size=VOCABULARY)


@pytest.fixture(scope="module")
def reference():
    """KerasHub's tokens per (family, sampler), computed once: several tests compare to
    the same ``generate`` run."""
    return {}


def _keras_hubs(reference, keras_hub_tokens, lm, family, sampler, inputs):
    if (family, sampler) not in reference:
        reference[family, sampler] = keras_hub_tokens(lm, _samplers()[sampler](), inputs)
    return reference[family, sampler]


@pytest.mark.parametrize("family", FAMILIES)
def test_adapter_for_picks_the_familys_fast_adapter(model, family):
    adapter = adapter_for(model(family))
    assert type(adapter) is _adapter_class(family)
    assert adapter.fast and adapter.shared_cache
    assert adapter.describe()["adapter"] == adapter.name


@pytest.mark.parametrize("family", FAMILIES)
def test_logits_hidden_states_and_cache_match_keras_hubs(model, inputs, family):
    lm = model(family)
    x = inputs["token_ids"]
    results = []
    for adapter in (DecodingAdapter(lm), _adapter_class(family)(lm)):
        hidden, cache = adapter.start(x, inputs["padding_mask"])
        # Position 12 of 20: past each prompt, past the sliding windows.
        logits, step_hidden, cache = adapter.call_with_cache(x[:, 12:13], cache, 12)
        results.append((np.asarray(hidden), np.asarray(logits), np.asarray(step_hidden),
                        cache))
    (h0, l0, s0, c0), (h1, l1, s1, c1) = results
    np.testing.assert_allclose(h1, h0, atol=1e-5)
    np.testing.assert_allclose(l1, l0, atol=1e-5)
    np.testing.assert_allclose(s1, s0, atol=1e-5)
    # KerasHub: (batch, layers, 2, length, kv_heads, head_dim); ours: per layer
    # (key, value), each (batch, kv_heads, length, head_dim): never repeated per query head.
    kv_heads = lm.backbone.num_key_value_heads
    for layer, (key, value) in enumerate(c1):
        assert key.shape[1] == kv_heads
        np.testing.assert_allclose(np.transpose(key, (0, 2, 1, 3)), c0[:, layer, 0],
                                   atol=1e-5)
        np.testing.assert_allclose(np.transpose(value, (0, 2, 1, 3)), c0[:, layer, 1],
                                   atol=1e-5)


@pytest.mark.parametrize("sampler", ["greedy", "top_k", "beam", "contrastive"])
@pytest.mark.parametrize("family", REPRESENTATIVES)
def test_the_engine_gives_keras_hubs_tokens(model, inputs, reference, engine_tokens,
                                            keras_hub_tokens, family, sampler):
    lm = model(family)
    ours = engine_tokens(adapter_for(lm), _samplers()[sampler](), inputs)
    theirs = _keras_hubs(reference, keras_hub_tokens, lm, family, sampler, inputs)
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("family", FAMILIES)
def test_contrastive_search_over_the_shared_cache_is_keras_hubs(
        model, inputs, reference, engine_tokens, keras_hub_tokens, family):
    """samplerlab's contrastive sampler scores its candidates against one shared cache
    (``candidate_forward``/``advance``) and still picks KerasHub's tokens."""
    from samplerlab.samplers.contrastive import FastContrastiveSampler

    lm = model(family)
    ours = engine_tokens(adapter_for(lm), FastContrastiveSampler(k=4, alpha=0.6), inputs)
    theirs = _keras_hubs(reference, keras_hub_tokens, lm, family, "contrastive", inputs)
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("family", REPRESENTATIVES)
def test_bfloat16_generate_is_keras_hubs_too(model, inputs, engine_tokens, keras_hub_tokens,
                                             family):
    """Half-precision compute: each family's attention dtypes (float32 logits for the
    Llama family, compute-dtype logits and a float32 softmax for Gemma) as KerasHub's."""
    lm = model(family, "bfloat16")
    adapter = adapter_for(lm)
    assert adapter.fast and adapter.causal_lm.compute_dtype == "bfloat16"
    make = _samplers()["greedy"]
    np.testing.assert_array_equal(engine_tokens(adapter, make(), inputs),
                                  keras_hub_tokens(lm, make(), inputs))


def test_a_subclass_of_a_family_runs_keras_hubs_path(model):
    """A subclass may change ``call_with_cache``: only KerasHub's exact classes are run."""
    import keras_hub

    class MyLlama(keras_hub.models.Llama3CausalLM):
        pass

    lm = MyLlama(backbone=model("llama3").backbone, preprocessor=None)
    assert not LlamaAdapter.supports(lm)
    assert type(adapter_for(lm)) is DecodingAdapter


def test_where_attention_would_be_a_flash_kernel_keras_hubs_path_runs(model, monkeypatch):
    """On a TPU (or a GPU in half precision) ``dot_product_attention`` may run a flash
    kernel, whose arithmetic the adapter does not reproduce."""
    import jax

    lm = model("llama3")
    assert LlamaAdapter.supports(lm)
    monkeypatch.setattr(jax, "default_backend", lambda: "tpu")
    assert not LlamaAdapter.supports(lm)
    assert not adapter_for(lm).fast
