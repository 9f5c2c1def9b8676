"""docker inspect's JSON shapes for containers and images, built from the records."""

from __future__ import annotations

import json
import os
import stat
import sys

from pyoci import reference
from pyoci.errors import OCIError

from .. import errdefs
from . import netvol
from .backend import Backend, CLIError, ContainerView
from .formatting import render
from .humanize import rfc3339nano

ZERO_TIME = "0001-01-01T00:00:00Z"


def _no_network() -> dict:
    return {"Bridge": "", "SandboxID": "", "HairpinMode": False, "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0, "Ports": {}, "SandboxKey": "", "SecondaryIPAddresses": None,
            "SecondaryIPv6Addresses": None, "EndpointID": "", "Gateway": "", "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0, "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
            "Networks": {}}


def container_json(b: Backend, c: ContainerView) -> dict:
    d = c.docker
    st = c.status
    state = c.saved_state
    task = c.task or {}
    root = b.info().get("root", "")
    log_path = f"{root}/containers/{b.namespace}/{c.id}/{c.id}-json.log" if root else ""
    spec = c.record.get("spec") or {}
    args = list(spec.get("process", {}).get("args") or [])
    return {
        "Id": c.id,
        "Created": d.get("Created") or c.record.get("created_at", ""),
        "Path": d.get("Path", args[0] if args else ""),
        "Args": d.get("Args", args[1:]),
        "State": {"Status": st, "Running": st in ("running", "paused"), "Paused": st == "paused",
                  "Restarting": bool(state.get("Restarting")) and st != "running", "OOMKilled": bool(task.get("oom_killed")), "Dead": False, "Pid": c.pid,
                  "ExitCode": c.exit_code if st == "exited" or state.get("Error") else 0,
                  "Error": state.get("Error", ""),
                  "StartedAt": rfc3339nano(c.started_at) if c.started_at else ZERO_TIME,
                  "FinishedAt": rfc3339nano(c.finished_at) if c.finished_at and st == "exited" else ZERO_TIME,
                  **({"Health": c.health} if c.health else {})},
        "Image": d.get("ImageID", ""),
        "ResolvConfPath": "", "HostnamePath": "", "HostsPath": "",
        "LogPath": log_path,
        "Name": "/" + c.name,
        "RestartCount": int(state.get("RestartCount") or 0),
        "Driver": c.record.get("snapshotter") or "overlayfs",
        "Platform": "linux", "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "",
        "ExecIDs": [e.get("id") if isinstance(e, dict) else str(e) for e in task.get("execs") or []] or None,
        "HostConfig": d.get("HostConfig") or {},
        "GraphDriver": {"Data": None, "Name": c.record.get("snapshotter") or "overlayfs"},
        "Mounts": netvol.mounts(b, c),
        "Config": d.get("Config") or {},
        "NetworkSettings": netvol.settings(b, c) or _no_network(),
    }


def directory_size(root: str) -> int:
    """docker's directory.Size: apparent sizes of everything but directories, a hard link counted once."""
    total, seen = 0, set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode) or st.st_size == 0 or st.st_ino in seen:
                continue
            seen.add(st.st_ino)
            total += st.st_size
    return total


def container_sizes(b: Backend, c: ContainerView) -> tuple[int, int]:
    """(SizeRw, SizeRootFs): the container's own layer (the overlay upper dir, or the whole copy of a native
    snapshot, as docker's vfs) and that plus its image's unpacked size."""
    rw = 0
    try:
        mounts = b.call("Snapshots", "Mounts", {"key": c.record.get("snapshot_key") or c.id}).get("mounts") or []
    except errdefs.Error:
        mounts = []
    for m in mounts:
        upper = next((o.split("=", 1)[1] for o in m.get("options") or [] if o.startswith("upperdir=")), None)
        path = upper or (m.get("source") if m.get("type") == "bind" else None)
        if path:
            rw += directory_size(path)
    try:
        image = b.unpacked_size(b.image_config(c.record.get("image", "")).get("chain_id", ""))
    except (errdefs.Error, KeyError):
        image = 0
    return rw, rw + image


def image_json(b: Backend, image: dict) -> dict:
    cfg = b.image_config(image["name"])
    blob = cfg.get("config") or {}
    target = image["target"]["digest"]
    same = [im["name"] for im in b.images() if im["target"]["digest"] == target]
    tags, digests = [], []
    for n in same:
        try:
            r = reference.parse_normalized_named(n)
        except OCIError:
            continue
        if r.tag:
            tags.append(r.familiar)
        digests.append(f"{r.familiar_name}@{target}")
    c = blob.get("config") or {}
    config = {"Hostname": "", "Domainname": "", "User": c.get("User", ""), "AttachStdin": False,
              "AttachStdout": False, "AttachStderr": False, "ExposedPorts": c.get("ExposedPorts"), "Tty": False,
              "OpenStdin": False, "StdinOnce": False, "Env": c.get("Env"), "Cmd": c.get("Cmd"),
              **({"Healthcheck": c["Healthcheck"]} if c.get("Healthcheck") else {}), "Image": "",
              "Volumes": c.get("Volumes"), "WorkingDir": c.get("WorkingDir", ""), "Entrypoint": c.get("Entrypoint"),
              "OnBuild": c.get("OnBuild"), "Labels": c.get("Labels")}
    if config["ExposedPorts"] is None:
        del config["ExposedPorts"]
    if c.get("StopSignal"):
        config["StopSignal"] = c["StopSignal"]
    size = b.unpacked_size(cfg.get("chain_id", "")) or cfg.get("size") or image.get("size") or 0
    return {
        "Id": cfg["manifest"]["config"]["digest"],
        "RepoTags": sorted(set(tags)),
        "RepoDigests": sorted(set(digests)),
        "Parent": "", "Comment": "", "Created": blob.get("created", ZERO_TIME), "Container": "",
        "ContainerConfig": {k: v for k, v in config.items()}, "DockerVersion": "", "Author": blob.get("author", ""),
        "Config": config, "Architecture": blob.get("architecture", ""),
        **({"Variant": blob["variant"]} if blob.get("variant") else {}), "Os": blob.get("os", ""),
        "Size": size, "VirtualSize": size,
        "GraphDriver": {"Data": None, "Name": b.info().get("snapshotter", "overlayfs")},
        "RootFS": {"Type": (blob.get("rootfs") or {}).get("type", "layers"),
                   "Layers": list((blob.get("rootfs") or {}).get("diff_ids") or [])},
        "Metadata": {"LastTagTime": image.get("updated_at") or ZERO_TIME},
    }


def inspect(b: Backend, refs: list[str], kind: str = "", fmt: str = "", size: bool = False) -> int:
    """docker inspect: containers first, then images (or only `kind`); unknown names after the output."""
    out, missing = [], []
    for ref in refs:
        obj = None
        if kind in ("", "container"):
            record = b.find_record(ref)
            if record is not None:
                view = ContainerView(record, b.task(record["id"]))
                obj = container_json(b, view)
                if size:  # docker's order: right after GraphDriver
                    rw, rootfs = container_sizes(b, view)
                    obj = {k2: v2 for k, v in obj.items()
                           for k2, v2 in ([(k, v), ("SizeRw", rw), ("SizeRootFs", rootfs)]
                                          if k == "GraphDriver" else [(k, v)])}
        if obj is None and kind in ("", "image"):
            image = b.find_image(ref)
            if image is not None:
                obj = image_json(b, image)
        if obj is None:
            missing.append(ref)
        else:
            out.append(obj)
    if fmt:
        for obj in out:
            sys.stdout.write(render(fmt, obj, inspect=True) + "\n")
    else:
        sys.stdout.write(json.dumps(out, indent=4) + "\n")
    sys.stdout.flush()
    if missing:
        what = {"container": "container", "image": "image"}.get(kind, "object")
        raise CLIError("\n".join(f"Error: No such {what}: {m}" for m in missing))
    return 0
