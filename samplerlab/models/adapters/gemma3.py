"""Gemma 3's own cached forward pass, with the padding-aware arguments its generate loop passes.

``Gemma3CausalLM.generate_step`` differs from the loop the engine runs for other families
in two places, both mirrored here so the tokens are KerasHub's:

* the cache is seeded by ``_build_cache(token_ids, img_embeddings, vision_mask,
  padding_mask, vision_indices)``: on text, no image embeddings, and the prompt's padding
  mask;
* each step passes ``cache_update_mask``: the cache is written only where the position
  is not part of a row's prompt, so rows still inside a longer prompt keep the keys and
  values their prompt was seeded with.

Samplers that search several hypotheses per row (beam, contrastive) repeat every row of
the prompt and cache (``ops.repeat(x, n, axis=0)``); the prompt's padding mask is repeated
the same way here (KerasHub's own ``generate_step`` slices the unrepeated mask and fails
with those samplers).
"""

from __future__ import annotations

from typing import Any, ClassVar

from keras import ops

from samplerlab.models import internals
from samplerlab.models.adapters.base import DecodingAdapter


class Gemma3Adapter(DecodingAdapter):
    """KerasHub's own decoding for ``Gemma3CausalLM`` (text), as its ``generate_step`` runs it.

    Example:

    ```python
    from samplerlab.models.adapters.gemma3 import Gemma3Adapter
    from samplerlab.models.builders import build_tiny_family

    gemma3 = build_tiny_family("gemma3")  # a Gemma3CausalLM with random weights
    inputs = gemma3.preprocessor.generate_preprocess(["Keras is"], sequence_length=16)
    token_ids, padding_mask = inputs["token_ids"], inputs["padding_mask"]
    adapter = Gemma3Adapter(gemma3)
    hidden, cache = adapter.start(token_ids, padding_mask)
    logits, hidden, cache = adapter.step(token_ids, cache, 3, padding_mask)
    ```
    """

    name: ClassVar[str] = "keras_hub_gemma3"

    @classmethod
    def supports(cls, causal_lm: Any) -> bool:
        import keras_hub

        return isinstance(causal_lm, keras_hub.models.Gemma3CausalLM)

    def start(self, token_ids: Any, padding_mask: Any) -> tuple[Any, Any]:
        """``_build_cache`` as Gemma 3's ``generate_step`` calls it for text prompts."""
        return internals.build_cache(self.causal_lm, token_ids, None, None, padding_mask, None)

    def step(self, prompt: Any, cache: Any, index: Any, padding_mask: Any) -> tuple:
        """Gemma 3's ``next``: feed the token at ``index - 1``, writing the cache only where
        that position is not part of the row's prompt."""
        update_index = index - 1
        batch_size = ops.shape(prompt)[0]
        tokens = ops.slice(prompt, [0, update_index], [batch_size, 1])
        update_mask = None  # no mask (beam search's steps): every row writes its cache
        if padding_mask is not None:
            rows = ops.shape(padding_mask)[0]
            if batch_size != rows:  # each row repeated for beam or contrastive search
                padding_mask = ops.repeat(padding_mask, batch_size // rows, axis=0)
            update_mask = ops.slice(ops.logical_not(padding_mask), [0, update_index],
                                    [batch_size, 1])
        logits, hidden_states, cache = self.causal_lm.call_with_cache(
            token_ids=tokens, cache=cache, cache_update_index=update_index,
            cache_update_mask=update_mask)
        return ops.squeeze(logits, axis=1), ops.squeeze(hidden_states, axis=1), cache
