"""Base images pulled from, and results pushed to, Debian's docker-registry on 127.0.0.1 (plain HTTP)."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.support import free_port, require


@pytest.fixture
def registry(tmp_path: Path):
    exe = require("docker-registry")
    port = free_port()
    cfg = tmp_path / "registry.yml"
    cfg.write_text(f"""\
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {tmp_path / 'registry-data'}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
""")
    proc = subprocess.Popen([exe, "serve", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "docker-registry did not start"
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_from_registry_image_and_push(builder, registry, tmp_path):
    skopeo = require("skopeo")
    subprocess.run([skopeo, "copy", "--dest-tls-verify=false", f"oci:{builder.base}:latest",
                    f"docker://{registry}/library/busybox:1"], check=True, capture_output=True)
    df = f"FROM {registry}/library/busybox:1\nRUN echo pulled > /p\nCMD [\"cat\", \"/p\"]\n"
    ctx = builder.ctx(df)
    r = builder.build(ctx, "-t", f"{registry}/built/app:v1", "--push", base=False)
    assert f"FROM {registry}/library/busybox:1" in r.err
    info = json.loads(subprocess.run([skopeo, "inspect", "--tls-verify=false", f"docker://{registry}/built/app:v1"],
                                     check=True, capture_output=True, text=True).stdout)
    assert len(info["Layers"]) == 2
    # --build-context NAME=docker-image://REF and type=registry give the same image
    df2 = "FROM img\nRUN echo pulled > /p\nCMD [\"cat\", \"/p\"]\n"
    ctx2 = builder.ctx(df2, name="ctx2")
    r = builder.build(ctx2, "--build-context", f"img=docker-image://{registry}/library/busybox:1",
                      "-t", f"{registry}/built/app:v2", "-o", "type=registry", base=False)
    assert r.err.count(" CACHED") == 1  # the RUN: same parent, same command
    info2 = json.loads(subprocess.run([skopeo, "inspect", "--tls-verify=false", f"docker://{registry}/built/app:v2"],
                                      check=True, capture_output=True, text=True).stdout)
    assert info2["Layers"] == info["Layers"]
