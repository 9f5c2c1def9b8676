"""Helpers for the auth, gc, users and client tests (no tests here): keys and certificates made with
cryptography, an aiohttp app run in a thread, and `pyregistry serve` as a subprocess stopped by its pid."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import requests
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from tests.support import free_port

USER, PASSWORD = "alice", "wonderland"


def self_signed(directory: Path, name: str = "pyregistry-test", kind: str = "ec") -> tuple[Path, Path]:
    """An EC P-256 (or RSA 2048) key and a self-signed certificate for 127.0.0.1/localhost: (key.pem, cert.pem)."""
    key = ec.generate_private_key(ec.SECP256R1()) if kind == "ec" else rsa.generate_private_key(65537, 2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    key_path, cert_path = directory / f"{name}.key", directory / f"{name}.crt"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def htpasswd_file(path: Path, users: dict[str, str]) -> Path:
    from pyregistry import users as u

    for name, pw in users.items():
        u.add(path, name, pw, cost=5)  # cost 5 keeps the tests fast; the format is the same
    return path


@contextlib.contextmanager
def run_app(app: web.Application) -> Iterator[str]:
    """Serve `app` on 127.0.0.1:<free port> in a thread with its own loop; yields the base URL."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    port = free_port()
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@dataclass(frozen=True)
class Server:
    host: str  # 127.0.0.1:PORT
    port: int
    root: Path
    config: Path
    pid: int
    log: Path
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"


PYREGISTRY = [sys.executable, "-c", "import sys; from pyregistry.cli import main; sys.exit(main())"]


def pyregistry(*args: str, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*PYREGISTRY, *args], input=input, capture_output=True, text=True, timeout=timeout)


def write_config(workdir: Path, port: int, auth: str = "", tls: tuple[Path, Path] | None = None) -> Path:
    root = workdir / "storage"
    root.mkdir(parents=True, exist_ok=True)
    text = ("version: 0.1\nlog:\n  level: error\n"
            f"storage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n"
            "  maintenance:\n    uploadpurging:\n      enabled: false\n"
            f"http:\n  addr: 127.0.0.1:{port}\n")
    if tls:
        text += f"  tls:\n    certificate: {tls[1]}\n    key: {tls[0]}\n"
    text += auth
    config = workdir / "config.yml"
    config.write_text(text)
    return config


@contextlib.contextmanager
def serve(workdir: Path, auth: str = "", tls: tuple[Path, Path] | None = None) -> Iterator[Server]:
    """`pyregistry serve --config` on a free port; stopped by its pid (SIGTERM, then SIGKILL)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = write_config(workdir, port, auth, tls)
    log = workdir / "pyregistry.log"
    with open(log, "wb") as logf:
        proc = subprocess.Popen([*PYREGISTRY, "serve", "--config", str(config)], stdout=logf,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    server = Server(f"127.0.0.1:{port}", port, workdir / "storage", config, proc.pid, log,
                    "https" if tls else "http")
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                pytest.fail(f"pyregistry serve exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                requests.get(server.url + "/v2/", timeout=2, verify=str(tls[1]) if tls else True)
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    pytest.fail(f"pyregistry serve did not answer within 20s: {log.read_text()[-2000:]}")
                time.sleep(0.05)
        yield server
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def htpasswd_auth(path: Path, anonymous_pull: bool = False) -> str:
    text = f"auth:\n  htpasswd:\n    realm: pyregistry-test\n    path: {path}\n"
    if anonymous_pull:
        text += "  anonymous:\n    pull: true\n"
    return text


def token_auth(htpasswd: Path, key: Path, cert: Path | None, realm: str, acl: str = "",
               anonymous_pull: bool = False) -> str:
    text = (f"auth:\n  htpasswd:\n    realm: pyregistry-test\n    path: {htpasswd}\n"
            f"  token:\n    realm: {realm}\n    service: pyregistry-test\n    issuer: pyregistry-issuer\n"
            f"    signingkey: {key}\n")
    if cert is not None:
        text += f"    rootcertbundle: {cert}\n"
    if acl:
        text += "    acl:\n" + acl
    if anonymous_pull:
        text += "  anonymous:\n    pull: true\n"
    return text
