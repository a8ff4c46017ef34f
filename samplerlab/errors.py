"""Exceptions that the CLI turns into one clear line and an exit status."""

from __future__ import annotations


class SamplerlabError(Exception):
    """Base class of every error samplerlab reports to a user without a traceback."""

    exit_code = 1


class UserInputError(SamplerlabError):
    """Bad input (spec, override, file, plugin name): refused before any work, exit status 2."""

    exit_code = 2

    def __init__(self, problem: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        self.problem = problem
        self.file = file
        self.line = line
        self.field = field
        super().__init__(self.one_line())

    def one_line(self) -> str:
        where = ""
        if self.file:
            where = str(self.file)
            if self.line is not None:
                where += f":{self.line}"
        parts = [p for p in (where, self.field) if p]
        prefix = ": ".join(parts)
        return f"{prefix}: {self.problem}" if prefix else self.problem


class ParameterError(UserInputError):
    """A plugin parameter is unknown, of the wrong type or out of range."""


class ModelLoadError(SamplerlabError):
    """A model or preset could not be loaded (missing directory, no network, ...)."""

    exit_code = 2


class DatasetError(UserInputError):
    """A dataset is missing, empty, or lacks the requested field."""


class PluginWarning(UserWarning):
    """A plugin failed to import, or registered a name that was already taken."""
