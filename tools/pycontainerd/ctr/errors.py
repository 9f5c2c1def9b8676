"""pyctr's user-facing error classes, in a module of their own so the CLI (and its argparse parsers in
flags.py) can name them without importing the backend, or one another, before they know the verb."""

from __future__ import annotations

PROG = "pyctr"


class FlagError(Exception):
    """A command line docker would refuse: its message, the verb (for `See 'pyctr VERB --help'.`), the status."""

    def __init__(self, message: str, verb: str, status: int = 125) -> None:
        super().__init__(message)
        self.verb = verb
        self.status = status


class CLIError(Exception):
    """A failure shown to the user as one line (or a few) on stderr, with docker's exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
