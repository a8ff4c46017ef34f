"""The run viewer: ``samplerlab view`` serves runs in the browser (Starlette, Jinja2,
uvicorn), with blind pairwise rating (stored by :mod:`samplerlab.ratings`) and a static
HTML export.

Example:

```python
from pathlib import Path
from samplerlab.viewer import Catalog, create_app, export_html

catalog = Catalog([run_dir])   # run directories, or roots holding runs: Path("results")
app = create_app(catalog)                      # an ASGI app: uvicorn, or Starlette's TestClient
export_html(catalog.sorted_runs()[0], "run.html")
assert "<html" in Path("run.html").read_text(encoding="utf-8")  # one self-contained page
```
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {"Catalog": "samplerlab.viewer.runs", "Run": "samplerlab.viewer.runs",
            "create_app": "samplerlab.viewer.app", "export_html": "samplerlab.viewer.export",
            "running_server": "samplerlab.viewer.serve"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    # Lazy: reading runs (Catalog, Run) loads neither Starlette nor uvicorn.
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(name)
