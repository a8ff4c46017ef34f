"""samplerlab-example: top-a sampling, registered as a sampler and as a chain processor,
and a ``samplerlab top-a`` command that shows which tokens it keeps.

Top-a (BlinkDL, RWKV; also in text-generation-webui) keeps the tokens whose probability
is at least ``a * p_max**2``: a confident model (large ``p_max``) truncates hard, an
unsure one keeps many candidates. No built-in samplerlab sampler does this.
"""

from typing import Annotated

from pydantic import Field

import samplerlab

A = Annotated[float, Field(gt=0, le=1, description="ratio to the squared top probability")]


def top_a(a: A = 0.2, temperature: Annotated[float, Field(gt=0)] = 1.0,
          seed: int | None = None):
    """Top-a: sample among tokens with p >= a * p_max^2 (BlinkDL, RWKV)."""
    # Import Keras lazily: samplerlab validates specs before any model loads.
    from samplerlab_example.sampling import TopASampler

    return TopASampler(a=a, temperature=temperature, seed=seed)


def top_a_processor(a: A = 0.2):
    """Top-a as a chain processor: drop tokens with p < a * p_max^2."""
    from samplerlab_example.sampling import TopA

    return TopA(a)


@samplerlab.hookimpl
def register_samplers(register):
    register("top_a", top_a)


@samplerlab.hookimpl
def register_processors(register):
    register("top_a", top_a_processor)


def top_a_command(
    probabilities: list[float],
    a: float = 0.2,
) -> None:
    """Show which of PROBABILITIES top-a keeps: p >= a * p_max^2."""
    import typer

    if not probabilities or any(p < 0 for p in probabilities) or not 0 < a <= 1:
        raise typer.BadParameter("give probabilities >= 0 and 0 < --a <= 1")
    threshold = a * max(probabilities) ** 2
    kept = [p for p in probabilities if p >= threshold]
    typer.echo(f"threshold {threshold:.4g}: keeps {len(kept)} of {len(probabilities)} "
               f"({', '.join(f'{p:g}' for p in kept)})")


@samplerlab.hookimpl
def register_commands(cli):
    cli.command("top-a")(top_a_command)
