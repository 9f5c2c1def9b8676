"""pyctr verbs and flags checked without a daemon: `compose` reaches the compose implementation; flags not built yet
are refused."""

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


def test_flags_once_refused_now_reach_the_daemon():
    # ps -s, logs --details, images -f, inspect -s are built (test_ctr_gaps*.py): they ask the daemon
    for args in (["ps", "-s"], ["logs", "--details", "x"], ["images", "-f", "dangling=true"], ["inspect", "-s", "x"]):
        out = subprocess.run([*PYCTR, "-H", "unix:///nonexistent.sock", *args], capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 1 and "not supported yet" not in out.stderr and \
            "/nonexistent.sock" in out.stderr, out.stderr
