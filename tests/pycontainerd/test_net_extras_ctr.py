"""pyctr --ip/--ip6, dual-stack networks and --network container:NAME end to end against the real daemon,
with docker's messages and exit statuses (recorded from dockerd 20.10 + docker CLI), and nothing left
behind (veths, netns, iptables/ip6tables rules, IPAM leases) after rm and network rm."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.pycontainerd.test_ctr_support import Ctr, busybox_archive, short_daemon


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    return busybox_archive(tmp_path_factory.mktemp("bb"))


@pytest.fixture(scope="module")
def pcd(tmp_path_factory):
    with short_daemon(tmp_path_factory.mktemp("nxd")) as d:
        yield d


@pytest.fixture
def ctr(pcd, archive):
    c = Ctr(pcd, "x" + uuid.uuid4().hex[:2])
    assert c("load", "-i", str(archive)).status == 0
    nets_before = set(c.ok("network", "ls", "-q").split())
    try:
        yield c
    finally:
        for cid in c("ps", "-a", "-q", "--no-trunc").out.split():
            c("rm", "-f", "-v", cid)
        for n in set(c("network", "ls", "-q").out.split()) - nets_before:
            c("network", "rm", n)


def snapshot() -> dict[str, str]:
    run = lambda *cmd: subprocess.run(cmd, capture_output=True, text=True).stdout  # noqa: E731
    return {"links": run("ip", "-o", "link"), "netns": run("ip", "netns", "list"),
            "v4": run("iptables-save"), "v6": run("ip6tables-save")}


def leases(pcd) -> list[str]:
    out = []
    for p in (Path(pcd.root) / "networks" / "ipam").rglob("*"):
        try:
            ipaddress.ip_address(p.name)
            out.append(p.name)
        except ValueError:
            pass
    return out


def test_static_ip_and_ip_range(ctr: Ctr, pcd) -> None:
    o = pcd.subnet_octet
    net = f"pytest-{uuid.uuid4().hex[:6]}"
    ctr.ok("network", "create", "--subnet", f"10.{o}.200.0/24", "--ip-range", f"10.{o}.200.128/25",
           "--gateway", f"10.{o}.200.254", net)
    doc = json.loads(ctr.ok("network", "inspect", net))[0]
    assert doc["IPAM"]["Config"] == [{"Subnet": f"10.{o}.200.0/24", "IPRange": f"10.{o}.200.128/25",
                                      "Gateway": f"10.{o}.200.254"}]
    r = ctr("run", "--rm", "--network", net, "busybox", "ip", "-4", "addr", "show", "eth0")
    assert r.status == 0 and f"inet 10.{o}.200.128/24" in r.out, r
    ctr.ok("run", "-d", "--name", "fixed", "--network", net, "--ip", f"10.{o}.200.50", "busybox", "sleep", "60")
    ns = json.loads(ctr.ok("inspect", "fixed"))[0]["NetworkSettings"]["Networks"][net]
    assert ns["IPAddress"] == f"10.{o}.200.50" and ns["IPAMConfig"] == {"IPv4Address": f"10.{o}.200.50"}
    assert ns["Gateway"] == f"10.{o}.200.254"
    r = ctr("run", "--rm", "--network", net, "busybox", "ping", "-c", "1", "-W", "3", "fixed")
    assert r.status == 0 and f"10.{o}.200.50" in r.out, r
    # docker's errors: in use, outside the subnet, on the default bridge, not an address
    r = ctr("run", "--rm", "--network", net, "--ip", f"10.{o}.200.50", "busybox", "true")
    assert (r.status, r.err) == (125, "docker: Error response from daemon: Address already in use.\n"
                                 "See 'docker run --help'.\n") or \
        (r.status == 125 and "Error response from daemon: Address already in use" in r.err), r
    r = ctr("run", "--rm", "--network", net, "--ip", "10.98.0.50", "busybox", "true")
    assert r.status == 125 and "Error response from daemon: Invalid address 10.98.0.50: It does not belong to any " \
        "of this network's subnets" in r.err, r
    r = ctr("run", "--rm", "--ip", f"10.{o}.0.77", "busybox", "true")
    assert r.status == 125 and "Error response from daemon: user specified IP address is supported on user " \
        "defined networks only" in r.err, r
    r = ctr("create", "--network", net, "--ip", "bad", "busybox", "true")
    assert r.status == 125 and "Error response from daemon: invalid IPv4 address: bad" in r.err, r
    # CLI-side pool errors (no daemon prefix, status 1)
    r = ctr("network", "create", "--ip-range", "10.95.0.0/25", net + "x")
    assert (r.status, r.err.strip()) == (1, "every ip-range or gateway must have a corresponding subnet"), r
    r = ctr("network", "create", "--subnet", f"10.{o}.201.0/24", "--gateway", "10.1.1.1", net + "x")
    assert (r.status, r.err.strip()) == (1, "no matching subnet for gateway 10.1.1.1"), r
    r = ctr("network", "create", "--subnet", f"10.{o}.201.0/24", "--aux-address", "a=10.1.0.2", net + "x")
    assert (r.status, r.err.strip()) == (1, "no matching subnet for aux-address 10.1.0.2"), r
    ctr.ok("network", "create", "--subnet", f"10.{o}.203.0/24", "--aux-address", f"a=10.{o}.203.2", net + "-aux")
    doc = json.loads(ctr.ok("network", "inspect", net + "-aux"))[0]
    assert doc["IPAM"]["Config"] == [{"Subnet": f"10.{o}.203.0/24", "AuxiliaryAddresses": {"a": f"10.{o}.203.2"}}]
    r = ctr("run", "--rm", "--network", net + "-aux", "busybox", "ip", "-4", "-o", "addr", "show", "eth0")
    assert r.status == 0 and f"inet 10.{o}.203.3/24" in r.out, r  # .1 the gateway, .2 reserved
    ctr.ok("network", "rm", net + "-aux")
    # network connect --ip
    net2 = net + "-b"
    ctr.ok("network", "create", "--subnet", f"10.{o}.202.0/24", net2)
    ctr.ok("network", "connect", "--ip", f"10.{o}.202.9", net2, "fixed")
    nets = json.loads(ctr.ok("inspect", "fixed"))[0]["NetworkSettings"]["Networks"]
    assert nets[net2]["IPAddress"] == f"10.{o}.202.9", nets
    ctr.ok("rm", "-f", "fixed")
    ctr.ok("network", "rm", net, net2)
    assert leases(pcd) == []


def test_dual_stack_run_and_names(ctr: Ctr, pcd) -> None:
    net = f"pytest-{uuid.uuid4().hex[:6]}"
    v6 = str(ipaddress.ip_network(f"fd00:{pcd.subnet_octet:x}:{uuid.uuid4().hex[:4]}::/64"))  # canonical
    r = ctr("network", "create", "--ipv6", net)
    assert r.status == 1 and "could not find an available, non-overlapping IPv6 address pool" in r.err, r
    net_id = ctr.ok("network", "create", "--ipv6", "--subnet", v6, net).strip()
    doc = json.loads(ctr.ok("network", "inspect", net))[0]
    assert doc["EnableIPv6"] is True and doc["IPAM"]["Config"][1] == {"Subnet": v6}
    prefix = v6.split("::")[0]
    web_id = ctr.ok("run", "-d", "--name", "web", "--network", net, "busybox", "sleep", "60").strip()
    ns = json.loads(ctr.ok("inspect", "web"))[0]["NetworkSettings"]["Networks"][net]
    assert ns["GlobalIPv6Address"] == f"{prefix}::2" and ns["GlobalIPv6PrefixLen"] == 64
    assert ns["IPv6Gateway"] == f"{prefix}::1" and ns["IPAddress"]
    r = ctr("run", "--rm", "--network", net, "--ip6", f"{prefix}::99", "busybox", "sh", "-c",
            "ip -6 addr show eth0 scope global; grep web /etc/hosts; "
            "for i in 1 2 3 4 5; do ping -6 -c 1 -W 2 web && exit 0; sleep 0.5; done; exit 1")
    assert r.status == 0, r
    assert f"inet6 {prefix}::99/64" in r.out and f"{prefix}::2\tweb" in r.out and f"{ns['IPAddress']}\tweb" in r.out
    r = ctr("run", "--rm", "--network", net, "--ip6", "fd00:1::9", "busybox", "true")
    assert r.status == 125 and "Invalid address fd00:1::9: It does not belong to any of this network's subnets" \
        in r.err, r
    before_rm = snapshot()
    ctr.ok("rm", "-f", "web")
    ctr.ok("network", "rm", net)
    after = snapshot()
    assert "pyctr-" + net_id[:9] not in after["links"]
    assert f"pyctr-{net}" not in after["v6"] and f"pyctr-{net}" not in after["v4"]
    assert web_id[:12] not in after["netns"] and web_id[:12] in before_rm["netns"]
    assert leases(pcd) == []


def test_network_container_mode(ctr: Ctr, pcd) -> None:
    net = f"pytest-{uuid.uuid4().hex[:6]}"
    ctr.ok("network", "create", net)
    base_id = ctr.ok("run", "-d", "--name", "base", "--network", net, "-h", "basehost", "busybox",
                     "sh", "-c", "mkdir /www && echo shared > /www/i && exec httpd -f -p 8080 -h /www").strip()
    base_ip = json.loads(ctr.ok("inspect", "base"))[0]["NetworkSettings"]["Networks"][net]["IPAddress"]
    r = ctr("run", "--rm", "--network", "container:base", "busybox", "sh", "-c",
            "hostname; cat /etc/hostname; ip -4 -o addr show eth0; "
            "for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://127.0.0.1:8080/i && break; sleep 0.3; done")
    assert r.status == 0, r
    lines = r.out.splitlines()
    assert lines[0] == "basehost" and lines[1] == "basehost" and f"inet {base_ip}/" in lines[2] and \
        lines[-1] == "shared", r
    ctr.ok("run", "-d", "--name", "side", "--network", "container:base", "busybox", "sleep", "60")
    doc = json.loads(ctr.ok("inspect", "side"))[0]
    assert doc["HostConfig"]["NetworkMode"] == f"container:{base_id}"
    assert doc["Config"]["Hostname"] == "basehost"
    assert doc["NetworkSettings"]["Networks"] == {} and doc["NetworkSettings"]["IPAddress"] == ""
    rows = dict(line.split(" ", 1) for line in ctr.ok("ps", "--format", "{{.Names}} {{.Networks}}").splitlines())
    assert rows["side"].strip() == "" and rows["base"] == net
    r = ctr("network", "connect", net, "side")
    assert r.status == 1 and "container sharing network namespace with another container or host cannot be " \
        "connected to any other network" in r.err, r
    for flags, message in ((["-h", "x"], "conflicting options: hostname and the network mode"),
                           (["-p", "80:80"], "conflicting options: port publishing and the container type network mode"),
                           (["--dns", "1.1.1.1"], "conflicting options: dns and the network mode"),
                           (["--add-host", "a:1.2.3.4"],
                            "conflicting options: custom host-to-IP mapping and the network mode")):
        r = ctr("run", "--rm", "--network", "container:base", *flags, "busybox", "true")
        assert r.status == 125 and f"Error response from daemon: {message}" in r.err, (flags, r)
    r = ctr("run", "--rm", "--network", "container:nope", "busybox", "true")
    assert r.status == 125 and "Error response from daemon: No such container: nope" in r.err, r
    stopped = ctr.ok("create", "--name", "stopped", "busybox", "true").strip()
    r = ctr("run", "--rm", "--network", "container:stopped", "busybox", "true")
    assert r.status == 125 and f"cannot join network of a non running container: {stopped}" in r.err, r
    # the joiner going leaves the base's network alone; the base going takes it all
    ctr.ok("rm", "-f", "side")
    r = ctr("run", "--rm", "--network", net, "busybox", "wget", "-qO-", "http://base:8080/i")
    assert r.status == 0 and r.out == "shared\n", r
    ctr.ok("rm", "-f", "base")
    ctr.ok("network", "rm", net)
    assert base_id[:12] not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert leases(pcd) == []


def test_published_port_on_ipv6(ctr: Ctr, pcd) -> None:
    """portmap DNATs the host's IPv6 addresses to the container's IPv6 address: a local address on a link
    this test makes stands for the host's own (no traffic leaves the host); [::1] is not served
    (docker answers there through its userland proxy, which pyctr does not have). The link is a veth
    pair (this kernel has no dummy links)."""
    from tests.support import free_port, require

    require("curl")
    tag = uuid.uuid4().hex[:6]
    link, addr = f"pyt6{tag}", f"fd00:{pcd.subnet_octet:x}:ffff::{int(tag[:4], 16):x}"
    subprocess.run(["ip", "link", "add", link, "type", "veth", "peer", "name", link + "p"], check=True)
    try:
        subprocess.run(["ip", "addr", "add", f"{addr}/128", "dev", link, "nodad"], check=True)
        subprocess.run(["ip", "link", "set", link, "up"], check=True)
        subprocess.run(["ip", "link", "set", link + "p", "up"], check=True)
        net = f"pytest-{tag}"
        ctr.ok("network", "create", "--ipv6", "--subnet", f"fd00:{pcd.subnet_octet:x}:{tag[:4]}::/64", net)
        port = free_port()
        ctr.ok("run", "-d", "--name", "web6", "--network", net, "-p", f"{port}:80", "busybox", "sh", "-c",
               "mkdir /w && echo six > /w/i && exec httpd -f -p 80 -h /w")
        r = subprocess.run(["curl", "-sS", "-g", "--max-time", "2", "--retry", "20", "--retry-connrefused",
                            "--retry-delay", "0", f"http://[{addr}]:{port}/i"], capture_output=True, text=True,
                           timeout=60)
        assert (r.returncode, r.stdout) == (0, "six\n"), r
        ctr.ok("rm", "-f", "web6")
        ctr.ok("network", "rm", net)
        rules = subprocess.run(["ip6tables-save"], capture_output=True, text=True).stdout
        assert f"--dport {port}" not in rules and f"--dports {port}" not in rules
    finally:
        subprocess.run(["ip", "link", "del", link], capture_output=True)


def test_connect_is_kept_across_restarts_and_for_stopped_containers(ctr: Ctr, pcd) -> None:
    o = pcd.subnet_octet
    a, b = f"pytest-{uuid.uuid4().hex[:6]}", f"pytest-{uuid.uuid4().hex[:6]}"
    ctr.ok("network", "create", a)
    ctr.ok("network", "create", "--subnet", f"10.{o}.204.0/24", b)
    nets = lambda name: set(json.loads(ctr.ok("inspect", name))[0]["NetworkSettings"]["Networks"])  # noqa: E731
    # a running container: connected now, and again after a restart (with its static address)
    ctr.ok("run", "-d", "--name", "live", "--network", a, "busybox", "sleep", "60")
    ctr.ok("network", "connect", "--ip", f"10.{o}.204.20", "--alias", "lv", b, "live")
    ctr.ok("restart", "-t", "0", "live")
    assert nets("live") == {a, b}
    settings = json.loads(ctr.ok("inspect", "live"))[0]["NetworkSettings"]["Networks"][b]
    assert settings["IPAddress"] == f"10.{o}.204.20" and "lv" in (settings["Aliases"] or [])
    r = ctr("run", "--rm", "--network", b, "busybox", "ping", "-c", "1", "-W", "3", "lv")
    assert r.status == 0 and f"10.{o}.204.20" in r.out, r
    # a created container: connected at its start, as docker does; disconnect while stopped
    ctr.ok("create", "--name", "later", "--network", a, "busybox", "sleep", "60")
    assert ctr("network", "connect", b, "later").status == 0
    assert ctr("network", "connect", b, "later").status == 0  # docker: a second connect of a stopped one is fine
    ctr.ok("start", "later")
    assert nets("later") == {a, b}
    ctr.ok("stop", "-t", "0", "later")
    ctr.ok("network", "disconnect", b, "later")
    r = ctr("network", "disconnect", b, "later")
    later_id = json.loads(ctr.ok("inspect", "later"))[0]["Id"]
    assert r.status == 1 and r.err.strip() == f"Error response from daemon: container {later_id} is not " \
        f"connected to the network {b}", r
    ctr.ok("start", "later")
    assert nets("later") == {a}
    r = ctr("network", "connect", "nope-net", "later")
    assert r.status == 1 and "network nope-net not found" in r.err, r
    ctr.ok("rm", "-f", "live", "later")
    ctr.ok("network", "rm", a, b)
    assert leases(pcd) == []


def test_mac_address(ctr: Ctr, pcd) -> None:
    net = f"pytest-{uuid.uuid4().hex[:6]}"
    ctr.ok("network", "create", net)
    r = ctr("run", "--rm", "--network", net, "--mac-address", "02:42:AC:11:00:99", "busybox", "cat",
            "/sys/class/net/eth0/address")
    assert (r.status, r.out) == (0, "02:42:ac:11:00:99\n"), r
    ctr.ok("run", "-d", "--name", "mac", "--mac-address", "02:42:ac:11:00:98", "busybox", "sleep", "60")
    doc = json.loads(ctr.ok("inspect", "mac"))[0]
    assert doc["Config"]["MacAddress"] == "02:42:ac:11:00:98"
    assert doc["NetworkSettings"]["MacAddress"] == "02:42:ac:11:00:98"
    r = ctr("run", "--rm", "--mac-address", "bad", "busybox", "true")
    assert r.status == 125 and "pyctr: bad is not a valid mac address" in r.err, r
    r = ctr("run", "--rm", "--network", "container:mac", "--mac-address", "02:42:ac:11:00:97", "busybox", "true")
    assert r.status == 125 and "conflicting options: mac-address and the network mode" in r.err, r
    ctr.ok("rm", "-f", "mac")
    ctr.ok("network", "rm", net)
