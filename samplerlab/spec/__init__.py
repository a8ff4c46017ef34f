"""The experiment spec: YAML in, a validated :class:`Spec` with its expanded cells out.

Everything a spec can get wrong is caught here, before any model loads, and reported as
one :class:`~samplerlab.errors.UserInputError` naming the file, the YAML line, the field
and the problem. Specs are data: YAML is loaded with the safe loader only.

The package follows the jobs: ``schema`` (the pydantic models and JSON Schema),
``yaml_source`` (reading a file, indexing the line of every field), ``overrides``
(``-o key=value``), ``translate`` (validation errors as one line), ``checks`` (plugins,
parameters, datasets, the model), ``cells`` (sweeps into cells) and ``loading`` (all of
it in order: :func:`load_spec`).
"""

from samplerlab.spec.cells import Cell, expand_cells, sweep_axes
from samplerlab.spec.loading import LoadedSpec, count_generations, load_spec
from samplerlab.spec.overrides import apply_overrides
from samplerlab.spec.schema import (
    DEFAULT_METRICS,
    NAME_PATTERN,
    SWEEP_CONFIRM_THRESHOLD,
    DatasetRef,
    FinetuneSpec,
    GenerationSpec,
    HumanSpec,
    MetricsModelSpec,
    MetricSpec,
    ModelSpec,
    OptimizerSpec,
    OutputSpec,
    PromptsFromDataset,
    SamplerSpec,
    Spec,
    json_schema,
)
from samplerlab.spec.yaml_source import read_spec_file

__all__ = ["DEFAULT_METRICS", "NAME_PATTERN", "SWEEP_CONFIRM_THRESHOLD", "Cell", "DatasetRef",
           "FinetuneSpec", "GenerationSpec", "HumanSpec", "LoadedSpec", "MetricSpec",
           "MetricsModelSpec", "ModelSpec",
           "OptimizerSpec", "OutputSpec", "PromptsFromDataset", "SamplerSpec", "Spec",
           "apply_overrides", "count_generations", "expand_cells", "json_schema",
           "load_spec", "read_spec_file", "sweep_axes"]
