"""Building a spec's datasets: the one place a dataset reference becomes a ``TextSource``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from samplerlab.errors import UserInputError


@contextmanager
def located(loaded_spec: Any, loc: tuple) -> Iterator[None]:
    """Re-raise a dataset's :class:`UserInputError` at the spec location ``loc`` (plus the
    dataset parameter it names), with the spec file and YAML line."""
    try:
        yield
    except UserInputError as exc:
        sub = (exc.field.split(".")[0],) if exc.field else ()
        raise loaded_spec.error(exc.problem, loc + sub) from None


def build_source(loaded_spec: Any, ref: Any, loc: tuple, *, check: bool = False) -> Any:
    """The :class:`~samplerlab.datasets.base.TextSource` of the spec's dataset reference
    ``ref`` found at ``loc`` (e.g. ``("finetune", "dataset")``); with ``check``, also
    its cheap up-front checks (files exist, fields named). Problems are located errors.

    Example:

    ```python
    import samplerlab
    from samplerlab.datasets.build import build_source

    loaded = samplerlab.load_spec({
        "name": "doc", "model": {"preset": "samplerlab:tiny-en"}, "samplers": ["greedy"],
        "prompts": {"dataset": {"source": "inline", "texts": ["The cat sat on the mat"]},
                    "take": 1, "prefix_words": 3}})
    source = build_source(loaded, loaded.spec.prompts.dataset, ("prompts", "dataset"))
    assert next(source.texts()) == "The cat sat on the mat"
    ```
    """
    from samplerlab.plugins import registry

    with located(loaded_spec, loc):
        source = registry("datasets").get_entry(ref.source).build(**ref.params)
        if check:
            source.check()
    return source
