"""Every malformed input is refused with one line, exit status 2, no traceback, nothing written."""

from __future__ import annotations

import copy

import pytest
import yaml

from samplerlab.cli import main


def _mutate(spec: dict, path: str, value) -> dict:
    spec = copy.deepcopy(spec)
    keys = path.split(".")
    target = spec
    for k in keys[:-1]:
        k = int(k) if k.isdigit() else k
        target = target[k]
    last = int(keys[-1]) if keys[-1].isdigit() else keys[-1]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return spec


_DELETE = object()

# (case id, change to the base spec | raw file content, extra CLI args, expected fragments)
CASES = [
    ("yaml-syntax", "name: x\nprompts: [unclosed\n", [], ["YAML error", ":3"]),
    ("yaml-python-tag", "name: x\nprompts: !!python/object/apply:os.system ['ls']\n"
     "samplers: [greedy]\n", [], ["not allowed", ":2"]),
    ("spec-is-list", "- greedy\n- top_k\n", [], ["must be a mapping", "a list"]),
    ("spec-is-scalar", "42\n", [], ["must be a mapping", "int"]),
    ("empty-file", "", [], ["empty"]),
    ("non-utf8", b"name: caf\xe9\n", [], ["not UTF-8"]),
    ("wrong-type", ("generation.max_length", "lots"), [], ["generation.max_length", "integer"]),
    ("unknown-top-key", ("promts", ["x"]), [], ["promts", "did you mean prompts"]),
    ("unknown-nested-key", ("generation.max_lenght", 9), [], ["max_lenght",
                                                              "did you mean max_length"]),
    ("unknown-sampler", ("samplers", ["gredy"]), [], ["unknown sampler 'gredy'", "greedy"]),
    ("unknown-metric", ("metrics", ["rep_m"]), [], ["unknown metric 'rep_m'"]),
    ("unknown-dataset", ("finetune", {"dataset": {"source": "nope"}}), [],
     ["finetune.dataset.source", "unknown dataset 'nope'"]),
    ("unknown-param", ("samplers", [{"name": "top_k", "params": {"kk": 3}}]), [],
     ["unknown parameter 'kk'", "did you mean k"]),
    ("top_k-k-zero", ("samplers", [{"name": "top_k", "params": {"k": 0}}]), [],
     ["samplers[0].params.k", "greater than or equal to 1"]),
    ("top_k-k-float", ("samplers", [{"name": "top_k", "params": {"k": 2.5}}]), [],
     ["samplers[0].params.k"]),
    ("top_k-temperature-zero", ("samplers", [{"name": "top_k", "params": {"temperature": 0}}]),
     [], ["temperature", "greater than 0"]),
    ("top_p-p-zero", ("samplers", [{"name": "top_p", "params": {"p": 0}}]), [],
     ["params.p", "greater than 0"]),
    ("top_p-p-above-one", ("samplers", [{"name": "top_p", "params": {"p": 1.5}}]), [],
     ["params.p", "less than or equal to 1"]),
    ("top_p-k-zero", ("samplers", [{"name": "top_p", "params": {"k": 0}}]), [], ["params.k"]),
    ("random-temperature-negative", ("samplers", [{"name": "random",
                                                   "params": {"temperature": -1}}]), [],
     ["temperature"]),
    ("beam-num-beams-zero", ("samplers", [{"name": "beam", "params": {"num_beams": 0}}]), [],
     ["num_beams"]),
    ("contrastive-alpha", ("samplers", [{"name": "contrastive", "params": {"alpha": 1.5}}]), [],
     ["alpha", "less than or equal to 1"]),
    ("contrastive-k-zero", ("samplers", [{"name": "contrastive", "params": {"k": 0}}]), [],
     ["params.k"]),
    ("dry-allowed-length-zero", ("samplers", [{"name": "chain", "params": {
        "processors": [{"dry": {"allowed_length": 0}}]}}]), [],
     ["samplers[0].params.processors[0].allowed_length", "greater than or equal to 1"]),
    ("dry-empty-breaker", ("samplers", [{"name": "chain", "params": {
        "processors": [{"dry": {"sequence_breakers": ["\n", ""]}}]}}]), [],
     ["processors[0].sequence_breakers[1]", "at least 1 character"]),
    ("bad-value-in-sweep", ("samplers", [{"name": "top_k", "params": {"k": [5, 0]}}]), [],
     ["params.k", "greater than or equal to 1"]),
    ("empty-sweep-axis", ("samplers", [{"name": "top_k", "params": {"k": []}}]), [],
     ["params.k", "at least one value"]),
    ("no-samplers", ("samplers", []), [], ["samplers"]),
    ("empty-prompt-list", ("prompts", []), [], ["prompts", "empty", "at least one prompt"]),
    ("empty-string-prompt", ("prompts", ["fine", "  "]), [], ["prompts", "prompt 1 is an empty"]),
    ("samples-per-prompt-zero", ("generation.samples_per_prompt", 0), [],
     ["samples_per_prompt"]),
    ("batch-size-zero", ("generation.batch_size", 0), [], ["batch_size"]),
    ("max-length-beyond-model", ("generation.max_length", 5000), [],
     ["max_length", "max_sequence_length", "to 256 or less"]),
    ("unknown-dtype-policy", ("model.dtype_policy", "float8"), [], ["dtype_policy"]),
    ("missing-preset-dir", ("model.preset", "./no/such/preset"), [],
     ["model.preset", "does not exist"]),
    ("unknown-embedded-preset", ("model.preset", "samplerlab:nope"), [],
     ["no embedded preset"]),
    ("name-escapes", ("name", "../evil"), [], ["name"]),
    ("output-root-absolute", ("output", {"root": "/tmp/elsewhere"}), [],
     ["output.root", "relative"]),
    ("output-root-dotdot", ("output", {"root": "results/../../x"}), [], ["output.root", ".."]),
    ("run-id-with-slash", ("output", {"run_id": "a/b"}), [], ["output.run_id"]),
    ("missing-dataset-dir", ("finetune", {"dataset": {"source": "chinese_poetry",
                                                      "dir": "./no/such/poems"}}), [],
     ["finetune.dataset.dir", "no/such/poems"]),
    ("missing-dataset-file", ("prompts", {"dataset": {"source": "jsonl", "path": "nope.jsonl",
                                                      "field": "text"}}), [],
     ["prompts.dataset.path", "nope.jsonl"]),
    ("unknown-dataset-parameter", ("finetune", {"dataset": {"source": "inline", "texts": ["a"],
                                                            "textz": ["b"]}}),
     [], ["finetune.dataset.textz", "unknown parameter"]),
    ("plugin-module-missing", ("plugins", ["no_such_samplerlab_plugin"]), [],
     ["plugins[0]", "not found"]),
    ("plugin-file-missing", ("plugins", ["./missing_plugin.py"]), [],
     ["plugins[0]", "does not exist"]),
    ("override-syntax", None, ["-o", "generation.max_length"], ["expected KEY=VALUE"]),
    ("override-index-out-of-range", None, ["-o", "samplers.3.name=top_k"],
     ["samplers.3", "out of range (the list has 1 item)"]),
    ("override-unknown-key", None, ["-o", "generation.max_lenght=9"],
     ["max_lenght", "did you mean max_length"]),
    ("override-bad-value", None, ["-o", "generation.max_length=-3"],
     ["generation.max_length", "greater than or equal to 2"]),
    ("cli-plugin-missing", None, ["--plugin", "no_such_plugin_mod"], ["not found"]),
    ("cli-run-id-escape", None, ["--run-id", "../../x"], ["--run-id", "path separators"]),
    ("speculative-no-draft-tokens", ("samplers", [{"name": "speculative", "params": {
        "draft": "samplerlab:tiny-en", "num_speculative_tokens": 0}}]), [],
     ["samplers[0].params.num_speculative_tokens", "greater than or equal to 1"]),
    ("speculative-too-many-draft-tokens", ("samplers", [{"name": "speculative", "params": {
        "draft": "samplerlab:tiny-en", "num_speculative_tokens": 17}}]), [],
     ["samplers[0].params.num_speculative_tokens", "less than or equal to 16"]),
    ("speculative-missing-draft", ("samplers", [{"name": "speculative", "params": {
        "draft": "./no/such/draft"}}]), [], ["samplers[0].params.draft", "does not exist"]),
    ("speculative-unknown-embedded-draft", ("samplers", [{"name": "speculative", "params": {
        "draft": "samplerlab:nope"}}]), [], ["samplers[0].params.draft", "no embedded preset"]),
    ("stop-empty-string", ("generation.stop", ["\n\n", ""]), [],
     ["generation.stop", "stop string 1 is empty"]),
    ("stop-too-many", ("generation.stop", [f"s{i}" for i in range(17)]), [],
     ["generation.stop", "at most 16"]),
    ("enormous-sweep", ("samplers", [{"name": "top_k", "params": {
        "k": list(range(1, 16)), "temperature": [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3,
                                                 1.4, 1.5, 1.6, 1.7, 1.8]}}]), [],
     ["--yes", "210 cells"]),
    ("trace_top-negative", ("generation.trace_top", -1), [],
     ["generation.trace_top", "greater than or equal to 0"]),
    ("trace_top-without-traces", ("generation.trace_top", 3), [],
     ["generation.trace_top", "set generation.trace: true"]),
    ("trace_reference-without-references", ("generation.trace_reference", True), [],
     ["generation.trace_reference", "a prompt list has none"]),
]

MODEL_CASES = [
    ("prompt-longer-than-sequence-length", ("prompts", ["word " * 80]), [],
     ["prompts[0]", "longer than model.sequence_length"]),
    ("max-length-not-above-prompt", ("generation.max_length", 4), [],
     ["prompts[0]", "prompt 0 is 4 tokens", "must be above the prompt length"]),
    ("trace_top-above-the-vocabulary", ("generation", {"max_length": 16, "batch_size": 2,
                                                       "trace": True, "trace_top": 50258}), [],
     ["generation.trace_top", "50258 alternatives", "vocabulary has 50257"]),
]


def _write_case(tmp_path, base_spec, change):
    path = tmp_path / "case.yaml"
    if change is None:
        path.write_text(yaml.safe_dump(base_spec), encoding="utf-8")
    elif isinstance(change, bytes):
        path.write_bytes(change)
    elif isinstance(change, str):
        path.write_text(change, encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump(_mutate(base_spec, *change), allow_unicode=True),
                        encoding="utf-8")
    return path


def _refused(tmp_path, monkeypatch, capsys, base_spec, change, args, expected):
    monkeypatch.chdir(tmp_path)
    path = _write_case(tmp_path, base_spec, change)
    code = main(["run", str(path), "--results-root", str(tmp_path / "results"), *args])
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2, captured.err
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in captured.err + captured.out
    for fragment in expected:
        assert fragment in lines[0], (fragment, lines[0])
    assert not (tmp_path / "results").exists()
    assert not (tmp_path / "elsewhere").exists()
    return lines[0]


@pytest.mark.parametrize(("change", "args", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_spec_is_refused_before_any_model_loads(tmp_path, monkeypatch, capsys, base_spec,
                                                    change, args, expected):
    import samplerlab.models as models

    def no_loading(*a, **k):
        raise AssertionError("a model was loaded for a spec that should have been refused")

    monkeypatch.setattr(models, "load_model", no_loading)
    line = _refused(tmp_path, monkeypatch, capsys, base_spec, change, args, expected)
    if isinstance(change, (str, bytes, tuple)) or change is None:
        assert "case.yaml" in line or "override" in line or "--" in line or "plugin" in line


@pytest.mark.parametrize(("change", "args", "expected"), [c[1:] for c in MODEL_CASES],
                         ids=[c[0] for c in MODEL_CASES])
def test_prompt_problems_are_refused_before_any_generation(tmp_path, monkeypatch, capsys,
                                                           base_spec, change, args, expected):
    _refused(tmp_path, monkeypatch, capsys, base_spec, change, args, expected)


def test_the_catalog_covers_at_least_thirty_inputs():
    assert len(CASES) + len(MODEL_CASES) >= 30


def test_debug_shows_the_traceback(tmp_path, base_spec):
    path = _write_case(tmp_path, base_spec, ("samplers", ["gredy"]))
    from samplerlab.errors import UserInputError

    with pytest.raises(UserInputError):
        main(["--debug", "validate", str(path)])


def test_missing_spec_file_is_one_line(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {tmp_path / 'nope.yaml'}: spec file not found"
