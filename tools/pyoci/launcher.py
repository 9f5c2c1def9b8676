"""Lean launchers for the toolchain's hot commands (`pyrunc`, `pyctr`), written over pip's console scripts.

pip's script imports `re` to tidy argv[0], and the interpreter runs `site` (every .pth file, setuptools'
distutils hack): ~10 ms of every command.  A launcher runs Python isolated and without `site` (`-IS`), puts the
package's parent and site-packages on sys.path itself, and imports only the command's module.  A plain
`pip install` keeps pip's script, which works the same, only slower to start.  Each tool's `install_entry`
module (run by `make install`) says which function its command runs.
"""

from __future__ import annotations

import os
import sys
import sysconfig

TEMPLATE = """#!{python} -IS
# {name}'s lean launcher, written by `python -m {writer}` (no `site`, no console-script imports)
import sys
sys.path += {paths!r}
from {module} import {function}
{function}()
"""


def render(python: str, name: str, module: str, function: str, writer: str, package_file: str) -> str:
    """The launcher's text: `function` of `module` (it never returns), the package found next to `package_file`."""
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(package_file)))
    libs: list[str] = []
    for key in ("purelib", "platlib"):
        p = sysconfig.get_paths()[key]
        if p not in libs:
            libs.append(p)
    # the order `site` gives: the stdlib, site-packages, then the editable install's .pth entry
    return TEMPLATE.format(python=python, name=name, writer=writer, paths=[*libs, package_parent], module=module,
                           function=function)


def venv_python() -> str:
    """The venv's interpreter as pip's shebang names it (not the resolved binary: sys.prefix must be the venv)."""
    return os.path.join(sys.prefix, "bin", os.path.basename(sys.executable))


def install(target: str, text: str) -> None:
    """Write the launcher atomically (temp file + rename), executable."""
    tmp = f"{target}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o755)
    os.replace(tmp, target)
