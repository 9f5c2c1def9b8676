"""pyctr's one user-facing error class, in a module of its own so the CLI can name it without importing
the backend (and what the backend imports) before it knows the verb."""

from __future__ import annotations


class CLIError(Exception):
    """A failure shown to the user as one line (or a few) on stderr, with docker's exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
