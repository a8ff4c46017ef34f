"""``samplerlab view RUN_DIR --export run.html``: one self-contained HTML file.

The file holds the run, its metric table, ratings, plots (PNG data URIs), cells, spec and
manifest, and every prompt's continuations with a pager, search and filters that run in
the page itself. The stylesheet and script are inlined, and a Content-Security-Policy
lets the page load nothing from anywhere (no server, no network) and run no script but
its own.
"""

from __future__ import annotations

import base64
import hashlib
from importlib import resources
from pathlib import Path

from samplerlab.results import atomic_write
from samplerlab.viewer import views
from samplerlab.viewer.app import template_environment
from samplerlab.viewer.runs import Run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _asset(name: str) -> str:
    return resources.files("samplerlab.viewer").joinpath("static", name).read_text("utf-8")


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()
                                         ).decode() + "'"


def _data_uri(path: Path) -> str | None:
    data = path.read_bytes()
    if not data.startswith(PNG_MAGIC):
        return None
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def render_export(run: Run) -> str:
    """The export page of ``run`` as HTML text."""
    css, js = _asset("viewer.css"), _asset("viewer.js")
    if "</script" in js.lower() or "</style" in css.lower():
        raise ValueError("an inlined asset would end its own element")
    policy = (f"default-src 'none'; img-src data:; style-src {_csp_hash(css)}; "
              f"script-src {_csp_hash(js)}; form-action 'none'; base-uri 'none'")
    frame, metrics_problem = run.metrics()
    spec_text, spec_problem = run.spec_text()
    samples = run.samples()
    problems = [p for p in (run.manifest_problem, metrics_problem, spec_problem) if p]
    problems += samples.problems
    ratings = views.ratings_summary(run)
    if ratings.problem:
        problems.append(ratings.problem)
    plots = [(p.stem, uri) for p in run.plots() if (uri := _data_uri(p)) is not None]
    pages = views.all_pages(samples)
    n = views.DEFAULT_REP_N
    template = template_environment().get_template("export.html")
    return template.render(
        run=run, css=css, js=js, policy=policy, problems=problems,
        table=views.metric_table(frame) if frame is not None else None, ratings=ratings,
        plots=plots, spec_text=spec_text, facts=views.manifest_facts(run),
        manifest_json=views.manifest_json(run), cells=views.cell_rows(run), samples=samples,
        pages=[(page, views.cards(page, n, None)) for page in pages], n=n)


def export_html(run: Run, path: str | Path) -> Path:
    """Write the export of ``run`` to ``path`` (atomically) and return the path."""
    path = Path(path)
    atomic_write(path, render_export(run))
    return path
