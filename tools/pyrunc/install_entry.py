"""Write a lean `pyrunc` launcher in place of pip's console script (run by `make install` after pip).

pyrunc starts once per container: the launcher (pyoci.launcher) skips `site` and pip's script imports, ~10 ms of
a container start, and imports only pyrunc.cli.

Usage: python -m pyrunc.install_entry [TARGET]   (default: <venv>/bin/pyrunc)
"""

from __future__ import annotations

import os
import sys

from pyoci import launcher


def render(python: str) -> str:
    return launcher.render(python, "pyrunc", "pyrunc.cli", "main_exit", "pyrunc.install_entry", __file__)


def main(argv: list[str]) -> int:
    target = argv[0] if argv else os.path.join(os.path.dirname(sys.executable), "pyrunc")
    launcher.install(target, render(launcher.venv_python()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
