"""Datasets: built-in sources, their errors, prompts cut from a dataset, TFDS on mock data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from samplerlab.datasets.poetry_source import SHIPPED_EXCERPT
from samplerlab.errors import DatasetError, UserInputError
from samplerlab.plugins import registry
from samplerlab.prompts import prompts_from_texts, resolve_prompts, split_prefix, text_units
from samplerlab.spec import load_spec


def build(source: str, **params):
    return registry("datasets").get_entry(source).build(**params)


def test_builtins_are_registered_through_the_hook():
    entries = registry("datasets")
    assert {"tfds", "chinese_poetry", "jsonl", "text", "inline"} <= set(entries)
    assert all(entries[n].plugin == "samplerlab.datasets" for n in ("tfds", "jsonl"))


def test_jsonl_reads_the_field_of_each_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"body": "first text", "n": 1}\n\n{"body": "second", "n": 2}\n')
    source = build("jsonl", path=str(path), field="body")
    source.check()
    assert list(source.texts()) == ["first text", "second"]


def test_jsonl_unknown_field_names_the_field_and_the_keys(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"body": "x", "n": 1}\n')
    with pytest.raises(DatasetError) as info:
        build("jsonl", path=str(path), field="text").check()
    assert info.value.field == "field"
    assert "unknown field 'text'" in info.value.problem and "body, n" in info.value.problem


@pytest.mark.parametrize("content", ["", "\n  \n"])
def test_empty_files_are_refused(tmp_path, content):
    for source, name in (("jsonl", "e.jsonl"), ("text", "e.txt")):
        path = tmp_path / name
        path.write_text(content)
        with pytest.raises(DatasetError, match="is empty"):
            build(source, path=str(path)).check()


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(DatasetError) as info:
        build("text", path=str(tmp_path / "nope.txt")).check()
    assert info.value.field == "path" and "does not exist" in info.value.problem


def test_text_file_by_line_and_by_paragraph(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("one a\none b\n\n\ntwo\n")
    assert list(build("text", path=str(path)).texts()) == ["one a", "one b", "two"]
    assert list(build("text", path=str(path), unit="paragraph").texts()) == ["one a\none b",
                                                                            "two"]


def test_inline_and_take():
    source = build("inline", texts=["a", " ", "b", "c"])
    assert list(source.take(2)) == ["a", "b"]
    with pytest.raises(DatasetError):
        build("inline", texts=["", " "]).check()


def test_chinese_poetry_joins_paragraphs_of_the_shipped_excerpt():
    raw = json.loads((SHIPPED_EXCERPT / "全唐诗" / "poet.tang.0.json").read_text("utf-8"))
    poems = list(build("chinese_poetry").texts())
    assert len(poems) == len(raw) == 300
    assert poems[0] == "".join(raw[0]["paragraphs"])
    assert poems[-1] == "".join(raw[-1]["paragraphs"])
    assert (SHIPPED_EXCERPT / "LICENSE").read_text().startswith("The MIT License")


def test_chinese_poetry_errors(tmp_path):
    with pytest.raises(DatasetError) as info:
        build("chinese_poetry", dir=str(tmp_path / "missing")).check()
    assert info.value.field == "dir"
    with pytest.raises(DatasetError, match="no poet.song"):
        build("chinese_poetry", collection="song").check()
    with pytest.raises(DatasetError, match="unknown field 'body'"):
        build("chinese_poetry", field="body").check()
    with pytest.raises(UserInputError, match="collection"):
        registry("datasets")["chinese_poetry"].validate({"collection": "ming"})


def test_the_tutorial_spec_without_the_corpus_says_how_to_get_it(tmp_path, monkeypatch, capsys):
    from samplerlab.cli import main

    spec = Path(__file__).resolve().parents[1] / "experiments" / "chinese_poetry.yaml"
    monkeypatch.chdir(tmp_path)  # no ./chinese-poetry here
    assert main(["validate", str(spec)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "finetune.dataset.dir: directory 'chinese-poetry' does not exist" in line
    assert "samplerlab data fetch chinese-poetry chinese-poetry" in line
    assert "-o finetune.dataset.dir=null" in line
    # Following the hint works: the shipped excerpt is used.
    assert main(["validate", str(spec), "-o", "finetune.dataset.dir=null"]) == 0


def test_chinese_poetry_full_shared_copy(shared_dir):
    source = build("chinese_poetry", dir=str(shared_dir / "datasets" / "chinese-poetry"))
    source.check()
    files = source.files()
    assert len(files) == 58 and files[0].name == "poet.tang.0.json"
    assert files[1].name == "poet.tang.1000.json"  # numeric order, not lexical
    assert sum(1 for _ in source.texts()) == 57607


def test_split_prefix_counts_words_and_cjk_characters():
    assert text_units("I like 篮球 a lot") == ["I", "like", "篮", "球", "a", "lot"]
    assert split_prefix("a b c", 2) == ("a b", "c")
    assert split_prefix("a b", 2) is None
    prompts = prompts_from_texts(["too short", "one two three four", "x y z"], take=5,
                                 prefix_words=2)
    assert [(p.text, p.reference, p.index) for p in prompts] == [
        ("one two", "three four", 0), ("x y", "z", 1)]


def test_prompts_from_a_dataset_in_a_spec(base_spec, write_spec):
    spec = dict(base_spec, prompts={"dataset": {"source": "chinese_poetry"}, "take": 2,
                                    "prefix_words": 6})
    prompts = resolve_prompts(load_spec(write_spec(spec)))
    assert [p.text for p in prompts] == ["秦川雄帝宅，", "巖廊罷機務，"]
    assert prompts[0].reference.startswith("函谷壯皇居。")


def test_spec_dataset_errors_are_located_before_any_model_loads(base_spec, write_spec,
                                                                tmp_path):
    missing = str(tmp_path / "nope.jsonl")
    spec = dict(base_spec, model={"preset": str(tmp_path / "no-model")},
                finetune={"dataset": {"source": "jsonl", "path": missing}})
    with pytest.raises(UserInputError) as info:
        load_spec(write_spec(spec))
    assert info.value.field == "finetune.dataset.path"
    assert "does not exist" in info.value.problem
    spec["finetune"]["dataset"] = {"source": "jsonl", "path": missing, "colour": 1}
    with pytest.raises(UserInputError, match="unknown parameter 'colour'"):
        load_spec(write_spec(spec))
    spec["finetune"]["dataset"] = {"source": "jsnol", "path": missing}
    with pytest.raises(UserInputError, match="did you mean jsonl"):
        load_spec(write_spec(spec))


# ------------------------------------------------------------------------------ TFDS
tfds = pytest.importorskip("tensorflow_datasets")


def test_tfds_reddit_tifu_supervised_input_on_mock_data():
    source = build("tfds", name="reddit_tifu")
    with tfds.testing.mock_data(num_examples=4):
        texts = list(source.texts())
    assert len(texts) == 4 and all(isinstance(t, str) and t for t in texts)


def test_tfds_named_field_and_unknown_field():
    with tfds.testing.mock_data(num_examples=3):
        assert len(list(build("tfds", name="reddit_tifu", field="title").texts())) == 3
    with pytest.raises(DatasetError) as info:
        build("tfds", name="reddit_tifu", field="document").check()
    assert info.value.field == "field" and "did you mean documents" in info.value.problem


def test_tfds_unknown_name_and_unprepared_offline(tmp_path):
    with pytest.raises(DatasetError, match="unknown TFDS dataset 'reddit_tifo'.*reddit_tifu"):
        build("tfds", name="reddit_tifo").check()
    with pytest.raises(DatasetError) as info:
        build("tfds", name="reddit_tifu", data_dir=str(tmp_path), download=False).check()
    assert "not prepared" in info.value.problem and "manual_dir" in info.value.problem
    assert "\n" not in info.value.one_line()
