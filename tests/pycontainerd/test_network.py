"""pycontainerd.network: networks over the real CNI plugins, in network namespaces these tests create.

Every netns/bridge/network is named with a `pytest` marker (bridges `pyctr-…`/`pytest…`); the autouse
`leak_check` fixture asserts that nothing a test created is left: netns, links, iptables rules, leases.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from pycontainerd import errdefs
from pycontainerd.network import NetworkManager, PortSpec, parse_port_spec, parse_publish
from pycontainerd.network import container as container_module
from pycontainerd.network import netns as netns_module
from pycontainerd.network.hosts import render_resolv
from tests.support import free_port, require

CNI = "/usr/lib/cni"
POOL = "10.215.0.0/16"  # apart from the daemon default (10.213/16) so a running pycontainerd is not disturbed


def sh(cmd: list[str], check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=timeout)


def links() -> set[str]:
    return {link["ifname"] for link in json.loads(sh(["ip", "-j", "link", "show"]).stdout)}


def netns_names() -> set[str]:
    out = sh(["ip", "-j", "netns", "list"]).stdout.strip()
    return {n["name"] for n in json.loads(out or "[]")}


def iptables_rules() -> str:
    return sh(["iptables-save"]).stdout


def host_address() -> str:
    """The host's own non-loopback IPv4 address (the source of its default route)."""
    try:
        route = json.loads(sh(["ip", "-j", "route", "get", "1.1.1.1"]).stdout)[0]
        if route.get("prefsrc"):
            return route["prefsrc"]
    except (subprocess.CalledProcessError, IndexError, ValueError):
        pass
    for iface in json.loads(sh(["ip", "-j", "-4", "addr", "show", "scope", "global"]).stdout):
        for a in iface.get("addr_info", []):
            return a["local"]
    pytest.fail("the host has no non-loopback IPv4 address")


class Tracker:
    """What a test created, so the leak check looks at exactly that (other tests run in parallel)."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(3)
        self.netns: list[str] = []
        self.bridges: set[str] = set()
        self.cni_names: set[str] = set()
        self.ips: set[str] = set()
        self.veths: set[str] = set()

    def netns_path(self, suffix: str) -> str:
        name = f"pytest-{self.token}-{suffix}"
        sh(["ip", "netns", "add", name])
        self.netns.append(name)
        return f"/var/run/netns/{name}"


@pytest.fixture(scope="module")
def module_tokens(tmp_path_factory):
    """The final check, after the module: no netns, link or process carrying any test's marker.

    It also holds a host-wide lock: another pytest run of this module (another engineer's checkout,
    `make test`) would use the same subnets on the same host, so the two take turns.
    """
    import fcntl

    tokens: list[str] = []
    lock = os.open("/tmp/pytest-pycontainerd-network.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        yield tokens
    finally:
        os.close(lock)
    left_ns = {n for n in netns_names() if any(t in n for t in tokens)}
    left_links = {link for link in links() if any(t in link for t in tokens)}
    procs = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    base = str(tmp_path_factory.getbasetemp())
    left_procs = [line for line in procs.splitlines() if base in line]
    assert not (left_ns or left_links or left_procs), f"left behind: {left_ns} {left_links} {left_procs}"


@pytest.fixture
def tracker(module_tokens: list[str]):
    t = Tracker()
    module_tokens.append(t.token)
    try:
        yield t
    finally:
        for name in t.netns:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


@pytest.fixture
def manager(tmp_path: Path, tracker: Tracker):
    for tool in ("ip", "iptables-save"):
        require(tool)
    for plugin in ("bridge", "host-local", "portmap", "loopback", "firewall"):
        assert os.access(f"{CNI}/{plugin}", os.X_OK), "apt-get install containernetworking-plugins"
    m = NetworkManager(tmp_path / "root", tmp_path / "state", cni_path=CNI,
                       default_bridge=f"pytest{tracker.token}", default_subnet="10.215.0.0/24", pool=POOL)
    try:
        yield m
    finally:
        # whatever the test did, release every endpoint and network it left, then check for leaks
        for ep in m.store.all_endpoints():
            tracker.ips.add(ep["ip"])
            for iface in (ep.get("result") or {}).get("interfaces", []):
                if not iface.get("sandbox"):
                    tracker.veths.add(iface["name"])
        for doc in m.list():
            tracker.bridges.add(doc["Options"].get("com.docker.network.bridge.name", ""))
            tracker.cni_names.add(m._cni_name(doc))
        m.purge(remove_default_bridge=True)
        assert [n["Name"] for n in m.list()] == ["bridge", "host", "none"] and not m.store.all_endpoints()
        for name in tracker.netns:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        tracker.netns.clear()
        left = links() & (tracker.bridges | tracker.veths)
        assert not left, f"links left behind: {left}"
        assert not {n for n in netns_names() if tracker.token in n}, "netns left behind"
        rules = iptables_rules()
        for cni_name in tracker.cni_names:
            assert f'"{cni_name}"' not in rules, f"iptables rules of {cni_name} left behind"
        for bridge in tracker.bridges - {""}:
            assert f" {bridge} " not in rules, f"iptables rules naming bridge {bridge} left behind"
        for ip in tracker.ips - {""}:
            assert f" {ip}/32 " not in rules and f" {ip}:" not in rules, f"iptables rules for {ip} left behind"
        leases = [p.name for p in (tmp_path / "root" / "networks" / "ipam").rglob("*") if p.name[:1].isdigit()
                  and not p.name.startswith("last_reserved")]
        assert not leases, f"IPAM leases left behind: {leases}"


def in_ns(netns: str, *cmd: str, hosts: str | None = None, timeout: float = 15) -> subprocess.CompletedProcess:
    """Run busybox in a netns, with `hosts` bind-mounted on /etc/hosts as a container would see it.

    (No `wget -T`: busybox 1.35 segfaults with it; the subprocess timeout bounds the wait instead.)
    """
    name = os.path.basename(netns)
    if hosts:
        script = f"mount --bind {hosts} /etc/hosts && exec /bin/busybox " + " ".join(cmd)
        argv = ["ip", "netns", "exec", name, "unshare", "-m", "--propagation", "private", "sh", "-c", script]
    else:
        argv = ["ip", "netns", "exec", name, "/bin/busybox", *cmd]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


class Httpd:
    """busybox httpd in a netns, stopped by pid."""

    def __init__(self, netns: str, root: Path, port: int = 80) -> None:
        self.proc = subprocess.Popen(["ip", "netns", "exec", os.path.basename(netns), "/bin/busybox", "httpd",
                                      "-f", "-p", str(port), "-h", str(root)])

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


def fetch(url: str, timeout: float = 3) -> str:
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return r.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


# --- networks as data ---

def test_predefined_and_crud(manager: NetworkManager, tmp_path: Path, tracker: Tracker) -> None:
    nets = {n["Name"]: n for n in manager.list()}
    assert set(nets) == {"bridge", "host", "none"}
    assert (nets["bridge"]["Driver"], nets["host"]["Driver"], nets["none"]["Driver"]) == ("bridge", "host", "null")
    assert nets["bridge"]["IPAM"]["Config"] == [{"Subnet": "10.215.0.0/24", "Gateway": "10.215.0.1"}]
    assert nets["bridge"]["Options"]["com.docker.network.bridge.name"] == f"pytest{tracker.token}"
    name = f"pytest-{tracker.token}-a"
    doc = manager.create(name, labels={"app": "web"})
    expected_keys = {"Name", "Id", "Created", "Scope", "Driver", "EnableIPv6", "IPAM", "Internal", "Attachable",
                     "Ingress", "ConfigFrom", "ConfigOnly", "Containers", "Options", "Labels"}
    assert set(doc) == expected_keys
    assert doc["Scope"] == "local" and doc["Driver"] == "bridge" and doc["EnableIPv6"] is False
    assert doc["IPAM"]["Driver"] == "default" and doc["Labels"] == {"app": "web"} and doc["Containers"] == {}
    subnet = doc["IPAM"]["Config"][0]["Subnet"]
    assert subnet.startswith("10.215.") and subnet != "10.215.0.0/24"  # the default bridge's is taken
    assert len(doc["Id"]) == 64 and doc["Created"].endswith("Z")
    on_disk = json.loads((tmp_path / "root" / "networks" / f"{name}.json").read_text())
    assert on_disk["Id"] == doc["Id"]
    assert manager.inspect(doc["Id"][:12]) == doc == manager.inspect(name)
    # explicit subnet + gateway; overlaps refused; automatic allocation skips taken subnets
    explicit = manager.create(f"pytest-{tracker.token}-b", subnet="10.215.200.0/24", gateway="10.215.200.254",
                              internal=True)
    assert explicit["IPAM"]["Config"] == [{"Subnet": "10.215.200.0/24", "Gateway": "10.215.200.254"}]
    assert explicit["Internal"] is True
    auto = manager.create(f"pytest-{tracker.token}-c")
    assert auto["IPAM"]["Config"][0]["Subnet"] not in (subnet, "10.215.0.0/24", "10.215.200.0/24")
    errors = [
        (dict(name=name), errdefs.AlreadyExists, f"network with name {name} already exists"),
        (dict(name="pytest-x", subnet="10.215.200.128/25"), errdefs.AlreadyExists,
         "Pool overlaps with other one on this address space"),
        (dict(name="pytest-x", subnet="10.300.0.0/16"), errdefs.InvalidArgument, "invalid CIDR address: 10.300.0.0/16"),
        (dict(name="pytest-x", subnet="10.216.0.0/24", gateway="10.9.9.9"), errdefs.InvalidArgument,
         "no matching subnet for gateway 10.9.9.9"),
        (dict(name="pytest-x", gateway="10.9.9.9"), errdefs.InvalidArgument,
         "every ip-range or gateway must have a corresponding subnet"),
        (dict(name="pytest-x", driver="overlay"), errdefs.NotFound, 'plugin "overlay" not found'),
        (dict(name="bad/name"), errdefs.InvalidArgument, 'invalid network name "bad/name"'),
    ]
    for kwargs, exc, message in errors:
        with pytest.raises(exc) as info:
            manager.create(**kwargs)
        assert message in str(info.value)
    for pre in ("bridge", "host", "none"):
        with pytest.raises(errdefs.FailedPrecondition, match=f"^{pre} is a pre-defined network and cannot be removed$"):
            manager.remove(pre)
    manager.remove(name)
    with pytest.raises(errdefs.NotFound, match=f"^network {name} not found$"):
        manager.inspect(name)
    with pytest.raises(errdefs.NotFound):
        manager.remove(name)
    assert {n["Name"] for n in manager.list()} == {"bridge", "host", "none", explicit["Name"], auto["Name"]}
    assert sorted(manager.prune()) == sorted([explicit["Name"], auto["Name"]])


# --- attachments in real network namespaces ---

def test_two_containers_reach_each_other_by_ip_and_name(manager: NetworkManager, tracker: Tracker,
                                                         tmp_path: Path) -> None:
    net = manager.create(f"pytest-{tracker.token}-app")
    ns_web, ns_cli = tracker.netns_path("web"), tracker.netns_path("cli")
    web_id, cli_id = "1" * 64, "2" * 64
    web = manager.attach(web_id, net["Name"], ns_web, container_name="web", aliases=["www", "frontend"],
                         hostname="webhost")
    cli = manager.attach(cli_id, net["Name"], ns_cli, container_name="/client", extra_hosts=["db.local:10.1.2.3"])
    assert web.ip != cli.ip and web.ifname == cli.ifname == "eth0" and web.gateway == cli.gateway
    assert web.ip.startswith(net["IPAM"]["Config"][0]["Subnet"].rsplit(".", 2)[0]) and web.prefix_len == 24
    containers = manager.inspect(net["Name"])["Containers"]
    assert containers[web_id] == {"Name": "web", "EndpointID": web.endpoint_id, "MacAddress": web.mac,
                                  "IPv4Address": f"{web.ip}/24", "IPv6Address": ""}
    assert containers[cli_id]["Name"] == "client"
    # the container side: addressed as CNI said, lo up, default route via the gateway
    addr = in_ns(ns_cli, "ip", "-4", "addr", "show", "eth0").stdout
    assert f"{cli.ip}/24" in addr and cli.mac in in_ns(ns_cli, "ip", "link", "show", "eth0").stdout
    assert f"default via {cli.gateway}" in in_ns(ns_cli, "ip", "route").stdout
    assert "UP" in in_ns(ns_cli, "ip", "link", "show", "lo").stdout
    # by IP
    assert in_ns(ns_cli, "ping", "-c", "1", "-W", "3", web.ip).returncode == 0
    assert in_ns(ns_web, "ping", "-c", "1", "-W", "3", cli.ip).returncode == 0
    # hosts files: own name, peers by name and alias, --add-host
    cli_hosts = Path(manager.hosts_file(cli_id)).read_text()
    assert cli_hosts.startswith("127.0.0.1\tlocalhost\n")
    assert "10.1.2.3\tdb.local\n" in cli_hosts
    assert f"{web.ip}\tweb www frontend webhost\n" in cli_hosts
    assert f"{cli.ip}\t{cli_id[:12]} client\n" in cli_hosts
    web_hosts_path = manager.hosts_file(web_id)
    assert f"{cli.ip}\tclient\n" in Path(web_hosts_path).read_text()
    assert Path(manager.hostname_file(web_id)).read_text() == "webhost\n"
    # TCP by name, through the hosts file bind-mounted as /etc/hosts
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("hello from web\n")
    httpd = Httpd(ns_web, www)
    try:
        for name in ("web", "www", "frontend"):
            deadline = time.monotonic() + 10
            while True:
                r = in_ns(ns_cli, "wget", "-q", "-O", "-", f"http://{name}/", hosts=manager.hosts_file(cli_id))
                if r.returncode == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert r.stdout == "hello from web\n", r
    finally:
        httpd.stop()
    # a third container joins: the web container's hosts file is updated in place (same inode)
    inode = os.stat(web_hosts_path).st_ino
    ns_db = tracker.netns_path("db")
    db = manager.attach("3" * 64, net["Name"], ns_db, container_name="db")
    assert f"{db.ip}\tdb\n" in Path(web_hosts_path).read_text() and os.stat(web_hosts_path).st_ino == inode
    # network rm refused while attached, exactly as docker says it
    with pytest.raises(errdefs.FailedPrecondition) as info:
        manager.remove(net["Name"])
    assert str(info.value) == \
        f"error while removing network: network {net['Name']} id {net['Id']} has active endpoints"
    # detach: the peer's line goes away; its veth, rules and lease too
    before = links()
    veth = next(i["name"] for i in manager.store.container_endpoints("3" * 64)[0]["result"]["interfaces"]
                if not i.get("sandbox") and i["name"].startswith("veth"))
    assert veth in before
    manager.detach("3" * 64, net["Name"])
    assert f"{db.ip}\t" not in Path(web_hosts_path).read_text()
    assert veth not in links()
    rules = iptables_rules()
    assert f" {db.ip}/32 " not in rules, [line for line in rules.splitlines() if f" {db.ip}/32 " in line]
    assert not list((Path(manager.store.ipam_dir)).rglob(db.ip))
    with pytest.raises(errdefs.NotFound, match="is not connected to network"):
        manager.detach("3" * 64, net["Name"])
    assert set(manager.inspect(net["Name"])["Containers"]) == {web_id, cli_id}
    manager.detach_all(web_id)
    manager.detach_all(cli_id)
    manager.detach_all(cli_id)  # idempotent
    assert not (manager.state / web_id).exists()
    bridge = net["Options"]["com.docker.network.bridge.name"]
    assert bridge in links()
    manager.remove(net["Name"])
    assert bridge not in links()


def test_published_ports_answer_on_loopback_and_host_address(manager: NetworkManager, tracker: Tracker,
                                                              tmp_path: Path) -> None:
    require("curl")
    ns = tracker.netns_path("pub")
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("published\n")
    fixed = free_port()
    ports = parse_publish([f"{fixed}:80", "80"], exposed=["80/tcp", "8080/tcp"], publish_all=True)
    assert ports == [PortSpec(80, "tcp", "", str(fixed)), PortSpec(80, "tcp", "", ""), PortSpec(8080, "tcp", "", "")]
    att = manager.attach("4" * 64, "bridge", ns, container_name="web", ports=ports)
    assert [p.container_port for p in att.ports] == [80, 80, 8080] and att.ports[0].host_port == fixed
    random_port = att.ports[1].host_port
    assert random_port not in (0, fixed) and att.ports[2].host_port not in (0, fixed, random_port)
    assert manager.ports("4" * 64)["80/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": str(fixed)},
                                                  {"HostIp": "0.0.0.0", "HostPort": str(random_port)}]
    # the default bridge: no name resolution for peers, only the own hostname
    assert f"{att.ip}\t{'4' * 12}\n" in Path(manager.hosts_file("4" * 64)).read_text()
    httpd = Httpd(ns, www)
    host_ip = host_address()
    try:
        for addr in ("127.0.0.1", host_ip):
            for port in (fixed, random_port):
                out = subprocess.run(["curl", "-sS", "--max-time", "5", "--retry", "20", "--retry-connrefused",
                                      "--retry-delay", "0", f"http://{addr}:{port}/"], capture_output=True, text=True)
                assert out.stdout == "published\n", f"{addr}:{port}: {out.stderr}"
        assert fetch(f"http://{att.ip}/") == "published\n"  # and directly on the bridge
        # a second container may not take an allocated host port
        with pytest.raises(errdefs.Unavailable, match=f"Bind for 0.0.0.0:{fixed} failed: port is already allocated"):
            manager.attach("5" * 64, "bridge", tracker.netns_path("pub2"), ports=parse_publish([f"{fixed}:80"]))
        assert "5" * 64 not in manager.inspect("bridge")["Containers"]
        rules = iptables_rules()
        assert f"--dports {fixed},{random_port}" in rules
        manager.detach_all("4" * 64)
        rules = iptables_rules()
        assert f"{fixed}" not in rules.replace(str(fixed) + "/", "") or f"--dports {fixed}" not in rules
        assert f"--dports {fixed}" not in rules and f"{att.ip}:80" not in rules
        out = subprocess.run(["curl", "-sS", "--max-time", "2", f"http://127.0.0.1:{fixed}/"], capture_output=True)
        assert out.returncode != 0  # nothing answers any more
    finally:
        httpd.stop()


def test_host_ip_binding_and_udp(manager: NetworkManager, tracker: Tracker, tmp_path: Path) -> None:
    ns = tracker.netns_path("udp")
    port = free_port()
    att = manager.attach("6" * 64, "bridge", ns, ports=parse_publish([f"127.0.0.1:{port}:80", f"{port}:53/udp"]))
    rules = iptables_rules()
    assert f"-d 127.0.0.1/32 -p tcp -m tcp --dport {port} -j DNAT --to-destination {att.ip}:80" in rules
    assert f"-p udp -m udp --dport {port} -j DNAT --to-destination {att.ip}:53" in rules
    assert manager.ports("6" * 64) == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}],
                                       "53/udp": [{"HostIp": "0.0.0.0", "HostPort": str(port)}]}
    manager.detach_all("6" * 64)
    assert f"--to-destination {att.ip}" not in iptables_rules()


def test_none_and_host_networks(manager: NetworkManager, tracker: Tracker) -> None:
    ns = tracker.netns_path("none")
    att = manager.attach("7" * 64, "none", ns, hostname="lonely")
    assert att.ip == "" and att.ports == []
    assert in_ns(ns, "ip", "-o", "link").stdout.count(":") and "eth0" not in in_ns(ns, "ip", "-o", "link").stdout
    assert "UP" in in_ns(ns, "ip", "link", "show", "lo").stdout
    assert in_ns(ns, "ping", "-c", "1", "-W", "2", "127.0.0.1").returncode == 0
    assert "7" * 64 in manager.inspect("none")["Containers"]
    assert "127.0.0.1\tlonely\n" in Path(manager.hosts_file("7" * 64)).read_text()
    with pytest.raises(errdefs.FailedPrecondition, match="private \\(none\\) mode"):
        manager.attach("7" * 64, "bridge", ns)
    manager.detach_all("7" * 64)
    assert manager.inspect("none")["Containers"] == {}
    host = manager.attach("8" * 64, "host", "", container_name="h", extra_hosts=["extra:10.9.8.7"])
    assert host.ip == ""
    hosts = Path(manager.hosts_file("8" * 64)).read_text()
    assert hosts.startswith(Path("/etc/hosts").read_text()) and hosts.endswith("10.9.8.7\textra\n")
    with pytest.raises(errdefs.InvalidArgument, match="network-scoped alias is supported only"):
        manager.attach("9" * 64, "bridge", ns, aliases=["x"])
    with pytest.raises(errdefs.InvalidArgument, match='invalid argument "nocolon" for "--add-host" flag'):
        manager.attach("9" * 64, "bridge", ns, extra_hosts=["nocolon"])
    with pytest.raises(errdefs.InvalidArgument, match="invalid hostname format: -bad"):
        manager.attach("9" * 64, "bridge", ns, hostname="-bad")
    manager.detach_all("8" * 64)


def test_cleanup_after_daemon_restart(manager: NetworkManager, tracker: Tracker, tmp_path: Path) -> None:
    prefix = f"pytest{tracker.token}-"
    net = manager.create(f"pytest-{tracker.token}-r")
    ns_live, ns_dead = tracker.netns_path("live"), tracker.netns_path("dead")
    port = free_port()
    live = manager.attach("a" * 64, net["Name"], ns_live, container_name="live")
    dead = manager.attach("b" * 64, net["Name"], ns_dead, container_name="dead", ports=parse_publish([f"{port}:80"]))
    dead_veth = next(i["name"] for i in manager.store.container_endpoints("b" * 64)[0]["result"]["interfaces"]
                     if i["name"].startswith("veth"))
    # a third container whose named netns survived the crash (the daemon made it, nobody deleted it)
    ns_orphan = netns_module.create("c" * 64, prefix)
    tracker.netns.append(os.path.basename(ns_orphan))
    orphan = manager.attach("c" * 64, net["Name"], ns_orphan, container_name="orphan")
    # the daemon dies and so does a container (its unnamed netns goes with its last process)
    sh(["ip", "netns", "del", os.path.basename(ns_dead)])
    restarted = NetworkManager(tmp_path / "root", tmp_path / "state", cni_path=CNI, netns_prefix=prefix,
                               default_bridge=f"pytest{tracker.token}", default_subnet="10.215.0.0/24", pool=POOL)
    assert restarted.cleanup_stale({"a" * 64}) == ["b" * 64, "c" * 64]
    rules = iptables_rules()
    assert f"--dports {port}" not in rules and f" {dead.ip}/32 " not in rules and f" {orphan.ip}/32 " not in rules
    subnet = net["IPAM"]["Config"][0]["Subnet"]
    assert f"-A CNI-FORWARD -s {subnet} " in rules  # the network's rules stay (forwarding.py: not per container)
    assert dead_veth not in links()
    assert not os.path.exists(ns_orphan)
    assert set(restarted.inspect(net["Name"])["Containers"]) == {"a" * 64}
    assert not (restarted.state / ("b" * 64)).exists()
    live_hosts = Path(restarted.hosts_file("a" * 64)).read_text()
    assert f"{dead.ip}\t" not in live_hosts and f"{orphan.ip}\t" not in live_hosts
    # their leases are free again
    lease_files = {p.name for p in (restarted.store.ipam_dir).rglob("*")}
    assert dead.ip not in lease_files and orphan.ip not in lease_files and live.ip in lease_files
    assert restarted.cleanup_stale({"a" * 64}) == []  # idempotent
    restarted.detach_all("a" * 64)
    restarted.remove(net["Name"])


def test_host_port_in_use_refused(manager: NetworkManager, tracker: Tracker) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(errdefs.Unavailable) as info:
            manager.attach("d" * 64, "bridge", tracker.netns_path("busy"), ports=parse_publish([f"{port}:80"]))
        assert str(info.value) == f"Error starting userland proxy: listen tcp4 0.0.0.0:{port}: bind: address already in use"
    assert manager.inspect("bridge")["Containers"] == {}


# --- parsing ---

@pytest.mark.parametrize("raw,expected", [
    ("80", [PortSpec(80)]),
    ("8080:80", [PortSpec(80, "tcp", "", "8080")]),
    ("127.0.0.1:8080:80/udp", [PortSpec(80, "udp", "127.0.0.1", "8080")]),
    ("127.0.0.1::80", [PortSpec(80, "tcp", "127.0.0.1", "")]),
    ("[::1]:8080:80", [PortSpec(80, "tcp", "::1", "8080")]),
    ("8000-8001:80-81/TCP", [PortSpec(80, "tcp", "", "8000"), PortSpec(81, "tcp", "", "8001")]),
    ("8000-8010:80", [PortSpec(80, "tcp", "", "8000-8010")]),
    ("80-81", [PortSpec(80), PortSpec(81)]),
    ("53/sctp", [PortSpec(53, "sctp")]),
])
def test_parse_port_spec(raw, expected) -> None:
    assert parse_port_spec(raw) == expected


@pytest.mark.parametrize("raw,message", [
    ("", "no port specified: <empty>"),
    ("8080:", "no port specified: 8080:<empty>"),
    ("foo", "invalid containerPort: foo"),
    ("80000", "invalid containerPort: 80000"),
    ("abc:80", "invalid hostPort: abc"),
    ("1.2.3:80:80", "invalid IP address: 1.2.3"),
    ("80/icmp", "invalid proto: icmp"),
    ("8000-8002:80-81", "invalid ranges specified for container and host Ports: 80-81 and 8000-8002"),
    ("90-80", "invalid containerPort: 90-80"),
])
def test_parse_port_spec_errors(raw, message) -> None:
    with pytest.raises(errdefs.InvalidArgument) as info:
        parse_port_spec(raw)
    assert str(info.value) == message


def test_publish_all_skips_explicit_ports() -> None:
    specs = parse_publish(["9000:80"], exposed=["80/tcp", "443", "53/udp"], publish_all=True)
    assert specs == [PortSpec(80, "tcp", "", "9000"), PortSpec(443), PortSpec(53, "udp")]
    assert parse_publish([], exposed=["80/tcp"]) == []


def test_resolv_conf() -> None:
    host = "# generated\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch corp.example\noptions edns0\n"
    assert render_resolv(host) == "nameserver 10.0.0.2\nsearch corp.example\noptions edns0\n"
    assert render_resolv("nameserver 127.0.0.53\n") == "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
    assert render_resolv(host, dns=["1.1.1.1"], search=["a.example"], options=["ndots:2"]) == \
        "nameserver 1.1.1.1\nsearch a.example\noptions ndots:2\n"
    with pytest.raises(errdefs.InvalidArgument, match="^not-an-ip is not an ip address$"):
        render_resolv(host, dns=["not-an-ip"])


def test_resolv_conf_file(tmp_path: Path) -> None:
    (tmp_path / "resolv").write_text("nameserver 192.0.2.53\n")
    m = NetworkManager(tmp_path / "root", tmp_path / "state", host_resolv=str(tmp_path / "resolv"))
    path = m.resolv_conf("c" * 64)
    assert Path(path).read_text() == "nameserver 192.0.2.53\n"
    inode = os.stat(path).st_ino
    m.resolv_conf("c" * 64, dns=["9.9.9.9"])
    assert Path(path).read_text() == "nameserver 9.9.9.9\n" and os.stat(path).st_ino == inode


# --- in real containers: runc bundles prepared as the daemon will (container.prepare/release) ---

def _bundle(path: Path, rootfs: Path, args: list[str]) -> tuple[Path, dict]:
    path.mkdir()
    sh([require("runc"), "spec", "--bundle", str(path)])
    spec = json.loads((path / "config.json").read_text())
    spec["root"] = {"path": str(rootfs), "readonly": True}
    spec["process"]["terminal"] = False
    spec["process"]["args"] = args
    spec.pop("hostname", None)  # runc's "runc"; pycontainerd's spec carries the container's own
    return path, spec


def _docker_doc(network: str, publish: list[str] = (), aliases: list[str] = (), binds: list[str] = (),
                dns: list[str] = ()) -> dict:
    bindings, exposed = container_module.port_bindings(parse_publish(list(publish)))
    return {"Config": {"Hostname": "", "ExposedPorts": exposed},
            "HostConfig": {"NetworkMode": network, "PortBindings": bindings, "Dns": list(dns), "Binds": list(binds)},
            "NetworkingConfig": {"EndpointsConfig": {network: {"Aliases": list(aliases)}}}}


def test_runc_containers_published_by_name_with_volume(manager: NetworkManager, tracker: Tracker, tmp_path: Path,
                                                       busybox_rootfs: Path) -> None:
    from pycontainerd.volumes import VolumeStore, mounts_from_host_config

    runc = require("runc")
    require("curl")
    state = tmp_path / "runc"
    manager.netns_prefix = f"pytest{tracker.token}-"
    volumes = VolumeStore(tmp_path / "root")
    net = manager.create(f"pytest-{tracker.token}-runc")
    web_id, cli_id = secrets.token_hex(32), secrets.token_hex(32)
    started: list[str] = []
    (busybox_rootfs / "www").mkdir()
    (busybox_rootfs / "www" / "index.html").write_text("from the image\n")
    port = free_port()
    try:
        # web: httpd serving a named volume seeded from the image's /www, published on `port`
        bundle, spec = _bundle(tmp_path / "web", busybox_rootfs, ["httpd", "-f", "-p", "80", "-h", "/www"])
        doc = _docker_doc(net["Name"], publish=[f"{port}:80"], aliases=["site"], binds=["pytest-site:/www"])
        request = container_module.NetworkRequest.from_docker(doc, name="/web")
        assert request.mode == net["Name"] and request.aliases == ["site"] and request.ports == [PortSpec(80, "tcp", "", str(port))]
        attachments = container_module.prepare(manager, web_id, spec, request)
        tracker.netns.append(netns_module.name_for(web_id, manager.netns_prefix))
        spec["mounts"] += volumes.resolve(mounts_from_host_config(doc["HostConfig"]), web_id, rootfs=busybox_rootfs)
        net_ns = [n for n in spec["linux"]["namespaces"] if n["type"] == "network"]
        assert net_ns == [{"type": "network", "path": netns_module.path_for(web_id, manager.netns_prefix)}]
        assert spec["hostname"] == web_id[:12]
        (bundle / "config.json").write_text(json.dumps(spec))
        started.append(web_id)  # before run: a run that times out still gets deleted
        with open(tmp_path / "web.log", "wb") as log:  # not a pipe: the detached container would hold it open
            subprocess.run([runc, "--root", str(state), "run", "-d", "--bundle", str(bundle), web_id],
                           check=True, stdin=subprocess.DEVNULL, stdout=log, stderr=log, timeout=30)
        for addr in ("127.0.0.1", host_address()):
            out = subprocess.run(["curl", "-sS", "--max-time", "5", "--retry", "20", "--retry-connrefused",
                                  "--retry-delay", "0", f"http://{addr}:{port}/"], capture_output=True, text=True)
            assert out.stdout == "from the image\n", f"{addr}: {out.stderr}"
        settings = container_module.network_settings(manager, web_id)
        assert settings["Ports"] == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)}]}
        assert settings["Networks"][net["Name"]]["IPAddress"] == attachments[0].ip
        assert settings["Networks"][net["Name"]]["Aliases"] == ["site"] and settings["IPAddress"] == ""
        # the volume's data is the container's: change it on the host side, the server shows it
        Path(volumes.inspect("pytest-site")["Mountpoint"], "index.html").write_text("from the volume\n")
        # client: resolves web and its alias through the bind-mounted hosts file; --dns in resolv.conf
        bundle, spec = _bundle(tmp_path / "cli", busybox_rootfs,
                               ["sh", "-c", "cat /etc/resolv.conf /etc/hostname; wget -q -O - http://web/ && "
                                            "wget -q -O - http://site/"])
        container_module.prepare(manager, cli_id, spec,
                                 container_module.NetworkRequest.from_docker(
                                     _docker_doc(net["Name"], dns=["192.0.2.53"]), name="client"))
        tracker.netns.append(netns_module.name_for(cli_id, manager.netns_prefix))
        (bundle / "config.json").write_text(json.dumps(spec))
        started.append(cli_id)
        out = subprocess.run([runc, "--root", str(state), "run", "--bundle", str(bundle), cli_id],
                             capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30)
        assert out.returncode == 0, out.stderr
        assert out.stdout == f"nameserver 192.0.2.53\n{cli_id[:12]}\n" + "from the volume\n" * 2
    finally:
        for cid in started:
            subprocess.run([runc, "--root", str(state), "delete", "-f", cid], capture_output=True, timeout=30)
        for cid in (web_id, cli_id):
            container_module.release(manager, cid)
            container_module.release(manager, cid)  # idempotent
            volumes.release_all(cid)
    assert not os.path.exists(netns_module.path_for(web_id, manager.netns_prefix))
    assert f"--dports {port}" not in iptables_rules()
    assert container_module.network_settings(manager, web_id)["Networks"] == {}
    volumes.rm("pytest-site")  # no longer in use


def test_network_request_from_docker() -> None:
    doc = {"Config": {"Hostname": "h1", "ExposedPorts": {"80/tcp": {}, "53/udp": {}}},
           "HostConfig": {"NetworkMode": "default", "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]},
                          "PublishAllPorts": True, "Dns": ["1.1.1.1"], "DnsSearch": ["x"], "DnsOptions": ["ndots:1"],
                          "ExtraHosts": ["a:10.0.0.1"]}}
    r = container_module.NetworkRequest.from_docker(doc, name="/n")
    assert r == container_module.NetworkRequest(
        mode="bridge", name="n", hostname="h1", aliases=[],
        ports=[PortSpec(80, "tcp", "127.0.0.1", "8080"), PortSpec(53, "udp")],
        dns=["1.1.1.1"], dns_search=["x"], dns_options=["ndots:1"], extra_hosts=["a:10.0.0.1"])
    assert container_module.port_bindings(parse_publish(["8080:80", "127.0.0.1::80", "53/udp"])) == (
        {"80/tcp": [{"HostIp": "", "HostPort": "8080"}, {"HostIp": "127.0.0.1", "HostPort": ""}],
         "53/udp": [{"HostIp": "", "HostPort": ""}]},
        {"80/tcp": {}, "53/udp": {}})


def test_connect_second_network_and_disconnect(manager: NetworkManager, tracker: Tracker) -> None:
    front = manager.create(f"pytest-{tracker.token}-front")
    back = manager.create(f"pytest-{tracker.token}-back")
    ns_app, ns_db = tracker.netns_path("app"), tracker.netns_path("db")
    app_front = manager.attach("e" * 64, front["Name"], ns_app, container_name="app")
    db = manager.attach("f" * 64, back["Name"], ns_db, container_name="db")
    assert in_ns(ns_app, "ping", "-c", "1", "-W", "1", db.ip).returncode != 0  # separate networks
    app_back = manager.attach("e" * 64, back["Name"], ns_app, container_name="app", aliases=["api"])  # connect
    assert (app_front.ifname, app_back.ifname) == ("eth0", "eth1")
    assert f"{app_back.ip}/" in in_ns(ns_app, "ip", "-4", "addr", "show", "eth1").stdout
    assert in_ns(ns_app, "ping", "-c", "1", "-W", "3", db.ip).returncode == 0
    assert f"{app_back.ip}\tapp api\n" in Path(manager.hosts_file("f" * 64)).read_text()
    with pytest.raises(errdefs.AlreadyExists, match=f"endpoint with name app already exists in network {back['Name']}"):
        manager.attach("e" * 64, back["Name"], ns_app, container_name="app")
    manager.detach("e" * 64, back["Name"])  # disconnect
    assert "eth1" not in in_ns(ns_app, "ip", "-o", "link").stdout
    assert f"{app_back.ip}\t" not in Path(manager.hosts_file("f" * 64)).read_text()
    assert [a.network for a in manager.attachments("e" * 64)] == [front["Name"]]


def test_port_lines() -> None:
    from pycontainerd.network.ports import port_lines

    ports = {"8080/tcp": [{"HostIp": "0.0.0.0", "HostPort": "1234"}],
             "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}, {"HostIp": "127.0.0.1", "HostPort": "8081"}]}
    assert port_lines(ports) == ["80/tcp -> 0.0.0.0:8080", "80/tcp -> 127.0.0.1:8081", "8080/tcp -> 0.0.0.0:1234"]
    assert port_lines(ports, "80") == ["0.0.0.0:8080", "127.0.0.1:8081"]
    with pytest.raises(errdefs.NotFound, match="^No public port '53/udp' published for container$"):
        port_lines(ports, "53/udp")


def test_host_config_fields_from_flags() -> None:
    fields = container_module.host_config_fields(
        network="appnet", publish=["8080:80", "127.0.0.1::53/udp"], publish_all=True, exposed=["9000"],
        dns=["1.1.1.1"], add_hosts=["db:10.0.0.5"], aliases=["web"])
    assert fields["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": "8080"}],
                                                    "53/udp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}
    assert fields["Config"]["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}, "9000/tcp": {}}
    assert fields["NetworkingConfig"] == {"EndpointsConfig": {"appnet": {"Aliases": ["web"]}}}
    request = container_module.NetworkRequest.from_docker(fields, name="web")
    assert request.mode == "appnet" and request.aliases == ["web"] and request.extra_hosts == ["db:10.0.0.5"]
    assert request.ports == [PortSpec(80, "tcp", "", "8080"), PortSpec(53, "udp", "127.0.0.1", ""), PortSpec(9000)]
    assert container_module.NetworkRequest.from_docker(container_module.host_config_fields()).mode == "bridge"
    for kwargs, message in [(dict(publish=["foo"]), "invalid containerPort: foo"),
                            (dict(add_hosts=["nohost"]), 'invalid argument "nohost" for "--add-host" flag'),
                            (dict(dns=["x"]), "x is not an ip address"),
                            (dict(aliases=["a"]), "network-scoped alias is supported only")]:
        with pytest.raises(errdefs.InvalidArgument) as info:
            container_module.host_config_fields(**kwargs)
        assert message in str(info.value)


def test_default_bridge_takes_bip_form(tmp_path: Path) -> None:
    m = NetworkManager(tmp_path / "root", tmp_path / "state", default_bridge="pytestbip", default_subnet="10.219.5.1/24")
    assert m.inspect("bridge")["IPAM"]["Config"] == [{"Subnet": "10.219.5.0/24", "Gateway": "10.219.5.1"}]
    m2 = NetworkManager(tmp_path / "root2", tmp_path / "state2", default_bridge="pytestbip", default_subnet="10.219.6.0/24")
    assert m2.inspect("bridge")["IPAM"]["Config"] == [{"Subnet": "10.219.6.0/24", "Gateway": "10.219.6.1"}]
