"""The distribution-spec v1.1 API of `pyregistry serve`, endpoint by endpoint, with raw HTTP (requests/http.client)."""

from __future__ import annotations

import hashlib
import http.client
import json
from pathlib import Path

import pytest
import requests

from pyoci import mediatypes as mt
from tests.pyregistry.server import Server, pyregistry, start_pyregistry  # noqa: F401 (fixture)

API = ("Docker-Distribution-API-Version", "registry/2.0")
ACCEPT_ALL = ", ".join((mt.OCI_MANIFEST, mt.OCI_INDEX, mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST_LIST))


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def error_code(resp: requests.Response) -> str:
    body = resp.json()
    assert set(body) == {"errors"} and isinstance(body["errors"], list) and body["errors"], body
    for e in body["errors"]:
        assert {"code", "message"} <= set(e), e
    return body["errors"][0]["code"]


def push_blob(server: Server, repo: str, data: bytes) -> str:
    d = sha(data)
    r = requests.post(server.v2(f"{repo}/blobs/uploads/"), params={"digest": d}, data=data,
                      headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    assert r.headers["Docker-Content-Digest"] == d
    assert r.headers["Location"] == f"/v2/{repo}/blobs/{d}"
    return d


def image(server: Server, repo: str, layers: list[bytes], config: bytes = b'{"architecture":"amd64","os":"linux",'
          b'"rootfs":{"type":"layers","diff_ids":[]}}', media_type: str = mt.OCI_MANIFEST, **extra) -> bytes:
    """Push config and layer blobs; return the manifest bytes (not yet pushed)."""
    docker = media_type == mt.DOCKER_MANIFEST
    cfg = {"mediaType": mt.DOCKER_CONFIG if docker else mt.OCI_CONFIG, "digest": push_blob(server, repo, config),
           "size": len(config)}
    lay = [{"mediaType": mt.DOCKER_LAYER_GZIP if docker else mt.OCI_LAYER_GZIP,
            "digest": push_blob(server, repo, b), "size": len(b)} for b in layers]
    doc = {"schemaVersion": 2, "mediaType": media_type, "config": cfg, "layers": lay, **extra}
    return json.dumps(doc).encode()


def put_manifest(server: Server, repo: str, ref: str, data: bytes, media_type: str = mt.OCI_MANIFEST,
                 status: int = 201) -> requests.Response:
    r = requests.put(server.v2(f"{repo}/manifests/{ref}"), data=data, headers={"Content-Type": media_type})
    assert r.status_code == status, r.text
    return r


def test_base_endpoint(pyregistry: Server):
    r = requests.get(pyregistry.v2(""))
    assert r.status_code == 200 and r.headers[API[0]] == API[1]
    assert r.json() == {}
    r = requests.get(pyregistry.url + "/v2/no/such/endpoint/at/all")
    assert r.status_code == 404 and r.headers[API[0]] == API[1]


@pytest.mark.parametrize("name", ["Upper/case", "a/../b", "..", "a//b", "-lead", "trail-", "a__-b", "_x", "a" * 256])
def test_invalid_names(pyregistry: Server, name: str):
    conn = http.client.HTTPConnection(pyregistry.host, timeout=10)
    for method, path in (("GET", f"/v2/{name}/tags/list"), ("POST", f"/v2/{name}/blobs/uploads/"),
                         ("GET", f"/v2/{name}/manifests/latest")):
        conn.request(method, path)  # http.client sends the path as it is (no dot-segment folding)
        resp = conn.getresponse()
        body = json.loads(resp.read() or b"{}")
        if name == "..":  # not even a route: /v2/../tags/list
            assert resp.status in (400, 404)
            continue
        assert resp.status == 400, (method, path, resp.status, body)
        assert body["errors"][0]["code"] == "NAME_INVALID"
    conn.close()
    assert not list(pyregistry.root.glob("**/_uploads/*")) or all(".." not in str(p) for p in pyregistry.root.rglob("*"))


def test_monolithic_upload_and_blob_get_head_range(pyregistry: Server):
    data = bytes(range(256)) * 40
    d = push_blob(pyregistry, "api/blob", data)
    r = requests.head(pyregistry.v2(f"api/blob/blobs/{d}"))
    assert r.status_code == 200 and int(r.headers["Content-Length"]) == len(data)
    assert r.headers["Docker-Content-Digest"] == d and r.content == b""
    r = requests.get(pyregistry.v2(f"api/blob/blobs/{d}"))
    assert r.status_code == 200 and r.content == data
    r = requests.get(pyregistry.v2(f"api/blob/blobs/{d}"), headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == data[100:200]
    assert r.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    r = requests.get(pyregistry.v2(f"api/blob/blobs/{d}"), headers={"Range": f"bytes={len(data) - 10}-"})
    assert r.status_code == 206 and r.content == data[-10:]
    r = requests.get(pyregistry.v2(f"api/blob/blobs/{d}"), headers={"Range": f"bytes={len(data)}-{len(data) + 5}"})
    assert r.status_code == 416
    assert r.headers["Content-Range"] == f"bytes */{len(data)}"
    # deduplicated: the same content in another repo is one file
    push_blob(pyregistry, "api/blob2", data)
    assert pyregistry.blob_data_path(d).read_bytes() == data
    # unknown blob, not linked into another repo, bad digest
    r = requests.get(pyregistry.v2(f"api/blob/blobs/{sha(b'nope')}"))
    assert r.status_code == 404 and error_code(r) == "BLOB_UNKNOWN"
    r = requests.get(pyregistry.v2(f"api/other/blobs/{d}"))
    assert r.status_code == 404 and error_code(r) == "BLOB_UNKNOWN"
    r = requests.get(pyregistry.v2("api/blob/blobs/sha256:1234"))
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"


def test_chunked_upload_session(pyregistry: Server):
    repo = "api/chunked"
    data = b"0123456789" * 1000
    r = requests.post(pyregistry.v2(f"{repo}/blobs/uploads/"))
    assert r.status_code == 202, r.text
    loc, uuid = r.headers["Location"], r.headers["Docker-Upload-UUID"]
    assert r.headers["Range"] == "0-0" and loc.endswith(uuid)
    url = pyregistry.url + loc
    r = requests.patch(url, data=data[:4000], headers={"Content-Range": "0-3999",
                                                         "Content-Type": "application/octet-stream"})
    assert r.status_code == 202 and r.headers["Range"] == "0-3999", r.text
    # out of order: a chunk that does not start where the upload is
    r = requests.patch(url, data=data[5000:6000], headers={"Content-Range": "5000-5999"})
    assert r.status_code == 416 and error_code(r) == "RANGE_INVALID"
    r = requests.get(url)
    assert r.status_code == 204 and r.headers["Range"] == "0-3999" and r.headers["Docker-Upload-UUID"] == uuid
    # streamed PATCH (no Content-Range, chunked transfer encoding)
    r = requests.patch(url, data=iter([data[4000:7000], data[7000:9000]]))
    assert r.status_code == 202 and r.headers["Range"] == "0-8999", r.text
    # closing PUT carries the last chunk
    r = requests.put(url, params={"digest": sha(data)}, data=data[9000:])
    assert r.status_code == 201, r.text
    assert r.headers["Docker-Content-Digest"] == sha(data)
    assert requests.get(pyregistry.v2(f"{repo}/blobs/{sha(data)}")).content == data
    r = requests.get(url)  # the session is over
    assert r.status_code == 404 and error_code(r) == "BLOB_UPLOAD_UNKNOWN"


def test_wrong_digest_on_close_commits_nothing(pyregistry: Server):
    repo = "api/wrong"
    r = requests.post(pyregistry.v2(f"{repo}/blobs/uploads/"))
    url = pyregistry.url + r.headers["Location"]
    claimed = sha(b"something else")
    r = requests.put(url, params={"digest": claimed}, data=b"actual bytes")
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"
    assert not pyregistry.blob_data_path(claimed).exists()
    assert not pyregistry.blob_data_path(sha(b"actual bytes")).exists()
    assert requests.head(pyregistry.v2(f"{repo}/blobs/{claimed}")).status_code == 404
    # monolithic POST with a wrong digest
    r = requests.post(pyregistry.v2(f"{repo}/blobs/uploads/"), params={"digest": claimed}, data=b"x")
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"
    r = requests.post(pyregistry.v2(f"{repo}/blobs/uploads/"), params={"digest": "sha256:zz"}, data=b"x")
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"
    assert list((pyregistry.root / "docker/registry/v2/repositories/api/wrong/_uploads").iterdir()) == []


def test_cancel_upload_and_unknown_sessions(pyregistry: Server):
    repo = "api/cancel"
    r = requests.post(pyregistry.v2(f"{repo}/blobs/uploads/"))
    url = pyregistry.url + r.headers["Location"]
    requests.patch(url, data=b"abc")
    r = requests.delete(url)
    assert r.status_code == 204
    for method in ("GET", "PATCH", "PUT", "DELETE"):
        r = requests.request(method, url, params={"digest": sha(b"abc")} if method == "PUT" else None, data=b"a")
        assert r.status_code == 404 and error_code(r) == "BLOB_UPLOAD_UNKNOWN", method
    r = requests.get(pyregistry.v2(f"{repo}/blobs/uploads/not-a-uuid"))
    assert r.status_code == 404 and error_code(r) == "BLOB_UPLOAD_UNKNOWN"


def test_cross_repo_mount(pyregistry: Server):
    d = push_blob(pyregistry, "api/mount-src", b"mount me")
    r = requests.post(pyregistry.v2("api/mount-dst/blobs/uploads/"), params={"mount": d, "from": "api/mount-src"})
    assert r.status_code == 201 and r.headers["Location"] == f"/v2/api/mount-dst/blobs/{d}"
    assert requests.get(pyregistry.v2(f"api/mount-dst/blobs/{d}")).content == b"mount me"
    # not in `from`: falls back to an upload session
    other = sha(b"not there")
    r = requests.post(pyregistry.v2("api/mount-dst2/blobs/uploads/"), params={"mount": other, "from": "api/mount-src"})
    assert r.status_code == 202 and "Docker-Upload-UUID" in r.headers
    assert requests.head(pyregistry.v2(f"api/mount-dst2/blobs/{other}")).status_code == 404


def test_manifest_put_get_head_by_tag_and_digest(pyregistry: Server):
    repo = "api/manifest"
    data = image(pyregistry, repo, [b"layer one", b"layer two"])
    r = put_manifest(pyregistry, repo, "v1", data)
    d = sha(data)
    assert r.headers["Docker-Content-Digest"] == d and r.headers["Location"] == f"/v2/{repo}/manifests/{d}"
    assert "OCI-Subject" not in r.headers
    for ref in ("v1", d):
        r = requests.get(pyregistry.v2(f"{repo}/manifests/{ref}"), headers={"Accept": ACCEPT_ALL})
        assert r.status_code == 200 and r.content == data
        assert r.headers["Content-Type"] == mt.OCI_MANIFEST and r.headers["Docker-Content-Digest"] == d
        r = requests.head(pyregistry.v2(f"{repo}/manifests/{ref}"), headers={"Accept": ACCEPT_ALL})
        assert r.status_code == 200 and int(r.headers["Content-Length"]) == len(data) and not r.content
    # Distribution's negotiation: an OCI manifest by tag needs the client to accept it; by digest it is served
    r = requests.get(pyregistry.v2(f"{repo}/manifests/v1"), headers={"Accept": mt.DOCKER_MANIFEST})
    assert r.status_code == 404 and error_code(r) == "MANIFEST_UNKNOWN"
    assert requests.get(pyregistry.v2(f"{repo}/manifests/{d}")).content == data
    # a manifest is readable through the blob endpoint
    assert requests.get(pyregistry.v2(f"{repo}/blobs/{d}")).content == data
    r = requests.get(pyregistry.v2(f"{repo}/manifests/nope"), headers={"Accept": ACCEPT_ALL})
    assert r.status_code == 404 and error_code(r) == "MANIFEST_UNKNOWN"
    r = requests.get(pyregistry.v2(f"{repo}/manifests/{sha(b'x')}"))
    assert r.status_code == 404 and error_code(r) == "MANIFEST_UNKNOWN"
    for bad_tag in ("-dash", ".dot", "x" * 129):
        r = requests.get(pyregistry.v2(f"{repo}/manifests/{bad_tag}"), headers={"Accept": ACCEPT_ALL})
        assert r.status_code == 404 and error_code(r) == "MANIFEST_UNKNOWN", bad_tag


def test_docker_schema2_manifest_and_list(pyregistry: Server):
    repo = "api/docker"
    data = image(pyregistry, repo, [b"docker layer"], media_type=mt.DOCKER_MANIFEST)
    put_manifest(pyregistry, repo, "img", data, mt.DOCKER_MANIFEST)
    lst = json.dumps({"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST_LIST, "manifests": [
        {"mediaType": mt.DOCKER_MANIFEST, "digest": sha(data), "size": len(data),
         "platform": {"architecture": "amd64", "os": "linux"}}]}).encode()
    put_manifest(pyregistry, repo, "list", lst, mt.DOCKER_MANIFEST_LIST)
    r = requests.get(pyregistry.v2(f"{repo}/manifests/list"), headers={"Accept": mt.DOCKER_MANIFEST_LIST})
    assert r.content == lst and r.headers["Content-Type"] == mt.DOCKER_MANIFEST_LIST
    # a client that cannot read lists gets linux/amd64, as from Distribution
    r = requests.get(pyregistry.v2(f"{repo}/manifests/list"), headers={"Accept": mt.DOCKER_MANIFEST})
    assert r.content == data and r.headers["Docker-Content-Digest"] == sha(data)
    r = requests.get(pyregistry.v2(f"{repo}/manifests/img"), headers={"Accept": mt.DOCKER_MANIFEST})
    assert r.content == data and r.headers["Content-Type"] == mt.DOCKER_MANIFEST


def test_manifest_validation_errors(pyregistry: Server):
    repo = "api/invalid"
    good = image(pyregistry, repo, [b"valid layer"])
    for bad in (b"{not json", b"[]", b'{"schemaVersion": 2, "mediaType": "' + mt.OCI_MANIFEST.encode() + b'"}',
                b'{"schemaVersion": 1}'):
        r = put_manifest(pyregistry, repo, "bad", bad, status=400)
        assert error_code(r) == "MANIFEST_INVALID", bad
    # names a blob the repository does not have
    doc = json.loads(good)
    doc["layers"].append({"mediaType": mt.OCI_LAYER_GZIP, "digest": sha(b"missing"), "size": 7})
    r = put_manifest(pyregistry, repo, "missing", json.dumps(doc).encode(), status=400)
    assert error_code(r) == "MANIFEST_BLOB_UNKNOWN"
    # a blob stored but only linked in another repository does not count
    elsewhere = push_blob(pyregistry, "api/elsewhere", b"elsewhere")
    doc = json.loads(good)
    doc["layers"] = [{"mediaType": mt.OCI_LAYER_GZIP, "digest": elsewhere, "size": 9}]
    r = put_manifest(pyregistry, repo, "elsewhere", json.dumps(doc).encode(), status=400)
    assert error_code(r) == "MANIFEST_BLOB_UNKNOWN"
    # an index naming a child manifest that is not there
    idx = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
        {"mediaType": mt.OCI_MANIFEST, "digest": sha(b"child"), "size": 5}]}).encode()
    r = put_manifest(pyregistry, repo, "idx", idx, mt.OCI_INDEX, status=400)
    assert error_code(r) == "MANIFEST_BLOB_UNKNOWN"
    # PUT by a digest that is not the content's
    r = put_manifest(pyregistry, repo, sha(b"other"), good, status=400)
    assert error_code(r) == "DIGEST_INVALID"
    put_manifest(pyregistry, repo, sha(good), good)
    # Content-Type and document disagree
    r = put_manifest(pyregistry, repo, "x", good, mt.OCI_INDEX, status=400)
    assert error_code(r) == "MANIFEST_INVALID"
    r = requests.get(pyregistry.v2(f"{repo}/tags/list"))
    assert r.json()["tags"] == []


def test_oversized_manifest(pyregistry: Server):
    repo = "api/big"
    doc = json.loads(image(pyregistry, repo, [b"l"]))
    doc["annotations"] = {"pad": "x" * (4 * 1024 * 1024)}
    r = put_manifest(pyregistry, repo, "big", json.dumps(doc).encode(), status=413)
    assert error_code(r) == "MANIFEST_INVALID"
    assert requests.get(pyregistry.v2(f"{repo}/manifests/big"), headers={"Accept": ACCEPT_ALL}).status_code == 404


def test_delete_manifest_tag_and_blob(pyregistry: Server):
    repo = "api/delete"
    data = image(pyregistry, repo, [b"delete me"])
    put_manifest(pyregistry, repo, "a", data)
    put_manifest(pyregistry, repo, "b", data)
    r = requests.delete(pyregistry.v2(f"{repo}/manifests/a"))
    assert r.status_code == 202
    assert requests.get(pyregistry.v2(f"{repo}/tags/list")).json()["tags"] == ["b"]
    r = requests.delete(pyregistry.v2(f"{repo}/manifests/{sha(data)}"))
    assert r.status_code == 202
    r = requests.get(pyregistry.v2(f"{repo}/manifests/{sha(data)}"))
    assert r.status_code == 404 and error_code(r) == "MANIFEST_UNKNOWN"
    assert requests.get(pyregistry.v2(f"{repo}/tags/list")).json()["tags"] == []  # its tags went with it
    r = requests.delete(pyregistry.v2(f"{repo}/manifests/{sha(data)}"))
    assert r.status_code == 404 and error_code(r) == "MANIFEST_UNKNOWN"
    layer = sha(b"delete me")
    assert requests.delete(pyregistry.v2(f"{repo}/blobs/{layer}")).status_code == 202
    r = requests.head(pyregistry.v2(f"{repo}/blobs/{layer}"))
    assert r.status_code == 404
    r = requests.delete(pyregistry.v2(f"{repo}/blobs/{layer}"))
    assert r.status_code == 404 and error_code(r) == "BLOB_UNKNOWN"


def test_delete_disabled_is_unsupported(tmp_path: Path):
    with start_pyregistry(tmp_path) as server:
        data = image(server, "nodelete/x", [b"keep"])
        put_manifest(server, "nodelete/x", "t", data)
        for path in ("nodelete/x/manifests/t", f"nodelete/x/manifests/{sha(data)}", f"nodelete/x/blobs/{sha(b'keep')}"):
            r = requests.delete(server.v2(path))
            assert r.status_code == 405 and error_code(r) == "UNSUPPORTED", path
        assert requests.get(server.v2(f"nodelete/x/blobs/{sha(b'keep')}")).content == b"keep"


def test_tags_pagination(pyregistry: Server):
    repo = "api/tags"
    data = image(pyregistry, repo, [b"tagged"])
    names = sorted(f"t{i:02d}" for i in range(7)) + ["latest"]
    for t in names:
        put_manifest(pyregistry, repo, t, data)
    names.sort()
    r = requests.get(pyregistry.v2(f"{repo}/tags/list"))
    assert r.json() == {"name": repo, "tags": names} and "Link" not in r.headers
    got, url = [], pyregistry.v2(f"{repo}/tags/list?n=3")
    while url:
        r = requests.get(url)
        assert r.status_code == 200
        page = r.json()["tags"]
        assert len(page) <= 3
        got += page
        link = r.headers.get("Link")
        if link:
            assert link == f'</v2/{repo}/tags/list?n=3&last={page[-1]}>; rel="next"'
            url = pyregistry.url + link[1:link.index(">")]
        else:
            url = None
    assert got == names
    r = requests.get(pyregistry.v2(f"{repo}/tags/list"), params={"n": 2, "last": names[2]})
    assert r.json()["tags"] == names[3:5]
    assert requests.get(pyregistry.v2(f"{repo}/tags/list"), params={"n": 0}).json()["tags"] == []
    r = requests.get(pyregistry.v2("api/no-such-repo/tags/list"))
    assert r.status_code == 404 and error_code(r) == "NAME_UNKNOWN"


def test_catalog_pagination(tmp_path: Path):
    with start_pyregistry(tmp_path) as server:
        names = sorted(["cat/a", "cat/b/c", "cat-d", "e", "f/g/h"])
        for n in names:
            put_manifest(server, n, "t", image(server, n, [b"c"]))
        requests.post(server.v2("uploadonly/blobs/uploads/"))  # a repository with no manifests is not listed
        assert requests.get(server.v2("_catalog")).json() == {"repositories": names}
        r = requests.get(server.v2("_catalog"), params={"n": 2})
        assert r.json()["repositories"] == names[:2]
        assert r.headers["Link"] == f'</v2/_catalog?n=2&last={names[1]}>; rel="next"'
        r = requests.get(server.url + r.headers["Link"][1:r.headers["Link"].index(">")])
        assert r.json()["repositories"] == names[2:4]
        r = requests.get(server.v2("_catalog"), params={"n": 2, "last": names[3]})
        assert r.json()["repositories"] == names[4:] and "Link" not in r.headers


def test_referrers_and_subject(pyregistry: Server):
    repo = "api/referrers"
    subject = image(pyregistry, repo, [b"subject layer"])
    put_manifest(pyregistry, repo, "subject", subject)
    sd = {"mediaType": mt.OCI_MANIFEST, "digest": sha(subject), "size": len(subject)}
    empty = b"{}"
    push_blob(pyregistry, repo, empty)
    refs = []
    for kind, ann in (("application/vnd.example.sbom", {"k": "sbom"}), ("application/vnd.example.sig", {"k": "sig"})):
        doc = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "artifactType": kind,
               "config": {"mediaType": mt.OCI_EMPTY, "digest": sha(empty), "size": 2},
               "layers": [{"mediaType": mt.OCI_EMPTY, "digest": sha(empty), "size": 2}],
               "subject": sd, "annotations": ann}
        data = json.dumps(doc).encode()
        r = put_manifest(pyregistry, repo, sha(data), data)
        assert r.headers["OCI-Subject"] == sha(subject)
        refs.append((kind, sha(data), len(data), ann))
    r = requests.get(pyregistry.v2(f"{repo}/referrers/{sha(subject)}"))
    assert r.status_code == 200 and r.headers["Content-Type"] == mt.OCI_INDEX
    assert "OCI-Filters-Applied" not in r.headers
    body = r.json()
    assert body["schemaVersion"] == 2 and body["mediaType"] == mt.OCI_INDEX
    got = sorted((m["artifactType"], m["digest"], m["size"], m["annotations"]) for m in body["manifests"])
    assert got == sorted(refs)
    assert all(m["mediaType"] == mt.OCI_MANIFEST for m in body["manifests"])
    r = requests.get(pyregistry.v2(f"{repo}/referrers/{sha(subject)}"),
                     params={"artifactType": "application/vnd.example.sig"})
    assert r.headers["OCI-Filters-Applied"] == "artifactType"
    assert [m["digest"] for m in r.json()["manifests"]] == [refs[1][1]]
    r = requests.get(pyregistry.v2(f"{repo}/referrers/{sha(b'nothing refers')}"))
    assert r.status_code == 200 and r.json()["manifests"] == []
    r = requests.get(pyregistry.v2(f"{repo}/referrers/notadigest"))
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"


def test_unsupported_method(pyregistry: Server):
    r = requests.post(pyregistry.v2("api/x/manifests/latest"))
    assert r.status_code == 405 and error_code(r) == "UNSUPPORTED"


def test_blob_get_from_a_driver_without_file_paths(tmp_path: Path):
    """Drivers with no local file (S3 later) are streamed through open_blob, with Range, by the same handlers."""
    import asyncio

    from aiohttp.test_utils import TestClient, TestServer

    from pyregistry.app import build_app
    from pyregistry.config import Config
    from pyregistry.storage import BlobInfo, FilesystemDriver

    class NoPaths(FilesystemDriver):
        async def stat_blob(self, digest: str):
            info = await super().stat_blob(digest)
            return None if info is None else BlobInfo(info.digest, info.size, None)

    data = bytes(range(256)) * 8192  # 2 MiB

    async def go():
        app = build_app(Config().with_overrides(root=str(tmp_path)), driver=NoPaths(tmp_path))
        async with TestClient(TestServer(app)) as c:
            r = await c.post("/v2/np/blobs/uploads/", params={"digest": sha(data)}, data=data)
            assert r.status == 201
            r = await c.get(f"/v2/np/blobs/{sha(data)}")
            assert r.status == 200 and await r.read() == data and r.headers["Docker-Content-Digest"] == sha(data)
            r = await c.head(f"/v2/np/blobs/{sha(data)}")
            assert r.status == 200 and r.headers["Content-Length"] == str(len(data))
            r = await c.get(f"/v2/np/blobs/{sha(data)}", headers={"Range": "bytes=1000-1999"})
            assert r.status == 206 and await r.read() == data[1000:2000]
            assert r.headers["Content-Range"] == f"bytes 1000-1999/{len(data)}"
            r = await c.get(f"/v2/np/blobs/{sha(data)}", headers={"Range": "bytes=-10"})
            assert r.status == 206 and await r.read() == data[-10:]
            r = await c.get(f"/v2/np/blobs/{sha(data)}", headers={"Range": f"bytes={len(data)}-"})
            assert r.status == 416 and (await r.json())["errors"][0]["code"] == "RANGE_INVALID"

    asyncio.run(go())


def test_auth_middleware_contract_and_mount_permission(tmp_path: Path):
    """The one auth middleware: the actions asked per method, catalog as (None, {"*"}), /v2/ as (None, set()),
    errors carried with their headers; a mount falls back to an upload when `from` may not be pulled."""
    import asyncio

    from aiohttp.test_utils import TestClient, TestServer

    from pyregistry import errors
    from pyregistry.app import build_app
    from pyregistry.config import Config

    class Recorder:
        def __init__(self) -> None:
            self.calls: list[tuple[str | None, frozenset]] = []

        async def authorize(self, request, repo, actions):
            self.calls.append((repo, frozenset(actions)))
            if request.headers.get("Authorization") != "Bearer ok":
                raise errors.unauthorized(headers={"WWW-Authenticate": 'Bearer realm="x",service="y"'})
            if repo and repo.startswith("secret/") and actions != {"push"}:
                raise errors.denied()
            return "alice"

        def routes(self):
            from aiohttp import web

            async def token(request):
                return web.json_response({"token": "ok"})
            return [web.get("/auth/token", token)]

    auth = Recorder()
    ok = {"Authorization": "Bearer ok"}

    async def go():
        app = build_app(Config().with_overrides(root=str(tmp_path)), authorizer=auth)
        async with TestClient(TestServer(app)) as c:
            r = await c.get("/v2/")
            assert r.status == 401 and r.headers["WWW-Authenticate"] == 'Bearer realm="x",service="y"'
            assert (await r.json())["errors"][0]["code"] == "UNAUTHORIZED"
            assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
            assert auth.calls[-1] == (None, frozenset())
            assert (await c.get("/auth/token")).status == 200  # the authorizer's own routes are not guarded
            assert (await c.get("/v2/_catalog", headers=ok)).status == 200
            assert auth.calls[-1] == (None, frozenset({"*"}))
            data = b"secret layer"
            r = await c.post("/v2/secret/src/blobs/uploads/", params={"digest": sha(data)}, data=data, headers=ok)
            assert r.status == 201 and auth.calls[-1] == ("secret/src", frozenset({"push"}))
            r = await c.get(f"/v2/secret/src/blobs/{sha(data)}", headers=ok)
            assert r.status == 403 and (await r.json())["errors"][0]["code"] == "DENIED"
            assert auth.calls[-1] == ("secret/src", frozenset({"pull"}))
            await c.head(f"/v2/pub/x/manifests/{sha(data)}", headers=ok)
            assert auth.calls[-1] == ("pub/x", frozenset({"pull"}))
            await c.delete(f"/v2/pub/x/manifests/{sha(data)}", headers=ok)
            assert auth.calls[-1] == ("pub/x", frozenset({"delete"}))
            await c.patch("/v2/pub/x/blobs/uploads/00000000-0000-0000-0000-000000000000", headers=ok)
            assert auth.calls[-1] == ("pub/x", frozenset({"push"}))
            # may not pull secret/src: no mount, an upload session instead
            r = await c.post("/v2/pub/x/blobs/uploads/", params={"mount": sha(data), "from": "secret/src"}, headers=ok)
            assert r.status == 202 and "Docker-Upload-UUID" in r.headers
            assert auth.calls[-1] == ("secret/src", frozenset({"pull"}))
            assert (await c.head(f"/v2/pub/x/blobs/{sha(data)}", headers=ok)).status == 404

    asyncio.run(go())
