"""Beam search over a shared cache, and with each row's beams independent of its neighbours."""

from __future__ import annotations

from functools import partial
from typing import Any

import keras
import keras_hub
from keras import ops

from samplerlab.decoding.contract import SamplerCapabilities, default_capabilities
from samplerlab.decoding.distributions import beam
from samplerlab.decoding.observers import hand_back
from samplerlab.decoding.params import ProgramParams
from samplerlab.models.adapters.base import BeamCache, gather_beams, repeat_beams
from samplerlab.models.internals import any_equal


@keras.saving.register_keras_serializable(package="samplerlab")
class BeamSampler(ProgramParams, keras_hub.samplers.BeamSampler):
    """Beam search: keep the ``num_beams`` most probable hypotheses of every row, extend
    each by every token, keep the ``num_beams`` best of those, return the best one.

    The hypotheses are KerasHub's ``BeamSampler``'s, token for token, on prompts of equal
    length (same scores, same top-k, same stopping). Two things differ:

    * **The cache.** KerasHub repeats the whole key/value cache ``num_beams`` times and
      gathers all of it by beam index at every step. Here the cache belongs to the
      model's decoding adapter (``decoding``, :mod:`samplerlab.models.adapters`): its
      ``beam_cache`` / ``beam_step`` / ``beam_reorder`` methods decide how beams share it.
      GPT-2's adapter keeps the prompt's keys and values once per row and each beam's
      own keys in a slot of its own, never copied: a beam's history is a table of slot
      indices, and reordering beams reorders that table. Adapters without a shared
      layout (KerasHub's own ``call_with_cache``) repeat and gather the cache, as
      KerasHub does.
    * **Prompts of different lengths.** KerasHub runs the beam update on every row from
      the shortest prompt's end, so a row still inside its prompt accumulates the scores
      of tokens that its prompt then overwrites, and reorders beams that hold the same
      tokens: its result depends on its batch neighbours. Here a row inside its prompt
      keeps its beams and scores as they are, so each row's result is the one it gets
      alone.

    ``temperature`` is a program parameter (a sweep over it compiles once); ``num_beams``
    fixes shapes.

    Args:
        num_beams: int, the number of hypotheses kept per row.
        return_all_beams: bool, return every beam, sorted, with its log-probability
            (KerasHub's option) instead of the best one.
        temperature: float, softmax temperature (> 0).

    Example:

    ```python
    from samplerlab.samplers.beam import BeamSampler
    causal_lm.compile(sampler=BeamSampler(num_beams=4))
    causal_lm.generate(["Keras is a"])
    ```
    """

    def __init__(self, num_beams: int = 5, return_all_beams: bool = False,
                 temperature: float = 1.0) -> None:
        super().__init__(num_beams=num_beams, return_all_beams=return_all_beams)
        self.temperature = self.add_param("temperature", temperature)
        self.add_static("num_beams", int(num_beams))
        self.add_static("return_all_beams", bool(return_all_beams))

    def decoding_capabilities(self) -> SamplerCapabilities:
        """Its own loop over the adapter's beam cache; ``num_beams`` hypotheses per row;
        the factor ``softmax(logits / T)`` as its distribution (KerasHub's beam rule)."""
        return default_capabilities(self, loop="adapter", beams=True,
                                    candidates=int(self.num_beams),
                                    distribution=partial(beam, self))

    def __call__(self, next: Any, prompt: Any, cache: Any = None, index: Any = 0,
                 mask: Any = None, stop_token_ids: Any = None, hidden_states: Any = None,
                 model: Any = None, decoding: Any = None) -> Any:
        beams = decoding if isinstance(decoding, BeamCache) else _NextBeams(next)
        n = self.num_beams
        batch_size = ops.shape(prompt)[0]
        index = ops.cast(index, "int32")
        mask = (ops.zeros_like(prompt, dtype="bool") if mask is None
                else ops.cast(mask, "bool"))
        cache = beams.beam_cache(() if cache is None else cache, n)
        prompt, mask = repeat_beams(prompt, n), repeat_beams(mask, n)
        # Only the first beam is live at the start: the others are its copies.
        log_probs = ops.broadcast_to(
            ops.array([[0.0] + [-1e9] * (n - 1)], dtype="float32"), (batch_size, n))
        log_probs = ops.reshape(log_probs, (-1,))
        unchanged = ops.broadcast_to(ops.arange(n, dtype="int32")[None, :], (batch_size, n))

        def cond(prompt, cache, index, log_probs):
            if stop_token_ids is None:
                return ops.convert_to_tensor(True, dtype="bool")
            # Stop once every hypothesis has produced a *new* stop token (KerasHub's rule).
            ended = any_equal(prompt, stop_token_ids, ops.logical_not(mask))
            return ops.logical_not(ops.all(ops.any(ended, axis=-1)))

        def body(prompt, cache, index, log_probs):
            logits, cache = beams.beam_step(prompt, cache, index)
            vocab_size = ops.shape(logits)[-1]
            probs = self.compute_probabilities(logits)
            candidates = ops.reshape(ops.log(probs) + log_probs[..., None],
                                     [-1, n * vocab_size])
            best, indices = ops.top_k(candidates, k=n, sorted=False)
            beam_indices = ops.cast(indices // vocab_size, "int32")
            next_token = ops.reshape(indices % vocab_size, (-1,))
            # A row still inside its prompt keeps its beams and their scores.
            in_prompt = ops.slice(mask, [0, index], [ops.shape(mask)[0], 1])
            in_prompt = ops.reshape(in_prompt, (batch_size, n))[:, :1]
            beam_indices = ops.where(in_prompt, unchanged, beam_indices)
            log_probs = ops.reshape(
                ops.where(in_prompt, ops.reshape(log_probs, (batch_size, n)), best), (-1,))
            prompt = gather_beams(prompt, beam_indices)
            cache = beams.beam_reorder(cache, beam_indices)
            next_token = ops.cast(next_token, prompt.dtype)
            next_token = ops.where(mask[:, index], prompt[:, index], next_token)
            prompt = ops.slice_update(prompt, [0, index], next_token[:, None])
            return prompt, cache, index + 1, log_probs

        max_length = ops.shape(prompt)[1]
        prompt, cache, _, log_probs = self.run_loop(
            cond=cond, body=body, loop_vars=(prompt, cache, index, log_probs),
            maximum_iterations=(max_length - index), model=model)
        hand_back(decoding, cache, prompt)  # every hypothesis (observers' final states)

        all_prompts = ops.reshape(prompt, (-1, n, max_length))
        all_log_probs = ops.reshape(log_probs, (-1, n))
        if self.return_all_beams:
            order = ops.argsort(-all_log_probs, axis=-1)
            return (ops.take_along_axis(all_prompts, order[:, :, None], axis=1),
                    ops.take_along_axis(all_log_probs, order, axis=1))
        top = ops.argmax(all_log_probs, axis=-1)[:, None, None]
        return ops.squeeze(ops.take_along_axis(all_prompts, top, axis=1), axis=1)


class _NextBeams:
    """Beams over a plain ``next`` function (KerasHub's own ``generate``): the cache is
    repeated per beam and gathered by beam index, as KerasHub's ``BeamSampler`` does."""

    def __init__(self, next: Any) -> None:
        self.next = next

    def beam_cache(self, cache: Any, num_beams: int) -> Any:
        return repeat_beams(cache, num_beams)

    def beam_step(self, prompt: Any, cache: Any, index: Any) -> tuple[Any, Any]:
        logits, _, cache = self.next(prompt, cache, index)
        return logits, cache

    def beam_reorder(self, cache: Any, beam_indices: Any) -> Any:
        return gather_beams(cache, beam_indices)
