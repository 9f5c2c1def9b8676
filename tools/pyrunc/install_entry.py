"""Write a lean `pyrunc` launcher in place of pip's console script (run by `make install` after pip).

pip's script imports `re` to tidy argv[0], and the interpreter runs `site` (every .pth file, setuptools'
distutils hack): ~10 ms of a ~50 ms container start.  This launcher runs Python isolated and without `site`
(`-IS`), puts the package directory and site-packages on sys.path itself, and imports only pyrunc.cli.

Usage: python -m pyrunc.install_entry [TARGET]   (default: <venv>/bin/pyrunc)
"""

from __future__ import annotations

import os
import sys
import sysconfig

TEMPLATE = """#!{python} -IS
# pyrunc's lean launcher, written by `python -m pyrunc.install_entry` (no `site`, no console-script imports)
import sys
sys.path += {paths!r}
from pyrunc.cli import main_exit
main_exit()
"""


def render(python: str) -> str:
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    libs = []
    for key in ("purelib", "platlib"):
        p = sysconfig.get_paths()[key]
        if p not in libs:
            libs.append(p)
    # the order `site` gives: the stdlib, site-packages, then the editable install's .pth entry
    return TEMPLATE.format(python=python, paths=[*libs, package_parent])


def main(argv: list[str]) -> int:
    target = argv[0] if argv else os.path.join(os.path.dirname(sys.executable), "pyrunc")
    # the venv's interpreter, as pip's shebang names it (not the resolved pyenv binary: sys.prefix must be the venv)
    python = os.path.join(sys.prefix, "bin", os.path.basename(sys.executable))
    tmp = f"{target}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(render(python))
    os.chmod(tmp, 0o755)
    os.replace(tmp, target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
