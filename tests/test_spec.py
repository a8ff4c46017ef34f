"""Spec semantics: bare names, sweeps, overrides, cell identity, resolved YAML."""

from __future__ import annotations

import pytest
import yaml

from samplerlab.errors import UserInputError
from samplerlab.spec import load_spec


def _spec(**extra):
    return {"name": "s", "model": {"preset": "gpt2_base_en"}, "prompts": ["hi there"],
            "samplers": ["greedy"], **extra}


def test_a_bare_name_is_a_sampler_with_default_parameters():
    loaded = load_spec(_spec(samplers=["greedy", "top_k"]))
    assert [(c.sampler, c.params) for c in loaded.cells] == [("greedy", {}), ("top_k", {})]


def test_list_values_are_a_cartesian_sweep_per_sampler():
    loaded = load_spec(_spec(samplers=[{"name": "top_k", "params": {
        "k": [5, 50], "temperature": [0.7, 1.0]}}, "greedy"]))
    assert [c.params for c in loaded.cells] == [
        {"k": 5, "temperature": 0.7}, {"k": 5, "temperature": 1.0},
        {"k": 50, "temperature": 0.7}, {"k": 50, "temperature": 1.0}, {}]
    assert [c.id for c in loaded.cells][0] == "000-top_k-k=5-temperature=0.7"
    assert loaded.cells[-1].id == "004-greedy"


def test_a_chain_sweeps_values_inside_its_processor_list():
    loaded = load_spec(_spec(samplers=[{"name": "chain", "params": {"processors": [
        {"top_k": [10, 40]}, {"temperature": 0.8}]}}]))
    assert len(loaded.cells) == 2
    assert [c.label for c in loaded.cells] == [
        "chain(processors=top_k10,temperature0.8)", "chain(processors=top_k40,temperature0.8)"]


def test_a_labelled_chain_keeps_its_label_unless_it_sweeps():
    loaded = load_spec(_spec(samplers=[
        {"name": "chain", "label": "dry", "params": {"processors": [{"dry": 0.8}]}},
        {"name": "chain", "label": "k", "params": {"processors": [{"top_k": [10, 40]}]}}]))
    assert [c.label for c in loaded.cells] == ["dry", "k(processors=top_k10)",
                                               "k(processors=top_k40)"]


def test_a_bad_processor_is_located_inside_the_chain(write_spec):
    path = write_spec(_spec(samplers=[{"name": "chain", "params": {"processors": [
        {"top_k": 40}, {"top_p": 1.5}]}}]))
    with pytest.raises(UserInputError) as info:
        load_spec(path)
    assert info.value.field == "samplers[0].params.processors[1].p"
    assert info.value.line is not None


def test_overrides_can_address_list_items_and_add_parameters():
    loaded = load_spec(_spec(samplers=["greedy", "top_k"]),
                       overrides=["samplers.1.params.k=[3, 4]", "seed=9"])
    assert [c.params for c in loaded.cells[1:]] == [{"k": 3}, {"k": 4}]
    assert loaded.spec.seed == 9


def test_the_resolved_yaml_reloads_to_the_same_cells(write_spec):
    loaded = load_spec(_spec(samplers=[{"name": "top_p", "params": {"p": [0.5, 0.9]}}]))
    again = load_spec(write_spec(yaml.safe_load(loaded.resolved_yaml())))
    assert [c.id for c in again.cells] == [c.id for c in loaded.cells]


def test_cell_ids_do_not_depend_on_parameter_spelling_order():
    a = load_spec(_spec(samplers=[{"name": "top_k", "params": {"k": 5, "temperature": 0.5}}]))
    b = load_spec(_spec(samplers=[{"name": "top_k", "params": {"temperature": 0.5, "k": 5}}]))
    from samplerlab.engine import cell_seed

    assert cell_seed(1, a.cells[0]) == cell_seed(1, b.cells[0])
