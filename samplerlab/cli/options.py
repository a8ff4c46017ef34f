"""Options shared by several commands."""

from __future__ import annotations

import functools
import inspect
import types
import typing
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from samplerlab.errors import PluginWarning, UserInputError

OverrideOpt = Annotated[list[str] | None, typer.Option(
    "-o", "--override", help="dotted.key=value override, validated like the spec (repeatable)")]
PluginOpt = Annotated[list[str] | None, typer.Option(
    "--plugin", help="module or .py file to load as a plugin (runs its code; repeatable)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]


def load_plugins(plugins: list[str] | None) -> None:
    """Load the ``--plugin`` modules and files (each one runs its code)."""
    from samplerlab.plugins import load_plugin

    for target in plugins or []:
        load_plugin(target)


# ------------------------------------------------------------------ executor options
# An executor's factory parameters become options of ``samplerlab run``: parameter
# ``gpus_per_cell`` of executor ``ray`` is ``--ray-gpus-per-cell``. The run command itself
# names no executor and no executor option.
CLICK_TYPES = (str, int, float, bool)
# Click's bounds are inclusive: an open bound (gt, lt) is checked exactly by the
# factory's own validation when the executor is built.
BOUNDS = {"ge": "min", "gt": "min", "le": "max", "lt": "max"}


@dataclass(frozen=True)
class ExecutorOption:
    """One option of a registered executor, as a ``samplerlab run`` option."""

    executor: str
    name: str
    flag: str
    parameter: inspect.Parameter


def _base_type(annotation: Any) -> tuple[type, list[Any]]:
    """``Annotated[float | None, Field(ge=0)]`` → ``(float, [FieldInfo])``: the click type
    (``str`` for anything click cannot parse; the factory's own validation then checks it)."""
    metadata: list[Any] = []
    if typing.get_origin(annotation) is Annotated:
        annotation, *metadata = typing.get_args(annotation)
    members = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(members) == 1:
        annotation = members[0]
    return (annotation if annotation in CLICK_TYPES else str), metadata


def _option_info(executor: str, flag: str, base: type, metadata: list[Any]) -> Any:
    """The ``typer.Option`` of one executor option: help from its ``Field(description=)``,
    bounds from ``ge``/``gt``/``le``/``lt``."""
    kwargs: dict[str, Any] = {}
    description = ""
    for item in metadata:
        description = getattr(item, "description", None) or description
        for bound in getattr(item, "metadata", [item]):
            for attr, key in BOUNDS.items():
                if getattr(bound, attr, None) is not None:
                    kwargs[key] = getattr(bound, attr)
    declarations = [f"{flag}/--no-{flag[2:]}"] if base is bool else [flag]
    return typer.Option(*declarations, help=f"with --executor {executor}: {description}".strip(),
                        **kwargs)


def executor_options(taken: set[str]) -> list[ExecutorOption]:
    """Every registered executor's options; a flag in ``taken`` (the command's own) is
    skipped with a warning naming the plugin."""
    from samplerlab.plugins import registry

    options: list[ExecutorOption] = []
    for entry in registry("executors").values():
        hints = entry.type_hints()
        for p in entry.signature.parameters.values():
            if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                continue
            flag = f"--{entry.name}-{p.name}".replace("_", "-")
            if flag in taken:
                warnings.warn(PluginWarning(
                    f"plugin '{entry.plugin}': executor '{entry.name}' option {flag} clashes "
                    "with an option of samplerlab run; skipped"), stacklevel=2)
                continue
            base, metadata = _base_type(hints.get(p.name, str))
            info = _option_info(entry.name, flag, base, metadata)
            parameter = inspect.Parameter(f"executor_option_{len(options)}",
                                          inspect.Parameter.KEYWORD_ONLY, default=None,
                                          annotation=Annotated[base | None, info])
            options.append(ExecutorOption(entry.name, p.name, flag, parameter))
            taken.add(flag)
    return options


def _executor_choice(default: str) -> inspect.Parameter:
    """``--executor NAME``, its help listing every registered executor."""
    from samplerlab.plugins import registry

    choices = [f"{e.name} ({e.description})" for e in registry("executors").values()]
    listed = " or ".join([", ".join(choices[:-1]), choices[-1]] if len(choices) > 1
                         else choices)
    info = typer.Option("--executor", help=f"where cells run: {listed}")
    return inspect.Parameter("executor", inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[str, info])


def _flags(signature: inspect.Signature) -> set[str]:
    """The option names a command declares (``--resume``, ``-q``, ...); in ``Annotated``,
    typer keeps an option's first name in its ``default``."""
    return {declaration for p in signature.parameters.values()
            for info in typing.get_args(p.annotation)[1:]
            if isinstance(info, typer.models.OptionInfo)
            for declaration in (info.default, *(info.param_decls or ()))
            if isinstance(declaration, str)}


def with_executor_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``command`` with ``--executor`` and every registered executor's options.

    ``command`` takes ``executor`` (a name) and ``executor_options`` (the options given
    for that executor, by parameter name); an option given for another executor is
    refused in one line.
    """
    own = inspect.signature(command, eval_str=True)
    kept = [p for n, p in own.parameters.items() if n not in ("executor", "executor_options")]
    options = executor_options(_flags(own))

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        given = [(o, kwargs.pop(o.parameter.name)) for o in options]
        given = [(o, value) for o, value in given if value is not None]
        stray = [o for o, _ in given if o.executor != kwargs["executor"]]
        if stray:
            flags, owner = " and ".join(o.flag for o in stray), stray[0].executor
            raise UserInputError(f"{flags} need{'s' if len(stray) == 1 else ''} --executor "
                                 f"{owner}; add --executor {owner} or drop "
                                 f"{'it' if len(stray) == 1 else 'them'}", field="--executor")
        return command(**kwargs, executor_options={o.name: v for o, v in given})

    parameters = [*kept, _executor_choice(own.parameters["executor"].default),
                  *(o.parameter for o in options)]
    wrapper.__signature__ = own.replace(parameters=[
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in parameters])
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    return wrapper
