"""The private KerasHub/Keras names samplerlab relies on exist, and only one module reads them.

``samplerlab/models/internals.py`` lists every private attribute it reads
(``CONTRACT``) and every private function it imports (``CONTRACT_FUNCTIONS``). When a
KerasHub or Keras release renames one, the test below fails with the class and the name,
instead of a traced generate loop failing deep inside a run.
"""

from __future__ import annotations

import ast
import importlib
from functools import cache
from pathlib import Path

import pytest

from samplerlab.models import internals

PACKAGE = Path(internals.__file__).resolve().parents[1]


@cache
def _instances() -> dict[str, object]:
    """One live instance of every class named in the contract."""
    import keras
    import keras_hub

    from samplerlab.models.builders import build_tiny_family
    from samplerlab.testing import tiny_causal_lm

    lm = tiny_causal_lm()
    decoder = lm.backbone.transformer_layers[0]
    # The Llama-style decoders and their attention layers (adapters/llama.py).
    rotary = {}
    for family, module in (("llama", "llama.llama_decoder"),
                           ("mistral", "mistral.mistral_transformer_decoder"),
                           ("qwen", "qwen.qwen_decoder"), ("qwen3", "qwen3.qwen3_decoder")):
        layer = build_tiny_family(family, num_layers=1).backbone.transformer_layers[0]
        attention = internals.gated_decoder_block(layer).attention
        rotary[f"keras_hub.src.models.{module}:{type(layer).__name__}"] = layer
        rotary[f"{type(attention).__module__}:{type(attention).__name__}"] = attention
    gemma = build_tiny_family("gemma", num_layers=1).backbone.transformer_layers[0]
    return {
        **rotary,
        "keras_hub.src.models.gemma.gemma_attention:CachedGemmaAttention": gemma.attention,
        "keras_hub.src.samplers.sampler:Sampler": keras_hub.samplers.TopKSampler(k=2),
        "keras_hub.src.models.causal_lm:CausalLM": lm,
        "keras_hub.src.models.gemma3.gemma3_causal_lm:Gemma3CausalLM":
            build_tiny_family("gemma3"),
        "keras_hub.src.layers.modeling.transformer_decoder:TransformerDecoder": decoder,
        "keras_hub.src.layers.modeling.cached_multi_head_attention:CachedMultiHeadAttention":
            internals.decoder_block(decoder).attention,
        "keras.src.backend.common.variables:Variable": keras.Variable(1.0),
    }


@pytest.mark.parametrize("qualified", sorted(internals.CONTRACT))
def test_every_private_attribute_samplerlab_reads_exists(qualified):
    module_name, _, class_name = qualified.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    instance = _instances()[qualified]
    assert isinstance(instance, cls)
    missing = [name for name in internals.CONTRACT[qualified] if not hasattr(instance, name)]
    assert not missing, (f"{qualified} no longer has {', '.join(missing)}: KerasHub/Keras "
                         "changed a private name samplerlab/models/internals.py reads")


@pytest.mark.parametrize("module_name", sorted(internals.CONTRACT_FUNCTIONS))
def test_every_private_function_samplerlab_imports_exists(module_name):
    module = importlib.import_module(module_name)
    missing = [n for n in internals.CONTRACT_FUNCTIONS[module_name] if not hasattr(module, n)]
    assert not missing, f"{module_name} no longer has {', '.join(missing)}"


def test_a_missing_name_is_reported_with_the_class_and_the_name():
    class Renamed:
        pass

    with pytest.raises(internals.InternalsError, match=r"Renamed has no attribute '_gone'"):
        internals.private(Renamed(), "_gone")


def _own_private_names(paths: list[Path]) -> set[str]:
    """Private names samplerlab itself defines (functions, classes, attributes it sets)."""
    names: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
    return {n for n in names if n.startswith("_")}


def _private_reads(path: Path, own: set[str]) -> list[str]:
    """Private names samplerlab does not define, read in one source file: ``x._name``,
    ``getattr(x, "_name")`` and imports from ``keras_hub.src``/``keras.src``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") \
                and not node.attr.startswith("__") and node.attr not in own:
            found.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("getattr",
                                                                              "hasattr"):
            name = node.args[1] if len(node.args) > 1 else None
            if isinstance(name, ast.Constant) and str(name.value).startswith("_") \
                    and not str(name.value).startswith("__") and name.value not in own:
                found.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                ("keras_hub.src", "keras.src")):
            found.append(f"{path.name}:{node.lineno} from {node.module} import ...")
    return found


def test_no_other_module_reads_keras_hub_internals():
    paths = [p for p in sorted(PACKAGE.rglob("*.py")) if p.name != "internals.py"]
    own = _own_private_names(paths)
    reads = [read for path in paths for read in _private_reads(path, own)]
    assert not reads, "private attributes read outside models/internals.py:\n" + "\n".join(reads)


def test_the_scan_catches_a_keras_hub_private_read(tmp_path):
    module = tmp_path / "sneaky.py"
    module.write_text("def f(lm):\n    return lm._build_cache, getattr(lm, '_seed_generators')\n")
    assert len(_private_reads(module, own=set())) == 2
