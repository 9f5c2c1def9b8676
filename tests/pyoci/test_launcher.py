"""pyoci.launcher: the lean launcher text and its atomic, executable install."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

from pyoci import launcher


def test_render_runs_the_function_without_site(tmp_path):
    pkg = tmp_path / "src" / "demo_pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "cli.py").write_text("import sys\ndef run():\n    print('site' in sys.modules, sys.argv[1:])\n")
    text = launcher.render(sys.executable, "demo", "demo_pkg.cli", "run", "demo.install", str(pkg / "__init__.py"))
    assert text.startswith(f"#!{sys.executable} -IS\n# demo's lean launcher, written by `python -m demo.install`")
    target = tmp_path / "demo"
    launcher.install(str(target), text)
    assert stat.S_IMODE(target.stat().st_mode) == 0o755
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    out = subprocess.run([str(target), "a", "b"], capture_output=True, text=True, check=True).stdout
    assert out == "False ['a', 'b']\n"


def test_install_replaces_an_existing_script(tmp_path):
    target = tmp_path / "cmd"
    target.write_text("old")
    launcher.install(str(target), "#!/bin/sh\necho new\n")
    assert target.read_text() == "#!/bin/sh\necho new\n"
