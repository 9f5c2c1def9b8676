"""`pyregistry serve` as a subprocess on 127.0.0.1 for tests: `start_pyregistry(workdir, ...)` and fixtures.

Import into a test module: `from tests.pyregistry.server import pyregistry, Server, start_pyregistry`.
The server is stopped by its pid (SIGTERM, then SIGKILL) even when the test fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import requests

from tests.support import free_port

REPO = Path(__file__).resolve().parents[2]
PYREGISTRY = [sys.executable, "-m", "pyregistry"]


@dataclass
class Server:
    host: str          # 127.0.0.1:PORT
    root: Path
    proc: subprocess.Popen
    log: Path
    workdir: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def v2(self, path: str) -> str:
        return f"{self.url}/v2/{path}"

    def blob_data_path(self, digest: str) -> Path:
        algo, hexd = digest.split(":", 1)
        return self.root / "docker/registry/v2/blobs" / algo / hexd[:2] / hexd / "data"


def wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"pyregistry exited with {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            requests.get(url + "/v2/", timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.05)
    pytest.fail(f"pyregistry did not answer {url}/v2/ within {timeout}s: {log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is not None:
        return
    os.kill(proc.pid, sig)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def launch(workdir: Path, root: Path | None = None, config: str | None = None, port: int | None = None,
           ) -> Server:
    """Start a server (the caller stops it); `config` is YAML text written to workdir/config.yml."""
    workdir.mkdir(parents=True, exist_ok=True)
    root = root or workdir / "storage"
    port = port or free_port()
    args = [*PYREGISTRY, "serve", "--addr", f"127.0.0.1:{port}", "--root", str(root)]
    if config is not None:
        (workdir / "config.yml").write_text(config)
        args += ["--config", str(workdir / "config.yml")]
    log = workdir / "pyregistry.log"
    with open(log, "ab") as logf:
        proc = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=workdir)
    server = Server(f"127.0.0.1:{port}", root, proc, log, workdir)
    try:
        wait_ready(server.url, proc, log)
    except BaseException:
        stop(proc)
        raise
    return server


@contextlib.contextmanager
def start_pyregistry(workdir: Path, root: Path | None = None, config: str | None = None) -> Iterator[Server]:
    server = launch(workdir, root, config)
    try:
        yield server
    finally:
        stop(server.proc)


DELETE_ENABLED = "version: 0.1\nlog:\n  level: error\nstorage:\n  delete:\n    enabled: true\n"


@pytest.fixture(scope="module")
def pyregistry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server per test module, deletes enabled; tests use their own repository names."""
    with start_pyregistry(tmp_path_factory.mktemp("pyregistry"), config=DELETE_ENABLED) as server:
        yield server
