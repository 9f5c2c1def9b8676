"""Large upload bodies read straight off the socket (storage.body.SocketBody): content, digests, keep-alive
clients, clients that hang up mid-body and resume, and the SocketBody contract itself."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time

import pytest
import requests

from pyregistry.handlers.base import DIRECT_BODY_MIN
from pyregistry.storage.body import SocketBody
from tests.pyregistry.server import Server, pyregistry  # noqa: F401 (fixture)

# Bodies up to about twice the server's read buffer (2 MiB) may be buffered whole by aiohttp before the handler
# runs (then they take aiohttp's path); 8 MiB always leaves most of the body in the socket.
BIG = 8 << 20


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _start(session: requests.Session, server: Server, repo: str) -> str:
    r = session.post(server.v2(f"{repo}/blobs/uploads/"))
    assert r.status_code == 202, r.text
    return server.url + r.headers["Location"]


def test_chunked_session_over_one_keepalive_client(pyregistry: Server):
    data = os.urandom(BIG + 3 * DIRECT_BODY_MIN + 12345)
    parts = [data[:BIG], data[BIG:BIG + 100], data[BIG + 100:]]
    with requests.Session() as s:
        location = _start(s, pyregistry, "body/chunks")
        r = s.patch(location, data=parts[0], headers={"Content-Range": f"0-{len(parts[0]) - 1}",
                                                      "Content-Type": "application/octet-stream"})
        assert r.status_code == 202, r.text
        assert r.headers["Range"] == f"0-{len(parts[0]) - 1}"
        assert r.headers.get("Connection", "").lower() == "close"  # the parser is out of step: a new connection
        location = pyregistry.url + r.headers["Location"]
        r = s.patch(location, data=parts[1], headers={"Content-Range": f"{len(parts[0])}-{len(parts[0]) + 99}"})
        assert r.status_code == 202 and r.headers.get("Connection", "").lower() != "close"  # small: aiohttp's path
        # the last (large) chunk rides on the closing PUT
        r = s.put(pyregistry.url + r.headers["Location"], params={"digest": sha(data)}, data=parts[2])
        assert r.status_code == 201, r.text
        r = s.get(pyregistry.v2(f"body/chunks/blobs/{sha(data)}"))
        assert r.status_code == 200 and r.content == data


def test_monolithic_wrong_digest_commits_nothing(pyregistry: Server):
    data = os.urandom(BIG + 1)
    wrong = sha(b"something else")
    with requests.Session() as s:
        r = s.post(pyregistry.v2("body/wrong/blobs/uploads/"), params={"digest": wrong}, data=data)
        assert r.status_code == 400 and r.json()["errors"][0]["code"] == "DIGEST_INVALID"
        assert r.headers.get("Connection", "").lower() == "close"
        assert s.head(pyregistry.v2(f"body/wrong/blobs/{wrong}")).status_code == 404
        assert s.head(pyregistry.v2(f"body/wrong/blobs/{sha(data)}")).status_code == 404
        assert not pyregistry.blob_data_path(sha(data)).exists()
        # the server still takes the right upload afterwards (on a fresh connection)
        r = s.post(pyregistry.v2("body/wrong/blobs/uploads/"), params={"digest": sha(data)}, data=data)
        assert r.status_code == 201, r.text


def test_client_hangs_up_mid_body_then_resumes(pyregistry: Server):
    data = os.urandom(BIG + DIRECT_BODY_MIN)
    location = _start(requests.Session(), pyregistry, "body/resume")
    path = location[len(pyregistry.url):]
    sent = BIG - 777
    with socket.create_connection(("127.0.0.1", int(pyregistry.host.split(":")[1]))) as c:
        c.sendall(f"PATCH {path} HTTP/1.1\r\nHost: {pyregistry.host}\r\nContent-Length: {len(data)}\r\n"
                  f"Content-Type: application/octet-stream\r\n\r\n".encode() + data[:sent])
        time.sleep(0.3)
    deadline = time.monotonic() + 10
    while True:  # the server notices the hang-up; what arrived is kept, in step with its hash
        r = requests.get(location)
        assert r.status_code == 204, r.text
        size = int(r.headers["Range"].split("-")[1]) + 1
        if size == sent or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert size == sent
    r = requests.patch(location, data=data[size:], headers={"Content-Range": f"{size}-{len(data) - 1}"})
    assert r.status_code == 202, r.text
    r = requests.put(pyregistry.url + r.headers["Location"], params={"digest": sha(data)})
    assert r.status_code == 201, r.text
    assert requests.get(pyregistry.v2(f"body/resume/blobs/{sha(data)}")).content == data


def test_out_of_order_chunk_is_416_before_the_body_is_read(pyregistry: Server):
    data = os.urandom(DIRECT_BODY_MIN * 2)
    with requests.Session() as s:
        location = _start(s, pyregistry, "body/order")
        r = s.patch(location, data=data, headers={"Content-Range": f"5-{len(data) + 4}"})
        assert r.status_code == 416
        r = s.get(location)
        assert r.status_code == 204 and r.headers["Range"] == "0-0"


def test_socket_body_reads_exactly_its_length_and_aborts():
    a, b = socket.socketpair()
    try:
        body = SocketBody(b"head", a.dup(), 10)
        b.sendall(b"0123456789trailing")
        buf = memoryview(bytearray(4))
        got = b""
        while body.remaining:
            n = body.readinto(buf)
            assert n > 0
            got += bytes(buf[:n])
        assert got == b"0123456789" and body.remaining == 0
        assert a.recv(100) == b"trailing"  # nothing beyond the body was consumed
        body.close()

        # a silent client: abort() from another thread ends a blocked read at once
        body = SocketBody(b"", a.dup(), 100)
        threading.Timer(0.2, body.abort).start()
        t0 = time.monotonic()
        with pytest.raises(ConnectionResetError):
            body.readinto(memoryview(bytearray(100)))
        assert time.monotonic() - t0 < 5
        body.close()
    finally:
        a.close()
        b.close()
