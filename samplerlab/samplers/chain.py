"""The ``chain`` sampler: a user-ordered list of logits processors, then a pick."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator

from samplerlab.processors import chain_spec
from samplerlab.samplers.lazy import lazy_class, lazy_exports


def _check_processors(items: list) -> list:
    # Raises ParameterError (not ValueError) so pydantic lets it through unchanged and
    # the message keeps the item's location, e.g. "processors[2].top_p: ...".
    chain_spec.validate(items)
    return items


ProcessorList = Annotated[list, AfterValidator(_check_processors)]


def make_chain_sampler_class():
    """Define :class:`ChainSampler` on first use, so importing this module stays Keras-free."""
    import keras
    from keras_hub.samplers import Sampler

    from samplerlab.processors.loop import history_loop

    class ChainSampler(Sampler):
        """Apply processors in the user's order to the logits, then pick a token.

        Like llama.cpp's sampler chain and Hugging Face's ``LogitsProcessorList``: each
        processor maps ``(batch, vocab)`` logits to logits (``-inf`` = removed); the pick
        is ``argmax`` (``"greedy"``) or a draw from the softmax (``"sample"``). The loop
        overrides ``Sampler.__call__`` so processors see the token history (prompt plus
        generated tokens). Processor parameters are traced (see :meth:`assign_params`).

        Args:
            processors: list of :class:`samplerlab.processors.base.Processor`.
            pick: ``"sample"`` or ``"greedy"``.
            seed: int, the random seed for ``"sample"``.

        Example:

        ```python
        from samplerlab.processors.truncation import TopK, Temperature
        from samplerlab.samplers.chain import ChainSampler
        sampler = ChainSampler([TopK(40), Temperature(0.8)], pick="sample", seed=1)
        causal_lm.compile(sampler=sampler)
        causal_lm.generate(["Keras is a"])
        ```
        """

        def __init__(self, processors: list, pick: str = "sample", seed: int | None = None,
                     **kwargs: Any) -> None:
            super().__init__(**kwargs)
            if pick not in ("sample", "greedy"):
                raise ValueError(f"pick must be 'sample' or 'greedy', got {pick!r}")
            self.processors = list(processors)
            self.pick = pick
            self.seed = seed
            self.seed_generator = keras.random.SeedGenerator(seed)

        @property
        def variables(self) -> list:
            out = super().variables
            for processor in self.processors:
                out.extend(processor.variables)
            return out

        def structure_key(self) -> tuple:
            """Equal keys → same compiled program; only traced values and seeds differ."""
            return ("chain", self.pick, tuple(p.structure_key() for p in self.processors))

        def assign_params(self, other: Any) -> None:
            """Take ``other``'s parameter values and seed state (same structure required)."""
            from samplerlab.processors.base import assign_params

            assign_params(self, other)

        def process(self, logits: Any, context: Any) -> Any:
            """Run every processor in order."""
            for processor in self.processors:
                logits = processor(logits, context)
            return logits

        def final_logits(self, logits: Any) -> Any:
            """The distribution :meth:`choose` picks from: the processed logits, or the
            point mass on their argmax for ``"greedy"`` (per-token traces)."""
            if self.pick == "sample":
                return logits
            best = keras.ops.one_hot(keras.ops.argmax(logits, axis=-1),
                                     keras.ops.shape(logits)[-1]) > 0
            return keras.ops.where(best, 0.0, float("-inf"))

        def choose(self, logits: Any) -> Any:
            if self.pick == "greedy":
                return keras.ops.argmax(logits, axis=-1)
            drawn = keras.random.categorical(logits, 1, seed=self.seed_generator,
                                             dtype="int32")
            return keras.ops.squeeze(drawn, axis=-1)

        def __call__(self, next, prompt, cache=None, index=0, mask=None,
                     stop_token_ids=None, hidden_states=None, model=None, decoding=None,
                     **kwargs):
            def step(logits, context, extra):
                processed = self.process(logits, context)
                return self.choose(processed), extra, lambda: self.final_logits(processed)

            return history_loop(self, next, prompt, cache=cache, index=index, mask=mask,
                                stop_token_ids=stop_token_ids, model=model, step=step,
                                decoding=decoding)

        def get_config(self) -> dict:
            return {"processors": [{type(p).__name__: p.params()} for p in self.processors],
                    "pick": self.pick, "seed": self.seed}

    return ChainSampler


#: The :class:`ChainSampler` class (a ``keras_hub.samplers.Sampler`` subclass).
chain_sampler_class = lazy_class(make_chain_sampler_class)
__getattr__ = lazy_exports(ChainSampler=chain_sampler_class)


def chain(processors: ProcessorList,
          pick: Literal["sample", "greedy"] = "sample",
          seed: int | None = None):
    """Processors in your order (penalties, truncations, temperature...), then greedy or sample.

    ``processors`` items: ``top_k`` | ``{top_k: 40}`` | ``{top_p: {p: 0.9}}`` |
    ``{name: top_p, p: 0.9}``. ``samplerlab processors`` lists them.
    """
    return chain_sampler_class()(chain_spec.build(processors), pick=pick, seed=seed)


def _expand_param(name: str, value: Any) -> list[Any]:
    """Sweep axes inside ``processors`` (``[{top_k: [10, 40]}]`` is two cells)."""
    return chain_spec.expand_sweeps(value) if name == "processors" else [value]


# The spec expands a factory's ``expand_param`` axes like list-valued parameters.
chain.expand_param = _expand_param
