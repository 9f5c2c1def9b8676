"""Debian's docker-registry (Distribution 2.8) on 127.0.0.1, for tests of registry clients and servers.

Import the fixtures into a test module: `from tests.pyoci.registry_fixtures import registry, auth_registry`.
Each is module-scoped (one server per test file; tests use their own repository names) and is stopped
by its pid even when the tests fail. `start_registry(dir)` is the plain context manager behind them.

Also here: `skopeo(*args)` and `umoci_image(dir)` (the peers' command lines), and `FakeServer`, an
in-process HTTP server on 127.0.0.1 for what a real registry cannot be made to do (lie, hang up, paginate).
"""

from __future__ import annotations

import contextlib
import http.server
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.support import free_port, require

USERNAME = "user"
PASSWORD = "pass"


@dataclass(frozen=True)
class Registry:
    host: str  # "127.0.0.1:PORT"
    port: int
    root: Path  # storage.filesystem.rootdirectory
    pid: int
    log: Path
    username: str | None = None
    password: str | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def blob_data_path(self, digest: str) -> Path:
        """Where Distribution's filesystem driver keeps a blob's bytes (for tamper tests)."""
        algo, hexd = digest.split(":", 1)
        return self.root / "docker/registry/v2/blobs" / algo / hexd[:2] / hexd / "data"


def _config(root: Path, port: int, htpasswd: Path | None) -> str:
    auth = ""
    if htpasswd is not None:
        auth = f"auth:\n  htpasswd:\n    realm: pyoci-test\n    path: {htpasswd}\n"
    return (
        "version: 0.1\n"
        "log:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n"
        "  maintenance:\n    uploadpurging:\n      enabled: false\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: pyoci-test-secret\n"
        + auth
    )


def _wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"docker-registry exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/v2/", timeout=2):
                return
        except urllib.error.HTTPError as e:
            if e.code == 401:  # auth enabled: answering is all we wait for
                return
        except OSError:
            pass
        time.sleep(0.05)
    pytest.fail(f"docker-registry did not answer {url}/v2/ within {timeout}s: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def start_registry(workdir: Path, auth: bool = False) -> Iterator[Registry]:
    """Run docker-registry with its storage under `workdir`; basic auth (user/pass) if `auth`."""
    exe = require("docker-registry")
    workdir.mkdir(parents=True, exist_ok=True)
    htpasswd = None
    if auth:
        line = subprocess.run([require("htpasswd"), "-Bbn", USERNAME, PASSWORD], check=True,
                              capture_output=True, text=True).stdout.strip()
        htpasswd = workdir / "htpasswd"
        htpasswd.write_text(line + "\n")
    root = workdir / "storage"
    root.mkdir(exist_ok=True)
    port = free_port()
    config = workdir / "config.yml"
    config.write_text(_config(root, port, htpasswd))
    log = workdir / "registry.log"
    with open(log, "wb") as logf:
        proc = subprocess.Popen([exe, "serve", str(config)], stdout=logf, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        reg = Registry(f"127.0.0.1:{port}", port, root, proc.pid, log,
                       USERNAME if auth else None, PASSWORD if auth else None)
        _wait_ready(reg.url, proc, log)
        yield reg
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with start_registry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with start_registry(tmp_path_factory.mktemp("registry-auth"), auth=True) as reg:
        yield reg


# --- the peers' command lines -------------------------------------------------------------------------


def skopeo(*args: str) -> str:
    proc = subprocess.run([require("skopeo"), "--insecure-policy", *args], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, f"skopeo {' '.join(args)} failed: {proc.stderr}"
    return proc.stdout


def umoci_image(tmp_path: Path) -> Path:
    umoci = require("umoci")
    src = tmp_path / "src"
    (src / "etc").mkdir(parents=True)
    (src / "etc" / "hello").write_text("hello from umoci\n")
    (src / "bin").mkdir()
    (src / "bin" / "tool").write_bytes(b"\x7fELF not really")
    layout = tmp_path / "layout"
    for cmd in (["init", "--layout", str(layout)], ["new", "--image", f"{layout}:t"],
                ["insert", "--image", f"{layout}:t", str(src), "/"]):
        subprocess.run([umoci, *cmd], check=True, capture_output=True, timeout=60)
    return layout


# --- an in-process fake registry / token server ------------------------------------------------------

Reply = tuple[int, dict[str, str], bytes]
Handler = Callable[[str, str, dict[str, str], bytes], "Reply | None"]


@dataclass
class Seen:
    method: str
    path: str  # with its query
    headers: dict[str, str]
    body: bytes
    peer: tuple[str, int]  # the client's address: one per TCP connection


class FakeServer:
    """An HTTP server on 127.0.0.1 in a thread: `handler(method, path, headers, body) -> (status, headers, body)`.

    Every request is recorded in `seen`. A handler may return None after writing to the socket itself
    (`self.wfile` of the current request is in `current`), e.g. to cut a response short.
    """

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.seen: list[Seen] = []
        self.current: http.server.BaseHTTPRequestHandler | None = None
        outer = self

        class _H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer.seen.append(Seen(self.command, self.path, headers, body, self.client_address))
                outer.current = self
                reply = outer.handler(self.command, self.path, headers, body)
                if reply is None:
                    self.close_connection = True
                    return
                status, rheaders, rbody = reply
                self.send_response(status)
                for k, v in rheaders.items():
                    self.send_header(k, v)
                if "Content-Length" not in rheaders:
                    self.send_header("Content-Length", str(len(rbody)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(rbody)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> "FakeServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)
