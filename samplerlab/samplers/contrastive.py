"""Contrastive search that runs only the transformer, not the cache copies, on its candidates."""

from __future__ import annotations

from functools import partial
from typing import Any

import keras
import keras_hub
from keras import ops

from samplerlab.decoding.contract import SamplerCapabilities, default_capabilities
from samplerlab.decoding.distributions import contrastive
from samplerlab.decoding.observers import hand_back
from samplerlab.decoding.params import ProgramParams
from samplerlab.models.adapters.base import shared_cache_candidates
from samplerlab.models.internals import any_equal


@keras.saving.register_keras_serializable(package="samplerlab")
class FastContrastiveSampler(ProgramParams, keras_hub.samplers.ContrastiveSampler):
    """Contrastive search (Su et al. 2022, "A Contrastive Framework for Neural Text
    Generation"): among the ``k`` most probable tokens pick the one maximising
    ``(1 - alpha) * p(token) - alpha * max cosine similarity`` of its hidden state with
    those of the previous tokens.

    The choice is KerasHub's ``ContrastiveSampler``'s, token for token; what differs is
    the work per step. KerasHub copies the whole key/value cache ``k`` times, runs the
    model (its language-model head included) on ``batch * k`` rows and gathers the chosen
    row's cache back. When samplerlab's engine runs it over a decoding adapter with a
    shared cache (:mod:`samplerlab.models.adapters`, e.g. GPT-2's), this sampler runs the
    ``k`` candidates as ``k`` queries sharing the row's one cache, applies the
    vocabulary-wide head to the chosen candidate only, and writes that candidate's key
    and value into the cache. Anywhere else (KerasHub's own ``generate``, families without
    a fast adapter) it is KerasHub's sampler.

    ``alpha`` and ``temperature`` are program parameters (a sweep over them compiles
    once); ``k`` sets shapes and is static.

    Args:
        k: int, the number of candidate tokens per step.
        alpha: float in [0, 1], the weight of the degeneration penalty.
        temperature: float, softmax temperature (> 0).

    Example:

    ```python
    from samplerlab.samplers.contrastive import FastContrastiveSampler
    causal_lm.compile(sampler=FastContrastiveSampler(k=4, alpha=0.6))
    causal_lm.generate(["Keras is a"])
    ```
    """

    def __init__(self, k: int = 5, alpha: float = 0.5, temperature: float = 1.0) -> None:
        super().__init__(k=k, alpha=alpha)
        self.alpha = self.add_param("alpha", alpha)
        self.temperature = self.add_param("temperature", temperature)
        self.add_static("k", int(k))

    def decoding_capabilities(self) -> SamplerCapabilities:
        """Its own loop, over the adapter's shared-cache candidates where it has them;
        ``k`` candidates per step; ``softmax(logits / T)`` as its distribution."""
        return default_capabilities(self, loop="adapter", candidates=int(self.k),
                                    distribution=partial(contrastive, self))

    def __call__(self, next: Any, prompt: Any, cache: Any = None, index: Any = 0,
                 mask: Any = None, stop_token_ids: Any = None, hidden_states: Any = None,
                 model: Any = None, decoding: Any = None) -> Any:
        shared = shared_cache_candidates(decoding)
        if shared is None or hidden_states is None:
            return super().__call__(next, prompt, cache=cache, index=index, mask=mask,
                                    stop_token_ids=stop_token_ids,
                                    hidden_states=hidden_states, model=model)
        batch_size, max_length = ops.shape(prompt)[0], ops.shape(prompt)[1]
        index = ops.cast(index, "int32")
        mask = ops.zeros_like(prompt, dtype="bool") if mask is None else mask
        logits, _, cache = next(prompt, cache, index)
        positions = ops.arange(max_length, dtype="int32")

        def cond(prompt, cache, index, logits, hidden_states):
            if stop_token_ids is None:
                return True
            # Stop once every row has produced a *new* stop token.
            ended = any_equal(prompt, stop_token_ids, ops.logical_not(mask))
            return ops.logical_not(ops.all(ops.any(ended, axis=-1)))

        def body(prompt, cache, index, logits, hidden_states):
            probabilities = self.compute_probabilities(logits)
            top_probabilities, top_indices = ops.top_k(probabilities, k=self.k, sorted=False)
            # Rows still inside their prompt "choose" the prompt's token.
            in_prompt = ops.slice(mask, [0, index], [batch_size, 1])
            prompt_token = ops.slice(prompt, [0, index], [batch_size, 1])
            candidates = ops.where(in_prompt, prompt_token,
                                   ops.cast(top_indices, prompt.dtype))
            candidate_hidden, updates = shared.candidate_forward(candidates, cache, index)
            penalty = self._degeneration_penalty(hidden_states, candidate_hidden,
                                                 positions < index)
            scores = ((1 - self.alpha) * top_probabilities
                      - self.alpha * ops.cast(penalty, top_probabilities.dtype))
            best = ops.argmax(scores, axis=1)
            prompt = ops.slice_update(
                prompt, [0, index], ops.take_along_axis(candidates, best[:, None], axis=1))
            best_hidden = ops.take_along_axis(candidate_hidden, best[:, None, None],
                                              axis=1)[:, 0]
            logits, cache = shared.advance(prompt, cache, updates, best_hidden, best, index)
            hidden_states = ops.slice_update(hidden_states, [0, index, 0],
                                             best_hidden[:, None, :])
            return prompt, cache, index + 1, logits, hidden_states

        prompt, cache, *_ = self.run_loop(cond=cond, body=body,
                                          loop_vars=(prompt, cache, index, logits,
                                                     hidden_states),
                                          maximum_iterations=(max_length - index),
                                          model=model)
        hand_back(decoding, cache, prompt)
        return prompt

    @staticmethod
    def _degeneration_penalty(previous: Any, candidates: Any, seen: Any) -> Any:
        """``(batch, k)``: each candidate's largest cosine similarity with a seen token."""
        dots = ops.einsum("btd,bkd->bkt", previous, candidates)
        norms = (ops.sqrt(ops.sum(candidates * candidates, axis=-1))[:, :, None]
                 * ops.sqrt(ops.sum(previous * previous, axis=-1))[:, None, :])
        # Unseen positions score -1, the lowest similarity (as KerasHub does).
        return ops.max(ops.where(seen[None, None, :], dots / norms, -1.0), axis=-1)
