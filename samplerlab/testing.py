"""Conformance checks for sampler (and processor) plugins, and their pytest fixture.

A plugin author checks a sampler factory in one line of their own test suite::

    def test_my_sampler(sampler_conformance):
        sampler_conformance(make_my_sampler, {"alpha": 0.3})

``sampler_conformance`` is :func:`check_sampler`, provided as a pytest fixture by this
module, which samplerlab registers as a pytest plugin (entry point ``pytest11``). The
check runs the sampler inside KerasHub's compiled (``jax.jit``) generate function on a
tiny randomly initialised GPT-2 (real ``GPT2Backbone``/``GPT2CausalLM``, 96-token
vocabulary, no preprocessor) and verifies:

* **shape and dtype**: ``(batch, max_length)`` integer tokens within the vocabulary,
  prompt tokens untouched;
* **determinism under a seed**: re-running after restoring the seed state, and a fresh
  sampler built with the same seed, give the same tokens;
* **max_length**: nothing is written past the requested length;
* **stop tokens**: once every row has produced a stop token the loop stops writing, and
  the returned padding mask ends at each row's first stop token;
* **batch consistency** (deterministic samplers): a prompt's output does not depend on
  its batch neighbours (prompts of different lengths, run together and alone);
* **sampler contract**: its capabilities read (:func:`samplerlab.decoding.contract.
  capabilities`), and a final distribution it declares is one: ``(batch, vocab)``
  log-probabilities summing to 1, and a kept size per row. Extra models
  it declares are the tiny model itself, attached before the first run.

Importing this module does not import Keras; the first check does.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

VOCABULARY_SIZE = 96
PROMPT_LENGTHS = (3, 6, 4)


class ConformanceError(AssertionError):
    """A sampler failed one conformance check (the message names the check)."""


@dataclass
class ConformanceReport:
    """What :func:`check_sampler` checked, for a passing sampler."""

    name: str
    deterministic: bool
    checks: list[str] = field(default_factory=list)
    tokens: Any = None  # the first run's (batch, max_length) tokens, as NumPy
    capabilities: Any = None  # what the sampler offers the engine (SamplerCapabilities)


@lru_cache(maxsize=4)
def tiny_causal_lm(vocabulary_size: int = VOCABULARY_SIZE, max_sequence_length: int = 64,
                   seed: int = 0) -> Any:
    """A tiny random GPT-2 causal LM without preprocessor (inputs are token ids)."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=vocabulary_size, num_layers=1, num_heads=2, hidden_dim=16,
        intermediate_dim=32, max_sequence_length=max_sequence_length, dropout=0.0)
    return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)


def tiny_batch(max_length: int = 16, lengths: tuple[int, ...] = PROMPT_LENGTHS,
               vocabulary_size: int = VOCABULARY_SIZE) -> dict[str, Any]:
    """Right-padded prompts of different lengths, as KerasHub's preprocessor makes them."""
    import numpy as np

    rng = np.random.default_rng(7)
    token_ids = np.zeros((len(lengths), max_length), dtype="int32")
    padding_mask = np.zeros((len(lengths), max_length), dtype=bool)
    for row, n in enumerate(lengths):
        token_ids[row, :n] = rng.integers(1, vocabulary_size, size=n)
        padding_mask[row, :n] = True
    return {"token_ids": token_ids, "padding_mask": padding_mask}


def _builder(factory_or_name: str | Callable[..., Any],
             params: dict[str, Any]) -> tuple[str, Callable[[int], Any], bool]:
    """(display name, seed -> fresh sampler, whether the factory takes a seed)."""
    if isinstance(factory_or_name, str):
        from samplerlab.plugins import registry

        entry = registry("samplers").get_entry(factory_or_name)
        takes_seed = "seed" in params or entry.accepts("seed")

        def build(seed: int) -> Any:
            extra = {"seed": seed} if takes_seed else {}
            return entry.build(**{**params, **extra})

        return factory_or_name, build, takes_seed
    factory = factory_or_name
    signature = inspect.signature(factory)
    takes_seed = "seed" in signature.parameters or any(
        p.kind is p.VAR_KEYWORD for p in signature.parameters.values())

    def build(seed: int) -> Any:
        extra = {"seed": seed} if takes_seed else {}
        return factory(**{**params, **extra})

    return getattr(factory, "__name__", repr(factory)), build, takes_seed


def _generate(model: Any, sampler: Any, batch: dict[str, Any], stop: Any = None,
              *, compile: bool = True) -> dict[str, Any]:
    import numpy as np

    if compile:
        model.compile(sampler=sampler)
    out = model.generate(batch, stop_token_ids=stop)
    return {k: np.asarray(v) for k, v in out.items()}


def _fail(name: str, check: str, detail: str) -> ConformanceError:
    return ConformanceError(f"sampler '{name}' failed '{check}': {detail}")


def check_sampler(factory_or_name: str | Callable[..., Any], params: dict[str, Any] | None = None,
                  *, seed: int = 1234, max_length: int = 16, deterministic: bool | None = None,
                  ragged: bool = True, strict_stop: bool = True,
                  model: Any = None) -> ConformanceReport:
    """Check that a sampler factory behaves like a well-formed KerasHub sampler.

    Args:
        factory_or_name: a registered sampler name, or a factory
            (``factory(**params) -> keras_hub.samplers.Sampler``).
        params: the factory's parameters (``seed`` is added when it takes one).
        seed: the seed used for the determinism checks.
        max_length: total length generated (prompt included).
        deterministic: whether the output must not depend on the seed or batch
            neighbours. Default: True when the factory takes no ``seed``.
        ragged: batch prompts of different lengths (KerasHub pads them on the right and
            forces prompt tokens while shorter rows generate); False: equal lengths.
        strict_stop: require the loop to stop writing once every returned row has a stop
            token. False for multi-hypothesis samplers (beam search), whose loop runs
            until every hypothesis has stopped.
        model: a KerasHub causal LM without preprocessor; default :func:`tiny_causal_lm`.

    Returns:
        A :class:`ConformanceReport` listing the checks passed.

    Raises:
        ConformanceError: naming the failed check.

    Example:

    ```python
    from samplerlab.testing import check_sampler

    report = check_sampler("greedy")
    assert report.checks[:3] == ["shape and dtype", "prompt kept", "determinism (re-seeded)"]
    ```
    """
    import numpy as np

    params = dict(params or {})
    name, build, takes_seed = _builder(factory_or_name, params)
    deterministic = (not takes_seed) if deterministic is None else deterministic
    model = model if model is not None else tiny_causal_lm()
    vocab = int(model.backbone.vocabulary_size)
    lengths = PROMPT_LENGTHS if ragged else (max(PROMPT_LENGTHS),) * len(PROMPT_LENGTHS)
    batch = tiny_batch(max_length, lengths, vocabulary_size=vocab)
    report = ConformanceReport(name, deterministic)

    sampler = build(seed)
    report.capabilities = _attach_extra_models(sampler, model)
    initial_state = [np.asarray(v.value) for v in sampler.variables]
    first = _generate(model, sampler, batch)
    tokens = first["token_ids"]
    report.tokens = tokens
    if tokens.shape != batch["token_ids"].shape:
        raise _fail(name, "shape and dtype", f"tokens of shape {tokens.shape}, expected "
                    f"{batch['token_ids'].shape} (max_length {max_length})")
    if not np.issubdtype(tokens.dtype, np.integer):
        raise _fail(name, "shape and dtype", f"tokens of dtype {tokens.dtype}, expected ints")
    if tokens.min() < 0 or tokens.max() >= vocab:
        raise _fail(name, "shape and dtype", f"token ids outside [0, {vocab})")
    report.checks.append("shape and dtype")
    prompt = batch["padding_mask"]
    if not np.array_equal(tokens[prompt], batch["token_ids"][prompt]):
        raise _fail(name, "prompt kept", "prompt tokens were overwritten")
    report.checks.append("prompt kept")

    # Same compiled function, seed state restored: the runner re-seeds samplers this way.
    for variable, value in zip(sampler.variables, initial_state, strict=True):
        variable.assign(value)
    again = _generate(model, sampler, batch, compile=False)["token_ids"]
    if not np.array_equal(again, tokens):
        raise _fail(name, "determinism (re-seeded)", "a second run from the same seed state "
                    "gave different tokens")
    report.checks.append("determinism (re-seeded)")

    _check_stop_tokens(name, _attached(build(seed), model), model, batch, tokens, report,
                       strict_stop)
    if deterministic:
        _check_batch_consistency(name, _attached(build(seed), model), model, batch, tokens,
                                 report)
    _check_distribution(name, report.capabilities, vocab, report)
    return report


def _attach_extra_models(sampler: Any, model: Any) -> Any:
    """Read the sampler's capabilities; attach ``model`` as each extra model it declares."""
    from samplerlab.decoding.contract import capabilities
    from samplerlab.models.adapters import DecodingAdapter

    offers = capabilities(sampler)
    if offers.extra_models:
        sampler.attach_models({m.role: DecodingAdapter(model) for m in offers.extra_models})
    return offers


def _attached(sampler: Any, model: Any) -> Any:
    _attach_extra_models(sampler, model)
    return sampler


def _check_distribution(name: str, offers: Any, vocab: int, report: ConformanceReport) -> None:
    """A declared final distribution: normalised log-probabilities and their support size."""
    import numpy as np

    if offers.distribution is not None:
        logits = np.random.default_rng(0).normal(size=(3, vocab)).astype("float32")
        log_probs, kept = (np.asarray(x) for x in offers.distribution(logits))
        if log_probs.shape != (3, vocab) or np.asarray(kept).shape != (3,):
            raise _fail(name, "sampler contract", f"distribution shapes {log_probs.shape}, "
                        f"{np.asarray(kept).shape}; expected (3, {vocab}) and (3,)")
        mass = np.exp(log_probs).sum(axis=-1)
        if not np.allclose(mass, 1.0, atol=1e-4):
            raise _fail(name, "sampler contract", f"distribution sums to {mass}, not 1")
    report.checks.append("sampler contract")


def _check_stop_tokens(name: str, sampler: Any, model: Any, batch: dict[str, Any],
                       reference: Any, report: ConformanceReport, strict: bool) -> None:
    """A fresh sampler (same seed) with stop tokens: the loop stops, the mask ends there."""
    import numpy as np

    lengths = batch["padding_mask"].sum(axis=1)
    # Each row's first generated token is a stop token: every row should stop at once.
    # The padding id (0) is never a stop token: KerasHub's loop would see the padding
    # after a prompt as an already produced stop token.
    stops = tuple(sorted({int(reference[row, n]) for row, n in enumerate(lengths)} - {0}))
    out = _generate(model, sampler, batch, stop=stops)
    tokens, mask = out["token_ids"], out["padding_mask"]
    first_stop = []
    for row, n in enumerate(lengths):
        hits = [i for i in range(n, tokens.shape[1]) if tokens[row, i] in stops]
        end = hits[0] if hits else tokens.shape[1] - 1
        first_stop.append(end if hits else None)
        expected = np.arange(tokens.shape[1]) <= end
        if not np.array_equal(mask[row], expected):
            raise _fail(name, "stop tokens", f"row {row}: padding mask does not end at the "
                        f"first stop token (position {end})")
    if strict and all(p is not None for p in first_stop):
        last = max(first_stop)
        untouched = batch["token_ids"][:, last + 1:]
        if not np.array_equal(tokens[:, last + 1:], untouched):
            raise _fail(name, "stop tokens", "kept generating after every row had produced "
                        f"a stop token (by position {last})")
    report.checks.append("stop tokens")
    # Built again from the same seed, the sampler must retrace the first run's tokens.
    for row, p in enumerate(first_stop):
        end = tokens.shape[1] if p is None else p + 1
        if not np.array_equal(tokens[row, :end], reference[row, :end]):
            raise _fail(name, "determinism (fresh sampler)", f"row {row}: a sampler built "
                        "again with the same seed produced different tokens")
    report.checks.append("determinism (fresh sampler)")


def _check_batch_consistency(name: str, sampler: Any, model: Any, batch: dict[str, Any],
                             reference: Any, report: ConformanceReport) -> None:
    import numpy as np

    model.compile(sampler=sampler)
    for row in range(batch["token_ids"].shape[0]):
        alone = {k: v[row: row + 1] for k, v in batch.items()}
        tokens = np.asarray(model.generate(alone, stop_token_ids=None)["token_ids"])[0]
        if not np.array_equal(tokens, reference[row]):
            raise _fail(name, "batch consistency", f"prompt {row} alone gave {tokens.tolist()}"
                        f", in a batch {reference[row].tolist()}")
    report.checks.append("batch consistency")


def check_processor(factory_or_name: str | Callable[..., Any],
                    params: dict[str, Any] | None = None, **kwargs: Any) -> ConformanceReport:
    """Check a processor: alone in a ``chain`` it passes :func:`check_sampler`.

    Also checks that on random logits it returns float logits of the same shape and keeps
    at least one finite logit per row.
    """
    import keras
    import numpy as np

    from samplerlab.processors.base import Context
    from samplerlab.samplers.chain_sampler import ChainSampler

    params = dict(params or {})
    if isinstance(factory_or_name, str):
        from samplerlab.plugins import registry

        entry = registry("processors").get_entry(factory_or_name)

        def factory() -> Any:
            return entry.build(**params)

        name = factory_or_name
    else:
        def factory() -> Any:
            return factory_or_name(**params)

        name = getattr(factory_or_name, "__name__", repr(factory_or_name))

    logits = np.random.default_rng(0).normal(size=(3, VOCABULARY_SIZE)).astype("float32")
    tokens = tiny_batch(16)["token_ids"]
    context = Context(tokens, np.int32(6), tokens > 0)
    out = keras.ops.convert_to_numpy(factory()(keras.ops.convert_to_tensor(logits), context))
    if out.shape != logits.shape or not np.issubdtype(out.dtype, np.floating):
        raise _fail(name, "processor output", f"got {out.dtype} {out.shape}, expected float "
                    f"logits of shape {logits.shape}")
    if not np.isfinite(out).any(axis=-1).all():
        raise _fail(name, "processor output", "a row has no finite logit left")

    def chained(seed: int | None = None) -> Any:
        return ChainSampler([factory()], pick="sample", seed=seed)

    chained.__name__ = f"chain[{name}]"
    report = check_sampler(chained, **kwargs)
    report.checks.insert(0, "processor output")
    return report


try:  # The pytest plugin part: only when pytest is importable.
    import pytest
except ImportError:  # pragma: no cover - samplerlab itself does not need pytest
    pytest = None

if pytest is not None:

    @pytest.fixture
    def sampler_conformance() -> Callable[..., ConformanceReport]:
        """``sampler_conformance(factory_or_name, params=None, **options)``: see check_sampler."""
        return check_sampler

    @pytest.fixture
    def processor_conformance() -> Callable[..., ConformanceReport]:
        """``processor_conformance(factory_or_name, params=None)``: see check_processor."""
        return check_processor
