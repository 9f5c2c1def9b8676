"""Write a lean launcher for one of pycontainerd's commands in place of pip's console script
(`make install` runs it after pip).

pip's script imports `re` to tidy argv[0], and the interpreter runs `site` (every .pth file, setuptools'
distutils hack): ~10 ms of a `pyctr` command.  The launcher runs Python isolated and without `site` (`-IS`),
puts the package's parent and site-packages on sys.path itself, and imports only the command's module.
A plain `pip install` keeps pip's script, which works the same, only slower to start.

Usage: python -m pycontainerd.install_entry TARGET   (the command is TARGET's file name, e.g. .venv/bin/pyctr)
"""

from __future__ import annotations

import os
import sys
import sysconfig

# command -> (module, function that runs it and never returns)
ENTRIES = {"pyctr": ("pycontainerd.ctr.cli", "main_exit")}

TEMPLATE = """#!{python} -IS
# {name}'s lean launcher, written by `python -m pycontainerd.install_entry` (no `site`, no console-script imports)
import sys
sys.path += {paths!r}
from {module} import {function}
{function}()
"""


class UsageError(Exception):
    pass


def render(python: str, name: str) -> str:
    try:
        module, function = ENTRIES[name]
    except KeyError:
        raise UsageError(f"install_entry: no launcher for {name!r} (known: {', '.join(sorted(ENTRIES))})") from None
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    libs: list[str] = []
    for key in ("purelib", "platlib"):
        p = sysconfig.get_paths()[key]
        if p not in libs:
            libs.append(p)
    # the order `site` gives: the stdlib, site-packages, then the editable install's .pth entry
    return TEMPLATE.format(python=python, name=name, paths=[*libs, package_parent], module=module, function=function)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m pycontainerd.install_entry TARGET", file=sys.stderr)
        return 2
    target = argv[0]
    # the venv's interpreter, as pip's shebang names it (not the resolved binary: sys.prefix must be the venv)
    python = os.path.join(sys.prefix, "bin", os.path.basename(sys.executable))
    try:
        text = render(python, os.path.basename(target))
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    tmp = f"{target}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o755)
    os.replace(tmp, target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
