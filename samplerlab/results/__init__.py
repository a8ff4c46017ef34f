"""The results of a run: its directory (:class:`RunDir`, the one owner of every file name
in it), atomic writes, provenance and the Markdown tables of its report.

Example:

```python
from samplerlab.results import RunDir, load_samples

frame = load_samples(run_dir)  # run_dir: a finished run; one row per generation
assert len(frame) == len(RunDir.read(run_dir).samples())
```
"""

from __future__ import annotations

from samplerlab.results.files import atomic_write, current_umask, now
from samplerlab.results.provenance import git_revision, versions
from samplerlab.results.run_dir import (
    RUN_DIR_HINT,
    RunDir,
    default_run_id,
    load_samples,
    require_run_dir,
    safe_run_dir,
)

# The names of a run's main files, importable as before RunDir owned them.
MANIFEST = RunDir.MANIFEST
SPEC = RunDir.SPEC
SAMPLES = RunDir.SAMPLES
CELLS = RunDir.CELLS

__all__ = ["CELLS", "MANIFEST", "RUN_DIR_HINT", "SAMPLES", "SPEC", "RunDir", "atomic_write",
           "current_umask", "default_run_id", "git_revision", "load_samples", "now",
           "require_run_dir", "safe_run_dir", "versions"]
