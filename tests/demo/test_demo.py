"""`make demo` must keep working: run the demo script as the Makefile does."""

import subprocess
import sys
from pathlib import Path

from tests.support import REPO


def test_demo_runs_end_to_end():
    out = subprocess.run([sys.executable, str(REPO / "demo" / "run.py")], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "hello from a container run by" in out.stdout
    assert "demo: build -> push -> pull -> run done." in out.stdout
    assert not list(Path("/tmp").glob("pyoci-demo-*")), "the demo left its work dir behind"
