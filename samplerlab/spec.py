"""The experiment spec: YAML in, a validated :class:`Spec` with its expanded cells out.

Everything a spec can get wrong is caught here, before any model loads, and reported
as one :class:`~samplerlab.errors.UserInputError` naming the file, the YAML line, the
field and the problem. Specs are data: YAML is loaded with the safe loader only.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import itertools
import re
import types
import typing
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from samplerlab.errors import UserInputError
from samplerlab.plugins import Entry, get_plugin_manager, unknown_name_message

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
DEFAULT_METRICS = ["rep_n", "diversity", "distinct_n", "self_bleu", "zipf", "length", "latency"]
SWEEP_CONFIRM_THRESHOLD = 200


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSpec(_Strict):
    """Which GPT-2 to load."""

    preset: str = Field("samplerlab:tiny-en", description=(
        "KerasHub preset name (gpt2_base_en, ...), a local preset directory, or "
        "samplerlab:<name> for a preset shipped with samplerlab"))
    sequence_length: int = Field(128, ge=2, description="preprocessor sequence length "
                                 "(fine-tuning packs to it; prompts must fit in it)")
    dtype_policy: str | None = Field(None, description=(
        "Keras dtype policy, e.g. float32, bfloat16, mixed_float16. mixed_float16 falls "
        "back to float32 on CPU, where half precision is slower"))
    fast_decoding: bool = Field(True, description=(
        "run GPT-2's cached forward pass with samplerlab's per-layer key/value cache "
        "(same layers, same tokens, no cache copies per step; docs/performance.md). false "
        "runs KerasHub's own call_with_cache"))

    @field_validator("dtype_policy")
    @classmethod
    def _known_policy(cls, v: str | None) -> str | None:
        allowed = {"float32", "float16", "bfloat16", "mixed_float16", "mixed_bfloat16"}
        if v is not None and v not in allowed:
            raise ValueError(f"must be one of {', '.join(sorted(allowed))}")
        return v


class DatasetRef(BaseModel):
    """A dataset: ``source`` names a registered dataset, the other keys are its parameters."""

    model_config = ConfigDict(extra="allow")
    source: str = Field(description="registered dataset name: tfds, chinese_poetry, jsonl, "
                        "text, inline, ...")

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class OptimizerSpec(_Strict):
    name: Literal["adam", "adamw", "sgd"] = "adam"
    learning_rate: float = Field(5e-5, gt=0)
    schedule: Literal["polynomial_decay", "constant"] = "polynomial_decay"
    end_learning_rate: float = Field(0.0, ge=0)
    weight_decay: float | None = Field(None, ge=0)


class FinetuneSpec(_Strict):
    """Fine-tuning before sampling; defaults mirror the KerasHub GPT-2 tutorial."""

    dataset: DatasetRef
    batch_size: int = Field(32, ge=1)
    take_batches: int | None = Field(500, ge=1, description="use only the first N batches "
                                     "(the tutorial's take(500))")
    epochs: int = Field(1, ge=1)
    optimizer: OptimizerSpec = OptimizerSpec()
    distribution: Literal["none", "data_parallel"] = "none"
    cache: bool = Field(True, description="reuse a fine-tuned preset with the same key "
                        "instead of retraining")


class PromptsFromDataset(_Strict):
    """Take prompts from a dataset: the first ``prefix_words`` words become the prompt."""

    dataset: DatasetRef
    take: int = Field(10, ge=1)
    prefix_words: int = Field(8, ge=1, description="words (characters for CJK text) kept "
                              "as the prompt")


class GenerationSpec(_Strict):
    max_length: int = Field(64, ge=2, description="total tokens, prompt included "
                            "(KerasHub's max_length)")
    samples_per_prompt: int = Field(1, ge=1)
    batch_size: int = Field(8, ge=1, description="prompts per generate() call")
    stop_at_end_token: bool = Field(True, description="stop a sample at the tokenizer's end token")
    steady_timing: bool = Field(True, description=(
        "when a cell has a single batch, call it once more to measure the steady per-call "
        "time apart from compilation"))


class SamplerSpec(_Strict):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    label: str | None = Field(None, description="display name for the cell(s)")


class MetricSpec(_Strict):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class OutputSpec(_Strict):
    root: str = Field("results", description="results root, relative to the working directory")
    run_id: str | None = Field(None, description="run directory name (default: a timestamp)")

    @field_validator("root")
    @classmethod
    def _no_escape(cls, v: str) -> str:
        p = PurePosixPath(v.replace("\\", "/"))
        if p.is_absolute() or re.match(r"^[A-Za-z]:", v):
            raise ValueError("must be a relative path (use --results-root for another place)")
        if ".." in p.parts:
            raise ValueError("must not contain '..' (results stay inside the results root)")
        return v

    @field_validator("run_id")
    @classmethod
    def _safe_run_id(cls, v: str | None) -> str | None:
        if v is not None and not re.match(NAME_PATTERN, v):
            raise ValueError("must be letters, digits, '.', '_' or '-' (no path separators)")
        return v


def _bare_names(v: Any) -> Any:
    """``greedy`` is short for ``{name: greedy}``."""
    if isinstance(v, list):
        return [{"name": x} if isinstance(x, str) else x for x in v]
    return v


class Spec(_Strict):
    """A samplerlab experiment."""

    name: str = Field(pattern=NAME_PATTERN, description="experiment name: results/<name>/<run-id>/")
    description: str | None = None
    seed: int = 1337
    plugins: list[str] = Field(default_factory=list, description=(
        "modules or .py files to import as plugins (this runs their code)"))
    model: ModelSpec = ModelSpec()
    finetune: FinetuneSpec | None = None
    prompts: list[str] | PromptsFromDataset
    generation: GenerationSpec = GenerationSpec()
    samplers: list[SamplerSpec] = Field(min_length=1)
    metrics: list[MetricSpec] = Field(
        default_factory=lambda: [MetricSpec(name=m) for m in DEFAULT_METRICS])
    output: OutputSpec = OutputSpec()

    @field_validator("samplers", mode="before", json_schema_input_type=list[str | SamplerSpec])
    @classmethod
    def _bare_sampler_names(cls, v: Any) -> Any:
        return _bare_names(v)

    @field_validator("metrics", mode="before", json_schema_input_type=list[str | MetricSpec])
    @classmethod
    def _bare_metric_names(cls, v: Any) -> Any:
        return _bare_names(v)

    @field_validator("prompts")
    @classmethod
    def _prompts_present(cls, v: Any) -> Any:
        if isinstance(v, list):
            if not v:
                raise ValueError("the prompt list is empty; give at least one prompt, or "
                                 "prompts: {dataset: {...}}")
            for i, p in enumerate(v):
                if not p.strip():
                    raise ValueError(f"prompt {i} is an empty string; remove it or write a "
                                     "prompt")
        return v


# --------------------------------------------------------------------------- cells
class Cell(BaseModel):
    """One sampler configuration of the sweep: the unit that runs, is timed and is saved."""

    model_config = ConfigDict(frozen=True)
    index: int
    id: str
    sampler: str
    params: dict[str, Any]
    label: str

    def factory_params(self, seed: int | None, entry: Entry) -> dict[str, Any]:
        params = dict(self.params)
        if seed is not None and "seed" not in params and entry.accepts("seed"):
            params["seed"] = seed
        return params


def _compact(value: Any) -> str:
    """A short readable form: ``[{name: top_k, k: 40}, {name: temperature, t: 0.7}]`` →
    ``top_k40,temperature0.7``."""
    if isinstance(value, dict):
        name = value.get("name")
        rest = [f"{'' if name else f'{k}='}{_compact(v)}" for k, v in value.items()
                if k != "name"]
        return (str(name) if name else "") + "".join(rest) if name else "_".join(rest)
    if isinstance(value, (list, tuple)):
        return ",".join(_compact(v) for v in value)
    return str(value)


def _slug(value: Any) -> str:
    text = re.sub(r"[^A-Za-z0-9.,+=-]+", "_", _compact(value)).strip("_")
    if len(text) > 64:
        text = text[:57] + "~" + hashlib.sha256(text.encode()).hexdigest()[:6]
    return text


def sweep_axes(entry: Entry, params: dict[str, Any]) -> dict[str, list[Any]]:
    """The parameters that vary across cells, each with its values.

    A list is a sweep axis unless the parameter's own type is a list; a factory may also
    expand a parameter itself with ``factory.expand_param(name, value) -> values`` (the
    ``chain`` sampler sweeps lists inside its ``processors`` that way).
    """
    expand = getattr(entry.factory, "expand_param", None)
    axes: dict[str, list[Any]] = {}
    for k, v in params.items():
        if isinstance(v, list) and not entry.list_valued(k):
            axes[k] = v
        elif callable(expand):
            values = expand(k, v)
            if len(values) != 1 or values[0] != v:
                axes[k] = list(values)
    return axes


def expand_cells(samplers: list[SamplerSpec], registry: dict[str, Entry]) -> list[Cell]:
    """Expand sweep axes into a cartesian product, one :class:`Cell` each."""
    cells: list[Cell] = []
    for spec in samplers:
        entry = registry[spec.name]
        axes = sweep_axes(entry, spec.params)
        fixed = {k: v for k, v in spec.params.items() if k not in axes}
        for combo in itertools.product(*axes.values()) if axes else [()]:
            params = {**fixed, **dict(zip(axes, combo, strict=False))}
            index = len(cells)
            shown = ", ".join(f"{k}={_compact(v)}" for k, v in params.items())
            label = spec.label or spec.name
            # Axes of one value (a chain's processors, normalised) tell cells nothing apart.
            swept = [(k, v) for k, v in zip(axes, combo, strict=True) if len(axes[k]) > 1]
            if swept and spec.label:
                label += "(" + ", ".join(f"{k}={_compact(v)}" for k, v in swept) + ")"
            elif not spec.label and shown:
                label += f"({shown})"
            slug = "-".join(f"{k}={_slug(v)}" for k, v in params.items())
            cell_id = f"{index:03d}-{spec.name}" + (f"-{slug}" if slug else "")
            cells.append(Cell(index=index, id=cell_id, sampler=spec.name, params=params,
                              label=label))
    return cells


# ------------------------------------------------------------------------ loading
class LoadedSpec:
    """A validated spec, where it came from, and its expanded cells."""

    def __init__(self, spec: Spec, *, path: str | None, raw: dict[str, Any],
                 lines: dict[tuple, int], cells: list[Cell]) -> None:
        self.spec = spec
        self.path = path
        self.raw = raw
        self.lines = lines
        self.cells = cells

    def __getattr__(self, item: str) -> Any:
        return getattr(self.spec, item)

    def resolved_yaml(self) -> str:
        data = self.spec.model_dump(mode="json", exclude_none=True)
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)

    def error(self, problem: str, loc: tuple) -> UserInputError:
        return UserInputError(problem, file=self.path, line=_line_for(self.lines, loc),
                              field=_dotted(loc))


def _dotted(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_for(lines: dict[tuple, int], loc: tuple) -> int | None:
    loc = tuple(loc)
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return lines.get((), None)


def _index_lines(node: yaml.Node, path: tuple, out: dict[tuple, int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            k = key.value
            out[path + (k,)] = key.start_mark.line + 1
            _index_lines(value, path + (k,), out)
            out[path + (k,)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, path + (i,), out)


def _read_yaml(text: str, path: str | None) -> tuple[Any, dict[tuple, int]]:
    lines: dict[tuple, int] = {}
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=yaml.SafeLoader)  # noqa: S506 - SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        if "python/" in problem or "could not determine a constructor" in problem:
            problem = (f"{problem}: specs are data, YAML tags that construct objects are "
                       "not allowed")
        raise UserInputError(f"YAML error: {problem}", file=path,
                             line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise UserInputError(f"YAML error: {exc}", file=path) from None
    if node is not None:
        _index_lines(node, (), lines)
    return data, lines


def read_spec_file(path: str | Path) -> str:
    p = Path(path)
    if not p.exists():
        raise UserInputError("spec file not found", file=str(path))
    if p.is_dir():
        raise UserInputError("is a directory, expected a YAML spec file", file=str(path))
    data = p.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UserInputError(f"not UTF-8 text (byte {exc.start}); save the spec as UTF-8",
                             file=str(path), line=line) from None
    if not text.strip():
        raise UserInputError("the spec file is empty; start from experiments/quickstart.yaml "
                             "(samplerlab schema prints every field)", file=str(path))
    return text


NOT_A_MAPPING = ("cannot set a key inside a non-mapping value; override the value itself "
                 "(the dotted key one level up)")


def _size(target: Any) -> str:
    if not isinstance(target, list):
        return ""
    return f" (the list has {len(target)} item{'' if len(target) == 1 else 's'})"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``dotted.key=value`` overrides (values parsed as YAML scalars/lists)."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        where = f"override '-o {item}'"
        key, sep, value_text = item.partition("=")
        key = key.strip()
        if not sep or not key or not re.match(r"^[A-Za-z_][\w]*(\.[\w]+)*$", key):
            raise UserInputError("expected KEY=VALUE with a dotted key, e.g. "
                                 "generation.max_length=64", file=where)
        try:
            value = yaml.safe_load(value_text) if value_text.strip() else ""
        except yaml.YAMLError as exc:
            raise UserInputError(f"value is not valid YAML ({_first_line(exc)}); quote it, e.g. "
                                 "-o 'key=\"a: b\"'", file=where, field=key) from None
        parts: list[Any] = [int(p) if p.isdigit() else p for p in key.split(".")]
        target: Any = raw
        for depth, part in enumerate(parts[:-1]):
            nxt = parts[depth + 1]
            if isinstance(part, int):
                if not isinstance(target, list) or part >= len(target):
                    raise UserInputError(f"index {part} is out of range{_size(target)}",
                                         file=where, field=".".join(map(str, parts[:depth + 1])))
                if isinstance(target[part], str):  # bare sampler/metric name
                    target[part] = {"name": target[part]}
                target = target[part]
            else:
                if not isinstance(target, dict):
                    raise UserInputError(NOT_A_MAPPING, file=where,
                                         field=".".join(map(str, parts[:depth + 1])))
                if target.get(part) is None:
                    target[part] = [] if isinstance(nxt, int) else {}
                target = target[part]
        last = parts[-1]
        if isinstance(last, int):
            if not isinstance(target, list) or last >= len(target):
                raise UserInputError(f"index {last} is out of range{_size(target)}", file=where,
                                     field=key)
        elif not isinstance(target, dict):
            raise UserInputError(NOT_A_MAPPING, file=where, field=key)
        target[last] = value
    return raw


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The pydantic model class that owns the last element of an error location."""
    model: Any = Spec
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        info = model.model_fields.get(part)
        if info is None:
            return None
        model = _unwrap_model(info.annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _unwrap_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list):
        for arg in typing.get_args(annotation):
            found = _unwrap_model(arg)
            if found is not None:
                return found
    return None


def _schema_error(exc: pydantic.ValidationError, path: str | None,
                  lines: dict[tuple, int]) -> UserInputError:
    errors = exc.errors()
    # Prefer the error inside the branch the user meant (dict vs list unions).
    err = errors[0]
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and (
        p in ("list[str]", "PromptsFromDataset", "str", "int", "float", "bool", "none")
        or p.startswith(("function-", "list[", "dict[")))))
    if err["type"] == "extra_forbidden":
        owner = _model_at(loc)
        known = list(owner.model_fields) if owner else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        problem = f"unknown field{hint} (valid: {', '.join(known)})" if known else "unknown field"
    elif err["type"] == "missing":
        problem = "required field is missing"
    else:
        msg = err["msg"]
        msg = msg.removeprefix("Value error, ")
        problem = msg[:1].lower() + msg[1:]
        if "input" in err and not isinstance(err["input"], (dict, list)):
            problem += f" (got {err['input']!r})"
    return UserInputError(problem, file=path, line=_line_for(lines, loc),
                          field=_dotted(loc) or None)


def load_spec(source: str | Path | dict[str, Any], overrides: list[str] | None = None,
              plugins: list[str] | None = None) -> LoadedSpec:
    """Read, override, validate and expand a spec; raise :class:`UserInputError` on any problem.

    ``source`` is a path to a YAML file, or an already-parsed mapping. ``plugins`` are
    extra plugin modules/files (the CLI's ``--plugin``), loaded before the spec's own.
    """
    path: str | None
    if isinstance(source, dict):
        raw, lines, path = copy.deepcopy(source), {}, None
    else:
        path = str(source)
        raw, lines = _read_yaml(read_spec_file(source), path)
    if not isinstance(raw, dict):
        kind = "a list" if isinstance(raw, list) else f"a {type(raw).__name__}"
        raise UserInputError(f"a spec must be a mapping of fields (name, prompts, samplers, "
                             f"...), got {kind}", file=path, line=1 if lines else None)
    if overrides:
        raw = apply_overrides(raw, overrides)
    try:
        return _validate(raw, path, lines, plugins)
    except UserInputError as exc:
        raise _blame_override(exc, overrides or []) from None


def _blame_override(exc: UserInputError, overrides: list[str]) -> UserInputError:
    """Point an error at the ``-o`` override that set the field, not at the file."""
    for item in overrides:
        key = item.partition("=")[0].strip()
        dotted = _dotted(tuple(int(p) if p.isdigit() else p for p in key.split(".")))
        if exc.field and (exc.field == dotted or exc.field.startswith(dotted + ".")
                          or exc.field.startswith(dotted + "[")):
            return UserInputError(exc.problem, file=f"override '-o {item}'", field=exc.field)
    return exc


def _validate(raw: dict[str, Any], path: str | None, lines: dict[tuple, int],
              plugins: list[str] | None) -> LoadedSpec:
    try:
        spec = Spec.model_validate(raw)
    except pydantic.ValidationError as exc:
        raise _schema_error(exc, path, lines) from None

    manager = get_plugin_manager()
    for target in plugins or []:
        manager.load(target)
    for i, target in enumerate(spec.plugins):
        try:
            manager.load(target)
        except UserInputError as exc:
            raise UserInputError(exc.problem, file=path, line=_line_for(lines, ("plugins", i)),
                                 field=f"plugins[{i}]") from None
    loaded = LoadedSpec(spec, path=path, raw=raw, lines=lines, cells=[])
    _check_plugins_and_params(loaded)
    loaded.cells = expand_cells(spec.samplers, manager.registry("samplers"))
    _check_model(loaded)
    return loaded


def _check_entry(loaded: LoadedSpec, kind: str, name: str, params: dict[str, Any],
                 loc: tuple, *, sweep: bool = False) -> None:
    registry = get_plugin_manager().registry(kind)
    if name not in registry:
        raise loaded.error(unknown_name_message(kind, name, list(registry)), loc + ("name",))
    entry = registry[name]
    try:
        axes = sweep_axes(entry, params) if sweep else {}
    except UserInputError as exc:
        raise loaded.error(exc.problem, loc + ("params",) + _field_path(exc.field)) from None
    for k, values in axes.items():
        if not values:
            raise loaded.error("a sweep axis needs at least one value", loc + ("params", k))
    combos = itertools.product(*axes.values()) if axes else [()]
    for combo in combos:
        try:
            entry.validate({**params, **dict(zip(axes, combo, strict=False))})
        except UserInputError as exc:
            raise loaded.error(exc.problem, loc + ("params",) + _field_path(exc.field)) from None


def _field_path(field: str | None) -> tuple:
    """``processors[2].top_p`` → ``("processors", 2, "top_p")``, as YAML locations are keyed."""
    parts: list[Any] = []
    for piece in re.findall(r"[^.\[\]]+", field or ""):
        parts.append(int(piece) if piece.isdigit() else piece)
    return tuple(parts)


def _check_plugins_and_params(loaded: LoadedSpec) -> None:
    spec = loaded.spec
    for i, s in enumerate(spec.samplers):
        _check_entry(loaded, "samplers", s.name, s.params, ("samplers", i), sweep=True)
    for i, m in enumerate(spec.metrics):
        _check_entry(loaded, "metrics", m.name, m.params, ("metrics", i))
    refs: list[tuple[DatasetRef, tuple]] = []
    if spec.finetune is not None:
        refs.append((spec.finetune.dataset, ("finetune", "dataset")))
    if isinstance(spec.prompts, PromptsFromDataset):
        refs.append((spec.prompts.dataset, ("prompts", "dataset")))
    for ref, loc in refs:
        registry = get_plugin_manager().registry("datasets")
        if ref.source not in registry:
            raise loaded.error(unknown_name_message("datasets", ref.source, list(registry)),
                               loc + ("source",))
        entry = registry[ref.source]
        try:
            source = entry.build(**ref.params)
            check = getattr(source, "check", None)
            if check is not None:
                check()
        except UserInputError as exc:
            sub = tuple((exc.field or "").split(".")[:1]) if exc.field else ()
            raise loaded.error(exc.problem, loc + sub) from None


def _check_model(loaded: LoadedSpec) -> None:
    from samplerlab.models import check_preset_reference, preset_max_sequence_length

    spec = loaded.spec
    try:
        check_preset_reference(spec.model.preset)
    except UserInputError as exc:
        raise loaded.error(exc.problem, ("model", "preset")) from None
    limit = preset_max_sequence_length(spec.model.preset)
    if limit is not None and spec.generation.max_length > limit:
        raise loaded.error(f"{spec.generation.max_length} is beyond the model's "
                           f"max_sequence_length ({limit}); lower it to {limit} or less",
                           ("generation", "max_length"))
    if limit is not None and spec.model.sequence_length > limit:
        raise loaded.error(f"{spec.model.sequence_length} is beyond the model's "
                           f"max_sequence_length ({limit}); lower it to {limit} or less",
                           ("model", "sequence_length"))


def count_generations(loaded: LoadedSpec) -> int:
    prompts = loaded.spec.prompts
    n_prompts = len(prompts) if isinstance(prompts, list) else prompts.take
    return len(loaded.cells) * n_prompts * loaded.spec.generation.samples_per_prompt


def json_schema() -> dict[str, Any]:
    """The spec's JSON Schema (``samplerlab schema``)."""
    schema = Spec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "samplerlab experiment spec"
    return schema
