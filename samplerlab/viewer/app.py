"""The viewer's web app: Starlette routes rendering Jinja2 templates (autoescaped).

Pages: the runs (``/``), a run (``/runs/<experiment>/<run-id>/``) with its metric table,
plots, spec, manifest, ratings and a comparison with another run, its samples, its tokens
(when it has ``traces.parquet``) and the blind rating page. Every URL names a run by its
key in the :class:`~samplerlab.viewer.runs.Catalog` and a file by a plain name checked
against the run directory, so no URL reaches a file outside the served runs.

Example:

```python
from starlette.testclient import TestClient
from samplerlab.viewer import Catalog, create_app

app = create_app(Catalog([run_dir]))  # run directories, or roots holding runs: Path("results")
assert TestClient(app).get("/").status_code == 200
```
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlencode, urlsplit

import jinja2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from samplerlab.metrics.scoring import format_value
from samplerlab.ratings import (
    RatingRejected,
    RatingsError,
    RatingsStore,
    check_cells,
    clean_rater,
    format_score,
    ratings_csv_text,
)
from samplerlab.results import RunDir
from samplerlab.viewer import views
from samplerlab.viewer.problems import Problem
from samplerlab.viewer.runs import RAW_FILES, Catalog, Run

RATER_COOKIE = "samplerlab_rater"
ROWS_PER_PAGE = 10
# The pages need nothing from anywhere else: scripts, styles and images come from this
# server (plots) or inline data; forms post back here only.
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; "
                           "img-src 'self' data:; form-action 'self'; base-uri 'none'; "
                           "frame-ancestors 'none'")
SECURITY_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY,
                    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}


def template_environment() -> jinja2.Environment:
    """Templates from the package, every ``{{ value }}`` HTML-escaped."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("samplerlab.viewer", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.globals.update(format_value=format_value, format_score=format_score, isnan=_isnan)
    return env


def _isnan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


class SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(catalog: Catalog, *, allowed_hosts: list[str] | None = None,
               ratings_timeout: float | None = None) -> Starlette:
    """The viewer for the runs of ``catalog``.

    ``allowed_hosts`` (for example ``["127.0.0.1", "localhost"]``) refuses requests whose
    Host header names another host, which stops DNS-rebinding pages from reading a
    viewer that listens on the loopback address.
    """
    templates = Jinja2Templates(env=template_environment())
    viewer = _Viewer(catalog, templates, ratings_timeout)
    routes = [
        Route("/", viewer.runs_page, name="runs"),
        Route("/runs/{experiment}/{run_id}/", viewer.run_page, name="run"),
        Route("/runs/{experiment}/{run_id}/compare", viewer.compare_page, name="compare"),
        Route("/runs/{experiment}/{run_id}/samples", viewer.samples_page, name="samples"),
        Route("/runs/{experiment}/{run_id}/tokens", viewer.tokens_page, name="tokens"),
        Route("/runs/{experiment}/{run_id}/rate", viewer.rate_page, name="rate"),
        Route("/runs/{experiment}/{run_id}/rate", viewer.rate_submit, methods=["POST"]),
        Route("/runs/{experiment}/{run_id}/ratings.csv", viewer.ratings_csv, name="ratings_csv"),
        Route("/runs/{experiment}/{run_id}/plots/{name}", viewer.plot_file, name="plot"),
        Route("/runs/{experiment}/{run_id}/files/{name}", viewer.raw_file, name="file"),
        Mount("/static", StaticFiles(packages=[("samplerlab.viewer", "static")]),
              name="static"),
    ]
    middleware = [Middleware(SecurityHeaders)]
    if allowed_hosts:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts))
    return Starlette(routes=routes, middleware=middleware,
                     exception_handlers={HTTPException: viewer.error_page})


def page_url(run: Run, page: str = "", **params: Any) -> str:
    """URL of a run's page with query parameters (lists repeat; None is left out)."""
    query = urlencode({k: v for k, v in params.items() if v is not None and v != []},
                      doseq=True)
    return run.url + page + (f"?{query}" if query else "")


class _Viewer:
    def __init__(self, catalog: Catalog, templates: Jinja2Templates,
                 timeout: float | None) -> None:
        self.catalog = catalog
        self.templates = templates
        self.timeout = timeout

    # -- helpers -------------------------------------------------------------------
    def render(self, request: Request, name: str, status_code: int = 200,
               **context: Any) -> Response:
        context.setdefault("page_url", page_url)
        return self.templates.TemplateResponse(request, name, context, status_code=status_code)

    def run_for(self, request: Request) -> Run:
        run = self.catalog.get(request.path_params["experiment"], request.path_params["run_id"])
        if run is None:
            raise HTTPException(404, "no such run is served here")
        return run

    async def error_page(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)  # noqa: S101 - registered for HTTPException only
        return self.render(request, "error.html", status_code=exc.status_code,
                           status=exc.status_code, message=exc.detail)

    def store(self, run: Run) -> RatingsStore:
        return RatingsStore(run.ratings_path, timeout=self.timeout)

    # -- pages ---------------------------------------------------------------------
    async def runs_page(self, request: Request) -> Response:
        self.catalog.refresh()
        return self.render(request, "runs.html", runs=self.catalog.sorted_runs(),
                           problems=self.catalog.problems)

    async def run_page(self, request: Request) -> Response:
        run = self.run_for(request)
        frame, metrics_problem = run.metrics()
        spec_text, spec_problem = run.spec_text()
        samples = run.samples()
        problems = [p for p in (run.manifest_problem, metrics_problem, spec_problem) if p]
        problems += samples.problems
        ratings = views.ratings_summary(run)
        if ratings.problem:
            problems.append(ratings.problem)
        others = [r for r in self.catalog.sorted_runs() if r.key != run.key]
        return self.render(
            request, "run.html", run=run, problems=problems,
            table=views.metric_table(frame) if frame is not None else None,
            plots=run.plots(), spec_text=spec_text, facts=views.manifest_facts(run),
            manifest_json=views.manifest_json(run), cells=views.cell_rows(run),
            ratings=ratings, others=others, has_traces=run.file(RunDir.TRACES) is not None,
            raw_files=[name for name in RAW_FILES if run.file(name) is not None])

    async def compare_page(self, request: Request) -> Response:
        from samplerlab.comparison import compare_runs
        from samplerlab.errors import UserInputError

        run = self.run_for(request)
        other_key = request.query_params.get("with", "")
        experiment, _, run_id = other_key.partition("/")
        other = self.catalog.get(experiment, run_id) if run_id else None
        if other is None:
            raise HTTPException(404, f"no served run {other_key!r} to compare with")
        rows, problem = [], None
        try:
            rows = compare_runs(run.path, other.path)  # as samplerlab compare (seed 0)
        except UserInputError as exc:
            problem = Problem(f"{run.name}/{run.run_id} vs {other.name}/{other.run_id}",
                              exc.one_line())
        for r in rows:
            r["significant"] = not _isnan(r["ci_low"]) and (r["ci_low"] > 0 or r["ci_high"] < 0)
        return self.render(request, "compare.html", run=run, other=other, rows=rows,
                           problem=problem)

    async def samples_page(self, request: Request) -> Response:
        run = self.run_for(request)
        samples = run.samples()
        q = request.query_params
        chosen = [c for c in q.getlist("cells") if c in samples.cells] or list(samples.cells)
        stop = q.get("stop") or None
        query = (q.get("q") or "").strip() or None
        n = views.rep_n(q.get("n"))
        page = samples.page(chosen, stop, query, _int(q.get("prompt")),
                            _int(q.get("row")) or 0, ROWS_PER_PAGE)
        filters = {"cells": chosen if len(chosen) < len(samples.cells) else [], "stop": stop,
                   "q": query, "n": n if n != views.DEFAULT_REP_N else None}
        return self.render(
            request, "samples.html", run=run, samples=samples, page=page, chosen=chosen,
            stop=stop, query=query or "", n=n, rep_ns=views.REP_NS, filters=filters,
            cards=views.cards(page, n, query), problems=samples.problems,
            token_url=_token_url(run),
            rows_per_page=ROWS_PER_PAGE)

    async def tokens_page(self, request: Request) -> Response:
        run = self.run_for(request)
        traces = run.traces()
        if traces is None:
            raise HTTPException(404, f"this run has no per-token traces ({RunDir.TRACES})")
        q = request.query_params
        colour = "entropy" if q.get("colour") == "entropy" else "prob"
        tokens, current, previous, following, missing = [], None, None, None, None
        if traces.problem is None and traces.generations:
            wanted = (q.get("cell") or "", _int(q.get("prompt")), _int(q.get("sample")) or 0)
            gens = traces.generations
            if "cell" in q and wanted not in gens:
                missing = Problem(RunDir.TRACES, f"no trace of cell {wanted[0]}, prompt "
                                  f"{wanted[1]}, sample {wanted[2]}; showing the first traced "
                                  "generation")
            i = gens.index(wanted) if wanted in gens else 0
            current = gens[i]
            previous = gens[i - 1] if i > 0 else None
            following = gens[i + 1] if i + 1 < len(gens) else None
            tokens = traces.tokens(*current, colour=colour)
        samples = run.samples()
        sample = samples.find(*current) if current else None
        return self.render(request, "tokens.html", run=run, traces=traces, tokens=tokens,
                           current=current, previous=previous, following=following,
                           colour=colour, sample=sample, missing=missing,
                           prompt=samples.prompts.get(current[1]) if current else None,
                           labels=views.cell_labels(run))

    # -- rating --------------------------------------------------------------------
    def _rating_cells(self, run: Run, cells: list[str]) -> list[str]:
        return check_cells(run.samples(), cells) if cells else []

    async def rate_page(self, request: Request) -> Response:
        run = self.run_for(request)
        cells = request.query_params.getlist("cells")
        rater = clean_rater(request.query_params.get("rater")
                            or request.cookies.get(RATER_COOKIE))
        store = self.store(run)
        try:
            chosen = self._rating_cells(run, cells)
            pair = store.issue_pair(run.samples(), rater, cells=chosen or None)
            done = sum(1 for j in store.judgements() if j["rater"] == rater)
        except RatingRejected as exc:
            raise HTTPException(400, exc.one_line()) from None
        except RatingsError as exc:
            raise HTTPException(503, exc.one_line()) from None
        samples = run.samples()
        return self.render(request, "rate.html", run=run, pair=pair, rater=rater, cells=chosen,
                           prompt=samples.prompts[pair.prompt_index],
                           text_a=samples.find(pair.cell_a, pair.prompt_index,
                                               pair.sample_a).text,
                           text_b=samples.find(pair.cell_b, pair.prompt_index,
                                               pair.sample_b).text,
                           done=done)

    async def rate_submit(self, request: Request) -> Response:
        run = self.run_for(request)
        _same_origin(request)
        form = await request.form()
        cells = [str(c) for c in form.getlist("cells")]
        rater = clean_rater(str(form.get("rater") or ""))
        try:
            chosen = self._rating_cells(run, cells)
            self.store(run).record(str(form.get("pair") or ""), str(form.get("choice") or ""),
                                   rater)
        except RatingRejected as exc:
            raise HTTPException(400, exc.one_line()) from None
        except RatingsError as exc:
            raise HTTPException(503, exc.one_line()) from None
        response = RedirectResponse(page_url(run, "rate", cells=chosen or None), 303)
        response.set_cookie(RATER_COOKIE, rater, max_age=365 * 86400, samesite="strict",
                            httponly=True)
        return response

    async def ratings_csv(self, request: Request) -> Response:
        run = self.run_for(request)
        try:
            text = ratings_csv_text(self.store(run).judgements(), views.cell_labels(run))
        except RatingsError as exc:
            raise HTTPException(503, exc.one_line()) from None
        return Response(text, media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": 'attachment; filename="ratings.csv"'})

    # -- files ---------------------------------------------------------------------
    async def plot_file(self, request: Request) -> Response:
        run = self.run_for(request)
        path = run.plot(request.path_params["name"])
        if path is None:
            raise HTTPException(404, "no such plot")
        return FileResponse(path, media_type="image/png")

    async def raw_file(self, request: Request) -> Response:
        run = self.run_for(request)
        name = request.path_params["name"]
        path = run.file(name) if name in RAW_FILES else None
        if path is None:
            raise HTTPException(404, "no such file")
        return FileResponse(path, media_type=RAW_FILES[name],
                            content_disposition_type="inline")


def _token_url(run: Run) -> Any:
    """URL of a generation's tokens page, or None when the run has no trace of it."""
    traces = run.traces()
    traced = set(traces.generations) if traces is not None else set()

    def url(cell_id: str, prompt_index: int, sample_index: int) -> str | None:
        if (cell_id, prompt_index, sample_index) not in traced:
            return None
        return page_url(run, "tokens", cell=cell_id, prompt=prompt_index, sample=sample_index)
    return url


def _same_origin(request: Request) -> None:
    """Refuse a form posted from another site or a local file (the browser names it in
    Origin, ``null`` for a file); clients that send no Origin (scripts) are let through."""
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.url.netloc:
        raise HTTPException(403, "cross-site request refused")


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None

