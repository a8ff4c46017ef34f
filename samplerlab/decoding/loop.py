"""The generation loop of history-aware samplers (``chain``, ``mirostat``, ``xtc``).

KerasHub's ``Sampler.get_next_token`` sees probabilities only. Its guidance for samplers
that need more (contrastive, beam) is to override ``Sampler.__call__``; this module is
that override, shared: the same ``while_loop`` as ``Sampler.__call__`` (stop tokens,
prompt positions kept, ``run_loop`` threading ``sampler.variables`` as state under JAX),
but each step gets the raw logits, the token history and extra per-row loop state.

A step may also return, third, a zero-argument function building the logits of the
distribution it drew from (``-inf``: removed); when the engine's step observers listen
(per-token traces) the loop reports it, and it hands its final cache back
(:mod:`samplerlab.decoding.observers`). Without observers neither is traced.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple


class Context(NamedTuple):
    """What a history loop's step (and a processor) may look at besides the logits.

    Attributes:
        tokens: int tensor ``(batch, max_length)``: the prompt and the tokens generated so
            far. Positions ``< index`` are filled (prompt or generated); later positions
            hold padding or, for rows with a longer prompt, the rest of that prompt.
        index: int32 scalar tensor, the position being generated.
        prompt_mask: bool tensor ``(batch, max_length)``, True on prompt tokens.
    """

    tokens: Any
    index: Any
    prompt_mask: Any


# step(logits, context, extra) -> (next_token (batch,), new extra[, final logits thunk])
Step = Callable[[Any, Context, tuple], tuple]


def history_loop(sampler: Any, next: Callable, prompt: Any, *, cache: Any = None,
                 index: Any = 0, mask: Any = None, stop_token_ids: Any = None,
                 model: Any = None, step: Step, extra: tuple = (),
                 decoding: Any = None) -> Any:
    """Run ``step`` once per position from ``index`` to the end; return the tokens.

    ``extra`` is a tuple of tensors carried from step to step (e.g. mirostat's ``mu``).
    A step's result at a prompt position (``mask`` True) is discarded, as in KerasHub.
    ``decoding`` is the decoding adapter the engine passed the sampler (None elsewhere).
    """
    from keras import ops

    from samplerlab.decoding.observers import hand_back, report_distribution
    from samplerlab.models.internals import any_equal

    max_length = ops.cast(ops.shape(prompt)[-1], "int32")
    index = ops.cast(index, "int32")
    mask = ops.zeros_like(prompt, dtype="bool") if mask is None else ops.cast(mask, "bool")
    cache = () if cache is None else cache

    def cond(prompt, cache, index, mask, extra):
        if stop_token_ids is None:
            return ops.convert_to_tensor(True, dtype="bool")
        # Stop once every row has produced a *new* stop token.
        done = ops.any(any_equal(prompt, stop_token_ids, ops.logical_not(mask)), axis=-1)
        return ops.logical_not(ops.all(done))

    def body(prompt, cache, index, mask, extra):
        logits, _, cache = next(prompt, cache, index)
        logits = ops.cast(logits, "float32")
        token, new_extra, *final = step(logits, Context(prompt, index, mask), extra)
        if final:
            cache = report_distribution(decoding, cache, index, final[0])
        forced = mask[:, index]
        token = ops.where(forced, prompt[:, index], ops.cast(token, prompt.dtype))
        # Per-row state does not advance on prompt positions of longer prompts.
        new_extra = tuple(ops.where(_expand_like(forced, new), old, new)
                          for old, new in zip(extra, new_extra, strict=True))
        prompt = ops.slice_update(prompt, [0, index], token[:, None])
        return prompt, cache, index + 1, mask, new_extra

    prompt, cache, *_ = sampler.run_loop(cond, body, loop_vars=(prompt, cache, index, mask,
                                                                tuple(extra)),
                                         maximum_iterations=max_length - index, model=model)
    hand_back(decoding, cache, prompt)
    return prompt


def _expand_like(row_flags: Any, value: Any) -> Any:
    from keras import ops

    for _ in range(len(ops.shape(value)) - 1):
        row_flags = row_flags[..., None]
    return row_flags
