"""A client of the OCI distribution API (Docker Registry HTTP API v2) on one requests.Session.

Everything is plain bytes, dicts and digest strings, so that callers need no other pyoci module.
Blobs and manifests are verified against their digests before anything is returned or committed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass
from typing import IO, Callable, Iterator, Mapping
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import requests
import urllib3

from .. import digest as dg
from .. import mediatypes as mt
from ..errors import AuthError, DigestMismatch, NotFound, RegistryError
from .auth import Credentials, TokenAuth, _reason, config_path, load_credentials, repo_scope

Progress = Callable[[str, str, int, int], None]
"""progress(event, digest, done, total): events are "download", "upload" (bytes so far), "exists"
(push skipped, the registry has it), "mounted" (cross-repo mount) and "done" (blob complete)."""

MANIFEST_ACCEPT = (mt.OCI_MANIFEST, mt.OCI_INDEX, mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST_LIST)
MAX_MANIFEST_SIZE = 4 << 20  # Distribution's own limit; a bigger answer is not a manifest
CHUNK = 1 << 20
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


def _split_host(host: str) -> str:
    """The host name without port or brackets: `[::1]:5000` -> `::1`, `127.0.0.1:5000` -> `127.0.0.1`."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") > 1:  # a bare IPv6 address
        return host
    return host.rsplit(":", 1)[0] if ":" in host else host


def api_host(host: str) -> str:
    """The host serving the API: Docker Hub's name maps to registry-1.docker.io, as docker does."""
    return "registry-1.docker.io" if host in ("docker.io", "index.docker.io") else host


@dataclass(frozen=True)
class BlobInfo:
    digest: str
    size: int


class RegistryClient:
    """One registry: `RegistryClient("127.0.0.1:5000")`, `RegistryClient("ghcr.io", username=..., password=...)`.

    insecure: None picks plain HTTP for localhost/127.0.0.1/::1 (as docker does) and HTTPS elsewhere;
    True forces plain HTTP, False forces HTTPS (a host given as `http://...` or `https://...` says so
    itself). Explicit username/password override the Docker config, which is read lazily, only when
    a registry asks for credentials; `env` stands in for os.environ there (DOCKER_CONFIG, HOME, PATH).
    """

    def __init__(self, host: str, *, insecure: bool | None = None, username: str | None = None,
                 password: str | None = None, session: requests.Session | None = None,
                 progress: Progress | None = None, timeout: float | tuple[float, float] = (30, 300),
                 env: Mapping[str, str] | None = None) -> None:
        scheme, sep, rest = host.partition("://")
        if sep:
            host = rest.rstrip("/")
            if insecure is None:
                insecure = scheme.lower() == "http"
        self.host = host
        if insecure is None:
            insecure = _split_host(host) in LOCAL_HOSTS
        netloc = api_host(host)
        if ":" in netloc and netloc.count(":") > 1 and not netloc.startswith("["):
            netloc = f"[{netloc}]"
        self.base = f"{'http' if insecure else 'https'}://{netloc}"
        self.session = session or requests.Session()
        self.progress = progress
        self.timeout = timeout
        explicit = Credentials(username or "", password or "") if (username or password) else None
        creds = (lambda: explicit) if explicit else (lambda: load_credentials(host, env))
        self.auth = TokenAuth(host, self.session, creds, timeout=timeout, config_file=str(config_path(env)))

    # --- plumbing --------------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return urljoin(self.base + "/", path) if not path.startswith(("http://", "https://")) else path

    def request(self, method: str, path: str, scopes: tuple[str, ...] = (), *, ok: tuple[int, ...] = (200,),
                body: bytes | Callable[[], object] | None = None, headers: Mapping[str, str] | None = None,
                stream: bool = False, params: Mapping[str, str] | list[tuple[str, str]] | None = None,
                allow_redirects: bool = True) -> requests.Response:
        """Send one request, answering an auth challenge once; any status not in `ok` raises.

        `body` is bytes or a callable returning a fresh body, so the request can be re-sent after a 401.
        """
        url = self._url(path)
        hdrs = dict(headers or {})
        resent = False
        while True:
            auth_value = self.auth.header(scopes)
            if auth_value:
                hdrs["Authorization"] = auth_value
            data = body() if callable(body) else body
            try:
                resp = self.session.request(method, url, data=data, headers=hdrs, stream=stream, params=params,
                                            timeout=self.timeout, allow_redirects=allow_redirects)
            except requests.RequestException as e:
                raise RegistryError(f"{method} {_strip_query(url)}: cannot reach registry {self.host}: "
                                    f"{_reason(e)}") from None
            if resp.status_code == 401 and not resent:
                resp.close()
                if auth_value and auth_value.startswith("Bearer"):
                    self.auth.forget(scopes)  # a cached token the registry no longer takes
                hdrs["Authorization"] = self.auth.answer(resp.headers.get("WWW-Authenticate", ""), scopes)
                resent = True
                continue
            if resp.status_code not in ok:
                self._raise(resp, method, sent_auth="Authorization" in hdrs)
            return resp

    def _raise(self, resp: requests.Response, method: str, sent_auth: bool) -> None:
        status = resp.status_code
        url = resp.request.url if resp.request is not None else resp.url
        url = _strip_query(url)
        code, message = _error_body(resp)
        resp.close()
        if status in (401, 403):
            if status == 401:
                # Refused although we answered the challenge: bad credentials if we had any, else the
                # anonymous token did not grant this (e.g. push).
                had_creds = sent_auth and self.auth.credentials is not None
                what = "wrong username or password" if had_creds else "authentication required"
                prefix = "unauthorized"
            else:
                what, prefix = message or "requested access to the resource is denied", "denied"
            raise AuthError(f"{prefix}: {what} for {self.host}", status, code or prefix.upper())
        text = f"{method} {url}: {status} {code}: {message}" if code else f"{method} {url}: {status} {message}"
        raise RegistryError(text.rstrip(": "), status, code)

    def _emit(self, event: str, digest: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(event, digest, done, total)

    # --- base --------------------------------------------------------------------------------------

    def ping(self) -> bool:
        """True if the registry speaks the v2 API (authenticating if it asks to)."""
        self.request("GET", "/v2/").close()
        return True

    # --- manifests ---------------------------------------------------------------------------------

    def get_manifest(self, repo: str, ref: str, accept: tuple[str, ...] = MANIFEST_ACCEPT) -> tuple[bytes, str, str]:
        """(bytes, media type, digest) of a manifest or index by tag or digest, verified against the digest."""
        resp = self.request("GET", f"/v2/{repo}/manifests/{ref}", (repo_scope(repo, "pull"),),
                            headers={"Accept": ", ".join(accept)}, stream=True, ok=(200,))
        with resp:
            data = _read_limited(resp, MAX_MANIFEST_SIZE, f"manifest {repo}:{ref}")
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        if not media_type or media_type in ("application/json", "text/plain", "application/octet-stream"):
            media_type = _sniff_media_type(data) or media_type
        digest = self._check_digest(data, ref, resp.headers.get("Docker-Content-Digest"), f"manifest {repo}@{ref}")
        return data, media_type, digest

    def _check_digest(self, data: bytes, ref: str, header: str | None, what: str) -> str:
        expected = [dg.Digest.parse(ref)] if ":" in ref else []
        if header:
            try:
                expected.append(dg.Digest.parse(header))
            except Exception:
                raise DigestMismatch(f"{what}: registry sent an invalid Docker-Content-Digest {header!r}") from None
        for want in expected:
            got = dg.of_bytes(data, want.algorithm)
            if got != want:
                raise DigestMismatch(f"{what}: digest mismatch: expected {want}, got {got} ({len(data)} bytes)")
        return str(expected[0]) if expected else str(dg.of_bytes(data))

    def head_manifest(self, repo: str, ref: str, accept: tuple[str, ...] = MANIFEST_ACCEPT) -> dict | None:
        """A descriptor dict {mediaType, digest, size} of a manifest, or None if there is none."""
        resp = self.request("HEAD", f"/v2/{repo}/manifests/{ref}", (repo_scope(repo, "pull"),),
                            headers={"Accept": ", ".join(accept)}, ok=(200, 404))
        resp.close()
        if resp.status_code == 404:
            return None
        digest = resp.headers.get("Docker-Content-Digest") or (ref if ":" in ref else "")
        if not digest:
            # Some registries omit the digest on HEAD; fetch and compute it.
            data, media_type, digest = self.get_manifest(repo, ref, accept)
            return {"mediaType": media_type, "digest": digest, "size": len(data)}
        return {"mediaType": resp.headers.get("Content-Type", "").split(";")[0].strip(),
                "digest": str(dg.Digest.parse(digest)), "size": int(resp.headers.get("Content-Length") or 0)}

    def put_manifest(self, repo: str, ref: str, data: bytes, media_type: str, update_referrers: bool = True) -> str:
        """Push a manifest or index under a tag or its digest; returns its digest (checked with the registry's).

        A manifest with a `subject` pushed to a registry without the referrers API (no `OCI-Subject`
        in the answer) is also added to the subject's fallback index, tag `<alg>-<hex>`, as the
        distribution spec asks of clients; update_referrers=False leaves that to the caller.
        """
        expected = dg.Digest.parse(ref) if ":" in ref else dg.of_bytes(data)
        if dg.of_bytes(data, expected.algorithm) != expected:
            raise DigestMismatch(f"manifest for {repo}@{ref}: the bytes do not match the digest they are pushed under")
        resp = self.request("PUT", f"/v2/{repo}/manifests/{ref}", (repo_scope(repo, "pull", "push"),),
                            body=data, headers={"Content-Type": media_type}, ok=(200, 201, 202))
        resp.close()
        got = resp.headers.get("Docker-Content-Digest")
        if got and dg.Digest.parse(got).algorithm == expected.algorithm and dg.Digest.parse(got) != expected:
            raise DigestMismatch(f"manifest {repo}:{ref}: registry stored it as {got}, expected {expected}")
        if update_referrers and b'"subject"' in data and not resp.headers.get("OCI-Subject"):
            doc = _json_doc(data, f"manifest {repo}@{expected}")
            subject = doc.get("subject")
            if isinstance(subject, dict) and subject.get("digest"):
                self._add_referrer(repo, str(subject["digest"]), _referrer_descriptor(doc, media_type, expected,
                                                                                      len(data)))
        return str(expected)

    def _add_referrer(self, repo: str, subject: str, desc: dict) -> None:
        """Add `desc` to the referrers tag-schema index of `subject` (created if absent)."""
        d = dg.Digest.parse(subject)
        tag = f"{d.algorithm}-{d.encoded}"
        try:
            index = _json_doc(self.get_manifest(repo, tag, (mt.OCI_INDEX,))[0], f"referrers index {repo}:{tag}")
        except RegistryError as e:
            if e.status != 404:
                raise
            index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}
        entries = [m for m in index.get("manifests") or [] if m.get("digest") != desc["digest"]]
        index["manifests"] = entries + [desc]
        body = json.dumps(index, separators=(",", ":")).encode()
        self.put_manifest(repo, tag, body, mt.OCI_INDEX, update_referrers=False)

    def delete_manifest(self, repo: str, digest: str) -> None:
        """Delete a manifest by digest (Distribution refuses tags); a missing one raises NotFound."""
        d = dg.Digest.parse(digest)
        resp = self.request("DELETE", f"/v2/{repo}/manifests/{d}", (repo_scope(repo, "delete"),), ok=(202, 200, 404))
        resp.close()
        if resp.status_code == 404:
            raise NotFound(f"DELETE {self.base}/v2/{repo}/manifests/{d}: manifest not found")

    # --- blobs -------------------------------------------------------------------------------------

    def blob_exists(self, repo: str, digest: str) -> bool:
        resp = self.request("HEAD", f"/v2/{repo}/blobs/{dg.Digest.parse(digest)}", (repo_scope(repo, "pull"),),
                            ok=(200, 404))
        resp.close()
        return resp.status_code == 200

    def open_blob(self, repo: str, digest: str, size: int | None = None) -> "BlobReader":
        """A binary stream of a blob that raises DigestMismatch at its end if the bytes were wrong."""
        d = dg.Digest.parse(digest)
        resp = self.request("GET", f"/v2/{repo}/blobs/{d}", (repo_scope(repo, "pull"),), stream=True,
                            headers={"Accept-Encoding": "identity"})
        return BlobReader(resp, d, size, f"blob {repo}@{d}")

    def get_blob(self, repo: str, digest: str, dest_path: str | os.PathLike, size: int | None = None,
                 resume: bool = True) -> str:
        """Download a blob to `dest_path`, committed only once its digest (and size) check out.

        With resume, bytes already in `dest_path + ".partial"` are kept and only the rest is asked for
        (`Range:`); an interrupted download leaves that file for the next call. A resumed download that
        does not verify is retried once from scratch.
        """
        d = dg.Digest.parse(digest)
        dest = os.fspath(dest_path)
        if self._download(repo, d, dest, size, resume):
            self._download(repo, d, dest, size, resume=False)  # the kept bytes were bad: start over
        return str(d)

    def _download(self, repo: str, d: dg.Digest, dest: str, size: int | None, resume: bool) -> bool:
        """One download attempt: False when committed, True when bytes kept from before did not verify.

        A mismatch without kept bytes raises DigestMismatch; nothing is left at `dest` or beside it.
        """
        if not resume:
            _unlink(dest + ".partial")
        writer = dg.VerifyingWriter(dest, d, size, resume=True)
        keep_partial = False
        try:
            start = writer.size
            total = size if size is not None else -1
            if size is not None and start >= size:
                return self._commit(writer, start > 0)
            # Blobs are already compressed; identity keeps byte offsets meaningful for Range.
            headers = {"Accept-Encoding": "identity"}
            if start:
                headers["Range"] = f"bytes={start}-"
            resp = self.request("GET", f"/v2/{repo}/blobs/{d}", (repo_scope(repo, "pull"),), stream=True,
                                headers=headers, ok=(200, 206, 416))
            with resp:
                if resp.status_code == 416:  # our partial is as long as the blob (or longer): verify it
                    return self._commit(writer, True)
                if resp.status_code == 200 and start:
                    # The server ignored the range: start over.
                    writer.abort()
                    writer = dg.VerifyingWriter(dest, d, size, resume=True)
                    start = 0
                elif resp.status_code == 206 and not _range_starts_at(resp.headers.get("Content-Range", ""), start):
                    got_range = resp.headers.get("Content-Range")
                    raise RegistryError(f"GET {_strip_query(resp.url)}: registry answered range {got_range!r} "
                                        f"to bytes={start}-")
                if total < 0 and resp.headers.get("Content-Length"):
                    total = start + int(resp.headers["Content-Length"])
                self._emit("download", str(d), start, total)
                try:
                    for chunk in _body_chunks(resp):
                        writer.write(chunk)
                        self._emit("download", str(d), writer.size, total)
                except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as e:
                    keep_partial = True  # an interrupted transfer leaves bytes worth resuming
                    raise RegistryError(f"GET {_strip_query(resp.url)}: download interrupted after "
                                        f"{writer.size} bytes: {_reason(e)}") from None
                except DigestMismatch:
                    if start:
                        return True  # the kept partial was bad: retry from scratch
                    raise
            return self._commit(writer, start > 0)
        finally:
            writer.abort(keep_partial=keep_partial)

    def _commit(self, writer: dg.VerifyingWriter, resumed: bool) -> bool:
        try:
            writer.commit()
        except DigestMismatch:
            if resumed:
                return True
            raise
        self._emit("done", str(writer.expected), writer.size, writer.size)
        return False

    def push_blob(self, repo: str, source: str | os.PathLike | bytes, digest: str | None = None,
                  chunk_size: int | None = None) -> str:
        """Upload a blob (a path or bytes) unless the registry has it; returns its digest.

        Monolithic by default (POST, then PUT ?digest= with the whole body); with `chunk_size`, chunked
        (PATCH with Content-Range per chunk, following each Location), then PUT ?digest= to close.
        """
        if isinstance(source, (bytes, bytearray, memoryview)):
            data: bytes | None = bytes(source)
            path = None
            size = len(data)
            d = dg.Digest.parse(digest) if digest else dg.of_bytes(data)
        else:
            data, path = None, os.fspath(source)
            if digest:
                d, size = dg.Digest.parse(digest), os.path.getsize(path)
            else:
                d, size = dg.of_file(path)
        if self.blob_exists(repo, str(d)):
            self._emit("exists", str(d), size, size)
            return str(d)
        location = self._start_upload(repo)
        self._upload(repo, location, d, size, data, path, chunk_size)
        return str(d)

    def _start_upload(self, repo: str, params: list[tuple[str, str]] | None = None,
                      extra_scopes: tuple[str, ...] = ()) -> requests.Response:
        resp = self.request("POST", f"/v2/{repo}/blobs/uploads/", (repo_scope(repo, "pull", "push"), *extra_scopes),
                            params=params, ok=(201, 202))
        resp.close()
        return resp

    def _location(self, resp: requests.Response) -> str:
        loc = resp.headers.get("Location")
        if not loc:
            raise RegistryError(f"{resp.request.method} {_strip_query(resp.url)}: {resp.status_code} "
                                "without a Location header")
        return urljoin(resp.url, loc)  # relative or absolute, both allowed by the spec

    def _upload(self, repo: str, started: requests.Response, d: dg.Digest, size: int, data: bytes | None,
                path: str | None, chunk_size: int | None) -> None:
        scopes = (repo_scope(repo, "pull", "push"),)
        location = self._location(started)
        ds = str(d)
        if chunk_size:
            offset = 0
            with (open(path, "rb") if path else contextlib.nullcontext()) as f:
                while offset < size:
                    chunk = data[offset:offset + chunk_size] if data is not None else f.read(chunk_size)
                    if not chunk:
                        raise RegistryError(f"{path}: file shrank while uploading {ds}")
                    end = offset + len(chunk) - 1
                    resp = self.request("PATCH", location, scopes, body=chunk, ok=(202, 204), headers={
                        "Content-Type": "application/octet-stream", "Content-Range": f"{offset}-{end}",
                        "Content-Length": str(len(chunk))})
                    resp.close()
                    _check_upload_range(resp, end)
                    location = self._location(resp)
                    offset = end + 1
                    self._emit("upload", ds, offset, size)
            body: bytes | Callable[[], object] = b""
        else:
            def file_body() -> _FileBody:  # a fresh one per attempt, so a 401 retry re-reads the file
                return _FileBody(path, size, lambda n: self._emit("upload", ds, n, size))
            body = data if data is not None else file_body
        resp = self.request("PUT", _add_query(location, digest=ds), scopes, body=body, ok=(201, 204), headers={
            "Content-Type": "application/octet-stream", "Content-Length": str(0 if chunk_size else size)})
        resp.close()
        got = resp.headers.get("Docker-Content-Digest")
        if got and got != ds:
            raise DigestMismatch(f"blob upload to {repo}: registry stored {got}, expected {ds}")
        self._emit("done", ds, size, size)

    def mount_blob(self, repo: str, digest: str, from_repo: str,
                   source: str | os.PathLike | bytes | None = None) -> bool:
        """Cross-repo mount of a blob from `from_repo`; True if mounted, False if it had to be uploaded.

        On 202 (the registry would not mount) the upload it opened is used: from `source` when given,
        else streamed from `from_repo` of this registry.
        """
        d = dg.Digest.parse(digest)
        resp = self._start_upload(repo, [("mount", str(d)), ("from", from_repo)], (repo_scope(from_repo, "pull"),))
        if resp.status_code == 201:
            self._emit("mounted", str(d), 0, 0)
            return True
        if source is None:
            info = self.head_blob(from_repo, str(d))
            if info is None:
                self._cancel(repo, resp)
                raise NotFound(f"blob {d} is in neither {repo} nor {from_repo} on {self.host}, and no source was given")
            with self.open_blob(from_repo, str(d), info.size) as reader:
                self._upload_stream(repo, resp, d, info.size, reader)
        elif isinstance(source, (bytes, bytearray, memoryview)):
            self._upload(repo, resp, d, len(source), bytes(source), None, None)
        else:
            self._upload(repo, resp, d, os.path.getsize(source), None, os.fspath(source), None)
        return False

    def _upload_stream(self, repo: str, started: requests.Response, d: dg.Digest, size: int, reader: IO[bytes]) -> None:
        location = self._location(started)
        # A stream cannot be rewound for a re-sent request; the POST already authenticated us for this scope.
        resp = self.request("PUT", _add_query(location, digest=str(d)), (repo_scope(repo, "pull", "push"),),
                            body=_StreamBody(reader, size), ok=(201, 204),
                            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)})
        resp.close()
        self._emit("done", str(d), size, size)

    def _cancel(self, repo: str, started: requests.Response) -> None:
        try:
            self.request("DELETE", self._location(started), (repo_scope(repo, "pull", "push"),),
                         ok=(204, 404, 200, 202)).close()
        except RegistryError:
            pass  # the registry expires abandoned uploads anyway

    def head_blob(self, repo: str, digest: str) -> BlobInfo | None:
        d = dg.Digest.parse(digest)
        resp = self.request("HEAD", f"/v2/{repo}/blobs/{d}", (repo_scope(repo, "pull"),), ok=(200, 404))
        resp.close()
        if resp.status_code == 404:
            return None
        return BlobInfo(str(d), int(resp.headers.get("Content-Length") or 0))

    def delete_blob(self, repo: str, digest: str) -> None:
        d = dg.Digest.parse(digest)
        resp = self.request("DELETE", f"/v2/{repo}/blobs/{d}", (repo_scope(repo, "delete"),), ok=(202, 200, 404))
        resp.close()
        if resp.status_code == 404:
            raise NotFound(f"DELETE {self.base}/v2/{repo}/blobs/{d}: blob not found")

    # --- listings ----------------------------------------------------------------------------------

    def _paginate(self, path: str, key: str, scopes: tuple[str, ...], page_size: int | None) -> list[str]:
        items: list[str] = []
        url: str | None = self._url(path) + (f"?n={page_size}" if page_size else "")
        seen: set[str] = set()
        while url and url not in seen:
            seen.add(url)
            resp = self.request("GET", url, scopes)
            with resp:
                try:
                    doc = resp.json()
                except ValueError:
                    raise RegistryError(f"GET {_strip_query(url)}: answer is not JSON") from None
            items.extend((doc or {}).get(key) or [])
            nxt = _next_link(resp.headers.get("Link", ""))
            url = urljoin(url, nxt) if nxt else None
        return items

    def list_tags(self, repo: str, page_size: int | None = None) -> list[str]:
        """All tags of `repo`, following `Link: <...>; rel="next"` until the last page."""
        return self._paginate(f"/v2/{repo}/tags/list", "tags", (repo_scope(repo, "pull"),), page_size)

    def catalog(self, page_size: int | None = None) -> list[str]:
        """All repositories of the registry (many public registries refuse this)."""
        return self._paginate("/v2/_catalog", "repositories", ("registry:catalog:*",), page_size)

    def referrers(self, repo: str, digest: str, artifact_type: str | None = None) -> list[dict]:
        """Descriptors of the manifests whose `subject` is `digest`.

        The referrers API first; a registry without it (404) falls back to the tag schema: an index
        tagged `<alg>-<hex>`.
        """
        d = dg.Digest.parse(digest)
        params = [("artifactType", artifact_type)] if artifact_type else None
        resp = self.request("GET", f"/v2/{repo}/referrers/{d}", (repo_scope(repo, "pull"),), params=params,
                            ok=(200, 404), headers={"Accept": mt.OCI_INDEX})
        manifests: list[dict] = []
        filtered = False
        if resp.status_code == 200:
            url = resp.url
            while True:
                with resp:
                    doc = _json_doc(resp.content, f"GET {_strip_query(url)}")
                manifests.extend(doc.get("manifests") or [])
                filtered = filtered or "artifactType" in resp.headers.get("OCI-Filters-Applied", "")
                nxt = _next_link(resp.headers.get("Link", ""))
                if not nxt:
                    break
                url = urljoin(url, nxt)
                resp = self.request("GET", url, (repo_scope(repo, "pull"),), headers={"Accept": mt.OCI_INDEX})
        else:
            resp.close()
            tag = f"{d.algorithm}-{d.encoded}"
            try:
                data, _, _ = self.get_manifest(repo, tag, (mt.OCI_INDEX,))
            except RegistryError as e:
                if e.status == 404:
                    return []
                raise
            manifests = _json_doc(data, f"referrers index {repo}:{tag}").get("manifests") or []
        if artifact_type and not filtered:
            manifests = [m for m in manifests if m.get("artifactType") == artifact_type]
        return manifests

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> "RegistryClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BlobReader:
    """A blob's HTTP body as a binary stream; reading to the end verifies its digest (and size)."""

    def __init__(self, resp: requests.Response, expected: dg.Digest, size: int | None, what: str) -> None:
        self._resp = resp
        self._raw = resp.raw
        self._raw.decode_content = True
        self._hash = expected.hasher()
        self.expected = expected
        self.size = size
        self.what = what
        self.read_bytes = 0
        self._verified = False

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._raw.read(None if n is None or n < 0 else n)
        except Exception as e:
            raise RegistryError(f"{self.what}: read failed after {self.read_bytes} bytes: {_reason(e)}") from None
        if data:
            self._hash.update(data)
            self.read_bytes += len(data)
            if self.size is not None and self.read_bytes > self.size:
                raise DigestMismatch(f"{self.what}: larger than its announced size {self.size}")
        if not data or (n is not None and n < 0):
            self._verify()
        return data

    def _verify(self) -> None:
        if self._verified:
            return
        got = dg.Digest(self.expected.algorithm, self._hash.hexdigest())
        if got != self.expected:
            raise DigestMismatch(f"{self.what}: digest mismatch: expected {self.expected}, got {got} "
                                 f"({self.read_bytes} bytes)")
        if self.size is not None and self.read_bytes != self.size:
            raise DigestMismatch(f"{self.what}: size mismatch: expected {self.size} bytes, got {self.read_bytes}")
        self._verified = True

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(CHUNK):
            yield chunk

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._resp.close()

    def __enter__(self) -> "BlobReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _FileBody:
    """A file as a request body: a length (so requests sends Content-Length) and 1 MiB reads with progress."""

    def __init__(self, path: str, size: int, progress: Callable[[int], None]) -> None:
        self.path, self.size, self.progress = path, size, progress

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[bytes]:
        sent = 0
        with open(self.path, "rb") as f:
            while chunk := f.read(CHUNK):
                sent += len(chunk)
                yield chunk
                self.progress(sent)


class _StreamBody:
    def __init__(self, reader: IO[bytes], size: int) -> None:
        self.reader, self.size = reader, size

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.reader.read(CHUNK):
            yield chunk
        self.reader.read()  # reach EOF so the stream verifies its digest


def _error_body(resp: requests.Response) -> tuple[str, str]:
    """(code, message) from the registry's `{"errors":[...]}` body, or ("", reason) when there is none."""
    try:
        body = resp.content[:65536] if resp.request is None or resp.request.method != "HEAD" else b""
    except requests.RequestException:
        body = b""
    try:
        errors = json.loads(body).get("errors") or []
        first = errors[0]
        code = str(first.get("code") or "")
        message = str(first.get("message") or "").splitlines()[0] if first.get("message") else code.lower()
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more)"
        return code, message
    except (ValueError, AttributeError, IndexError, TypeError, KeyError):
        pass
    text = body.decode("utf-8", "replace").strip().splitlines()
    return "", (text[0][:200] if text else resp.reason or "")


def _body_chunks(resp: requests.Response) -> Iterator[bytes]:
    """The body as it arrives: read1 hands over every byte received before a connection drops,
    where read(n) would discard a short last chunk, and those bytes are what a resume starts from."""
    raw = resp.raw
    if not hasattr(raw, "read1"):  # urllib3 1.x
        yield from resp.iter_content(CHUNK)
        return
    while chunk := raw.read1(CHUNK):
        yield chunk


def _read_limited(resp: requests.Response, limit: int, what: str) -> bytes:
    buf = bytearray()
    try:
        for chunk in resp.iter_content(65536):
            buf += chunk
            if len(buf) > limit:
                raise RegistryError(f"{what}: larger than {limit} bytes, refusing it")
    except requests.RequestException as e:
        raise RegistryError(f"{what}: read failed: {_reason(e)}") from None
    return bytes(buf)


def _sniff_media_type(data: bytes) -> str:
    try:
        doc = json.loads(data)
    except ValueError:
        return ""
    if not isinstance(doc, dict):
        return ""
    if doc.get("mediaType"):
        return str(doc["mediaType"])
    return mt.OCI_INDEX if "manifests" in doc else mt.OCI_MANIFEST if "config" in doc else ""


def _referrer_descriptor(doc: dict, media_type: str, digest: dg.Digest, size: int) -> dict:
    """A referrers-index entry: artifactType from the manifest (or its config's media type), its annotations."""
    desc: dict = {"mediaType": media_type, "digest": str(digest), "size": size}
    artifact_type = doc.get("artifactType") or (doc.get("config") or {}).get("mediaType")
    if artifact_type:
        desc["artifactType"] = artifact_type
    if doc.get("annotations"):
        desc["annotations"] = doc["annotations"]
    return desc


def _json_doc(data: bytes, what: str) -> dict:
    try:
        doc = json.loads(data)
    except ValueError:
        raise RegistryError(f"{what}: answer is not JSON") from None
    if not isinstance(doc, dict):
        raise RegistryError(f"{what}: answer is not a JSON object")
    return doc


_LINK = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]+)*)")


def _next_link(header: str) -> str | None:
    """The URL of `rel="next"` in a Link header (RFC 8288), or None."""
    for m in _LINK.finditer(header or ""):
        params = m.group(2)
        if re.search(r";\s*rel\s*=\s*\"?([^\";]*\s)?next(\s[^\";]*)?\"?", params):
            return m.group(1)
    return None


def _add_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def _strip_query(url: str) -> str:
    """A URL fit for a message: upload URLs carry long opaque state in their query."""
    return url.split("?", 1)[0]


def _range_starts_at(content_range: str, start: int) -> bool:
    m = re.match(r"\s*bytes\s+(\d+)-", content_range)
    return m is not None and int(m.group(1)) == start


def _check_upload_range(resp: requests.Response, end: int) -> None:
    rng = resp.headers.get("Range", "")
    m = re.match(r"\s*(?:bytes=)?(\d+)-(\d+)", rng)
    if m and int(m.group(2)) != end:
        raise RegistryError(f"PATCH {_strip_query(resp.url)}: registry has bytes {rng}, expected 0-{end}")


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
