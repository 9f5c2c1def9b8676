"""RegistryClient against an in-process fake registry: what Distribution 2.8 cannot show (tag pages,
the referrers API, absolute upload Locations) and what it would not do (lie, cut a download short)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from pyoci import digest as dg
from pyoci import mediatypes as mt
from pyoci.errors import AuthError, DigestMismatch, RegistryError
from pyoci.registry import RegistryClient
from tests.pyoci.registry_fixtures import FakeServer

TAGS = [f"v{i}" for i in range(7)]


@pytest.mark.parametrize("absolute", [False, True], ids=["relative-link", "absolute-link"])
def test_list_tags_follows_link_until_exhausted(absolute: bool) -> None:
    def handler(method, path, headers, body):
        q = parse_qs(urlsplit(path).query)
        n = int(q.get("n", ["100"])[0])
        last = q.get("last", [""])[0]
        start = TAGS.index(last) + 1 if last else 0
        page = TAGS[start:start + n]
        h = {"Content-Type": "application/json"}
        if start + n < len(TAGS):
            link = f"/v2/lib/app/tags/list?n={n}&last={page[-1]}"
            h["Link"] = f'<{srv.url + link if absolute else link}>; rel="next"'
        return 200, h, json.dumps({"name": "lib/app", "tags": page}).encode()

    with FakeServer(handler) as srv:
        assert RegistryClient(srv.host).list_tags("lib/app", page_size=2) == TAGS
        assert [s.path for s in srv.seen] == ["/v2/lib/app/tags/list?n=2"] + [
            f"/v2/lib/app/tags/list?n=2&last=v{i}" for i in (1, 3, 5)]


def _index(*descs: dict) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": list(descs)}).encode()


def test_referrers_api_with_pages_and_server_side_filter() -> None:
    subject = str(dg.of_bytes(b"subject"))
    a = {"mediaType": mt.OCI_MANIFEST, "digest": str(dg.of_bytes(b"a")), "size": 1, "artifactType": "x/sbom"}
    b = {"mediaType": mt.OCI_MANIFEST, "digest": str(dg.of_bytes(b"b")), "size": 1, "artifactType": "x/sig"}

    def handler(method, path, headers, body):
        url = urlsplit(path)
        assert url.path == f"/v2/lib/app/referrers/{subject}"
        q = parse_qs(url.query)
        if q.get("artifactType"):
            return 200, {"Content-Type": mt.OCI_INDEX, "OCI-Filters-Applied": "artifactType"}, _index(a)
        if q.get("page"):
            return 200, {"Content-Type": mt.OCI_INDEX}, _index(b)
        return 200, {"Content-Type": mt.OCI_INDEX, "Link": f'<{url.path}?page=2>; rel="next"'}, _index(a)

    with FakeServer(handler) as srv:
        c = RegistryClient(srv.host)
        assert c.referrers("lib/app", subject) == [a, b]
        assert c.referrers("lib/app", subject, artifact_type="x/sbom") == [a]
        assert srv.seen[-1].path.endswith("artifactType=x%2Fsbom")


def test_chunked_upload_follows_absolute_locations() -> None:
    data = os.urandom(5000)
    got = bytearray()
    state = {"n": 0}

    def handler(method, path, headers, body):
        url = urlsplit(path)
        if method == "HEAD":
            return 404, {}, b""
        if method == "POST":
            return 202, {"Location": f"{srv.url}/upload/0?_state=s0"}, b""
        if method == "PATCH":
            start, end = map(int, headers["content-range"].split("-"))
            assert start == len(got) and end == start + len(body) - 1
            assert parse_qs(url.query)["_state"] == [f"s{state['n']}"]
            got.extend(body)
            state["n"] += 1
            return 202, {"Location": f"{srv.url}/upload/{state['n']}?_state=s{state['n']}",
                         "Range": f"0-{len(got) - 1}"}, b""
        if method == "PUT":
            q = parse_qs(url.query)
            assert q["_state"] == [f"s{state['n']}"] and body == b""
            assert q["digest"] == [str(dg.of_bytes(bytes(got)))]
            return 201, {"Docker-Content-Digest": q["digest"][0]}, b""
        return 500, {}, b""

    with FakeServer(handler) as srv:
        d = RegistryClient(srv.host).push_blob("lib/app", data, chunk_size=2048)
    assert bytes(got) == data and d == str(dg.of_bytes(data)) and state["n"] == 3


def test_interrupted_download_keeps_a_partial_and_resumes(tmp_path: Path) -> None:
    data = os.urandom(300_000)
    d = str(dg.of_bytes(data))
    calls = []

    def handler(method, path, headers, body):
        calls.append(headers.get("range"))
        if len(calls) == 1:  # announce everything, send a third, hang up
            h = srv.current
            h.send_response(200)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data[:100_000])
            h.wfile.flush()
            return None
        start = int(headers["range"].split("=")[1].rstrip("-"))
        return 206, {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}, data[start:]

    dest = tmp_path / "blob"
    with FakeServer(handler) as srv:
        c = RegistryClient(srv.host)
        with pytest.raises(RegistryError) as e:
            c.get_blob("lib/app", d, dest)
        assert "interrupted after 100000 bytes: Connection broken" in str(e.value)
        assert not dest.exists()
        assert Path(str(dest) + ".partial").read_bytes() == data[:100_000]
        c.get_blob("lib/app", d, dest)
    assert calls == [None, "bytes=100000-"]
    assert dest.read_bytes() == data and not Path(str(dest) + ".partial").exists()


def test_server_ignoring_range_restarts_cleanly(tmp_path: Path) -> None:
    data = os.urandom(50_000)
    d = str(dg.of_bytes(data))
    dest = tmp_path / "blob"
    Path(str(dest) + ".partial").write_bytes(data[:20_000])
    with FakeServer(lambda *a: (200, {}, data)) as srv:
        RegistryClient(srv.host).get_blob("lib/app", d, dest)
        assert srv.seen[0].headers["range"] == "bytes=20000-"
    assert dest.read_bytes() == data


def test_lying_registry_is_caught(tmp_path: Path) -> None:
    real = b'{"schemaVersion":2}'
    fake = b'{"schemaVersion":3}'
    real_d = str(dg.of_bytes(real))

    def handler(method, path, headers, body):
        if "/manifests/" in path:
            return 200, {"Content-Type": mt.OCI_MANIFEST, "Docker-Content-Digest": real_d}, fake
        return 200, {}, b"not the blob"

    with FakeServer(handler) as srv:
        c = RegistryClient(srv.host)
        with pytest.raises(DigestMismatch, match="manifest lib/app@v1: digest mismatch"):
            c.get_manifest("lib/app", "v1")  # tag: the Docker-Content-Digest header is checked
        with pytest.raises(DigestMismatch):
            c.get_manifest("lib/app", real_d)  # digest: the bytes are checked against it
        with pytest.raises(DigestMismatch):
            c.get_blob("lib/app", real_d, tmp_path / "b")
        assert list(tmp_path.iterdir()) == []


def test_error_bodies_become_one_line_messages() -> None:
    def handler(method, path, headers, body):
        if path.startswith("/v2/denied"):
            return 403, {"Content-Type": "application/json"}, \
                b'{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}'
        if path.startswith("/v2/plain"):
            return 500, {"Content-Type": "text/plain"}, b"internal oops\nstack trace line"
        return 429, {"Content-Type": "application/json"}, \
            b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down\\nplease"},{"code":"X","message":"y"}]}'

    with FakeServer(handler) as srv:
        c = RegistryClient(srv.host)
        with pytest.raises(AuthError) as e:
            c.get_manifest("denied/repo", "t")
        assert str(e.value) == f"denied: requested access to the resource is denied for {srv.host}"
        assert (e.value.status, e.value.code) == (403, "DENIED")
        with pytest.raises(RegistryError) as e:
            c.get_manifest("plain/repo", "t")
        assert str(e.value) == f"GET {srv.url}/v2/plain/repo/manifests/t: 500 internal oops"
        with pytest.raises(RegistryError) as e:
            c.list_tags("busy/repo")
        assert str(e.value) == (f"GET {srv.url}/v2/busy/repo/tags/list: 429 TOOMANYREQUESTS: "
                                "slow down (and 1 more)")


def test_oversized_manifest_is_refused() -> None:
    with FakeServer(lambda *a: (200, {"Content-Type": mt.OCI_MANIFEST}, b" " * (5 << 20))) as srv:
        with pytest.raises(RegistryError, match="larger than"):
            RegistryClient(srv.host).get_manifest("lib/app", "big")


def test_one_session_keeps_the_connection_alive() -> None:
    manifest = b'{"schemaVersion":2,"manifests":[]}'

    def handler(method, path, headers, body):
        if "/manifests/" in path:
            return 200, {"Content-Type": mt.OCI_INDEX, "Docker-Content-Digest": str(dg.of_bytes(manifest))}, manifest
        return 200, {"Content-Type": "application/json"}, b"{}"

    with FakeServer(handler) as srv:
        c = RegistryClient(srv.host)
        c.ping()
        for i in range(5):
            assert c.get_manifest("lib/app", f"v{i}")[0] == manifest
            assert c.head_manifest("lib/app", f"v{i}")["digest"] == str(dg.of_bytes(manifest))
    assert len(srv.seen) == 11
    assert len({s.peer for s in srv.seen}) == 1  # keep-alive: one TCP connection for all of them
