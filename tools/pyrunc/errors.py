"""The few exception classes pyrunc raises; cli.main maps them to runc's messages and exit codes in one place."""

from __future__ import annotations


class PyruncError(Exception):
    """Base class: a one-line message fit to show a user as it is (exit status 1)."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(PyruncError):
    """A bad config.json, process.json, resources file or command-line flag."""


class NotFoundError(PyruncError):
    """The named container does not exist (runc: "container does not exist")."""


class StateError(PyruncError):
    """The container is in the wrong state for the requested operation."""


class RuntimeFailure(PyruncError):
    """A syscall or set-up step that failed (mount, namespace, cgroup, exec ...)."""
