"""Speculative decoding: a draft model proposes, the target verifies them in one pass."""

from __future__ import annotations

from typing import Any

import keras
import keras_hub
from keras import ops, random

from samplerlab.decoding.contract import (
    ExtraModel,
    LoopStats,
    SamplerCapabilities,
    capabilities,
    default_capabilities,
)
from samplerlab.decoding.distributions import nucleus_threshold
from samplerlab.decoding.params import ProgramParams
from samplerlab.models.adapters.base import CachedForward, DecodingAdapter, MultiTokenVerify
from samplerlab.models.internals import any_equal
from samplerlab.samplers.fast_ops import sample_from_weights

#: Loop statistics, in this order, kept in :attr:`SpeculativeSampler.stats` after a call.
STATS = ("target_passes", "row_passes", "proposed", "accepted", "kept")


@keras.saving.register_keras_serializable(package="samplerlab")
class SpeculativeSampler(ProgramParams, keras_hub.samplers.SpeculativeSampler):
    """Speculative decoding (Leviathan et al. 2023, "Fast Inference from Transformers via
    Speculative Decoding"; Chen et al. 2023, "Accelerating Large Language Model Decoding
    with Speculative Sampling").

    Each pass, a small draft model proposes ``num_speculative_tokens`` (γ) tokens, one
    at a time, and the target scores all γ + 1 positions in one forward pass. With a
    ``base_sampler`` (random, top-k or top-p), a draft token ``x`` drawn from the draft's
    distribution ``q`` (the base's warping applied to the draft's logits) is accepted
    with probability ``min(1, p(x) / q(x))``, ``p`` the target's under the same base
    sampler; at the first rejection a token is drawn from ``norm(max(0, p - q))``, and
    when all γ are accepted from the target's next distribution. Every token is then
    distributed exactly as the base sampler on the target alone would draw it. Without a
    base sampler the draft proposes its argmax and a token is accepted when it is the
    target's argmax: the output is the target's greedy output, token for token.

    A batch shares one position: each pass advances every row by the fewest tokens any
    row accepted, plus one (each row's token there is its accepted draft, its residual
    draw or the target's next token: a valid draw either way), so a row that accepted
    more loses what it accepted beyond. Rows that have produced a stop token, and rows
    still inside their prompt, accept everything. The last γ positions before
    ``max_length`` are decoded by the target alone.

    KerasHub's ``SpeculativeSampler`` (which this class extends: same constructor
    arguments and config) draws the draft greedily but accepts against the draft's
    softmax, which is exact for neither, and is wired only for Gemma 4's assistant; here
    the draft is any causal LM with the target's tokenizer, reached through its decoding
    adapter (:meth:`attach_models`; samplerlab's engine does it for the ``draft`` preset
    it declares as an extra model).

    It implements the sampler contract (:mod:`samplerlab.decoding.contract`): its own loop,
    not through the adapter's ``step``; the draft as an extra model; the base sampler's
    distribution and the base sampler as the baseline it is timed against; and its loop
    statistics. After each call :attr:`stats` holds that call's counts (:data:`STATS`; rows and
    draft tokens are counted where they generate): target forward passes, rows times
    passes, draft tokens proposed, accepted, and accepted and kept.

    Args:
        num_speculative_tokens: int, γ, draft tokens per target pass.
        base_sampler: ``None`` (greedy acceptance) or a ``keras_hub.samplers``
            ``RandomSampler``, ``TopKSampler`` or ``TopPSampler`` (without ``k``),
            samplerlab's own versions included.
        seed: int, the seed of the draft draws and acceptance tests.
        draft_preset: the draft's preset reference, for the engine to load (recorded in
            the config).

    Example:

    ```python
    from samplerlab.models.adapters import adapter_for
    from samplerlab.samplers.speculative_sampler import SpeculativeSampler
    from samplerlab.samplers.top_k import TopKSampler

    sampler = SpeculativeSampler(4, base_sampler=TopKSampler(k=10), seed=1)
    # The draft: a smaller model with the same tokenizer (here, for brevity, the model
    # itself; a spec gives it as the sampler's `draft` parameter).
    sampler.attach_models({"draft": adapter_for(causal_lm)})
    causal_lm.compile(sampler=sampler)
    causal_lm.generate(["Keras is a"])
    ```
    """

    def __init__(self, num_speculative_tokens: int = 4, base_sampler: Any = None,
                 seed: int | None = None, draft_preset: str | None = None,
                 **kwargs: Any) -> None:
        # KerasHub's constructor would overwrite the base's temperature with ours.
        super().__init__(num_speculative_tokens=num_speculative_tokens, seed=seed, **kwargs)
        if isinstance(base_sampler, keras_hub.samplers.GreedySampler):
            base_sampler = None
        if isinstance(base_sampler, keras_hub.samplers.TopPSampler) and base_sampler.k:
            raise ValueError("a top_p base sampler with k is not supported: use top_k or "
                             "top_p alone")
        if base_sampler is not None and not isinstance(base_sampler, (
                keras_hub.samplers.RandomSampler, keras_hub.samplers.TopKSampler,
                keras_hub.samplers.TopPSampler)):
            raise ValueError(f"base_sampler must be greedy, random, top_k or top_p, got "
                             f"{type(base_sampler).__name__}")
        self.base_sampler = base_sampler
        self.draft_preset = self.add_static("draft_preset", draft_preset)
        self.add_static("num_speculative_tokens", int(num_speculative_tokens))
        self.draft: Any = None
        self.stats = keras.Variable(ops.zeros((len(STATS),), "int32"), trainable=False,
                                    dtype="int32", name="speculative_stats")

    # -- the sampler contract -------------------------------------------------------------
    def decoding_capabilities(self) -> SamplerCapabilities:
        """Its own loop over the adapter, writing several tokens per pass (not through the
        adapter's ``step``: step observers replay the tokens; the engine still cuts stop
        strings from the text); the draft preset as an extra model; the base sampler's
        distribution (every token is drawn from it) and the base sampler alone as its
        baseline; :data:`STATS` per call, with the acceptance rates as metric columns."""
        base = self.base_sampler or keras_hub.samplers.GreedySampler()
        return default_capabilities(
            self, loop="adapter", observed_steps=False,
            distribution=capabilities(base).distribution,
            extra_models=() if self.draft_preset is None else (
                ExtraModel("draft", self.draft_preset),),
            loop_stats=LoopStats("speculative", STATS, acceptance_rates,
                                 ("acceptance_rate", "accepted_per_pass", "speedup")),
            baseline=base)

    def attach_models(self, adapters: Any) -> None:
        """Propose with ``adapters["draft"]``'s model (a :class:`~samplerlab.models.
        adapters.DecodingAdapter`; same tokenizer as the target).

        Raises:
            TypeError: the draft has no cached forward pass (:class:`~samplerlab.models.
                adapters.base.CachedForward`).
        """
        draft = adapters["draft"]
        if not isinstance(draft, CachedForward):
            raise TypeError(f"a draft needs a cached forward pass (CachedForward), got "
                            f"{type(draft).__name__}")
        self.draft = draft

    def attached_models(self) -> tuple:
        """The draft's adapter, once attached (its weights are program inputs)."""
        return () if self.draft is None else (self.draft,)

    def last_loop_stats(self) -> dict[str, int]:
        """The counts of the last call (:data:`STATS`)."""
        values = ops.convert_to_numpy(self.stats.value)
        return {name: int(v) for name, v in zip(STATS, values, strict=True)}

    # -- state and structure -------------------------------------------------------------
    @property
    def variables(self) -> list:
        base = [] if self.base_sampler is None else list(self.base_sampler.variables)
        return [*super().variables, self.stats, *base]

    def structure_key(self) -> tuple:
        """Ours, and the base sampler's (its program parameters are our state too)."""
        base = self.base_sampler
        structure = None if base is None else capabilities(base).structure
        return (*super().structure_key(), ("base", structure))

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Any:
        config = dict(config)
        if isinstance(config.get("base_sampler"), dict):
            config["base_sampler"] = keras_hub.samplers.deserialize(config["base_sampler"])
        return cls(**config)

    # -- distributions ------------------------------------------------------------------
    def distribution(self, logits: Any) -> Any:
        """The base sampler's distribution over ``logits`` (``(..., vocab)``), float32."""
        base = self.base_sampler
        probs = base.compute_probabilities(logits)
        if isinstance(base, keras_hub.samplers.TopKSampler):
            kth = ops.top_k(probs, k=base.k)[0][..., -1:]
            probs = ops.where(probs >= kth, probs, 0.0)
        elif isinstance(base, keras_hub.samplers.TopPSampler):
            flat = ops.reshape(probs, (-1, ops.shape(probs)[-1]))
            threshold = ops.reshape(nucleus_threshold(flat, base.p),
                                    (*ops.shape(probs)[:-1], 1))
            probs = ops.where(probs >= threshold, probs, 0.0)
        return probs / ops.sum(probs, axis=-1, keepdims=True)

    def _pick(self, weights: Any) -> Any:
        """A draw from ``weights`` ``(batch, vocab)`` (argmax without a base sampler)."""
        if self.base_sampler is None:
            return ops.cast(ops.argmax(weights, axis=-1), "int32")
        return sample_from_weights(weights, self.seed_generator)

    # -- the loop -------------------------------------------------------------------------
    def __call__(self, next: Any, prompt: Any, cache: Any = None, index: Any = 0,
                 mask: Any = None, stop_token_ids: Any = None, hidden_states: Any = None,
                 model: Any = None, decoding: Any = None) -> Any:
        if self.draft is None:
            raise ValueError("SpeculativeSampler has no draft model: call attach_models("
                             "{'draft': adapter}) (samplerlab's engine attaches the `draft` "
                             "preset)")
        target = decoding if isinstance(decoding, MultiTokenVerify) else DecodingAdapter(model)
        draft = self.draft
        gamma = int(self.num_speculative_tokens)
        greedy = self.base_sampler is None
        batch_size, max_length = ops.shape(prompt)[0], ops.shape(prompt)[1]
        index = ops.cast(index, "int32")
        mask = (ops.zeros_like(prompt, dtype="bool") if mask is None
                else ops.cast(mask, "bool"))
        _, draft_cache = draft.start(prompt, mask)
        positions = ops.arange(max_length, dtype="int32")

        def done(prompt):
            if stop_token_ids is None:
                return ops.zeros((batch_size,), "bool")
            return ops.any(any_equal(prompt, stop_token_ids, ops.logical_not(mask)), axis=-1)

        def speculating(prompt, cache, draft_cache, index, stats):
            return ops.logical_and(index + gamma < max_length,
                                   ops.logical_not(ops.all(done(prompt))))

        def speculate(prompt, cache, draft_cache, index, stats):
            finished = done(prompt)
            # Draft: γ tokens, one at a time. The first call re-feeds position index - 2
            # too: after a pass that accepted all γ, the draft has not seen the last one.
            start = ops.maximum(index - 2, 0)
            logits, _, draft_cache = draft.call_with_cache(
                ops.slice(prompt, [0, start], [batch_size, 2]), draft_cache, start)
            logits = ops.take(logits, index - 1 - start, axis=1)
            current, drafts, draft_probs = prompt, [], []
            for i in range(gamma):
                if i:
                    logits, _, draft_cache = draft.step(current, draft_cache, index + i, mask)
                probs = (ops.cast(logits, "float32") if greedy
                         else self.distribution(logits))
                token = ops.where(mask[:, index + i], prompt[:, index + i],
                                  ops.cast(self._pick(probs), prompt.dtype))
                current = ops.slice_update(current, [0, index + i], token[:, None])
                drafts.append(token)
                draft_probs.append(probs)
            drafts = ops.cast(ops.stack(drafts, axis=1), "int32")           # (batch, γ)
            # Verify: the target's γ + 1 next distributions in one forward pass.
            target_logits, _, cache = target.verify_next(current, cache, index, gamma)
            window = ops.slice(mask, [0, index], [batch_size, gamma + 1])
            # Rows inside their prompt, or already stopped, accept whatever is there.
            forced = ops.logical_or(window, finished[:, None])[:, :gamma]
            if greedy:
                best = ops.cast(ops.argmax(target_logits[:, :gamma], axis=-1), "int32")
                accepted = ops.equal(drafts, best)
            else:
                p = self.distribution(target_logits)                       # (batch, γ+1, V)
                q = ops.stack(draft_probs, axis=1)                          # (batch, γ, V)
                p_draft = ops.take_along_axis(p[:, :gamma], drafts[..., None], axis=-1)[..., 0]
                q_draft = ops.take_along_axis(q, drafts[..., None], axis=-1)[..., 0]
                uniform = random.uniform((batch_size, gamma), seed=self.seed_generator)
                accepted = uniform * q_draft < p_draft
            accepted = ops.logical_or(accepted, forced)
            per_row = ops.sum(ops.cumprod(ops.cast(accepted, "int32"), axis=1), axis=1)
            m = ops.min(per_row)
            if stop_token_ids is not None:
                # Write nothing past the position by which every row has stopped.
                offsets = ops.arange(gamma, dtype="int32")[None, :]
                stops = ops.logical_and(
                    any_equal(drafts, stop_token_ids, ops.logical_not(window[:, :gamma])),
                    offsets < per_row[:, None])
                first = ops.where(finished, -1, ops.min(ops.where(stops, offsets, gamma), axis=1))
                m = ops.where(ops.max(first) < gamma, ops.minimum(m, ops.max(first)), m)
            # The token at index + m: the row's accepted draft, else its residual draw
            # (or the target's next token when all γ were accepted).
            capped = ops.minimum(m, gamma - 1)
            if greedy:
                fresh = ops.cast(ops.argmax(ops.take(target_logits, m, axis=1), axis=-1),
                                 "int32")
            else:
                p_m = ops.take(p, m, axis=1)
                residual = ops.maximum(p_m - ops.take(q, capped, axis=1), 0.0)
                residual = ops.where(ops.logical_or(
                    m == gamma, ops.sum(residual, axis=-1, keepdims=True) <= 0), p_m, residual)
                fresh = self._pick(residual)
            token = ops.where(per_row > m, ops.take(drafts, capped, axis=1), fresh)
            position = index + m
            token = ops.where(ops.take(mask, position, axis=1),
                              ops.take(prompt, position, axis=1), ops.cast(token, prompt.dtype))
            prompt = ops.where(positions[None, :] < position, current, prompt)
            prompt = ops.slice_update(prompt, [0, position], token[:, None])
            # Statistics, over the rows and positions that generate.
            live = ops.logical_not(ops.logical_or(window, finished[:, None]))
            offsets = positions[None, :gamma + 1]
            proposed = live[:, :gamma]
            stats = stats + ops.stack([
                ops.convert_to_tensor(1, "int32"),
                _count(ops.any(ops.logical_and(live, offsets <= m), axis=1)),
                _count(proposed),
                _count(ops.logical_and(proposed, offsets[:, :gamma] < per_row[:, None])),
                _count(ops.logical_and(proposed, offsets[:, :gamma] < m))])
            return prompt, cache, draft_cache, position + 1, stats

        def finishing(prompt, cache, index, stats):
            return ops.logical_and(index < max_length, ops.logical_not(ops.all(done(prompt))))

        def finish(prompt, cache, index, stats):
            # The last positions: the target alone, under the base sampler.
            finished = done(prompt)
            logits, _, cache = target.step(prompt, cache, index, mask)
            probs = ops.cast(logits, "float32") if greedy else self.distribution(logits)
            token = ops.where(mask[:, index], prompt[:, index],
                              ops.cast(self._pick(probs), prompt.dtype))
            prompt = ops.slice_update(prompt, [0, index], token[:, None])
            live = ops.logical_not(ops.logical_or(mask[:, index], finished))
            nothing = ops.convert_to_tensor(0, "int32")
            stats = stats + ops.stack([ops.convert_to_tensor(1, "int32"), _count(live),
                                       nothing, nothing, nothing])
            return prompt, cache, index + 1, stats

        models = _Models(model, getattr(draft, "causal_lm", None))
        stats = ops.zeros((len(STATS),), "int32")
        prompt, cache, _, index, stats = self.run_loop(
            cond=speculating, body=speculate,
            loop_vars=(prompt, () if cache is None else cache, draft_cache, index, stats),
            maximum_iterations=max_length, model=models)
        prompt, _, _, stats = self.run_loop(
            cond=finishing, body=finish, loop_vars=(prompt, cache, index, stats),
            maximum_iterations=gamma + 1, model=models)
        self.stats.assign(stats)
        return prompt


def acceptance_rates(counts: dict[str, int]) -> dict[str, float | None]:
    """``acceptance_rate``: accepted draft tokens / proposed; ``accepted_per_pass``: draft
    tokens kept per row and target forward pass (each pass also yields one token of the
    target's own)."""
    def ratio(a: int, b: int) -> float | None:
        return a / b if b else None

    return {"acceptance_rate": ratio(counts["accepted"], counts["proposed"]),
            "accepted_per_pass": ratio(counts["kept"], counts["row_passes"])}


def _count(flags: Any) -> Any:
    return ops.sum(ops.cast(flags, "int32"))


class _Models:
    """The target's and the draft's weights, as ``Sampler.run_loop`` maps a model's: in a
    JAX loop both must be loop state, not constants."""

    def __init__(self, *models: Any) -> None:
        seen: list[Any] = []
        for model in models:
            if model is not None and all(model is not m for m in seen):
                seen.append(model)
        self.models = seen

    @property
    def trainable_variables(self) -> list:
        return [v for m in self.models for v in m.trainable_variables]

    @property
    def non_trainable_variables(self) -> list:
        return [v for m in self.models for v in m.non_trainable_variables]
