"""info, version, and the prunes."""

from __future__ import annotations

import os
import sys

from .. import errdefs, protocol
from .errors import CLIError

# `version` imports nothing more (no platform module: os.uname and sys.version say the same); the other
# verbs import what they use where they use it
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..client import Client
    from .backend import Backend

CLIENT_VERSION = "20.10.24-pyctr"
API_VERSION = "1.41"


def version(b: Backend | Client | None, fmt: str, error: Exception | None = None) -> dict:
    client = {"Platform": {"Name": ""}, "Version": CLIENT_VERSION, "ApiVersion": API_VERSION,
              "GoVersion": "python" + sys.version.split()[0], "GitCommit": "", "Os": "linux",
              "Arch": _goarch(), "Context": "default", "Experimental": True}
    server = None
    if b is not None:
        v = b.call("Version", "Version")
        server = {"Platform": {"Name": "pycontainerd"},
                  "Components": [{"Name": "pycontainerd", "Version": v.get("version", ""),
                                  "Details": {"GitCommit": v.get("revision", ""),
                                              "Protocol": str(v.get("protocol", ""))}}],
                  "Version": v.get("version", ""), "ApiVersion": API_VERSION, "Os": "linux", "Arch": _goarch(),
                  "KernelVersion": os.uname().release}
    doc = {"Client": client, "Server": server}
    if fmt:
        from .formatting import render

        sys.stdout.write(render(fmt, doc) + "\n")
        return doc
    out = ["Client:", f" Version:           {client['Version']}", f" API version:       {API_VERSION}",
           f" Go version:        {client['GoVersion']}", f" OS/Arch:           linux/{client['Arch']}",
           " Context:           default", " Experimental:      true"]
    if server is not None:
        out += ["", "Server: pycontainerd", " Engine:", f"  Version:          {server['Version']}",
                f"  API version:      {API_VERSION}", f"  OS/Arch:          linux/{server['Arch']}",
                f"  Kernel Version:   {server['KernelVersion']}",
                " pycontainerd:", f"  Version:          {server['Version']}",
                f"  GitCommit:        {server['Components'][0]['Details']['GitCommit']}"]
    sys.stdout.write("\n".join(out) + "\n")
    return doc


def _goarch() -> str:
    m = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(m, m)


def info(b: Backend, fmt: str) -> None:
    import platform

    i = b.info()
    views = b.containers()
    running = sum(1 for c in views if c.status == "running")
    paused = sum(1 for c in views if c.status == "paused")
    doc = {"ID": "", "Containers": len(views), "ContainersRunning": running, "ContainersPaused": paused,
           "ContainersStopped": len(views) - running - paused, "Images": i.get("images", 0),
           "Driver": i.get("snapshotter", ""), "DockerRootDir": i.get("root", ""),
           "ExecRoot": i.get("state", ""), "KernelVersion": i.get("kernel", ""), "OperatingSystem": platform.system(),
           "OSType": i.get("os", "linux"), "Architecture": i.get("arch", ""), "NCPU": i.get("cpus", 0),
           "ServerVersion": i.get("version", ""), "DefaultRuntime": "runc",
           "Runtimes": {"runc": {"path": i.get("runtime", "")}}, "LoggingDriver": "json-file",
           "CgroupDriver": "cgroupfs", "Name": platform.node(), "Namespace": b.namespace,
           "Address": protocol.address_url(i.get("address", ""))}
    if fmt:
        from .formatting import render

        sys.stdout.write(render(fmt, doc) + "\n")
        return
    lines = ["Client:", " Context:    default", " Debug Mode: false", "", "Server:",
             f" Containers: {doc['Containers']}", f"  Running: {running}", f"  Paused: {paused}",
             f"  Stopped: {doc['ContainersStopped']}", f" Images: {doc['Images']}",
             f" Server Version: {doc['ServerVersion']}", f" Storage Driver: {doc['Driver']}",
             " Logging Driver: json-file", " Cgroup Driver: cgroupfs", " Runtimes: runc",
             " Default Runtime: runc", f" Runtime Path: {i.get('runtime', '')}",
             f" Kernel Version: {doc['KernelVersion']}", f" OSType: {doc['OSType']}",
             f" Architecture: {doc['Architecture']}", f" CPUs: {doc['NCPU']}", f" Name: {doc['Name']}",
             f" Namespace: {b.namespace}", f" Docker Root Dir: {doc['DockerRootDir']}",
             f" Exec Root: {doc['ExecRoot']}", f" Address: {doc['Address']}"]
    sys.stdout.write("\n".join(lines) + "\n")


def confirm(message: str, force: bool) -> bool:
    if force:
        return True
    sys.stdout.write(message + "\nAre you sure you want to continue? [y/N] ")
    sys.stdout.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def container_prune(b: Backend, force: bool) -> None:
    from .containers import prune as prune_containers
    from .humanize import human_size

    if not confirm("WARNING! This will remove all stopped containers.", force):
        return
    deleted = prune_containers(b)
    freed = b.call("System", "GC").get("bytes_freed", 0)
    if deleted:
        sys.stdout.write("Deleted Containers:\n" + "".join(d + "\n" for d in deleted) + "\n")
    sys.stdout.write(f"Total reclaimed space: {human_size(freed)}\n")


def image_prune(b: Backend, force: bool, all_: bool) -> None:
    from .humanize import human_size
    from .images import prune as prune_images

    msg = ("WARNING! This will remove all images without at least one container associated to them." if all_
           else "WARNING! This will remove all dangling images.")
    if not confirm(msg, force):
        return
    deleted = prune_images(b, all_)
    freed = b.call("System", "GC").get("bytes_freed", 0)
    if deleted:
        sys.stdout.write("Deleted Images:\n" + "".join(d + "\n" for d in deleted) + "\n")
    sys.stdout.write(f"Total reclaimed space: {human_size(freed)}\n")


def system_prune(b: Backend, force: bool, all_: bool) -> None:
    from .containers import prune as prune_containers
    from .humanize import human_size
    from .images import prune as prune_images

    msg = ("WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one "
           "container\n  - " + ("all images without at least one container associated to them"
                                 if all_ else "all dangling images") + "\n  - all build cache\n")
    if not confirm(msg, force):
        return
    containers = prune_containers(b)
    images = prune_images(b, all_)
    try:
        freed = b.call("System", "GC").get("bytes_freed", 0)
    except errdefs.Error as exc:
        raise CLIError(f"Error response from daemon: {exc}") from None
    if containers:
        sys.stdout.write("Deleted Containers:\n" + "".join(d + "\n" for d in containers) + "\n")
    if images:
        sys.stdout.write("Deleted Images:\n" + "".join(d + "\n" for d in images) + "\n")
    sys.stdout.write(f"Total reclaimed space: {human_size(freed)}\n")
