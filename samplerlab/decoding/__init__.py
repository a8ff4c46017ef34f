"""Decoding: the generate loop and everything a sampler's loop runs with.

- :mod:`~samplerlab.decoding.generate`: the generate step, KerasHub's loop over a model's
  decoding adapter (:mod:`samplerlab.models.adapters`);
- :mod:`~samplerlab.decoding.contract`: what a sampler offers the engine, read in one
  place (:func:`~samplerlab.decoding.contract.capabilities`);
- :mod:`~samplerlab.decoding.observers`: step observers, which watch (and may steer) the
  loop from inside it;
- :mod:`~samplerlab.decoding.loop`: the history loop of samplers that need the token
  history or per-row state (``chain``, ``mirostat``, ``xtc``);
- :mod:`~samplerlab.decoding.distributions`: final distributions of KerasHub's samplers;
- :mod:`~samplerlab.decoding.params`: program parameters (values that are inputs of the
  compiled program, so sweeps compile once).

Layering: this package imports models, errors and plugins only; samplers, processors,
traces and the engine import from it, never the reverse. Importing it loads no Keras.
"""
