"""The decoding adapter contract, and KerasHub's own cached forward pass behind it.

samplerlab's engine runs the generate loop itself (:mod:`samplerlab.engine.generate`):
the same loop as KerasHub's ``CausalLM.generate_step``, with the model's cached forward
pass reached through a :class:`DecodingAdapter`. The adapter is chosen when a model
loads (:func:`samplerlab.models.adapters.adapter_for`) and never changes the model
object: a family with a fast adapter (GPT-2: :mod:`samplerlab.models.adapters.gpt2`)
keeps its key/value cache in the layout the attention reads, every other family runs
KerasHub's own ``call_with_cache`` through this base class, token for token as
``CausalLM.generate`` would.
"""

from __future__ import annotations

from typing import Any, ClassVar

from keras import ops

from samplerlab.models import internals


class DecodingAdapter:
    """KerasHub's own cached forward pass, as the engine's generate loop calls it.

    Subclasses for a family override :meth:`start` and :meth:`call_with_cache` (a
    different cache layout) and, with ``shared_cache = True``, the candidate methods
    that let contrastive search score its ``k`` candidates against one shared cache.

    Args:
        causal_lm: a loaded ``keras_hub.models.CausalLM``.

    Example:

    ```python
    from samplerlab.models.adapters import DecodingAdapter
    adapter = DecodingAdapter(causal_lm)
    hidden, cache = adapter.start(token_ids, padding_mask)
    logits, hidden, cache = adapter.step(token_ids, cache, index, padding_mask)
    ```
    """

    #: Shown in the manifest and part of compiled-program keys.
    name: ClassVar[str] = "keras_hub"
    #: True when the adapter keeps a copy-free cache of its own (samplerlab's fast path).
    fast: ClassVar[bool] = False
    #: True when :meth:`candidate_forward`, :meth:`write_candidates` and
    #: :meth:`logits` are available (contrastive search's shared-cache path).
    shared_cache: ClassVar[bool] = False

    def __init__(self, causal_lm: Any) -> None:
        self.causal_lm = causal_lm

    @classmethod
    def supports(cls, causal_lm: Any) -> bool:
        """Whether this adapter can run ``causal_lm`` (the base class runs any CausalLM)."""
        return True

    @property
    def family(self) -> str:
        """The model's KerasHub class name, e.g. ``GPT2CausalLM``."""
        return type(self.causal_lm).__name__

    def start(self, token_ids: Any, padding_mask: Any) -> tuple[Any, Any]:
        """``(hidden_states, cache)`` after one forward pass over the prompt batch."""
        return internals.build_cache(self.causal_lm, token_ids)

    def call_with_cache(self, token_ids: Any, cache: Any, index: Any) -> tuple[Any, Any, Any]:
        """``(logits, hidden_states, cache)`` for ``token_ids`` written at ``index`` on."""
        return self.causal_lm.call_with_cache(token_ids, cache, index)

    def step(self, prompt: Any, cache: Any, index: Any, padding_mask: Any) -> tuple:
        """KerasHub's ``next``: feed the token at ``index - 1``, return the logits,
        hidden state and cache for position ``index``."""
        update_index = index - 1
        tokens = ops.slice(prompt, [0, update_index], [ops.shape(prompt)[0], 1])
        logits, hidden_states, cache = self.call_with_cache(tokens, cache, update_index)
        return ops.squeeze(logits, axis=1), ops.squeeze(hidden_states, axis=1), cache

    def describe(self) -> dict[str, Any]:
        """What the manifest records about the decoding path."""
        return {"adapter": self.name, "family": self.family, "fast": self.fast,
                "shared_cache": self.shared_cache}

    # -- shared-cache candidates (fast adapters only) --------------------------------
    def candidate_forward(self, tokens: Any, cache: Any, index: Any) -> tuple[Any, Any]:
        """Final hidden states ``(batch, k, dim)`` of ``k`` candidate tokens per row at
        ``index``, each attending to the row's one cached prefix, and their key/value
        updates for :meth:`advance`."""
        raise NotImplementedError(f"{self.name} has no shared-cache candidates")

    def advance(self, prompt: Any, cache: Any, updates: Any, hidden: Any, chosen: Any,
                index: Any) -> tuple[Any, Any]:
        """Accept each row's ``chosen`` candidate (already written into ``prompt`` at
        ``index``): ``(logits for position index + 1, the cache with its key/value)``.

        ``hidden`` is the chosen candidate's final hidden state, ``(batch, dim)``. The
        counterpart of :meth:`step` for samplers that score candidates themselves.
        """
        raise NotImplementedError(f"{self.name} has no shared-cache candidates")
