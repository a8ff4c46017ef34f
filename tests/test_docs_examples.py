"""Every example in the documentation runs as written.

Examples are the ```python blocks of the ``Example:`` sections of docstrings under
``samplerlab/`` (one style: no ``>>>``) and the blocks of ``docs/*.md`` marked
``<!-- test -->`` (see ``doc_blocks.py``). Each runs, in a fresh working directory, in a
fresh namespace holding only the ready objects it names of these three, built once per
session (everything else an example imports or builds itself):

* ``model``: a one-layer GPT-2 with random weights and a GPT-2 tokenizer on a small
  vocabulary (``build_tiny_family("gpt2", num_layers=1)``), saved as a preset and loaded
  with ``load_model``: a :class:`samplerlab.models.LoadedModel` (each example compiles
  its own generate loop; the smaller the model, the faster that is);
* ``causal_lm``: ``model.causal_lm``, its KerasHub ``GPT2CausalLM``;
* ``run_dir``: a finished run of that model (two cells of a temperature sweep, two
  prompts, traces on), copied to ``results/docs/r1`` in the example's working directory.

An example that shows a result asserts it where that is cheap and exact.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from doc_blocks import Block, doc_blocks, docstring_examples, docstrings

EXAMPLES = docstring_examples() + doc_blocks("")
READY = ("model", "causal_lm", "run_dir")

# The Ray executor's example starts a local cluster (fork+exec after JAX is imported; JAX
# warns on any fork, but nothing runs in the child before exec).
pytestmark = pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")


@pytest.fixture(scope="session")
def docs_preset(tmp_path_factory) -> Path:
    """The examples' model as a preset directory (``save_to_preset``)."""
    from samplerlab.models import build_tiny_family, save_preset

    lm = build_tiny_family("gpt2", num_layers=1, sequence_length=32, seed=0)
    return save_preset(lm, tmp_path_factory.mktemp("docs-preset") / "tiny")


@pytest.fixture(scope="session")
def docs_model(docs_preset):
    from samplerlab.models import load_model

    return load_model(str(docs_preset), sequence_length=32)


@pytest.fixture(scope="session")
def docs_run(docs_preset, tmp_path_factory) -> Path:
    """A real run of the examples' model with traces, made once (two cells of one
    structure: one compiled program)."""
    import samplerlab

    spec = {
        "name": "docs", "seed": 3,
        "model": {"preset": str(docs_preset), "sequence_length": 32},
        "prompts": ["The cat sat", "Once upon a time"],
        "generation": {"max_length": 12, "samples_per_prompt": 1, "batch_size": 2,
                       "trace": True},
        "samplers": [{"name": "random", "params": {"temperature": [0.7, 1.0]}}],
        "metrics": ["length"],
    }
    result = samplerlab.run(samplerlab.load_spec(spec),
                            results_root=tmp_path_factory.mktemp("docs-results"),
                            run_id="r1", progress=False)
    assert result.status == "complete"
    return result.run_dir


def _ready(name: str, request, workdir: Path):
    if name == "model":
        return request.getfixturevalue("docs_model")
    if name == "causal_lm":
        # Examples compile the model they are given (causal_lm.compile(sampler=...)): each
        # gets a task of its own around the shared backbone (the same weights, not a copy),
        # so no example leaves a compiled sampler behind for the next one.
        lm = request.getfixturevalue("docs_model").causal_lm
        return type(lm)(backbone=lm.backbone, preprocessor=lm.preprocessor)
    return Path(shutil.copytree(request.getfixturevalue("docs_run"),
                                workdir / "results" / "docs" / "r1"))


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.id for e in EXAMPLES])
def test_example_runs(example: Block, request, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs_example__"}
    for name in READY:
        if re.search(rf"\b{name}\b", example.code):
            namespace[name] = _ready(name, request, tmp_path)
    exec(compile(example.code, f"<example {example.id}>", "exec"), namespace)  # noqa: S102


def test_the_collector_finds_the_examples():
    # Guards against a collector that silently finds nothing (or loses a module's blocks).
    assert len(docstring_examples()) >= 75
    found = {e.id.split(":")[0] for e in EXAMPLES}
    assert {"samplerlab.samplers.top_k.TopKSampler",
            "samplerlab.metrics.rep_n.RepN", "samplerlab.prompts", "docs/metrics.md"} <= found
    # The plugin the guide builds (installed and run by test_hooks_documented.py).
    assert len(doc_blocks("plugin")) >= 10


def test_docstrings_use_one_example_style():
    # One style, KerasHub's: an "Example:" section with a ```python block; no doctest.
    docs = docstrings()
    assert len(docs) > 300
    doctests = sorted(n for n, doc in docs.items() if ">>>" in doc)
    assert not doctests, f"docstrings with '>>>' (use an Example: ```python block): {doctests}"
    bare = sorted(n for n, doc in docs.items()
                  if re.search(r"^\s*Examples?:\s*$", doc, re.M) and "```python" not in doc)
    assert not bare, f"Example sections without a ```python block: {bare}"
