"""The decoding adapter contract, and KerasHub's own cached forward pass behind it.

samplerlab's engine runs the generate loop itself (:mod:`samplerlab.decoding.generate`):
the same loop as KerasHub's ``CausalLM.generate_step``, with the model's cached forward
pass reached through a :class:`DecodingAdapter`. What a sampler's loop may ask of an
adapter comes in parts, each a small protocol a sampler checks before it uses it:
:class:`CachedForward` (every adapter: the cached forward pass), :class:`SharedCacheCandidates`
(contrastive search's ``k`` candidates over one shared cache), :class:`BeamCache` (beam
search's cache) and :class:`MultiTokenVerify` (speculative decoding's several positions
in one pass). The adapter is chosen when a model
loads (:func:`samplerlab.models.adapters.adapter_for`) and never changes the model
object: a family with a fast adapter (GPT-2: :mod:`samplerlab.models.adapters.gpt2`)
keeps its key/value cache in the layout the attention reads, every other family runs
KerasHub's own ``call_with_cache`` through this base class, token for token as
``CausalLM.generate`` would.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

from keras import ops, tree

from samplerlab.models import internals


@runtime_checkable
class CachedForward(Protocol):
    """The cached forward pass every adapter offers (what the generate loop's ``next``
    and a draft model's proposals run on)."""

    causal_lm: Any

    def start(self, token_ids: Any, padding_mask: Any) -> tuple[Any, Any]:
        """``(hidden_states, cache)`` after one forward pass over the prompt batch."""
        ...

    def call_with_cache(self, token_ids: Any, cache: Any, index: Any) -> tuple[Any, Any, Any]:
        """``(logits, hidden_states, cache)`` for ``token_ids`` written at ``index`` on."""
        ...

    def step(self, prompt: Any, cache: Any, index: Any, padding_mask: Any) -> tuple:
        """KerasHub's ``next``: logits, hidden state and cache for position ``index``."""
        ...


@runtime_checkable
class SharedCacheCandidates(Protocol):
    """Candidates scored against one shared cache (contrastive search); usable only where
    ``shared_cache`` is True (:func:`shared_cache_candidates`)."""

    shared_cache: bool

    def candidate_forward(self, tokens: Any, cache: Any, index: Any) -> tuple[Any, Any]:
        """Hidden states of ``k`` candidates per row and their key/value updates."""
        ...

    def advance(self, prompt: Any, cache: Any, updates: Any, hidden: Any, chosen: Any,
                index: Any) -> tuple[Any, Any]:
        """Accept each row's chosen candidate: the next logits and the cache."""
        ...


@runtime_checkable
class BeamCache(Protocol):
    """A cache for ``num_beams`` hypotheses per row (beam search)."""

    def beam_cache(self, cache: Any, num_beams: int) -> Any:
        """The cache for ``num_beams`` beams per row."""
        ...

    def beam_step(self, prompt: Any, cache: Any, index: Any) -> tuple[Any, Any]:
        """Every beam's logits for position ``index``, and the cache."""
        ...

    def beam_reorder(self, cache: Any, beam_indices: Any) -> Any:
        """The cache with beam ``j`` of row ``b`` continuing ``beam_indices[b, j]``."""
        ...


@runtime_checkable
class MultiTokenVerify(Protocol):
    """Several positions of the target in one forward pass (speculative decoding)."""

    def verify_next(self, prompt: Any, cache: Any, index: Any, k: int) -> tuple[Any, Any, Any]:
        """Logits for positions ``index .. index + k``, hidden states and the cache."""
        ...


def shared_cache_candidates(decoding: Any) -> SharedCacheCandidates | None:
    """``decoding`` when it scores candidates over a shared cache, else None."""
    if isinstance(decoding, SharedCacheCandidates) and decoding.shared_cache:
        return decoding
    return None


class DecodingAdapter:
    """KerasHub's own cached forward pass, as the engine's generate loop calls it.

    It implements every part: :class:`CachedForward`, :class:`BeamCache` (here: KerasHub's
    repeated and gathered cache; a fast adapter shares it), :class:`MultiTokenVerify`
    (any ``call_with_cache`` that writes several tokens at once) and, with
    ``shared_cache = True``, :class:`SharedCacheCandidates`. Subclasses for a family
    override :meth:`start` and :meth:`call_with_cache` (a different cache layout) and the
    candidate methods that let contrastive search score its ``k`` candidates against one
    shared cache.

    Args:
        causal_lm: a loaded ``keras_hub.models.CausalLM``.

    Example:

    ```python
    from samplerlab.models.adapters import DecodingAdapter

    inputs = causal_lm.preprocessor.generate_preprocess(["Keras is"], sequence_length=16)
    token_ids, padding_mask = inputs["token_ids"], inputs["padding_mask"]
    adapter = DecodingAdapter(causal_lm)
    hidden, cache = adapter.start(token_ids, padding_mask)
    logits, hidden, cache = adapter.step(token_ids, cache, 3, padding_mask)  # 3rd token's
    assert logits.shape == (1, causal_lm.backbone.vocabulary_size)
    ```
    """

    #: Shown in the manifest and part of compiled-program keys.
    name: ClassVar[str] = "keras_hub"
    #: True when the adapter keeps a copy-free cache of its own (samplerlab's fast path).
    fast: ClassVar[bool] = False
    #: True when :meth:`candidate_forward`, :meth:`write_candidates` and
    #: :meth:`logits` are available (contrastive search's shared-cache path).
    shared_cache: ClassVar[bool] = False
    #: True when :meth:`start` takes ``prefill`` (seed only the first positions).
    prefills: ClassVar[bool] = False

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

    # -- beam search ----------------------------------------------------------------
    # The contract (samplerlab.samplers.beam.BeamSampler calls these, in this order):
    # ``beam_cache`` once on the prompt's cache, then per position ``beam_step`` and
    # ``beam_reorder``. Rows of ``prompt`` and of the logits are ``batch * num_beams``,
    # beam-major within a row (row ``b``'s beams are rows ``b * num_beams ...``). This
    # class does what KerasHub's BeamSampler does (every cache leaf repeated per beam and
    # gathered by beam index at every step); a fast adapter overrides the three with a
    # cache that its beams share.
    def beam_cache(self, cache: Any, num_beams: int) -> Any:
        """The cache for ``num_beams`` beams per row, from the prompt's ``cache``
        (:meth:`start`'s, one row per prompt)."""
        return repeat_beams(cache, num_beams)

    def beam_step(self, prompt: Any, cache: Any, index: Any) -> tuple[Any, Any]:
        """Feed every beam's token at ``index - 1``: ``(logits (batch * num_beams,
        vocab) for position index, cache)``."""
        logits, _, cache = self.step(prompt, cache, index, None)
        return logits, cache

    def beam_reorder(self, cache: Any, beam_indices: Any) -> Any:
        """Beam ``j`` of row ``b`` continues beam ``beam_indices[b, j]``
        (``(batch, num_beams)`` int)."""
        return gather_beams(cache, beam_indices)

    # -- multi-token verify -----------------------------------------------------------
    # ``verify_next`` scores ``k + 1`` positions of the target in one forward pass; it
    # needs only a ``call_with_cache`` that writes several tokens at once (KerasHub's
    # GPT-2 and Llama-style models, and the fast adapters, do).
    def verify_next(self, prompt: Any, cache: Any, index: Any, k: int) -> tuple[Any, Any, Any]:
        """The tokens at ``index - 1 .. index + k - 1`` in one forward pass:
        ``(logits (batch, k + 1, vocab) for positions index .. index + k, hidden_states,
        cache)``."""
        tokens = ops.slice(prompt, [0, index - 1], [ops.shape(prompt)[0], k + 1])
        return self.call_with_cache(tokens, cache, index - 1)


def repeat_beams(structure: Any, num_beams: int) -> Any:
    """Every leaf of ``structure`` with each row repeated ``num_beams`` times (axis 0)."""
    return tree.map_structure(lambda x: ops.repeat(x, num_beams, axis=0), structure)


def gather_beams(structure: Any, beam_indices: Any) -> Any:
    """Every leaf's rows (``batch * num_beams``, beam-major) taken by ``beam_indices``
    ``(batch, num_beams)``: row ``(b, j)`` becomes row ``(b, beam_indices[b, j])``."""
    batch_size, num_beams = ops.shape(beam_indices)[0], ops.shape(beam_indices)[1]
    offsets = ops.arange(batch_size, dtype="int32")[:, None] * num_beams
    rows = ops.reshape(ops.cast(beam_indices, "int32") + offsets, (-1,))
    return tree.map_structure(lambda x: ops.take(x, rows, axis=0), structure)
