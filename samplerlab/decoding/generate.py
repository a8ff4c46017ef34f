"""The generate step: KerasHub's ``CausalLM.generate_step``, run over a decoding adapter.

It is KerasHub's loop, line for line: seed the cache with one forward pass over the
prompt batch, start at the shortest prompt's end, and let the sampler call ``next`` once
per position (rows still inside a longer prompt keep their prompt tokens); then mark each
row's tokens after its first new stop token as padding. What differs is only where the
cached forward pass comes from (the model's :class:`~samplerlab.models.adapters.base.
DecodingAdapter`), and that samplers whose loop takes it (``loop == "adapter"`` in their
:class:`~samplerlab.decoding.contract.SamplerCapabilities`) receive the adapter, so
contrastive search can score its candidates over one shared cache.

With step observers (:mod:`samplerlab.decoding.observers`) a sampler that keeps KerasHub's
base loop (``loop == "base"``: greedy, top-k, top-p, random, and any sampler that only
overrides ``get_next_token``) runs through samplerlab's copy of that loop
(:func:`~samplerlab.decoding.loop.history_loop`, token for token the same), which hands
its final cache back, so the observers' final states become outputs of the program.
Without observers nothing of this is traced.
"""

from __future__ import annotations

from typing import Any

from keras import ops

from samplerlab.decoding.contract import capabilities
from samplerlab.decoding.loop import history_loop
from samplerlab.decoding.observers import ObservedAdapter, StepObserver
from samplerlab.models import internals


def generate_step(adapter: Any, sampler: Any, inputs: dict[str, Any],
                  stop_token_ids: tuple[int, ...] | None = None,
                  observers: tuple[StepObserver, ...] = (),
                  prefill: int | None = None) -> dict[str, Any]:
    """Generate for one batch; traceable (the engine compiles it with ``jax.jit``).

    Args:
        adapter: the model's decoding adapter.
        sampler: a ``keras_hub.samplers.Sampler``.
        inputs: ``token_ids`` and ``padding_mask``, ``(batch, max_length)``, as
            ``CausalLMPreprocessor.generate_preprocess`` packs them.
        stop_token_ids: token ids that end a row, or None.
        observers: :class:`~samplerlab.decoding.observers.StepObserver` s that watch (and
            may steer) the loop; none: the program is KerasHub's loop alone. A sampler
            whose loop does not go through the adapter's ``step`` (``observed_steps``
            False in its capabilities) runs on the bare adapter; its observers then
            replay the finished tokens.
        prefill: seed the cache over the first ``prefill`` positions only, where the
            adapter can (``adapter.prefills``); at least the shortest prompt's length
            (:func:`prefill_length`). None: over all positions, as KerasHub does.

    Returns:
        ``{"token_ids", "padding_mask"}`` as ``CausalLM.generate_step`` returns them,
        plus the observers' outputs (:meth:`StepObserver.outputs`) when there are any.

    Example:

    ```python
    import keras_hub
    from samplerlab.decoding.generate import generate_step
    from samplerlab.models.adapters import adapter_for

    inputs = causal_lm.preprocessor.generate_preprocess(["Keras is"], sequence_length=16)
    out = generate_step(adapter_for(causal_lm), keras_hub.samplers.GreedySampler(), inputs)
    assert out["token_ids"].shape == (1, 16)
    ```
    """
    offers = capabilities(sampler)
    observed = ObservedAdapter(adapter, observers) if observers else None
    if observed is not None and offers.observed_steps:
        adapter = observed
    token_ids, padding_mask = inputs["token_ids"], inputs["padding_mask"]
    seed = {"prefill": prefill} if prefill is not None and adapter.prefills else {}
    hidden_states, cache = adapter.start(token_ids, padding_mask, **seed)
    index = ops.min(ops.sum(ops.cast(padding_mask, "int32"), axis=-1))

    def next(prompt: Any, cache: Any, index: Any) -> tuple[Any, Any, Any]:
        return adapter.step(prompt, cache, index, padding_mask)

    call = dict(next=next, prompt=token_ids, cache=cache, index=index, mask=padding_mask,
                stop_token_ids=stop_token_ids, hidden_states=hidden_states,
                model=adapter.causal_lm)
    if observed is not None and offers.loop == "base":
        token_ids = base_loop(sampler, decoding=observed, **call)
    else:
        extra = {"decoding": adapter} if offers.loop == "adapter" else {}
        token_ids = sampler(**call, **extra)
    outputs = {"token_ids": token_ids,
               "padding_mask": output_padding_mask(token_ids, padding_mask, stop_token_ids)}
    if observed is not None:
        outputs.update(observed.outputs(token_ids))
    return outputs


#: The shortest seed pass: prompts shorter than this share one program.
PREFILL_BUCKET = 64


def prefill_length(padding_mask: Any) -> int:
    """The seed pass's length for a batch: its shortest prompt rounded up to an attention
    bucket (:func:`~samplerlab.models.adapters.attention.bucket_lengths`: 64, 128, ...),
    so that prompts of similar lengths share one compiled program. Read on the host."""
    import numpy as np

    from samplerlab.models.adapters.attention import bucket_for

    mask = np.asarray(padding_mask)
    return bucket_for(max(int(mask.sum(axis=-1).min()), 1), mask.shape[-1], PREFILL_BUCKET)


def base_loop(sampler: Any, next: Any, prompt: Any, cache: Any, index: Any, mask: Any,
              stop_token_ids: Any, model: Any, decoding: Any, **_: Any) -> Any:
    """KerasHub's ``Sampler.__call__`` (``compute_probabilities``, then
    ``get_next_token``), run by samplerlab's loop so that it hands its cache back."""
    def step(logits: Any, context: Any, extra: tuple) -> tuple[Any, tuple]:
        return sampler.get_next_token(sampler.compute_probabilities(logits)), extra

    return history_loop(sampler, next, prompt, cache=cache, index=index, mask=mask,
                        stop_token_ids=stop_token_ids, model=model, step=step,
                        decoding=decoding)


def output_padding_mask(token_ids: Any, padding_mask: Any,
                        stop_token_ids: tuple[int, ...] | None) -> Any:
    """True up to and including each row's first new stop token (everything without stops)."""
    if stop_token_ids is None:
        return ops.ones_like(token_ids, dtype="bool")
    ends = ops.cast(internals.any_equal(token_ids, stop_token_ids,
                                        ops.logical_not(padding_mask)), "int32")
    after = ops.cast(ops.cumsum(ends, axis=-1), "int32") - ends
    return ops.logical_not(ops.cast(after, "bool"))
