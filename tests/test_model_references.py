"""Model references that cannot run are refused in one line, exit 2, with nothing written:
presets that are not causal LMs, Hugging Face checkpoints KerasHub cannot convert or that
lack files, lengths beyond the model's context, sharding a family without a layout map,
and ``hf://`` without network."""

from __future__ import annotations

import json

import pytest
import yaml

from samplerlab.cli import main


def _refused(tmp_path, capsys, spec: dict, *fragments: str) -> str:
    path = tmp_path / "case.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    code = main(["run", str(path), "--results-root", str(tmp_path / "results")])
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2, captured.err
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err + captured.out
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert not (tmp_path / "results").exists()
    return lines[0]


def _spec(preset, **model) -> dict:
    return {"name": "refused", "model": {"preset": str(preset), "sequence_length": 32, **model},
            "prompts": ["The Bionic Dog"], "generation": {"max_length": 16},
            "samplers": ["greedy"], "metrics": ["length"]}


def _no_loading(monkeypatch):
    import samplerlab.models as models

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded for a reference that should be refused")

    monkeypatch.setattr(models, "load_model", refuse)
    monkeypatch.setattr(models, "load_spec_model", refuse)


def _checkpoint(directory, config: dict, files=("model.safetensors", "tokenizer.json")):
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(config))
    for name in files:
        (directory / name).write_bytes(b"")
    return directory


def test_an_encoder_preset_is_not_a_causal_lm(tmp_path, capsys, monkeypatch):
    import keras_hub

    encoder = keras_hub.models.BertBackbone(vocabulary_size=16, num_layers=1, num_heads=1,
                                            hidden_dim=4, intermediate_dim=8,
                                            max_sequence_length=8)
    encoder.save_to_preset(str(tmp_path / "bert"))
    _no_loading(monkeypatch)
    _refused(tmp_path, capsys, _spec(tmp_path / "bert"), "bert'", "holds a KerasHub "
             "BertBackbone", "not a causal LM", "supported: GPT2CausalLM", "docs/models.md")


def test_an_image_model_preset_is_not_a_causal_lm(tmp_path, capsys, monkeypatch):
    import keras_hub

    image_model = keras_hub.models.ViTBackbone(image_shape=(8, 8, 3), patch_size=4,
                                               num_layers=1, num_heads=1, hidden_dim=4,
                                               mlp_dim=8)
    image_model.save_to_preset(str(tmp_path / "vit"))
    _no_loading(monkeypatch)
    _refused(tmp_path, capsys, _spec(tmp_path / "vit"), "ViTBackbone", "not a causal LM")


@pytest.mark.parametrize("model_type", ["bert", "mamba"])
def test_a_model_type_keras_hub_cannot_convert_to_a_causal_lm(tmp_path, capsys, monkeypatch,
                                                              model_type):
    checkpoint = _checkpoint(tmp_path / "hf", {"model_type": model_type})
    _no_loading(monkeypatch)
    _refused(tmp_path, capsys, _spec(checkpoint), str(checkpoint), f"'{model_type}'",
             "supported model_types:", "gemma", "qwen2")


def test_a_checkpoint_without_its_tokenizer_files(tmp_path, capsys, monkeypatch):
    checkpoint = _checkpoint(tmp_path / "hf", {"model_type": "llama"},
                             files=("model.safetensors", "vocab.json"))
    _no_loading(monkeypatch)
    _refused(tmp_path, capsys, _spec(checkpoint), str(checkpoint), "(llama)",
             "without the tokenizer files", "tokenizer.json")


def test_a_checkpoint_without_weights(tmp_path, capsys, monkeypatch):
    checkpoint = _checkpoint(tmp_path / "hf", {"model_type": "gemma"},
                             files=("tokenizer.model",))
    _no_loading(monkeypatch)
    _refused(tmp_path, capsys, _spec(checkpoint), "without safetensors weights")


def test_lengths_beyond_a_checkpoints_context(tmp_path, capsys, monkeypatch):
    checkpoint = _checkpoint(tmp_path / "hf", {"model_type": "qwen2",
                                               "max_position_embeddings": 24})
    _no_loading(monkeypatch)
    _refused(tmp_path, capsys, _spec(checkpoint), "model.sequence_length", "32 is beyond "
             "the model's context length (24, its config.json max_position_embeddings)")


def test_max_length_beyond_the_context_the_spec_sets(tmp_path, capsys, monkeypatch,
                                                     family_preset):
    _no_loading(monkeypatch)
    spec = {**_spec(family_preset("llama"), context_length=32),
            "generation": {"max_length": 48}}
    _refused(tmp_path, capsys, spec, "generation.max_length",
             "48 is beyond the model's context length (32, its model.context_length)")


def test_a_context_length_beyond_what_the_model_states(tmp_path, capsys, monkeypatch,
                                                       family_preset):
    _no_loading(monkeypatch)
    _refused(tmp_path, capsys, _spec(family_preset("gpt2"), context_length=512),
             "model.context_length", "beyond the context length the model states (256")


def test_sharding_a_family_without_a_layout_map(tmp_path, capsys, monkeypatch, family_preset):
    _no_loading(monkeypatch)
    _refused(tmp_path, capsys, _spec(family_preset("mistral"),
                                     distribution={"model_parallel": 2}),
             "model.distribution.model_parallel", "MistralBackbone has no layout map",
             "Llama 3", "Gemma")


def test_hf_without_network_says_how_to_use_a_local_directory(tmp_path, capsys, monkeypatch):
    import samplerlab.models.loading as loading

    monkeypatch.setattr(loading, "hub_reachable", lambda timeout=3.0: False)
    line = _refused(tmp_path, capsys, _spec("hf://samplerlab-tests/not-cached"),
                    "cannot reach the Hugging Face Hub", "hf://samplerlab-tests/not-cached",
                    "--local-dir DIR", "model.preset")
    assert line.startswith("error: ")
