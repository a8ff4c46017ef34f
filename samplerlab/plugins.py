"""The plugin manager: loads built-in and third-party plugins and holds the registries.

Built-in samplers, metrics, datasets, processors and executors register through the same hooks
(``samplerlab.hookspecs``) that a third-party package uses. Third-party packages are
found through the ``samplerlab`` entry-point group; modules and files that are not
installed can be loaded with :func:`load_plugin` (``--plugin`` / a spec's ``plugins:``).
Loading a plugin imports it, which runs its code; native log noise that the import
triggers (a plugin that imports ``keras_hub`` starts TensorFlow) is dropped, Python
warnings and errors are not (:mod:`samplerlab._quiet`).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import importlib.util
import inspect
import sys
import typing
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy
import pydantic

from samplerlab import hookspecs
from samplerlab._quiet import native_logs_silenced
from samplerlab.errors import ParameterError, PluginWarning, UserInputError

ENTRY_POINT_GROUP = "samplerlab"
KINDS = ("samplers", "metrics", "datasets", "processors", "executors")
DEFAULT_PLUGINS = (
    "samplerlab.samplers",
    "samplerlab.processors",
    "samplerlab.metrics",
    "samplerlab.datasets",
    "samplerlab.executors",
    "samplerlab.commands",
)


@dataclass(frozen=True)
class Parameter:
    """One parameter a factory accepts, as shown by ``samplerlab samplers``."""

    name: str
    annotation: str
    default: Any
    required: bool

    def __str__(self) -> str:
        text = f"{self.name}: {self.annotation}"
        return text if self.required else f"{text} = {self.default!r}"


def _annotation_text(annotation: Any) -> str:
    """Render a (resolved) annotation for humans: ``Annotated[int, Field(ge=1)]`` → ``int >= 1``."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return "any"
    if typing.get_origin(annotation) is typing.Annotated:
        base, *meta = typing.get_args(annotation)
        bounds = []
        for m in meta:
            for item in getattr(m, "metadata", [m]):
                for attr, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"),
                                  ("min_length", "length >="), ("max_length", "length <=")):
                    if getattr(item, attr, None) is not None:
                        bounds.append(f"{sym} {getattr(item, attr)}")
        text = _annotation_text(base)
        return f"{text} {' and '.join(bounds)}".strip() if bounds else text
    origin = typing.get_origin(annotation)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        return " | ".join(_annotation_text(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "None"
    if origin in (list, tuple, set, dict):
        args = ", ".join(_annotation_text(a) for a in typing.get_args(annotation))
        return f"{origin.__name__}[{args}]" if args else origin.__name__
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _is_list_annotation(annotation: Any) -> bool:
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    origin = typing.get_origin(annotation) or annotation
    if origin in (list, tuple, typing.Sequence):
        return True
    if origin is typing.Union or str(origin) == "types.UnionType":
        return any(_is_list_annotation(a) for a in typing.get_args(annotation))
    return False


@dataclass
class Entry:
    """A registered factory: a sampler, metric, dataset, processor or executor."""

    kind: str
    name: str
    factory: Callable[..., Any]
    description: str
    plugin: str
    _model: type[pydantic.BaseModel] | None = field(default=None, repr=False)

    @property
    def signature(self) -> inspect.Signature:
        return inspect.signature(self.factory)

    @property
    def accepts_any(self) -> bool:
        return any(p.kind is p.VAR_KEYWORD for p in self.signature.parameters.values())

    def type_hints(self) -> dict[str, Any]:
        try:
            return typing.get_type_hints(self.factory, include_extras=True)
        except Exception:  # noqa: BLE001 - unresolvable hints fall back to Any
            return {}

    def parameters(self) -> list[Parameter]:
        out = []
        hints = self.type_hints()
        for p in self.signature.parameters.values():
            if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                continue
            required = p.default is inspect.Parameter.empty
            out.append(Parameter(p.name, _annotation_text(hints.get(p.name, p.annotation)),
                                 None if required else p.default, required))
        return out

    def accepts(self, name: str) -> bool:
        return self.accepts_any or name in self.signature.parameters

    def list_valued(self, name: str) -> bool:
        """True when the parameter itself takes a list (so a list is not a sweep axis)."""
        return _is_list_annotation(self.type_hints().get(name, inspect.Parameter.empty))

    def accepted(self) -> str:
        params = ", ".join(str(p) for p in self.parameters())
        return f"{self.name} accepts ({params})" if params else f"{self.name} takes no parameters"

    def _params_model(self) -> type[pydantic.BaseModel]:
        if self._model is None:
            fields: dict[str, Any] = {}
            hints = self.type_hints()
            for p in self.signature.parameters.values():
                if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                    continue
                annotation = hints.get(p.name, Any)
                default = ... if p.default is inspect.Parameter.empty else p.default
                fields[p.name] = (annotation, default)
            extra = "allow" if self.accepts_any else "forbid"
            self._model = pydantic.create_model(
                f"{self.kind}_{self.name}_params",
                __config__=pydantic.ConfigDict(extra=extra, strict=False,
                                               arbitrary_types_allowed=True),
                **fields,
            )
        return self._model

    def validate(self, params: dict[str, Any]) -> dict[str, Any]:
        """Check parameters against the factory's signature without building anything.

        Returns the parameters as given (only those the user set), or raises
        :class:`ParameterError` naming the parameter and what the factory accepts.
        """
        try:
            self._params_model().model_validate(params)
        except pydantic.ValidationError as exc:
            err = exc.errors()[0]
            loc = _loc_text(err["loc"])
            if err["type"] == "extra_forbidden":
                known = [p.name for p in self.parameters()]
                close = difflib.get_close_matches(str(err["loc"][0]), known, n=3)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise ParameterError(f"unknown parameter '{loc}'{hint}; {self.accepted()}",
                                     field=loc) from None
            if err["type"] == "missing":
                raise ParameterError(f"missing required parameter '{loc}'; {self.accepted()}",
                                     field=loc) from None
            raise ParameterError(f"{_lower_first(err['msg'])} (got {err.get('input')!r}); "
                                 f"{self.accepted()}", field=loc) from None
        return dict(params)

    def build(self, **params: Any) -> Any:
        """Validate and call the factory."""
        self.validate(params)
        return self.factory(**params)


def _loc_text(loc: tuple) -> str:
    """``('sequence_breakers', 1, 'str')`` → ``sequence_breakers[1]``: the parameter and the
    list positions inside it (pydantic's union-member tags such as ``str`` are dropped)."""
    return str(loc[0]) + "".join(f"[{part}]" for part in loc[1:] if isinstance(part, int))


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


class Registry(dict):
    """Name → :class:`Entry` for one kind, with helpful lookups."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def get_entry(self, name: str) -> Entry:
        if name not in self:
            raise UserInputError(unknown_name_message(self.kind, name, list(self)))
        return self[name]


def unknown_name_message(kind: str, name: str, known: list[str]) -> str:
    singular = kind[:-1] if kind.endswith("s") else kind
    close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"unknown {singular} '{name}'{hint} (known: {', '.join(sorted(known))})"


class PluginManager:
    """Owns the pluggy manager and the registries built from it (one per kind)."""

    def __init__(self, *, entry_points: bool = True) -> None:
        self.pm = pluggy.PluginManager("samplerlab")
        self.pm.add_hookspecs(hookspecs)
        self.sources: dict[str, str] = {}
        self._registries: dict[str, Registry] = {}
        for name in DEFAULT_PLUGINS:
            module = importlib.import_module(name)
            self.pm.register(module, name=name)
            self.sources[name] = "built-in"
        if entry_points:
            self.load_entry_points()

    # -- loading ---------------------------------------------------------------
    def load_entry_points(self) -> None:
        """Import every plugin in the ``samplerlab`` entry-point group; warn on failure."""
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if self.pm.has_plugin(ep.name):
                continue
            dist = ep.dist.name if ep.dist else "?"
            try:
                with native_logs_silenced():
                    module = ep.load()
            except Exception as exc:  # noqa: BLE001 - any import failure is isolated
                warnings.warn(PluginWarning(
                    f"plugin '{ep.name}' (package {dist}) failed to import and was skipped: "
                    f"{type(exc).__name__}: {exc}"), stacklevel=2)
                continue
            self._register(module, ep.name, f"package {dist}")

    def load(self, target: str) -> str:
        """Load a module name or a ``.py`` file as a plugin; return its plugin name.

        Raises :class:`UserInputError` when it does not exist or fails to import,
        because the user asked for it explicitly.
        """
        path = Path(target)
        if target.endswith(".py") or path.is_file():
            if not path.is_file():
                raise UserInputError(f"plugin file '{target}' does not exist (relative paths "
                                     f"start at {Path.cwd()})", field="plugins")
            name = path.stem
            spec = importlib.util.spec_from_file_location(f"samplerlab_plugin_{name}", path)
            module = importlib.util.module_from_spec(spec)
            try:
                with native_logs_silenced():
                    spec.loader.exec_module(module)
            except Exception as exc:  # noqa: BLE001
                raise UserInputError(f"plugin file '{target}' failed to import: "
                                     f"{type(exc).__name__}: {_first_line(exc)}; fix it, or "
                                     "leave it out of plugins/--plugin", field="plugins") from None
            source = f"file {path}"
        else:
            name = target
            try:
                with native_logs_silenced():
                    module = importlib.import_module(target)
            except ModuleNotFoundError as exc:
                if exc.name and target.startswith(exc.name):
                    raise UserInputError(f"plugin module '{target}' not found (not installed "
                                         "and not on the Python path); pip install its "
                                         "package, or give the path of its .py file",
                                         field="plugins") from None
                raise UserInputError(f"plugin module '{target}' failed to import: {exc}; "
                                     f"install {exc.name}", field="plugins") from None
            except Exception as exc:  # noqa: BLE001
                raise UserInputError(f"plugin module '{target}' failed to import: "
                                     f"{type(exc).__name__}: {_first_line(exc)}; fix it, or "
                                     "leave it out of plugins/--plugin", field="plugins") from None
            source = f"module {target}"
        if self.pm.is_registered(module) or self.pm.has_plugin(name):
            return name
        self._register(module, name, source)
        return name

    def _register(self, module: Any, name: str, source: str) -> None:
        try:
            self.pm.register(module, name=name)
        except Exception as exc:  # noqa: BLE001 - e.g. a hookimpl that matches no hookspec
            warnings.warn(PluginWarning(f"plugin '{name}' could not be registered: {exc}"),
                          stacklevel=3)
            return
        self.sources[name] = source
        self._registries = {}

    # -- registries ------------------------------------------------------------
    def registries(self) -> dict[str, Registry]:
        return {kind: self.registry(kind) for kind in KINDS}

    def registry(self, kind: str) -> Registry:
        # Built on first use, kind by kind: the CLI needs only the executors to start.
        if kind not in self._registries:
            self._registries[kind] = self._collect(kind)
        return self._registries[kind]

    def _collect(self, kind: str) -> Registry:
        registry = Registry(kind)
        hook = getattr(self.pm.hook, f"register_{kind}")
        # Registration order (built-ins first), so built-ins win name clashes.
        for impl in hook.get_hookimpls():
            plugin = impl.plugin_name

            def register(name: str, factory: Callable[..., Any], description: str = "",
                         *, _plugin: str = plugin) -> None:
                if name in registry:
                    warnings.warn(PluginWarning(
                        f"plugin '{_plugin}' registered {kind[:-1]} '{name}', which plugin "
                        f"'{registry[name].plugin}' already registered; kept the first"),
                        stacklevel=2)
                    return
                if not callable(factory):
                    warnings.warn(PluginWarning(
                        f"plugin '{_plugin}' registered {kind[:-1]} '{name}' with a "
                        "factory that is not callable; skipped"), stacklevel=2)
                    return
                registry[name] = Entry(kind, name, factory, description or
                                       (inspect.getdoc(factory) or "").split("\n")[0], _plugin)

            try:
                impl.function(register=register)
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the rest
                warnings.warn(PluginWarning(
                    f"plugin '{plugin}' failed in register_{kind}: {type(exc).__name__}: {exc}"),
                    stacklevel=2)
        return registry

    # -- commands --------------------------------------------------------------
    def register_commands(self, cli: Any) -> dict[str, list[str]]:
        """Let every plugin add its commands to ``cli`` (a Typer app), built-ins first.

        A plugin whose hook raises gives one warning and adds nothing; a command name
        already taken keeps its first owner. Returns the commands each plugin added.
        """
        added: dict[str, list[str]] = {}
        for impl in self.pm.hook.register_commands.get_hookimpls():
            scratch = typer_like(cli)
            try:
                impl.function(cli=scratch)
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the CLI
                warnings.warn(PluginWarning(
                    f"plugin '{impl.plugin_name}' failed in register_commands: "
                    f"{type(exc).__name__}: {exc}"), stacklevel=2)
                continue
            added[impl.plugin_name] = _merge_commands(cli, scratch, impl.plugin_name)
        return added

    def command_names(self) -> dict[str, list[str]]:
        """The commands each plugin registers (on a throwaway app)."""
        import typer

        with warnings.catch_warnings():  # the app itself warned about clashes already
            warnings.simplefilter("ignore", PluginWarning)
            return self.register_commands(typer.Typer())

    def plugin_rows(self) -> list[dict[str, Any]]:
        """One row per plugin: name, source, and what it registered."""
        rows = []
        regs = self.registries()
        commands = self.command_names()
        for name, plugin in self.pm.list_name_plugin():
            provided = {kind: sorted(e.name for e in regs[kind].values() if e.plugin == name)
                        for kind in KINDS}
            provided["commands"] = sorted(commands.get(name, []))
            rows.append({"name": name, "source": self.sources.get(name, "?"),
                         "module": getattr(plugin, "__name__", repr(plugin)),
                         "provides": {k: v for k, v in provided.items() if v}})
        return rows


def typer_like(cli: Any) -> Any:
    """An empty app of ``cli``'s class, for one plugin to register into."""
    return type(cli)()


def _command_name(info: Any) -> str:
    callback = info.callback
    return info.name or (callback.__name__.replace("_", "-") if callback else "?")


def _merge_commands(cli: Any, scratch: Any, plugin: str) -> list[str]:
    """Move the commands and groups ``plugin`` put on ``scratch`` onto ``cli``; a name
    that ``cli`` already has stays its first owner's, with a warning."""
    taken = {_command_name(c) for c in cli.registered_commands}
    taken |= {g.name for g in cli.registered_groups}
    added = []
    for info in scratch.registered_commands + scratch.registered_groups:
        name = _command_name(info)
        if name in taken:
            warnings.warn(PluginWarning(f"plugin '{plugin}' registered command '{name}', "
                                        "which another plugin already registered; kept the "
                                        "first"), stacklevel=3)
            continue
        target = cli.registered_commands if info in scratch.registered_commands else \
            cli.registered_groups
        target.append(info)
        taken.add(name)
        added.append(name)
    return added


_manager: PluginManager | None = None


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager (built-ins and installed entry points)."""
    global _manager
    if _manager is None:
        _manager = PluginManager()
    return _manager


def reset_plugin_manager() -> None:
    """Forget every loaded plugin (tests use this)."""
    global _manager
    _manager = None
    for name in list(sys.modules):
        if name.startswith("samplerlab_plugin_"):
            del sys.modules[name]


def registry(kind: str) -> Registry:
    return get_plugin_manager().registry(kind)


def load_plugin(target: str) -> str:
    return get_plugin_manager().load(target)
