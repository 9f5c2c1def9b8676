"""pyctr's `network …`, `volume …` and `port` verbs over the daemon's Networks and Volumes services,
with docker's output: full ids/names on create, tables for ls, JSON arrays for inspect."""

from __future__ import annotations

import json
import sys

from .. import errdefs
from .backend import Backend, CLIError, ContainerView
from .formatting import render


def _labels(items: list[str]) -> dict[str, str]:
    return dict((i.split("=", 1) + [""])[:2] for i in items)


def _table(rows: list[list[str]], header: list[str]) -> None:
    """docker's tabwriter: columns padded to the widest cell plus 3 spaces."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def _print_formatted(docs: list[dict], fmt: str) -> None:
    for d in docs:
        print(json.dumps(d) if fmt == "json" or fmt == "{{json .}}" else render(fmt, d))


def _daemon(exc: errdefs.Error) -> CLIError:
    return CLIError(f"Error response from daemon: {exc}")


# -- networks ------------------------------------------------------------------------------------

def network_create(b: Backend, name: str, driver: str, subnet: list[str] | str, gateway: list[str] | str,
                   internal: bool, labels: list[str], options: list[str], ip_range: list[str] | str = (),
                   ipv6: bool = False, aux_addresses: list[str] = ()) -> None:
    from ..network.ipam import PoolError, pools

    as_list = lambda v: [v] if isinstance(v, str) and v else list(v or [])  # noqa: E731
    subnet, gateway, ip_range = as_list(subnet), as_list(gateway), as_list(ip_range)
    aux = {}
    for item in aux_addresses:
        key, sep, value = item.partition("=")
        if not sep:
            raise CLIError(f'invalid argument "{item}" for "--aux-address" flag: bad format for key-value pair', 125)
        aux[key] = value
    try:  # the docker CLI's own checks (its errors carry no daemon prefix)
        pools(subnet, gateway, ip_range, aux)
    except PoolError as exc:
        raise CLIError(str(exc), 1) from None
    except errdefs.Error:
        pass  # the daemon words the rest
    try:
        doc = b.call("Networks", "Create", {"name": name, "driver": driver or "bridge", "subnet": subnet,
                                            "gateway": gateway, "ip_range": ip_range, "ipv6": ipv6,
                                            "aux_addresses": aux,
                                            "internal": internal, "labels": _labels(labels),
                                            "options": _labels(options)})["network"]
    except errdefs.Error as exc:
        raise _daemon(exc) from None
    print(doc["Id"])


def network_ls(b: Backend, quiet: bool, no_trunc: bool, fmt: str) -> None:
    docs = sorted(b.call("Networks", "List")["networks"], key=lambda d: d["Name"])
    if quiet:
        for d in docs:
            print(d["Id"] if no_trunc else d["Id"][:12])
        return
    if fmt:
        _print_formatted([{"ID": d["Id"] if no_trunc else d["Id"][:12], "Name": d["Name"], "Driver": d["Driver"],
                           "Scope": d.get("Scope", "local")} for d in docs], fmt)
        return
    _table([[d["Id"] if no_trunc else d["Id"][:12], d["Name"], d["Driver"], d.get("Scope", "local")] for d in docs],
           ["NETWORK ID", "NAME", "DRIVER", "SCOPE"])


def network_inspect(b: Backend, names: list[str], fmt: str) -> int:
    return _inspect(b, "Networks", "network", names, fmt)


def _inspect(b: Backend, service: str, kind: str, names: list[str], fmt: str) -> int:
    """`network inspect` / `volume inspect`: the found ones printed, one error line per missing name (exit 1)."""
    docs, status = [], 0
    for n in names:
        try:
            docs.append(b.call(service, "Inspect", {"name": n})[kind])
        except errdefs.NotFound:
            print(f"Error: No such {kind}: {n}", file=sys.stderr)
            status = 1
    if fmt:
        _print_formatted(docs, fmt)
    else:
        print(json.dumps(docs, indent=4))
    return status


def network_rm(b: Backend, names: list[str]) -> int:
    status = 0
    for n in names:
        try:
            b.call("Networks", "Remove", {"name": n})
            print(n)
        except errdefs.Error as exc:
            print(f"Error response from daemon: {exc}", file=sys.stderr)
            status = 1
    return status


def network_prune(b: Backend, force: bool) -> None:
    if not force:
        print("WARNING! This will remove all custom networks not used by at least one container.")
    removed = b.call("Networks", "Prune").get("removed") or []
    if removed:
        print("Deleted Networks:")
        for n in removed:
            print(n)


def _endpoints(c: ContainerView) -> dict:
    return dict(((c.docker.get("NetworkingConfig") or {}).get("EndpointsConfig")) or {})


def _save_endpoints(b: Backend, c: ContainerView, endpoints: dict) -> None:
    """NetworkingConfig.EndpointsConfig in the container's docker document: what the daemon attaches at
    every start (docker keeps a connected network across restarts, and connects a stopped container so)."""
    from .backend import DOCKER_EXT

    docker = dict(c.docker)
    docker["NetworkingConfig"] = {**(docker.get("NetworkingConfig") or {}), "EndpointsConfig": endpoints}
    b.call("Containers", "Update", {"container": {"id": c.id, "extensions": {DOCKER_EXT: docker}},
                                    "update_mask": [f"extensions.{DOCKER_EXT}"]})


def network_connect(b: Backend, network: str, ref: str, aliases: list[str], ip: str = "", ip6: str = "") -> None:
    """Connected now when running, and in any case recorded for the container's next starts."""
    from ..network.container import check_flags

    c = b.container(ref, daemon_wording=True)
    mode = (c.docker.get("HostConfig") or {}).get("NetworkMode") or ""
    if mode.startswith("container:") or mode == "host":
        raise CLIError("Error response from daemon: container sharing network namespace with another container or "
                       "host cannot be connected to any other network")
    try:
        check_flags(network, ipv4_address=ip, ipv6_address=ip6)
        name = b.call("Networks", "Inspect", {"name": network})["network"]["Name"]
        if c.running:
            b.call("Networks", "Connect", {"network": name, "container_id": c.id, "name": c.name,
                                           "aliases": aliases, "ipv4_address": ip, "ipv6_address": ip6})
    except errdefs.Error as exc:
        raise _daemon(exc) from None
    endpoints = _endpoints(c)
    ipam_cfg = {k: v for k, v in (("IPv4Address", ip), ("IPv6Address", ip6)) if v}
    endpoints[name] = {"Aliases": list(aliases) or None, **({"IPAMConfig": ipam_cfg} if ipam_cfg else {})}
    _save_endpoints(b, c, endpoints)


def network_disconnect(b: Backend, network: str, ref: str) -> None:
    c = b.container(ref, daemon_wording=True)
    try:
        name = b.call("Networks", "Inspect", {"name": network})["network"]["Name"]
        if c.running:
            b.call("Networks", "Disconnect", {"network": name, "container_id": c.id})
    except errdefs.Error as exc:
        raise _daemon(exc) from None
    endpoints = _endpoints(c)
    mode = (c.docker.get("HostConfig") or {}).get("NetworkMode") or "default"
    own = "bridge" if mode == "default" else mode
    if name in endpoints and name != own:
        del endpoints[name]
        _save_endpoints(b, c, endpoints)
    elif not c.running and name != own:
        raise CLIError(f"Error response from daemon: container {c.id} is not connected to the network {name}")


# -- volumes -------------------------------------------------------------------------------------

def volume_create(b: Backend, name: str, driver: str, labels: list[str], options: list[str]) -> None:
    try:
        doc = b.call("Volumes", "Create", {"name": name, "driver": driver or "local", "labels": _labels(labels),
                                           "options": _labels(options)})["volume"]
    except errdefs.Error as exc:
        raise _daemon(exc) from None
    print(doc["Name"])


def volume_ls(b: Backend, quiet: bool, filters: list[str], fmt: str) -> None:
    f = dict((x.split("=", 1) + [""])[:2] for x in filters)
    docs = b.call("Volumes", "List", {"filters": f})["volumes"]
    if quiet:
        for d in docs:
            print(d["Name"])
        return
    if fmt:
        _print_formatted([{"Driver": d["Driver"], "Name": d["Name"], "Mountpoint": d["Mountpoint"],
                           "Scope": d.get("Scope", "local")} for d in docs], fmt)
        return
    _table([[d["Driver"], d["Name"]] for d in docs], ["DRIVER", "VOLUME NAME"])


def volume_inspect(b: Backend, names: list[str], fmt: str) -> int:
    return _inspect(b, "Volumes", "volume", names, fmt)


def volume_rm(b: Backend, names: list[str], force: bool) -> int:
    status = 0
    for n in names:
        try:
            b.call("Volumes", "Remove", {"name": n, "force": force})
            print(n)
        except errdefs.Error as exc:
            print(f"Error response from daemon: {exc}", file=sys.stderr)
            status = 1
    return status


def volume_prune(b: Backend, force: bool, all_: bool) -> None:
    if not force:
        print("WARNING! This will remove all local volumes not used by at least one container.")
    r = b.call("Volumes", "Prune", {"all": all_})
    if r.get("removed"):
        print("Deleted Volumes:")
        for n in r["removed"]:
            print(n)
        print()
    from .humanize import human_size
    print(f"Total reclaimed space: {human_size(int(r.get('reclaimed') or 0))}")


# -- containers ----------------------------------------------------------------------------------

def settings(b: Backend, c: ContainerView) -> dict | None:
    """Networks.Settings of a running container (None when the daemon has no Networks service)."""
    if not c.running:
        return None
    try:
        return b.call("Networks", "Settings", {"container_id": c.id})["settings"]
    except (errdefs.NotFound, errdefs.Unimplemented):
        return None


def mounts(b: Backend, c: ContainerView) -> list[dict]:
    try:
        return b.call("Volumes", "Mounts", {"container_id": c.id}).get("mounts") or []
    except (errdefs.NotFound, errdefs.Unimplemented):
        return []


def release_volumes(b: Backend, cid: str) -> None:
    """`rm -v`: the container's anonymous volumes go with it."""
    try:
        b.call("Volumes", "Release", {"container_id": cid, "remove_anonymous": True})
    except (errdefs.NotFound, errdefs.Unimplemented):
        pass


def port(b: Backend, ref: str, spec: str) -> None:
    c = b.container(ref, daemon_wording=True)
    s = settings(b, c) or {}
    ports = s.get("Ports") or {}
    if spec:
        key = spec if "/" in spec else f"{spec}/tcp"
        bindings = ports.get(key)
        if not bindings:
            raise CLIError(f"Error: No public port '{key}' published for {ref}")
        for bd in bindings:
            print(f"{bd.get('HostIp') or '0.0.0.0'}:{bd['HostPort']}")
        return
    for key in sorted(ports, key=lambda k: (int(k.split("/")[0]), k)):
        for bd in ports[key] or []:
            print(f"{key} -> {bd.get('HostIp') or '0.0.0.0'}:{bd['HostPort']}")
