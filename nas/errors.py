"""Typed errors. The library raises these; only the CLI turns them into exit codes."""

from __future__ import annotations


class NasError(Exception):
    """An error a user can fix: a message naming the problem, and a hint naming the fix."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  fix: {self.hint}"


class ConfigError(NasError):
    """A malformed or invalid architecture / space / proxy configuration."""


class DataError(NasError):
    """A missing or unreadable dataset."""


class BudgetError(NasError):
    """A malformed budget, or a budget no architecture of the space fits."""


class RunError(NasError):
    """A run folder that is missing, incomplete or of another kind."""
