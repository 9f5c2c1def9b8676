"""Write a lean launcher for one of pycontainerd's commands in place of pip's console script
(`make install` runs it after pip): pyoci.launcher's, which skips `site` and pip's script imports (~10 ms of a
`pyctr` command) and imports only the command's module.

Usage: python -m pycontainerd.install_entry TARGET   (the command is TARGET's file name, e.g. .venv/bin/pyctr)
"""

from __future__ import annotations

import os
import sys

from pyoci import launcher

# command -> (module, function that runs it and never returns)
ENTRIES = {"pyctr": ("pycontainerd.ctr.cli", "main_exit")}


class UsageError(Exception):
    pass


def render(python: str, name: str) -> str:
    try:
        module, function = ENTRIES[name]
    except KeyError:
        raise UsageError(f"install_entry: no launcher for {name!r} (known: {', '.join(sorted(ENTRIES))})") from None
    return launcher.render(python, name, module, function, "pycontainerd.install_entry", __file__)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m pycontainerd.install_entry TARGET", file=sys.stderr)
        return 2
    target = argv[0]
    try:
        text = render(launcher.venv_python(), os.path.basename(target))
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    launcher.install(target, text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
