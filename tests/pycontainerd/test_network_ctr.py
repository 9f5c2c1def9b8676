"""pyctr's networks, published ports and volumes end to end against the real daemon: a busybox httpd
published with -p answers curl on 127.0.0.1, containers on a user network find each other by name,
a named volume outlives its container, and everything goes when removed."""

from __future__ import annotations

import json
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.pycontainerd.test_ctr_support import Ctr, busybox_archive, short_daemon
from tests.support import free_port, require

HTTPD = "mkdir -p /www && echo hello from $(hostname) > /www/index.html && exec httpd -f -p 80 -h /www"


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    return busybox_archive(tmp_path_factory.mktemp("bb"))


@pytest.fixture(scope="module")
def pcd(tmp_path_factory):
    with short_daemon(tmp_path_factory.mktemp("netd")) as d:
        yield d


@pytest.fixture
def ctr(pcd, archive):
    c = Ctr(pcd, "n" + uuid.uuid4().hex[:2])
    assert c("load", "-i", str(archive)).status == 0
    try:
        yield c
    finally:
        for cid in c("ps", "-a", "-q", "--no-trunc").out.split():
            c("rm", "-f", "-v", cid)


def curl(url: str, retries: int = 20) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "--max-time", "2", "--retry", str(retries), "--retry-connrefused",
                           "--retry-delay", "0", url], capture_output=True, text=True, timeout=60)


def test_published_port_answers_on_loopback(ctr: Ctr, pcd) -> None:
    require("curl")
    port = free_port()
    ctr.ok("run", "-d", "--name", "web", "-p", f"{port}:80", "busybox", "sh", "-c", HTTPD)
    r = curl(f"http://127.0.0.1:{port}/")
    assert r.returncode == 0 and r.stdout.startswith("hello from "), r
    assert ctr.ok("port", "web") == f"80/tcp -> 0.0.0.0:{port}\n"
    assert ctr.ok("port", "web", "80") == f"0.0.0.0:{port}\n"
    assert ctr("port", "web", "81").status == 1
    doc = json.loads(ctr.ok("inspect", "web"))[0]
    ns = doc["NetworkSettings"]
    assert ns["Ports"] == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)}]}
    assert ns["IPAddress"].startswith(f"10.{pcd.subnet_octet}.0.") and "bridge" in ns["Networks"]
    ctr.ok("rm", "-f", "web")
    assert curl(f"http://127.0.0.1:{port}/", retries=0).returncode != 0
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    assert f"--dport {port}" not in rules and f"--dports {port}" not in rules


def test_user_network_names_and_volumes(ctr: Ctr, pcd) -> None:
    net = f"pytest-{uuid.uuid4().hex[:6]}"
    vol = f"pytest-{uuid.uuid4().hex[:6]}"
    net_id = ctr.ok("network", "create", net).strip()
    assert len(net_id) == 64
    assert net in ctr.ok("network", "ls")
    assert ctr.ok("network", "ls", "-q").split().count(net_id[:12]) == 1
    doc = json.loads(ctr.ok("network", "inspect", net))[0]
    assert doc["Name"] == net and doc["Driver"] == "bridge"
    ctr.ok("run", "-d", "--name", "web", "--network", net, "--network-alias", "site", "busybox", "sh", "-c", HTTPD)
    r = ctr("run", "--rm", "--network", net, "busybox", "sh", "-c",
            "for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://web/ && break; sleep 0.3; done; wget -qO- http://site/")
    assert r.status == 0 and r.out.count("hello from ") == 2, r
    # a default-bridge container is on another network: it cannot resolve web
    assert ctr("run", "--rm", "busybox", "wget", "-q", "-T", "2", "-O-", "http://web/").status != 0
    r = ctr("network", "rm", net)
    assert r.status == 1 and "active endpoints" in r.err, r
    # connect/disconnect a running container to a second network
    net2 = net + "-b"
    ctr.ok("network", "create", net2)
    ctr.ok("network", "connect", "--alias", "other", net2, "web")
    nets = json.loads(ctr.ok("inspect", "web"))[0]["NetworkSettings"]["Networks"]
    assert set(nets) == {net, net2} and nets[net2]["IPAddress"], nets
    r = ctr("run", "--rm", "--network", net2, "busybox", "wget", "-qO-", "http://other/")
    assert r.status == 0 and r.out.startswith("hello from "), r
    ctr.ok("network", "disconnect", net2, "web")
    assert set(json.loads(ctr.ok("inspect", "web"))[0]["NetworkSettings"]["Networks"]) == {net}
    ctr.ok("network", "rm", net2)
    # a named volume: created on first use, its data outlives the container
    assert ctr("run", "--name", "writer", "-v", f"{vol}:/data", "busybox", "sh", "-c",
               "echo kept > /data/f").status == 0
    mounts = json.loads(ctr.ok("inspect", "writer"))[0]["Mounts"]
    assert [m["Name"] for m in mounts] == [vol] and mounts[0]["Destination"] == "/data"
    ctr.ok("rm", "writer")
    assert vol in ctr.ok("volume", "ls", "-q").split()
    r = ctr("run", "--rm", "-v", f"{vol}:/data:ro", "busybox", "cat", "/data/f")
    assert r.status == 0 and r.out == "kept\n", r
    assert json.loads(ctr.ok("volume", "inspect", vol))[0]["Name"] == vol
    # removal: container, network, volume; nothing of them is left
    ctr.ok("rm", "-f", "web")
    assert ctr.ok("network", "rm", net) == f"{net}\n"
    assert net not in ctr.ok("network", "ls")
    assert ctr.ok("volume", "rm", vol) == f"{vol}\n"
    assert vol not in ctr.ok("volume", "ls", "-q").split()
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert "pyctr-" + net_id[:9] not in links
    # create/prune round trip, and --network none runs without CNI
    ctr.ok("network", "create", net)
    assert net in ctr.ok("network", "prune", "-f")
    r = ctr("run", "--rm", "--network", "none", "busybox", "sh", "-c", "ip -o link | wc -l")
    assert r.status == 0 and r.out.strip() == "1", r
    r = ctr("run", "--rm", "--network", "host", "busybox", "hostname")
    assert r.status == 0 and r.out.strip() == socket.gethostname(), r
    ctr.ok("volume", "create", vol)
    assert vol in ctr.ok("volume", "prune", "-f", "-a")


def test_inspect_missing_network_and_volume(ctr: Ctr) -> None:
    """docker's lines for names that do not exist; the ones that do are still printed, exit 1."""
    r = ctr("network", "inspect", "bridge", "nosuchnet")
    assert r.status == 1 and r.err == "Error: No such network: nosuchnet\n", r
    assert [d["Name"] for d in json.loads(r.out)] == ["bridge"]
    r = ctr("volume", "inspect", "nosuchvol")
    assert (r.status, r.out, r.err) == (1, "[]\n", "Error: No such volume: nosuchvol\n"), r
