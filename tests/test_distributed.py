"""The Ray executor runs one cell per task and writes exactly what the local executor writes.

The cluster is a simulated two-node Ray cluster (``ray.cluster_utils.Cluster``), and the
spec fine-tunes: the fine-tuned preset reaches the workers through Ray's object store,
not through the driver's path.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys

import pandas as pd
import pytest

import samplerlab
from samplerlab.errors import UserInputError
from samplerlab.executors.ray import (
    RAY_MISSING,
    RayExecutor,
    pack_preset,
    require_ray,
    resolve_gpus_per_cell,
    unpack_preset,
)
from samplerlab.results import RunDir
from samplerlab.runner import resume_run

# ray.init starts its processes with fork+exec after JAX is imported; JAX warns on any fork,
# but nothing runs in the forked child before exec, so there is nothing to deadlock.
pytestmark = pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="ray is not installed (pip install 'samplerlab[ray]')")

BROKEN_PLUGIN = '''
import samplerlab


def make_broken(level: int = 1):
    raise RuntimeError("broken on purpose")


@samplerlab.hookimpl
def register_samplers(register):
    register("broken", make_broken, description="always fails at construction")
'''

# Fields that measure wall time: the only ones allowed to differ between executors.
TIMING_SAMPLE_FIELDS = ["batch_seconds"]
TIMING_METRIC_PREFIXES = ("compile", "first_call", "steady", "tokens_per_s", "latency")


@pytest.fixture(scope="module")
def spec(tiny_preset, tmp_path_factory) -> dict:
    plugin = tmp_path_factory.mktemp("plugin") / "broken_sampler.py"
    plugin.write_text(BROKEN_PLUGIN)
    return {
        "name": "dist",
        "seed": 5,
        "model": {"preset": str(tiny_preset), "sequence_length": 32},
        "plugins": [str(plugin)],
        "prompts": ["I like basketball", "My trip to Yosemite was", "That Italian restaurant is"],
        "finetune": {"dataset": {"source": "inline", "texts": ["the cat sat on the mat"] * 4},
                     "batch_size": 2, "take_batches": 2,
                     "optimizer": {"learning_rate": 1.0e-3}},
        "generation": {"max_length": 18, "samples_per_prompt": 2, "batch_size": 4,
                       "trace": True},
        "samplers": ["greedy", {"name": "top_k", "params": {"k": [5, 40]}},
                     {"name": "broken", "params": {"level": 2}}],
        "metrics": ["rep_n", "latency"],
    }


@pytest.fixture(scope="module")
def ray_cluster():
    """Two Ray nodes of one CPU each, the driver connected to the head."""
    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed (pip install 'samplerlab[ray]')")
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
    cluster.wait_for_nodes()
    yield ray
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="module")
def results_root(tmp_path_factory):
    """One results root for both runs, so they share the cached fine-tuned preset."""
    return tmp_path_factory.mktemp("results")


@pytest.fixture(scope="module")
def local_run(spec, results_root):
    from samplerlab.plugins import reset_plugin_manager

    reset_plugin_manager()
    return samplerlab.run(samplerlab.load_spec(spec), results_root=results_root,
                          run_id="local", progress=False)


@pytest.fixture(scope="module")
def ray_run(spec, ray_cluster, local_run, results_root):
    from samplerlab.plugins import reset_plugin_manager

    reset_plugin_manager()
    return samplerlab.run(samplerlab.load_spec(spec), results_root=results_root,
                          run_id="ray", progress=False, executor=RayExecutor(address="auto"))


def _samples(run_dir) -> pd.DataFrame:
    return samplerlab.load_samples(run_dir).drop(columns=TIMING_SAMPLE_FIELDS)


def _quality_metrics(run_dir) -> pd.DataFrame:
    frame = pd.read_csv(run_dir / "metrics.csv")
    return frame[[c for c in frame.columns if not c.startswith(TIMING_METRIC_PREFIXES)]]


def _layout(run_dir) -> set[str]:
    return {str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()}


def _manifest(run_dir) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


@needs_ray
def test_ray_samples_are_identical_to_the_local_run(local_run, ray_run):
    local, distributed = _samples(local_run.run_dir), _samples(ray_run.run_dir)
    assert len(local) == 3 * 3 * 2  # three working cells x three prompts x two samples
    pd.testing.assert_frame_equal(local, distributed)


@needs_ray
def test_ray_traces_are_identical_to_the_local_run(local_run, ray_run):
    local, distributed = (samplerlab.load_traces(r.run_dir) for r in (local_run, ray_run))
    assert len(local) > 0
    pd.testing.assert_frame_equal(distributed, local)


@needs_ray
def test_ray_run_writes_the_same_files(local_run, ray_run):
    assert _layout(local_run.run_dir) == _layout(ray_run.run_dir)
    for name in ("spec.yaml", "manifest.json", "samples.jsonl", "metrics.csv", "latency.csv",
                 "report.md"):
        assert (ray_run.run_dir / name).is_file(), name
    assert (local_run.run_dir / "spec.yaml").read_text() == \
        (ray_run.run_dir / "spec.yaml").read_text()


@needs_ray
def test_ray_metrics_match_apart_from_timing(local_run, ray_run):
    pd.testing.assert_frame_equal(_quality_metrics(local_run.run_dir),
                                  _quality_metrics(ray_run.run_dir))
    latency = pd.read_csv(ray_run.run_dir / "latency.csv")
    done = latency[latency["status"] == "done"]
    assert (done["first_call_s"] > 0).all() and done["steady_p50_s"].notna().all()


@needs_ray
def test_a_failing_cell_fails_alone_with_the_local_error(local_run, ray_run):
    assert ray_run.status == local_run.status == "failed"
    assert ray_run.failed == local_run.failed == ["003-broken-level=2"]
    local_cells = _manifest(local_run.run_dir)["cells"]
    ray_cells = _manifest(ray_run.run_dir)["cells"]
    assert [c["status"] for c in ray_cells] == ["done", "done", "done", "failed"]
    assert ray_cells[3]["error"] == local_cells[3]["error"]
    assert "broken on purpose" in ray_cells[3]["error"]


@needs_ray
def test_cells_ran_on_both_nodes_from_the_shipped_fine_tuned_preset(ray_run):
    manifest = _manifest(ray_run.run_dir)
    assert manifest["executor"]["name"] == "ray"
    assert manifest["executor"]["gpus_per_cell"] == 0.0
    assert manifest["executor"]["nodes"] == 2 and manifest["executor"]["preset_shipped"]
    finetuned = manifest["model"]["finetuned"]["path"]
    run = RunDir.open(ray_run.run_dir)
    workers = [run.cell_record(c["id"])["worker"] for c in manifest["cells"][:3]]
    assert os.getpid() not in {w["pid"] for w in workers}
    assert len({w["node_id"] for w in workers}) == 2
    # Each worker loaded the copy Ray delivered to its node, never the driver's directory.
    for worker in workers:
        assert "samplerlab-presets" in worker["model"]
        assert os.path.realpath(worker["model"]) != os.path.realpath(finetuned)
    # Every cell reports whether it compiled; the driver sums them like the local loop does.
    compiled = [run.cell_record(c["id"])["timing"]["compiled"] for c in manifest["cells"][:3]]
    assert manifest["compile_count"] == sum(compiled) >= 1


@needs_ray
def test_resume_on_ray_runs_only_the_missing_cells(ray_run, local_run, tmp_path):
    copy = tmp_path / "dist" / "r"
    shutil.copytree(ray_run.run_dir, copy)
    shutil.copytree(ray_run.run_dir.parent.parent / "_finetuned", tmp_path / "_finetuned")
    kept = json.loads((copy / "cells" / "000-greedy.json").read_text())
    for suffix in (".json", ".jsonl"):
        (copy / "cells" / f"002-top_k-k=40{suffix}").unlink()
    result = resume_run(copy, progress=False, executor=RayExecutor(address="auto"))
    assert json.loads((copy / "cells" / "000-greedy.json").read_text()) == kept
    assert (copy / "cells" / "002-top_k-k=40.json").is_file()
    pd.testing.assert_frame_equal(_samples(copy), _samples(local_run.run_dir))
    assert result.failed == ["003-broken-level=2"]


@needs_ray
def test_cli_runs_a_spec_on_ray(spec, ray_cluster, local_run, write_spec, tmp_path):
    from samplerlab.cli import main

    path = write_spec({**spec, "samplers": ["greedy"]})
    shutil.copytree(local_run.run_dir.parent.parent / "_finetuned", tmp_path / "_finetuned")
    code = main(["run", str(path), "--executor", "ray", "--ray-address", "auto",
                 "--results-root", str(tmp_path), "--run-id", "c", "-q"])
    assert code == 0
    manifest = _manifest(tmp_path / "dist" / "c")
    assert manifest["executor"]["name"] == "ray"
    assert manifest["status"] == "complete"
    local = _samples(local_run.run_dir)
    pd.testing.assert_frame_equal(_samples(tmp_path / "dist" / "c"),
                                  local[local["sampler"] == "greedy"].reset_index(drop=True))


def test_cli_refuses_ray_options_without_the_ray_executor(write_spec, base_spec, capsys):
    from samplerlab.cli import main

    path = write_spec(base_spec)
    assert main(["run", str(path), "--ray-address", "auto"]) == 2
    assert "--executor ray" in capsys.readouterr().err
    assert main(["run", str(path), "--executor", "dask"]) == 2


def test_gpus_per_cell_defaults_to_one_only_when_the_cluster_has_gpus():
    assert resolve_gpus_per_cell(None, {"CPU": 2.0}) == 0
    assert resolve_gpus_per_cell(None, {"CPU": 16.0, "GPU": 4.0}) == 1
    assert resolve_gpus_per_cell(0.5, {"GPU": 1.0}) == 0.5
    assert resolve_gpus_per_cell(0, {"GPU": 8.0}) == 0
    with pytest.raises(UserInputError, match="has 0"):
        resolve_gpus_per_cell(1, {"CPU": 2.0})
    with pytest.raises(UserInputError, match="0 or more"):
        resolve_gpus_per_cell(-1, {"GPU": 1.0})


def test_a_shipped_preset_unpacks_to_the_same_files_once(tiny_preset, tmp_path):
    blob = pack_preset(tiny_preset)
    first = unpack_preset(blob, tmp_path)
    again = unpack_preset(blob, tmp_path)
    assert first == again
    assert sorted(p.name for p in first.iterdir()) == sorted(p.name for p in tiny_preset.iterdir())
    for original in tiny_preset.iterdir():
        if original.is_file():
            assert (first / original.name).read_bytes() == original.read_bytes()


def test_missing_ray_is_one_line_that_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(UserInputError) as info:
        require_ray()
    assert str(info.value).endswith(RAY_MISSING)
    assert "samplerlab[ray]" in RAY_MISSING


@needs_ray
def test_a_task_that_raises_outside_the_sampler_fails_only_its_cell(spec, ray_cluster,
                                                                    tmp_path):
    # The plugin file exists when the driver loads the spec and is gone when the workers
    # look for it: each task raises before any cell code runs.
    plugin = tmp_path / "vanishing_plugin.py"
    plugin.write_text(BROKEN_PLUGIN)
    loaded = samplerlab.load_spec({**spec, "plugins": [str(plugin)], "samplers": ["greedy"],
                                   "finetune": None})
    plugin.unlink()
    result = samplerlab.run(loaded, results_root=tmp_path, run_id="v", progress=False,
                            executor=RayExecutor(address="auto"))
    assert result.status == "failed" and result.failed == ["000-greedy"]
    error = _manifest(result.run_dir)["cells"][0]["error"]
    assert error.startswith("ray task failed: UserInputError:")
    assert "does not exist" in error
    assert (result.run_dir / "metrics.csv").is_file()
