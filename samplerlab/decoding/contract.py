"""The sampler contract: what a sampler offers the engine, read in one place.

Any ``keras_hub.samplers.Sampler`` runs in samplerlab unchanged. A sampler that offers
more (its final distribution for per-token traces, a loop over the decoding adapter,
beams, extra models, loop statistics, a baseline to time against) says so by
implementing :class:`DecodingSampler`: one method returning its
:class:`SamplerCapabilities`. :func:`capabilities` is the only reader: the engine, the
program cache, the trace observer and the conformance kit ask it, never the sampler's
attributes. A sampler that does not implement the contract gets
:func:`default_capabilities`: KerasHub's base loop when it only overrides
``get_next_token``, its own loop called as KerasHub calls it otherwise, the final
distribution of KerasHub's own classes (:func:`~samplerlab.decoding.distributions.
keras_hub_distribution`), and the structure key of
:class:`~samplerlab.decoding.params.ProgramParams` (or, for KerasHub's own classes, their
config).

Two capabilities come with methods, each a small protocol of its own:
:class:`ExtraModelSampler` (``extra_models``: the engine loads each preset and attaches
the models) and :class:`LoopStatsSampler` (``loop_stats``: per-call counts).

Example:

```python
import keras_hub
from samplerlab.decoding.contract import capabilities

class Argmax(keras_hub.samplers.Sampler):  # a plain KerasHub sampler: the defaults
    def get_next_token(self, probabilities):
        return keras_hub.samplers.GreedySampler().get_next_token(probabilities)

caps = capabilities(Argmax())
assert caps.loop == "base" and caps.distribution is None and caps.extra_models == ()
```
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol, runtime_checkable

#: ``"base"``: KerasHub's base loop (the sampler overrides ``get_next_token`` only; with
#: step observers the engine runs samplerlab's copy of that loop). ``"own"``: its own
#: ``__call__``, called as KerasHub calls it. ``"adapter"``: its own ``__call__``, which
#: also takes the decoding adapter as ``decoding=`` (observed, when observers listen).
Loop = Literal["base", "own", "adapter"]


@dataclass(frozen=True)
class ExtraModel:
    """A model a sampler needs besides the target: a speculative draft, an amateur for
    contrastive decoding, a guidance model.

    Attributes:
        role: the sampler's name for it (``"draft"``); the key of
            :meth:`ExtraModelSampler.attach_models`.
        preset: the preset reference to load (loaded like the target, same tokenizer).
    """

    role: str
    preset: str


@dataclass(frozen=True)
class LoopStats:
    """Per-call statistics a sampler's loop counts, and the metric columns they give.

    Attributes:
        section: the key of the cell's timing that holds them (with the baseline's
            timing, when the sampler has a baseline).
        counts: the names of :meth:`LoopStatsSampler.last_loop_stats`, summed over a
            cell's calls.
        rates: ``rates(summed counts) -> {name: value or None}``, added to the section.
        columns: the section's entries that become metric columns of the cell.
    """

    section: str
    counts: tuple[str, ...]
    rates: Callable[[dict[str, int]], dict[str, float | None]]
    columns: tuple[str, ...]


@dataclass(frozen=True)
class SamplerCapabilities:
    """What a sampler offers the engine (:func:`capabilities` reads it once per sampler).

    Attributes:
        loop: which loop generates (:data:`Loop`).
        observed_steps: its loop computes every position through the adapter's ``step``
            (``next``), so step observers (stop strings, traces) run inside it; False (a
            loop that writes several tokens per pass: speculative decoding) runs on the
            bare adapter, and observers replay the finished tokens.
        distribution: its final distribution as a function of the logits
            (:data:`~samplerlab.decoding.distributions.Distribution`), for the
            sampler-side trace columns; None when unknown.
        reports_distribution: its loop reports the distribution it drew from
            (:func:`~samplerlab.decoding.observers.report_distribution`).
        beams: its loop runs ``candidates`` hypotheses per row (rows of its cache are
            ``batch * candidates``).
        candidates: the candidates it weighs per step (beams, contrastive's ``k``; 1: one
            token per row).
        extra_models: the models it needs besides the target (:class:`ExtraModel`).
        loop_stats: the per-call statistics of its loop (:class:`LoopStats`), or None.
        baseline: a sampler it is timed against (the same tokens' distribution without
            its speed-up), or None; its timing joins the ``loop_stats`` section (or a
            ``baseline`` section of the cell's timing).
        structure: what fixes its compiled program (equal: one program serves both
            samplers); None: nothing vouches, it gets a program of its own.
        components: objects whose code its program runs besides its own class (a chain's
            processors): a program is kept on disk only when all of them are trusted.
    """

    loop: Loop = "base"
    observed_steps: bool = True
    distribution: Callable[[Any], tuple[Any, Any]] | None = None
    reports_distribution: bool = False
    beams: bool = False
    candidates: int = 1
    extra_models: tuple[ExtraModel, ...] = ()
    loop_stats: LoopStats | None = None
    baseline: Any = None
    structure: Any = None
    components: tuple = ()


@runtime_checkable
class DecodingSampler(Protocol):
    """A sampler that declares what it offers the engine (every built-in does)."""

    def decoding_capabilities(self) -> SamplerCapabilities:
        """Its capabilities; usually ``default_capabilities(self, ...)`` with changes."""
        ...


@runtime_checkable
class ExtraModelSampler(Protocol):
    """A sampler with ``extra_models``: the engine attaches them before it generates."""

    def attach_models(self, adapters: Mapping[str, Any]) -> None:
        """Take the loaded models' decoding adapters, by :attr:`ExtraModel.role`."""
        ...

    def attached_models(self) -> tuple:
        """The attached adapters (their weights are inputs of the compiled program)."""
        ...


@runtime_checkable
class LoopStatsSampler(Protocol):
    """A sampler with ``loop_stats``: its last call's counts."""

    def last_loop_stats(self) -> dict[str, int]:
        """The counts of the last call, by :attr:`LoopStats.counts` name."""
        ...


_READ: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def capabilities(sampler: Any) -> SamplerCapabilities:
    """The sampler's capabilities: its own declaration (:class:`DecodingSampler`) or the
    defaults for a plain KerasHub sampler; computed once per sampler object.

    Raises:
        TypeError: it declares extra models or loop statistics without the methods that
            serve them.
    """
    read = _READ.get(sampler)
    if read is None:
        read = (sampler.decoding_capabilities() if isinstance(sampler, DecodingSampler)
                else default_capabilities(sampler))
        _check(sampler, read)
        _READ[sampler] = read
    return read


def default_capabilities(sampler: Any, **changes: Any) -> SamplerCapabilities:
    """What any ``keras_hub.samplers.Sampler`` offers without declaring anything, with
    ``changes`` (field values) applied."""
    from keras_hub.samplers import Sampler

    from samplerlab.decoding.distributions import keras_hub_distribution
    from samplerlab.decoding.params import ProgramParams

    if isinstance(sampler, ProgramParams):
        structure = sampler.structure_key()
    elif type(sampler).__module__.startswith("keras_hub."):
        structure = sampler.get_config()  # KerasHub's classes: every setting they trace
    else:
        structure = None
    base = SamplerCapabilities(
        loop="base" if type(sampler).__call__ is Sampler.__call__ else "own",
        distribution=keras_hub_distribution(sampler), structure=structure)
    return replace(base, **changes)


def _check(sampler: Any, read: SamplerCapabilities) -> None:
    name = type(sampler).__name__
    if read.extra_models and not isinstance(sampler, ExtraModelSampler):
        raise TypeError(f"{name} declares extra models but has no attach_models()/"
                        "attached_models() (samplerlab.decoding.contract.ExtraModelSampler)")
    if read.loop_stats is not None and not isinstance(sampler, LoopStatsSampler):
        raise TypeError(f"{name} declares loop statistics but has no last_loop_stats() "
                        "(samplerlab.decoding.contract.LoopStatsSampler)")


def attached_models(sampler: Any) -> tuple:
    """The decoding adapters attached to a sampler with extra models (none otherwise)."""
    if not capabilities(sampler).extra_models:
        return ()
    return tuple(sampler.attached_models())
