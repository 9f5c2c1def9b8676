"""Image verbs: pull, push, images, tag, rmi, save, load, import, image prune — docker's output."""

from __future__ import annotations

import os
import re
import sys
import time

from pyoci.errors import OCIError

from .. import errdefs, protocol
from .backend import Backend, CLIError, daemon_error, familiar, normalize
from .humanize import ago, human_size, parse_time

# gzip, hashlib, json, pyoci.mediatypes and the table formatting are imported by the verbs that use them:
# `run` imports this module for ensure_image alone

IMAGE_HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "CreatedSince": "CREATED",
                 "CreatedAt": "CREATED AT", "Size": "SIZE", "Digest": "DIGEST"}
CHUNK = 1 << 20


def _short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def pull(b: Backend, ref: str, quiet: bool = False, platform: str = "", out=None) -> dict:
    """docker pull's lines: `latest: Pulling from library/busybox`, one line per layer, Digest, Status."""
    from pyoci import reference

    out = out or sys.stdout
    try:
        r = reference.parse(ref)
    except OCIError as exc:
        raise CLIError(f"Error: invalid reference format: {exc}") from None
    if not quiet and r.tag and ":" not in ref.rsplit("/", 1)[-1] and "@" not in ref:
        out.write(f"Using default tag: {r.tag}\n")
    if not quiet:
        out.write(f"{r.tag or r.digest}: Pulling from {r.path}\n")
        out.flush()
    seen: set[str] = set()
    digest = ""
    try:
        before = b.call("Images", "Get", {"name": str(r)})["image"]["target"]["digest"]
    except errdefs.Error:
        before = ""
    try:
        call = b.client.stream("Images", "Pull", {"ref": str(r), "platform": platform or None})
        for frame in call:
            ref_ = frame.get("ref", "")
            status = frame.get("status", "")
            if status == "resolved":
                digest = frame.get("digest", "")
            layer = ref_[len("layer-"):] if ref_.startswith("layer-") else ""
            if not quiet and layer and layer not in seen and status in ("exists", "unpacked"):
                seen.add(layer)
                text = "Already exists" if status == "exists" else "Pull complete"
                out.write(f"{_short(layer)}: {text}\n")
                out.flush()
    except errdefs.Error as exc:
        raise daemon_error(exc) from None
    image = b.call("Images", "Get", {"name": str(r)})["image"]
    if not quiet:
        out.write(f"Digest: {digest or image['target']['digest']}\n")
        up_to_date = before == image["target"]["digest"]
        out.write(f"Status: {'Image is up to date' if up_to_date else 'Downloaded newer image'} for {r.familiar}\n")
    out.write(f"{r}\n")
    out.flush()
    return image


def ensure_image(b: Backend, ref: str, pull_policy: str = "missing") -> dict:
    """docker run's lookup: the local image, else `Unable to find image 'x:latest' locally` and a pull."""
    image = b.find_image(ref)
    if image is not None and pull_policy != "always":
        return image
    if pull_policy == "never":
        raise CLIError(f"Error: No such image: {ref}", 125)
    normalized = normalize(ref)
    sys.stderr.write(f"Unable to find image '{familiar(normalized)}' locally\n")
    sys.stderr.flush()
    try:
        return pull(b, ref, out=sys.stderr)
    except CLIError as exc:
        raise CLIError(exc.message, 125) from None


def push(b: Backend, ref: str, quiet: bool = False) -> None:
    from pyoci import reference

    name = normalize(ref)
    if b.find_image(name) is None:
        raise CLIError(f"Error response from daemon: An image does not exist locally with the tag: {familiar(name)}")
    r = reference.parse(name)
    if not quiet:
        print(f"The push refers to repository [{r.name}]", flush=True)
    layers: set[str] = set()
    try:
        for frame in b.client.stream("Images", "Push", {"name": name, "ref": name}):
            ref_ = frame.get("ref", "")
            if frame.get("status") in ("done", "exists") and ref_ not in layers and "config" not in ref_ and \
                    not ref_.startswith(("manifest-", "index-")):
                layers.add(ref_)
                if not quiet:
                    print(f"{_short(ref_)}: {'Layer already exists' if frame['status'] == 'exists' else 'Pushed'}",
                          flush=True)
        image = b.call("Images", "Get", {"name": name})["image"]
    except errdefs.Error as exc:
        raise daemon_error(exc) from None
    target = image["target"]
    print(f"{r.tag or 'latest'}: digest: {target['digest']} size: {target['size']}")


def image_rows(b: Backend, images: list[dict], no_trunc: bool = False, digests: bool = False) -> list[dict]:
    from pyoci import reference

    rows = []
    now = time.time()
    for im in images:
        try:
            cfg = b.image_config(im["name"])
        except errdefs.Error:
            continue
        config_digest = cfg["manifest"]["config"]["digest"]
        created_text = (cfg.get("config") or {}).get("created")
        created = parse_time(created_text)
        name = im["name"]
        repo, tag = "<none>", "<none>"
        try:
            r = reference.parse_normalized_named(name)
            repo, tag = r.familiar_name, r.tag or "<none>"
        except OCIError:
            pass
        size = b.unpacked_size(cfg.get("chain_id", "")) or cfg.get("size") or im.get("size") or 0
        rows.append({"Containers": "N/A",
                     "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(created)),
                     "CreatedSince": ago(created, now) if created_text else "N/A",
                     "Digest": im["target"]["digest"],
                     "ID": config_digest if no_trunc else _short(config_digest),
                     "Repository": repo, "SharedSize": "N/A", "Size": human_size(size), "Tag": tag,
                     "UniqueSize": "N/A", "VirtualSize": human_size(size), "_created": created,
                     "_name": name, "_labels": ((cfg.get("config") or {}).get("config") or {}).get("Labels") or {}})
    rows.sort(key=lambda r: (-r["_created"], r["_name"]))
    return rows


IMAGE_FILTERS = ("dangling", "label", "before", "since", "reference")


def parse_filters(items: list[str]) -> dict[str, list[str]]:
    """`-f key=value` flags, checked as docker's CLI (format, status 125) then dockerd (names)."""
    out: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise CLIError(f'invalid argument "{item}" for "-f, --filter" flag: bad format of filter (expected '
                           "name=value)\nSee 'pyctr images --help'.", 125)
        out.setdefault(key.strip().lower(), []).append(value)
    for key, values in out.items():
        if key not in IMAGE_FILTERS:
            raise CLIError(f"Error response from daemon: Invalid filter '{key}'")
        if key == "dangling" and any(v not in ("true", "false", "1", "0") for v in values):
            raise CLIError(f"Error response from daemon: Invalid filter 'dangling=[{' '.join(values)}]'")
    return out


def _go_path_match(pattern: str, text: str) -> bool:
    """Go's path.Match: `*` and `?` never cross a `/`, `[...]` classes with `^` negation."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                return False
            body = pattern[i + 1:end]
            out.append("[" + ("^" + body[1:] if body.startswith("^") else body).replace("\\", "\\\\") + "]")
            i = end
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    return re.fullmatch("".join(out), text) is not None


def _row_matches(row: dict, filters: dict[str, list[str]], times: dict[str, float]) -> bool:
    if "dangling" in filters:
        dangling = row["Repository"] == "<none>" and row["Tag"] == "<none>"
        if dangling != (filters["dangling"][-1] in ("true", "1")):
            return False
    for want in filters.get("label", []):
        k, sep, v = want.partition("=")
        if k not in row["_labels"] or (sep and row["_labels"][k] != v):
            return False
    if "before" in filters and not row["_created"] < times["before"]:
        return False
    if "since" in filters and not row["_created"] > times["since"]:
        return False
    if "reference" in filters:
        names = [f"{row['Repository']}:{row['Tag']}", row["Repository"]] if row["Repository"] != "<none>" else []
        if not any(_go_path_match(p, n) for p in filters["reference"] for n in names):
            return False
    return True


def _filter_times(b: Backend, filters: dict[str, list[str]]) -> dict[str, float]:
    """before/since name an image: its created time (the last value given wins, as dockerd)."""
    times = {}
    for key in ("before", "since"):
        for value in filters.get(key, []):
            image = b.find_image(value)
            if image is None:
                shown = value if (":" in value.rsplit("/", 1)[-1] or "@" in value) else value + ":latest"
                raise CLIError(f"Error response from daemon: No such image: {shown}")
            times[key] = parse_time((b.image_config(image["name"]).get("config") or {}).get("created"))
    return times


def list_images(b: Backend, args) -> None:
    filters = parse_filters(args.filter or [])
    times = _filter_times(b, filters)
    images = b.images()
    if args.reference:
        want = args.reference
        images = [im for im in images if _matches(im["name"], want)]
    rows = [r for r in image_rows(b, images, args.no_trunc, args.digests) if _row_matches(r, filters, times)]
    if args.quiet:
        seen = []
        for r in rows:
            if r["ID"] not in seen:
                seen.append(r["ID"])
        sys.stdout.write("".join(i + "\n" for i in seen))
        return
    fmt = args.format or ("table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
                          if args.digests else
                          "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}")
    clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    from .formatting import print_rows

    print_rows(fmt, clean, IMAGE_HEADERS, sys.stdout.write)


def _matches(name: str, want: str) -> bool:
    from pyoci import reference

    try:
        r = reference.parse_normalized_named(name)
        w = reference.parse_normalized_named(want)
    except OCIError:
        return False
    return r.name == w.name and (w.tag is None or w.tag == r.tag)


def tag(b: Backend, source: str, target: str) -> None:
    image = b.find_image(source)
    if image is None:
        raise CLIError(f"Error response from daemon: No such image: {source}")
    name = normalize(target)
    record = {"name": name, "target": image["target"], "labels": image.get("labels") or {}}
    try:
        b.call("Images", "Create", {"image": record})
    except errdefs.AlreadyExists:
        b.call("Images", "Update", {"image": record, "update_mask": ["target"]})


def rmi(b: Backend, refs: list[str], force: bool = False) -> int:
    status = 0
    for ref in refs:
        image = b.find_image(ref)
        if image is None:
            print(f"Error: No such image: {ref}", file=sys.stderr)
            status = 1
            continue
        image_id = b.image_id(image["name"])
        by_id = ref.startswith("sha256:") or image_id.split(":", 1)[1].startswith(ref)
        names = [im["name"] for im in b.images() if im["target"]["digest"] == image["target"]["digest"]] \
            if by_id else [image["name"]]
        if not force:
            users = [c for c in b.call("Containers", "List").get("containers", []) if c.get("image") in names]
            if users:
                print(f"Error response from daemon: conflict: unable to remove repository reference \"{ref}\" "
                      f"(must force) - container {users[0]['id'][:12]} is using its referenced image "
                      f"{_short(image_id)}", file=sys.stderr)
                status = 1
                continue
            if by_id and len(names) > 1:
                print(f"Error response from daemon: conflict: unable to delete {_short(image_id)} (must be forced) - "
                      "image is referenced in multiple repositories", file=sys.stderr)
                status = 1
                continue
        remaining = [im for im in b.images() if im["target"]["digest"] == image["target"]["digest"]
                     and im["name"] not in names]
        for n in names:
            b.call("Images", "Delete", {"name": n, "sync": not remaining and n == names[-1]})
            print(f"Untagged: {familiar(n)}")
        if not remaining:
            print(f"Deleted: {image_id}")
    return status


def save(b: Backend, refs: list[str], output: str | None) -> None:
    names = []
    for ref in refs:
        image = b.find_image(ref)
        if image is None:
            raise CLIError(f"Error response from daemon: reference does not exist: {ref}" if ":" in ref else
                           f"Error response from daemon: No such image: {ref}")
        names.append(image["name"])
    if output is None and sys.stdout.isatty():
        raise CLIError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    sink = open(output + ".tmp", "wb") if output else sys.stdout.buffer
    try:
        for frame in b.client.stream("Images", "Export", {"names": names, "format": "docker"}):
            if frame.get("data"):
                sink.write(protocol.b64decode(frame["data"]))
    except errdefs.Error as exc:
        if output:
            sink.close()
            os.unlink(output + ".tmp")
        raise daemon_error(exc) from None
    if output:
        sink.close()
        os.replace(output + ".tmp", output)
    else:
        sink.flush()


def load(b: Backend, input_path: str | None, quiet: bool = False) -> None:
    src = open(input_path, "rb") if input_path else sys.stdin.buffer
    if not input_path and sys.stdin.isatty():
        raise CLIError("Error: requested load from stdin, but stdin is empty")
    try:
        call = b.client.duplex("Images", "Import", {"base_name": "", "unpack": True})
        while chunk := src.read(CHUNK):
            call.send_data(chunk)
        call.close_send()
        result = call.result()
    except errdefs.Error as exc:
        raise daemon_error(exc) from None
    finally:
        if input_path:
            src.close()
    for image in result.get("images", []):
        name = image["name"]
        if "@" in name:
            print(f"Loaded image ID: {b.image_id(name)}")
        else:
            print(f"Loaded image: {familiar(name)}")


def import_rootfs(b: Backend, source: str, repo: str | None, message: str = "", changes: list[str] = ()) -> None:
    """docker import: a rootfs tarball (file or `-`) as a one-layer image, uncompressed as docker stores it."""
    import gzip
    import hashlib
    import json

    from pyoci import mediatypes as mt

    data = sys.stdin.buffer.read() if source == "-" else open(source, "rb").read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    layer_digest = "sha256:" + hashlib.sha256(data).hexdigest()
    created = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())
    cfg: dict = {}
    for change in changes:
        key, _, value = change.partition(" ")
        if key.upper() in ("CMD", "ENTRYPOINT"):
            try:
                parsed = json.loads(value)
            except ValueError:
                parsed = ["/bin/sh", "-c", value]
            cfg["Cmd" if key.upper() == "CMD" else "Entrypoint"] = parsed
        elif key.upper() == "ENV":
            cfg.setdefault("Env", []).append(value.replace(" ", "=", 1) if "=" not in value else value)
        elif key.upper() == "WORKDIR":
            cfg["WorkingDir"] = value
    config = {"architecture": _arch(), "os": "linux", "created": created, "config": cfg,
              "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
              "history": [{"created": created, "created_by": "", "comment": message or "Imported from " + source}]}
    config_bytes = json.dumps(config, separators=(",", ":")).encode()
    with b.lease() as lease:  # the blobs are nobody's until the image record names the manifest
        config_desc = _write_blob(b, config_bytes, mt.OCI_CONFIG, lease)
        layer_desc = _write_blob(b, data, mt.OCI_LAYER, lease)
        manifest = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": config_desc, "layers": [layer_desc]}
        manifest_desc = _write_blob(b, json.dumps(manifest, separators=(",", ":")).encode(), mt.OCI_MANIFEST, lease,
                                    refs=[config_desc["digest"], layer_desc["digest"]])
        name = normalize(repo) if repo else f"import-{time.strftime('%Y-%m-%d')}@{manifest_desc['digest']}"
        record = {"name": name, "target": manifest_desc}
        try:
            b.call("Images", "Create", {"image": record})
        except errdefs.AlreadyExists:
            b.call("Images", "Update", {"image": record, "update_mask": ["target"]})
    b.call("Images", "Unpack", {"name": name})
    print(config_desc["digest"])


def _arch() -> str:
    from pyoci import platform as platforms
    return platforms.default().architecture


def _write_blob(b: Backend, data: bytes, media_type: str, lease: str, refs: list[str] = ()) -> dict:
    import hashlib

    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    labels = {f"containerd.io/gc.ref.content.{i}": d for i, d in enumerate(refs)}
    b.call("Leases", "AddResource", {"id": lease, "resource": {"id": digest, "type": "content"}})
    call = b.client.duplex("Content", "Write", {"ref": f"pyctr-import-{digest}", "expected": digest,
                                                "total": len(data), "labels": labels, "lease": lease})
    view = memoryview(data)
    for off in range(0, len(data), CHUNK):
        call.send_data(bytes(view[off:off + CHUNK]))
    call.close_send()
    try:
        call.result()
    except errdefs.AlreadyExists:
        pass
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def prune(b: Backend, all_images: bool) -> list[str]:
    """image prune: with -a, images no container uses (containerd has no dangling images)."""
    deleted: list[str] = []
    if not all_images:
        return deleted
    used = {c.get("image") for c in b.call("Containers", "List").get("containers", [])}
    for im in b.images():
        if im["name"] not in used:
            try:
                image_id = b.image_id(im["name"])
            except errdefs.Error:
                image_id = im["target"]["digest"]
            b.call("Images", "Delete", {"name": im["name"]})
            deleted.append(f"untagged: {familiar(im['name'])}")
            deleted.append(f"deleted: {image_id}")
    return deleted
