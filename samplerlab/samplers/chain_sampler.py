"""The ``chain`` sampler: a user-ordered list of logits processors, then a pick."""

from __future__ import annotations

from typing import Any

import keras
from keras_hub.samplers import Sampler

# The built-in processor classes register as Keras serializables on import, so a
# serialised chain of them deserialises without the caller importing them first.
import samplerlab.processors.dry  # noqa: F401
import samplerlab.processors.penalties  # noqa: F401
import samplerlab.processors.truncation  # noqa: F401
from samplerlab.decoding.contract import SamplerCapabilities, default_capabilities
from samplerlab.decoding.loop import history_loop
from samplerlab.decoding.params import ProgramParams


@keras.saving.register_keras_serializable(package="samplerlab")
class ChainSampler(ProgramParams, Sampler):
    """Apply processors in the user's order to the logits, then pick a token.

    Like llama.cpp's sampler chain and Hugging Face's ``LogitsProcessorList``: each
    processor maps ``(batch, vocab)`` logits to logits (``-inf`` = removed); the pick is
    ``argmax`` (``"greedy"``) or a draw from the softmax (``"sample"``). The loop overrides
    ``Sampler.__call__`` so processors see the token history (prompt plus generated
    tokens), and hands each processor the model first (:meth:`Processor.bind
    <samplerlab.processors.base.Processor.bind>`), e.g. so DRY can tokenize its sequence
    breakers. Processor parameters are program parameters: :meth:`assign_params` takes
    another chain's values without recompiling. The processors serialise with the chain.

    Args:
        processors: list of :class:`samplerlab.processors.base.Processor`.
        pick: ``"sample"`` or ``"greedy"``.
        seed: int, the random seed for ``"sample"``.

    Example:

    ```python
    import keras_hub
    from samplerlab.processors.truncation import TopK, Temperature
    from samplerlab.samplers.chain_sampler import ChainSampler
    sampler = ChainSampler([TopK(40), Temperature(0.8)], pick="sample", seed=1)
    causal_lm.compile(sampler=sampler)
    causal_lm.generate(["Keras is a"])
    restored = keras_hub.samplers.deserialize(keras_hub.samplers.serialize(sampler))
    ```
    """

    def __init__(self, processors: list, pick: str = "sample", seed: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if pick not in ("sample", "greedy"):
            raise ValueError(f"pick must be 'sample' or 'greedy', got {pick!r}")
        self.processors = list(processors)
        self.pick = self.add_static("pick", pick)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    @property
    def variables(self) -> list:
        out = super().variables
        for processor in self.processors:
            out.extend(processor.variables)
        return out

    def structure_key(self) -> tuple:
        """Equal keys → same compiled program; only parameter values and seeds differ."""
        return (*super().structure_key(), tuple(p.structure_key() for p in self.processors))

    def process(self, logits: Any, context: Any) -> Any:
        """Run every processor in order."""
        for processor in self.processors:
            logits = processor(logits, context)
        return logits

    def final_logits(self, logits: Any) -> Any:
        """The distribution :meth:`choose` picks from: the processed logits, or the point
        mass on their argmax for ``"greedy"`` (per-token traces)."""
        if self.pick == "sample":
            return logits
        best = keras.ops.one_hot(keras.ops.argmax(logits, axis=-1),
                                 keras.ops.shape(logits)[-1]) > 0
        return keras.ops.where(best, 0.0, float("-inf"))

    def choose(self, logits: Any) -> Any:
        if self.pick == "greedy":
            return keras.ops.argmax(logits, axis=-1)
        drawn = keras.random.categorical(logits, 1, seed=self.seed_generator, dtype="int32")
        return keras.ops.squeeze(drawn, axis=-1)

    def decoding_capabilities(self) -> SamplerCapabilities:
        """Its own history loop, which reports the distribution each step drew from; the
        processors are code of its program."""
        return default_capabilities(self, loop="adapter", reports_distribution=True,
                                    components=tuple(self.processors))

    def __call__(self, next, prompt, cache=None, index=0, mask=None,
                 stop_token_ids=None, hidden_states=None, model=None, decoding=None,
                 **kwargs):
        for processor in self.processors:
            processor.bind(model)

        def step(logits, context, extra):
            processed = self.process(logits, context)
            return self.choose(processed), extra, lambda: self.final_logits(processed)

        return history_loop(self, next, prompt, cache=cache, index=index, mask=mask,
                            stop_token_ids=stop_token_ids, model=model, step=step,
                            decoding=decoding)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(processors=[keras.saving.serialize_keras_object(p)
                                  for p in self.processors], seed=self.seed)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ChainSampler:
        config = dict(config)
        config["processors"] = [keras.saving.deserialize_keras_object(p)
                                for p in config["processors"]]
        return cls(**config)
