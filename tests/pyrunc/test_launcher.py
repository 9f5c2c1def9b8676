"""The lean launcher `python -m pyrunc.install_entry` writes: works as the console script does, and the hot path
imports none of the modules it was made to avoid (site, re, enum, the json package, argparse)."""

from __future__ import annotations

import subprocess
import sys

from pyrunc import install_entry


def test_launcher_runs_pyrunc(tmp_path):
    target = tmp_path / "pyrunc"
    assert install_entry.main([str(target)]) == 0
    text = target.read_text()
    assert text.startswith("#!") and text.splitlines()[0].endswith(" -IS")
    out = subprocess.run([str(target), "--version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.startswith("pyrunc version "), out.stderr
    out = subprocess.run([str(target), "--root", str(tmp_path / "root"), "state", "nosuch"], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 1 and 'msg="container does not exist"' in out.stderr


def test_hot_path_imports_stay_lean(tmp_path, busybox_rootfs):
    """Parse a bundle, validate it and load the lifecycle code as `run` does; then look at sys.modules."""
    import json
    import shutil

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    shutil.copytree(busybox_rootfs, bundle / "rootfs", symlinks=True)
    body = install_entry.render(sys.executable).split("\n", 1)[1].replace("main_exit()", "")
    code = body + (
        "import sys\nfrom pyrunc import commands, container, specconv, init\n"
        f"spec = specconv.load_bundle({str(bundle)!r})\n"
        f"container._validate_extras(spec, {str(tmp_path / 'root')!r})\n"
        "init.preload(False, False, False)\n"
        "bad = sorted(m for m in ('site', 're', 'enum', 'json', 'argparse', 'signal', 'subprocess') if m in sys.modules)\n"
        "print(','.join(bad))\n")
    out = subprocess.run([sys.executable, "-IS", "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"hot path imported: {out.stdout.strip()}"
    assert json  # the test itself may use json freely
