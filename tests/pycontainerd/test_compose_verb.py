"""`pyctr compose …` reaches the compose implementation, global flags included."""

import subprocess
import sys
from pathlib import Path

PYCTR = [sys.executable, "-m", "pycontainerd.ctr.cli"]


def test_pyctr_compose_config(tmp_path: Path):
    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    image: busybox\n    ports: [\"8080:80\"]\n")
    out = subprocess.run([*PYCTR, "-n", "other", "compose", "-p", "demo_1", "config"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("name: demo_1\n") and "published: '8080'" in out.stdout
    bad = subprocess.run([*PYCTR, "compose", "config"], cwd=tmp_path / "..", capture_output=True, text=True,
                         timeout=60, input="")
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
