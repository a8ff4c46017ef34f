"""Prompts for a run: the spec's list, or taken from a dataset."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Prompt:
    """A prompt and, when it came from a dataset, the human continuation it was cut from."""

    text: str
    index: int
    reference: str | None = None


def resolve_prompts(loaded_spec) -> list[Prompt]:
    """The prompts of a spec, in order."""
    prompts = loaded_spec.spec.prompts
    if isinstance(prompts, list):
        return [Prompt(text=p, index=i) for i, p in enumerate(prompts)]
    raise NotImplementedError("prompts from a dataset")
