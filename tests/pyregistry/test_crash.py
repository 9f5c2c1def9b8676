"""kill -9 during a 200 MB upload, then restart on the same root: nothing partial is visible, all else is served."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
from pathlib import Path

import pytest
import requests

from pyoci import mediatypes as mt
from tests.pyregistry.server import launch, stop

pytestmark = pytest.mark.slow
MB = 1 << 20


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def rest(chunk: bytes, done: int):
    """The bytes of chunk*200 from offset `done` on, without building 200 MB."""
    yield chunk[done % MB:]
    for _ in range(done // MB + 1, 200):
        yield chunk


def test_kill_9_during_200mb_upload_then_restart(tmp_path: Path):
    root = tmp_path / "root"
    server = launch(tmp_path / "a", root=root)
    try:
        # something pushed before the crash
        layer, cfg = os.urandom(MB), b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
        for b in (layer, cfg):
            r = requests.post(server.v2("crash/img/blobs/uploads/"), params={"digest": sha(b)}, data=b)
            assert r.status_code == 201
        manifest = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                               "config": {"mediaType": mt.OCI_CONFIG, "digest": sha(cfg), "size": len(cfg)},
                               "layers": [{"mediaType": mt.OCI_LAYER_GZIP, "digest": sha(layer),
                                           "size": len(layer)}]}).encode()
        r = requests.put(server.v2("crash/img/manifests/v1"), data=manifest, headers={"Content-Type": mt.OCI_MANIFEST})
        assert r.status_code == 201

        # a 200 MB upload, streamed; the server dies (SIGKILL) once about 60 MB have gone
        chunk = os.urandom(MB)
        h = hashlib.sha256()
        for _ in range(200):
            h.update(chunk)
        big = "sha256:" + h.hexdigest()
        sent_enough = threading.Event()

        def body():
            for i in range(200):
                if i == 60:
                    sent_enough.set()
                yield chunk

        r = requests.post(server.v2("crash/big/blobs/uploads/"))
        assert r.status_code == 202
        location = server.url + r.headers["Location"]
        outcome: list = []

        def upload():
            try:
                outcome.append(requests.put(location, params={"digest": big}, data=body(), timeout=60).status_code)
            except requests.RequestException as e:
                outcome.append(e)

        t = threading.Thread(target=upload)
        t.start()
        assert sent_enough.wait(60)
        os.kill(server.pid, signal.SIGKILL)
        server.proc.wait(timeout=10)
        t.join(60)
        assert outcome and isinstance(outcome[0], requests.RequestException), outcome
    finally:
        stop(server.proc)

    big_data = root / "docker/registry/v2/blobs/sha256" / big[7:9] / big[7:] / "data"
    assert not big_data.exists()
    assert not (root / "docker/registry/v2/repositories/crash/big/_layers").exists()
    server = launch(tmp_path / "b", root=root)
    try:
        r = requests.head(server.v2(f"crash/big/blobs/{big}"))
        assert r.status_code == 404
        r = requests.get(server.v2("crash/img/manifests/v1"), headers={"Accept": mt.OCI_MANIFEST})
        assert r.status_code == 200 and r.content == manifest
        r = requests.get(server.v2(f"crash/img/blobs/{sha(layer)}"))
        assert r.status_code == 200 and r.content == layer
        # the interrupted session is still there (to resume or cancel): its bytes are not a blob
        r = requests.get(location.replace(location.split("/v2/")[0], server.url))
        assert r.status_code == 204
        done = int(r.headers["Range"].split("-")[1]) + 1
        assert 0 < done < 200 * MB
        # finishing it with the rest works after the restart (the hash state is rebuilt from disk)
        r = requests.put(location.replace(location.split("/v2/")[0], server.url), params={"digest": big},
                         data=rest(chunk, done), headers={"Content-Range": f"{done}-{200 * MB - 1}"})
        assert r.status_code == 201, r.text
        assert requests.head(server.v2(f"crash/big/blobs/{big}")).headers["Content-Length"] == str(200 * MB)
    finally:
        stop(server.proc)
