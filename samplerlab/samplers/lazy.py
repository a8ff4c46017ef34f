"""Sampler classes that subclass KerasHub's are built on first use.

Defining them imports Keras, which a sampler module must not do at import time: specs are
validated (and ``samplerlab samplers`` lists factories) without loading Keras.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any


def lazy_class(make: Callable[[], type]) -> Callable[[], type]:
    """``make()`` once, on the first call; later calls return the same class."""
    return functools.cache(make)


def lazy_exports(**classes: Callable[[], type]) -> Callable[[str], Any]:
    """A module ``__getattr__`` so ``from module import SomeSampler`` builds the class."""

    def __getattr__(name: str) -> Any:
        if name in classes:
            return classes[name]()
        raise AttributeError(name)

    return __getattr__
