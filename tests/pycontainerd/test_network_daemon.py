"""pycontainerd with network.service registered: tasks of pyctr-style containers get networks and
volumes, lose them when deleted, and after a daemon restart only the dead ones lose them.

The real daemon (daemon.load_services registers network.service) with the fixture's test-private
bridge and 10.X/16 (--bridge/--bip/--default-address-pool), so it never touches a real pyctr0.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pycontainerd import errdefs, ocispec
from pycontainerd.network import container as netcontainer
from tests.pycontainerd.daemon_fixture import running_daemon
from tests.support import free_port, require

def iptables_rules() -> str:
    return subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def netdaemon(tmp_path: Path):
    runc = require("runc")
    with running_daemon(tmp_path, runtime=runc) as handle:
        net = f"10.{handle.subnet_octet}."
        yield handle
        # whatever the test left, even with the daemon dead mid-test: the fixture's purge
        # (endpoints, netns, networks, the bridge) must leave nothing
        handle.stop()
        runtime_dir = Path(handle.state) / "runtime"
        for ns_root in (runtime_dir.iterdir() if runtime_dir.is_dir() else []):
            ids = subprocess.run([runc, "--root", str(ns_root), "list", "-q"], capture_output=True,
                                 text=True).stdout.split()
            for cid in ids:
                subprocess.run([runc, "--root", str(ns_root), "delete", "-f", cid], capture_output=True)
        handle.purge_network()
    rules = iptables_rules()
    assert net not in rules, [line for line in rules.splitlines() if net in line]
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    assert handle.bridge not in links


def make_container(client, cid: str, rootfs: Path, args: list[str], docker: dict, name: str) -> None:
    spec = ocispec.default_spec("default", cid)
    spec["process"]["args"] = args
    spec["process"]["env"] = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
    spec["process"]["terminal"] = False
    spec["root"] = {"path": str(rootfs), "readonly": False}
    spec["hostname"] = cid[:12]
    client.call("Containers", "Create", {"container": {
        "id": cid, "image": "", "spec": spec, "labels": {"nerdctl/name": name},
        "extensions": {"pyctr/docker": docker}}})


def run_task(client, cid: str) -> int:
    pid = client.call("Tasks", "Create", {"container_id": cid})["pid"]
    client.call("Tasks", "Start", {"container_id": cid})
    return pid


def curl(url: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "--max-time", "5", "--retry", "30", "--retry-connrefused", "--retry-delay",
                           "0", url], capture_output=True, text=True)


def test_daemon_networks_tasks_and_volumes(netdaemon, tmp_path: Path, busybox_rootfs: Path) -> None:
    require("curl")
    c = netdaemon.client
    (busybox_rootfs / "www").mkdir()
    (busybox_rootfs / "www" / "index.html").write_text("seeded from the image\n")
    net = c.call("Networks", "Create", {"name": f"pytest-{secrets.token_hex(3)}"})["network"]
    port = free_port()
    bindings, exposed = netcontainer.port_bindings(
        __import__("pycontainerd.network", fromlist=["parse_publish"]).parse_publish([f"{port}:80"]))
    web_id, cli_id = secrets.token_hex(32), secrets.token_hex(32)
    make_container(c, web_id, busybox_rootfs, ["httpd", "-f", "-p", "80", "-h", "/www"], {
        "Config": {"ExposedPorts": exposed, "Volumes": {"/cache": {}}},
        "HostConfig": {"NetworkMode": net["Name"], "PortBindings": bindings, "Binds": ["pytest-www:/www"]},
        "NetworkingConfig": {"EndpointsConfig": {net["Name"]: {"Aliases": ["site"]}}}}, "web")
    run_task(c, web_id)
    assert curl(f"http://127.0.0.1:{port}/").stdout == "seeded from the image\n"
    settings = c.call("Networks", "Settings", {"container_id": web_id})["settings"]
    assert settings["Ports"] == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)}]}
    web_ip = settings["Networks"][net["Name"]]["IPAddress"]
    assert web_ip.startswith(f"10.{netdaemon.subnet_octet}.")
    vols = {v["Name"]: v for v in c.call("Volumes", "List", {})["volumes"]}
    assert "pytest-www" in vols and len(vols) == 2  # the named one and /cache's anonymous one
    assert c.call("Volumes", "Users", {"name": "pytest-www"})["containers"] == [web_id]
    used = c.call("Volumes", "UsedBy", {"container_id": web_id})["volumes"]
    assert "pytest-www" in used and len(used) == 2
    mounts = {m["Destination"]: m for m in c.call("Volumes", "Mounts", {"container_id": web_id})["mounts"]}
    assert mounts["/www"]["Name"] == "pytest-www" and mounts["/www"]["RW"] is True
    assert mounts["/cache"]["Type"] == "volume" and len(mounts["/cache"]["Name"]) == 64
    with pytest.raises(errdefs.FailedPrecondition, match="volume is in use"):
        c.call("Volumes", "Remove", {"name": "pytest-www"})
    with pytest.raises(errdefs.FailedPrecondition, match="has active endpoints"):
        c.call("Networks", "Remove", {"name": net["Name"]})
    # a client container on the same network finds the server by name and alias
    make_container(c, cli_id, busybox_rootfs, ["sh", "-c", "wget -q -O - http://web/ && wget -q -O - http://site/"],
                   {"Config": {}, "HostConfig": {"NetworkMode": net["Name"]}}, "client")
    run_task(c, cli_id)
    status = c.call("Tasks", "Wait", {"container_id": cli_id}, timeout=30)
    assert status.get("exit_status") == 0, netdaemon.log_text()[-2000:]
    c.call("Tasks", "Delete", {"container_id": cli_id})
    # daemon restart with the server still running: its networking stays
    netdaemon.restart()
    c = netdaemon.client
    assert curl(f"http://127.0.0.1:{port}/").stdout == "seeded from the image\n"
    assert web_id in c.call("Networks", "Inspect", {"name": net["Name"]})["network"]["Containers"]
    # the server dies while the daemon is down: the restarted daemon releases its networking
    shim_pid = int((Path(netdaemon.state) / "tasks" / "default" / web_id / "shim.pid").read_text())
    netdaemon.kill()
    subprocess.run(["runc", "--root", str(Path(netdaemon.state) / "runtime" / "default"), "kill", web_id, "KILL"],
                   capture_output=True)
    os.kill(shim_pid, signal.SIGKILL)
    time.sleep(0.2)
    netdaemon.start()
    c = netdaemon.client
    deadline = time.monotonic() + 10
    while web_id in c.call("Networks", "Inspect", {"name": net["Name"]})["network"]["Containers"]:
        assert time.monotonic() < deadline, "the dead container's endpoint was not released"
        time.sleep(0.1)
    rules = iptables_rules()
    assert f"--dports {port}" not in rules and f" {web_ip}/32 " not in rules
    assert not os.path.exists(f"/var/run/netns/pyctr-{web_id[:12]}")
    # container records deleted: volume references go, the volume (data) stays until removed
    for cid in (web_id, cli_id):
        c.call("Containers", "Delete", {"id": cid})
    deadline = time.monotonic() + 5
    while c.call("Volumes", "Users", {"name": "pytest-www"})["containers"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    mountpoint = c.call("Volumes", "Inspect", {"name": "pytest-www"})["volume"]["Mountpoint"]
    assert Path(mountpoint, "index.html").read_text() == "seeded from the image\n"
    c.call("Volumes", "Remove", {"name": "pytest-www"})
    assert c.call("Volumes", "Prune", {})["removed"] != []  # the anonymous /cache volume
    c.call("Networks", "Remove", {"name": net["Name"]})
    assert json.dumps(c.call("Networks", "List", {})).count(net["Name"]) == 0
