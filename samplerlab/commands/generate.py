"""``samplerlab generate``: one prompt, one sampler (the tutorial's one-liner)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from samplerlab.cli.options import PluginOpt, load_plugins
from samplerlab.cli.output import out
from samplerlab.errors import UserInputError


def register(cli: typer.Typer) -> None:
    cli.command()(generate)


def generate(
    prompt: Annotated[str, typer.Argument(help="the prompt")],
    preset: Annotated[str, typer.Option("--preset", help="KerasHub preset name, preset or "
                                        "Hugging Face directory, hf://org/name or "
                                        "samplerlab:NAME")] = "samplerlab:tiny-en",
    sampler: Annotated[str, typer.Option("--sampler", help="sampler name")] = "top_k",
    param: Annotated[list[str] | None, typer.Option(
        "-p", "--param", help="sampler parameter KEY=VALUE (repeatable)")] = None,
    max_length: Annotated[int, typer.Option("--max-length", min=2)] = 200,
    sequence_length: Annotated[int, typer.Option("--sequence-length", min=2)] = 128,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    plugin: PluginOpt = None,
) -> None:
    """Generate from one prompt with one sampler (the tutorial's one-liner)."""
    import yaml

    from samplerlab.engine.extra_models import attach_extra_models
    from samplerlab.engine.programs import ProgramCache
    from samplerlab.models import check_preset_reference, load_model
    from samplerlab.plugins import registry

    load_plugins(plugin)
    entry = registry("samplers").get_entry(sampler)
    params = {}
    for item in param or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserInputError(f"expected KEY=VALUE, got '{item}' (e.g. -p k=10)",
                                 field="--param")
        params[key.strip()] = yaml.safe_load(value)
    if seed is not None and entry.accepts("seed"):
        params["seed"] = seed
    entry.validate(params)
    try:
        check_preset_reference(preset)
    except UserInputError as exc:
        raise UserInputError(exc.problem, field="--preset") from None
    model = load_model(preset, sequence_length)
    sampler = entry.build(**params)
    try:
        attach_extra_models(sampler, model)  # e.g. a draft model, same tokenizer
    except UserInputError as exc:
        raise UserInputError(exc.problem, field=f"--param {exc.field}") from None
    inputs = model.preprocessor.generate_preprocess([prompt], sequence_length=max_length)
    program = ProgramCache(model.adapter).get(sampler, inputs, model.stop_token_ids)
    text = model.preprocessor.generate_postprocess(program(sampler, inputs))
    out.print(_first(text), markup=False, highlight=False)


def _first(texts: Any) -> str:
    """The one text of a batch of one, whether KerasHub returned a list, array or tensor."""
    first = texts[0] if not isinstance(texts, str) else texts
    if hasattr(first, "numpy"):
        first = first.numpy()
    return first.decode("utf-8", "replace") if isinstance(first, bytes) else str(first)
