"""Built-in logits processors for the ``chain`` sampler, registered through the same hook a
third-party plugin uses (``register_processors``).

Each factory's annotations are its validation (checked before any model loads, without
importing Keras); the factory builds a :class:`samplerlab.processors.base.Processor`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from samplerlab.hookspecs import hookimpl

Probability = Annotated[float, Field(gt=0, le=1)]
Penalty = Annotated[float, Field(ge=0)]


def temperature(temperature: Annotated[float, Field(gt=0)] = 1.0):
    """Divide logits by a temperature (< 1 sharpens, > 1 flattens)."""
    from samplerlab.processors.truncation import Temperature

    return Temperature(temperature)


def top_k(k: Annotated[int, Field(ge=1)] = 50):
    """Keep the k most probable tokens (Fan et al. 2018)."""
    from samplerlab.processors.truncation import TopK

    return TopK(k)


def top_p(p: Probability = 0.9):
    """Nucleus: smallest top set whose probability reaches p (Holtzman et al. 2020)."""
    from samplerlab.processors.truncation import TopP

    return TopP(p)


def min_p(p: Probability = 0.05):
    """Keep tokens with probability >= p x the top probability (Nguyen et al. 2024)."""
    from samplerlab.processors.truncation import MinP

    return MinP(p)


def typical_p(p: Probability = 0.9):
    """Locally typical: tokens whose surprisal is closest to the entropy (Meister et al. 2023)."""
    from samplerlab.processors.truncation import TypicalP

    return TypicalP(p)


def epsilon_cutoff(epsilon: Annotated[float, Field(gt=0, lt=1)] = 3e-4):
    """Keep tokens with probability >= epsilon (Hewitt et al. 2022)."""
    from samplerlab.processors.truncation import EpsilonCutoff

    return EpsilonCutoff(epsilon)


def eta_cutoff(eta: Annotated[float, Field(gt=0, lt=1)] = 3e-4):
    """Keep tokens with probability >= min(eta, sqrt(eta) exp(-entropy)) (Hewitt et al. 2022)."""
    from samplerlab.processors.truncation import EtaCutoff

    return EtaCutoff(eta)


def top_n_sigma(n: Annotated[float, Field(ge=0)] = 1.0):
    """Keep logits >= max - n x std of the logits (Tang et al. 2024)."""
    from samplerlab.processors.truncation import TopNSigma

    return TopNSigma(n)


def repetition_penalty(penalty: Annotated[float, Field(gt=0)] = 1.2,
                       include_prompt: bool = True):
    """Divide (multiply if negative) the logits of tokens already seen (Keskar et al. 2019)."""
    from samplerlab.processors.penalties import RepetitionPenalty

    return RepetitionPenalty(penalty, include_prompt)


def presence_penalty(penalty: Penalty = 0.5, include_prompt: bool = True):
    """Subtract penalty from the logits of tokens already seen (OpenAI / llama.cpp)."""
    from samplerlab.processors.penalties import PresencePenalty

    return PresencePenalty(penalty, include_prompt)


def frequency_penalty(penalty: Penalty = 0.5, include_prompt: bool = True):
    """Subtract penalty x count of each token already seen (OpenAI / llama.cpp)."""
    from samplerlab.processors.penalties import FrequencyPenalty

    return FrequencyPenalty(penalty, include_prompt)


def no_repeat_ngram_size(n: Annotated[int, Field(ge=1)] = 3):
    """Forbid tokens that would repeat an n-gram of the history (HF no_repeat_ngram_size)."""
    from samplerlab.processors.penalties import NoRepeatNGram

    return NoRepeatNGram(n)


Breaker = Annotated[str, Field(min_length=1, max_length=40)] | list[int]


def dry(multiplier: Annotated[float, Field(ge=0)] = 0.8,
        base: Annotated[float, Field(ge=1)] = 1.75,
        allowed_length: Annotated[int, Field(ge=1)] = 2,
        sequence_breakers: list[Breaker] = ("\n", ":", '"', "*"),
        penalty_last_n: Annotated[int, Field(ge=-1)] = -1):
    """DRY: penalise tokens that would extend a repeated sequence (p-e-w 2024; llama.cpp dry)."""
    from samplerlab.processors.dry import DRY

    return DRY(multiplier, base, allowed_length, sequence_breakers, penalty_last_n)


BUILTIN_PROCESSORS = {
    f.__name__: f
    for f in (temperature, top_k, top_p, min_p, typical_p, epsilon_cutoff, eta_cutoff,
              top_n_sigma, repetition_penalty, presence_penalty, frequency_penalty,
              no_repeat_ngram_size, dry)
}


@hookimpl
def register_processors(register):
    for name, factory in BUILTIN_PROCESSORS.items():
        register(name, factory, description=factory.__doc__.splitlines()[0])
