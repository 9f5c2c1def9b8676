"""pycontainerd.network extras: --ip/--ip6, --ip-range, dual-stack (--ipv6) networks, --network container:ID.

NetworkManager over the real CNI plugins, in network namespaces these tests create; the fixtures of
test_network (host-wide lock, leak checks of links/netns/iptables rules/leases) are reused, and every
test here also checks ip6tables after its networks are gone.
"""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path

import pytest

from pycontainerd import errdefs
from pycontainerd.network import NetworkManager
from pycontainerd.network import container as netcontainer
from pycontainerd.network import ipam
from tests.pycontainerd.test_network import (Tracker, in_ns, manager, module_tokens, sh,  # noqa: F401
                                             tracker)


def ip6tables_rules() -> str:
    return sh(["ip6tables-save"]).stdout


@pytest.fixture
def v6check(manager: NetworkManager, tracker: Tracker):
    """After the test (and before the manager's own purge check): no ip6tables rule of our CNI names."""
    yield
    names = {manager._cni_name(d) for d in manager.list()}
    manager.purge()
    rules = ip6tables_rules()
    for n in names:
        assert f'{n}\\"' not in rules, f"ip6tables rules of {n} left behind"


def leases(manager: NetworkManager) -> list[str]:
    """host-local's lease files (named by the address) under the manager's IPAM dir."""
    def is_ip(name: str) -> bool:
        try:
            ipaddress.ip_address(name)
            return True
        except ValueError:
            return False
    return sorted(p.name for p in manager.store.ipam_dir.rglob("*") if p.is_file() and is_ip(p.name))


# --- pools: the docker CLI's consolidation and dockerd's checks, as data ---

def test_pools_errors_match_docker() -> None:
    with pytest.raises(ipam.PoolError, match="^every ip-range or gateway must have a corresponding subnet$"):
        ipam.pools([], ["10.1.0.1"], [])
    with pytest.raises(ipam.PoolError, match="^no matching subnet for range 10.95.0.0/25$"):
        ipam.pools(["10.96.0.0/24"], [], ["10.95.0.0/25"])
    with pytest.raises(ipam.PoolError, match="^no matching subnet for gateway 10.1.1.1$"):
        ipam.pools(["10.96.0.0/24"], ["10.1.1.1"], [])
    with pytest.raises(errdefs.AlreadyExists, match=r"^failed to allocate gateway \(10.93.0.0\): Address already in use$"):
        ipam.pools(["10.93.0.0/24"], ["10.93.0.0"], [])
    with pytest.raises(errdefs.InvalidArgument, match="^invalid subnet 10.96.0.5/24: it should be 10.96.0.0/24$"):
        ipam.pools(["10.96.0.5/24"], [], [])
    assert ipam.pools(["fd00:0002::/64"], [], [])[0].config() == {"Subnet": "fd00:2::/64"}
    with pytest.raises(ipam.PoolError, match="^no matching subnet for aux-address 10.1.0.2$"):
        ipam.pools(["10.91.5.0/24"], [], [], {"a": "10.1.0.2"})
    assert ipam.pools(["10.92.0.0/24"], [], [], {"a": "10.92.0.2"})[0].config() == \
        {"Subnet": "10.92.0.0/24", "AuxiliaryAddresses": {"a": "10.92.0.2"}}
    pools = ipam.pools(["10.96.0.0/24", "fd00:2::/64"], ["10.96.0.9", "fd00:2::9"], ["10.96.0.128/25"])
    assert [p.config() for p in pools] == [{"Subnet": "10.96.0.0/24", "IPRange": "10.96.0.128/25", "Gateway": "10.96.0.9"},
                                           {"Subnet": "fd00:2::/64", "Gateway": "fd00:2::9"}]
    r = ipam.host_local_range(pools[0], pools[0].gateway)
    assert (r["rangeStart"], r["rangeEnd"]) == ("10.96.0.128", "10.96.0.254")
    assert "rangeStart" not in ipam.host_local_range(pools[0], pools[0].gateway, whole_subnet=True)


def test_check_flags_conflicts_match_docker() -> None:
    cases = [({"hostname": "x"}, "conflicting options: hostname and the network mode"),
             ({"publish": ["80:80"]}, "conflicting options: port publishing and the container type network mode"),
             ({"publish_all": True}, "conflicting options: port publishing and the container type network mode"),
             ({"dns": ["1.1.1.1"]}, "conflicting options: dns and the network mode"),
             ({"add_hosts": ["a:1.2.3.4"]}, "conflicting options: custom host-to-IP mapping and the network mode"),
             ({"aliases": ["q"]}, "network-scoped aliases are only supported for user-defined networks")]
    for kwargs, message in cases:
        with pytest.raises(errdefs.InvalidArgument, match=f"^{message}$"):
            netcontainer.check_flags("container:base", **kwargs)
    with pytest.raises(errdefs.InvalidArgument, match=r"^Invalid network mode: invalid container format"):
        netcontainer.check_flags("container:")
    with pytest.raises(errdefs.InvalidArgument, match="^invalid IPv4 address: bad$"):
        netcontainer.check_flags("n1", ipv4_address="bad")
    with pytest.raises(errdefs.InvalidArgument, match="^invalid IPv6 address: 10.0.0.1$"):
        netcontainer.check_flags("n1", ipv6_address="10.0.0.1")
    netcontainer.check_flags("n1", ipv4_address="10.0.0.1", ipv6_address="fd00::1")


# --- networks ---

def test_create_ip_range_gateway_and_inspect(manager: NetworkManager, tracker: Tracker, v6check) -> None:
    name = f"pytest-{tracker.token}-r"
    doc = manager.create(name, subnet="10.215.40.0/24", gateway="10.215.40.254", ip_range="10.215.40.128/25")
    assert doc["IPAM"]["Config"] == [{"Subnet": "10.215.40.0/24", "IPRange": "10.215.40.128/25",
                                      "Gateway": "10.215.40.254"}]
    assert ipam.PRIVATE_KEY not in doc and ipam.PRIVATE_KEY not in manager.inspect(name)
    assert doc["EnableIPv6"] is False
    # dynamic addresses come from the range; a static one may lie outside it (docker allows it)
    a = manager.attach("a" * 64, name, tracker.netns_path("a"), container_name="a")
    assert a.ip == "10.215.40.128" and a.gateway == "10.215.40.254"
    b = manager.attach("b" * 64, name, tracker.netns_path("b"), container_name="b", ipv4_address="10.215.40.5")
    assert (b.ip, b.ipam_config) == ("10.215.40.5", {"IPv4Address": "10.215.40.5"})
    out = in_ns(tracker.netns[1], "ip", "-4", "addr", "show", "eth0").stdout
    assert "inet 10.215.40.5/24" in out
    assert manager.inspect(name)["Containers"]["b" * 64]["IPv4Address"] == "10.215.40.5/24"
    manager.detach_all("a" * 64)
    manager.detach_all("b" * 64)
    assert leases(manager) == []
    manager.remove(name)


def test_static_ip_errors_match_docker(manager: NetworkManager, tracker: Tracker, v6check) -> None:
    user = f"pytest-{tracker.token}-s"
    auto = f"pytest-{tracker.token}-auto"
    created = manager.create(user, subnet="10.215.41.0/24", aux_addresses={"router": "10.215.41.3"})
    # docker shows no gateway it picked for a user's subnet; the aux address is shown and reserved
    assert created["IPAM"]["Config"] == [{"Subnet": "10.215.41.0/24", "AuxiliaryAddresses": {"router": "10.215.41.3"}}]
    manager.create(auto)
    ns = tracker.netns_path("x")
    with pytest.raises(errdefs.InvalidArgument, match="^user specified IP address is supported on user defined "
                                                      "networks only$"):
        manager.attach("c" * 64, "bridge", ns, ipv4_address="10.215.0.9")
    with pytest.raises(errdefs.InvalidArgument, match="^user specified IP address is supported only when connecting "
                                                      "to networks with user configured subnets$"):
        manager.attach("c" * 64, auto, ns, ipv4_address=str(ipaddress.ip_network(
            manager.inspect(auto)["IPAM"]["Config"][0]["Subnet"]).network_address + 9))
    with pytest.raises(errdefs.InvalidArgument, match="^user specified IP address is supported only when connecting "
                                                      "to networks with user configured subnets$"):
        manager.attach("c" * 64, user, ns, ipv6_address="fd00:1::9")
    with pytest.raises(errdefs.InvalidArgument, match="^Invalid address 10.98.0.50: It does not belong to any of "
                                                      "this network's subnets$"):
        manager.attach("c" * 64, user, ns, ipv4_address="10.98.0.50")
    with pytest.raises(errdefs.AlreadyExists, match="^Address already in use$"):
        manager.attach("c" * 64, user, ns, ipv4_address="10.215.41.1")  # the gateway
    manager.attach("d" * 64, user, tracker.netns_path("d"), ipv4_address="10.215.41.50")
    with pytest.raises(errdefs.AlreadyExists, match="^Address already in use$"):
        manager.attach("c" * 64, user, ns, ipv4_address="10.215.41.50")
    assert not manager.store.container_endpoints("c" * 64)
    # the static address is never handed out dynamically, and is free again once released
    with pytest.raises(errdefs.AlreadyExists, match="^Address already in use$"):
        manager.attach("c" * 64, user, ns, ipv4_address="10.215.41.3")  # the aux address
    e = manager.attach("e" * 64, user, tracker.netns_path("e"))
    f = manager.attach("f" * 64, user, tracker.netns_path("f"))
    assert (e.ip, f.ip, e.gateway) == ("10.215.41.2", "10.215.41.4", "10.215.41.1")  # .3 skipped
    manager.detach_all("d" * 64)
    again = manager.attach("c" * 64, user, ns, ipv4_address="10.215.41.50")
    assert again.ip == "10.215.41.50"
    manager.detach_all("c" * 64)
    manager.detach_all("e" * 64)
    manager.detach_all("f" * 64)
    assert leases(manager) == ["10.215.41.3"]  # the reservation, until the network goes
    manager.remove(user)
    assert leases(manager) == []
    manager.remove(auto)


def test_dual_stack_network(manager: NetworkManager, tracker: Tracker, v6check) -> None:
    if Path("/proc/sys/net/ipv6/conf/all/disable_ipv6").read_text().strip() != "0":
        pytest.fail("IPv6 is disabled on this host (net.ipv6.conf.all.disable_ipv6)")
    name = f"pytest-{tracker.token}-v6"
    with pytest.raises(errdefs.Unavailable, match="non-overlapping IPv6 address pool"):
        manager.create(name, ipv6=True)
    doc = manager.create(name, subnet=["fd00:215:1::/64"], ipv6=True)
    assert doc["EnableIPv6"] is True
    v4 = doc["IPAM"]["Config"][0]
    assert ipaddress.ip_network(v4["Subnet"]).subnet_of(ipaddress.ip_network("10.215.0.0/16"))
    assert doc["IPAM"]["Config"][1] == {"Subnet": "fd00:215:1::/64"}  # docker shows no IPv6 gateway it chose
    a = manager.attach("a" * 64, name, tracker.netns_path("a"), container_name="web", aliases=["www"])
    assert a.ip6 == "fd00:215:1::2" and a.prefix_len6 == 64 and a.gateway6 == "fd00:215:1::1" and a.ip
    b = manager.attach("b" * 64, name, tracker.netns_path("b"), container_name="cli",
                       ipv6_address="fd00:215:1::99")
    assert b.ip6 == "fd00:215:1::99" and b.ipam_config == {"IPv6Address": "fd00:215:1::99"}
    entry = manager.inspect(name)["Containers"]["a" * 64]
    assert entry["IPv6Address"] == "fd00:215:1::2/64"
    settings = netcontainer.network_settings(manager, "a" * 64)["Networks"][name]
    assert (settings["GlobalIPv6Address"], settings["GlobalIPv6PrefixLen"], settings["IPv6Gateway"]) == \
        ("fd00:215:1::2", 64, "fd00:215:1::1")
    # name resolution by hosts file, both families (getaddrinfo gives AAAA from it)
    hosts = (manager.state / ("b" * 64) / "hosts").read_text()
    assert "fd00:215:1::2\tweb www" in hosts and f"{a.ip}\tweb www" in hosts
    assert "fd00:215:1::99\t" in hosts
    # reachable over IPv6 between the two (waiting out duplicate address detection)
    r = in_ns(tracker.netns[1], "ping", "-6", "-c", "1", "-W", "3", "fd00:215:1::2")
    for _ in range(3):
        if r.returncode == 0:
            break
        r = in_ns(tracker.netns[1], "ping", "-6", "-c", "1", "-W", "3", "fd00:215:1::2")
    assert r.returncode == 0, r.stdout + r.stderr
    route = in_ns(tracker.netns[0], "ip", "-6", "route").stdout
    assert "default via fd00:215:1::1" in route
    marker = manager._cni_name(doc) + '\\"'  # in iptables-save's quoting of the rule comment
    assert marker in ip6tables_rules()  # masquerading for IPv6 too
    manager.detach_all("a" * 64)
    manager.detach_all("b" * 64)
    assert marker not in ip6tables_rules()
    assert leases(manager) == []
    manager.remove(name)


def test_ipv6_subnet_without_flag_is_recorded_only(manager: NetworkManager, tracker: Tracker, v6check) -> None:
    name = f"pytest-{tracker.token}-n6"
    doc = manager.create(name, subnet=["10.215.42.0/24", "fd00:215:2::/64"])
    assert doc["EnableIPv6"] is False and len(doc["IPAM"]["Config"]) == 2
    a = manager.attach("a" * 64, name, tracker.netns_path("a"))
    assert a.ip == "10.215.42.2" and a.ip6 == ""
    manager.detach_all("a" * 64)
    manager.remove(name)


def test_join_container_netns(manager: NetworkManager, tracker: Tracker, v6check) -> None:
    name = f"pytest-{tracker.token}-j"
    manager.create(name, subnet="10.215.43.0/24")
    spec: dict = {"hostname": "base", "linux": {"namespaces": [{"type": "network"}]}}
    req = netcontainer.NetworkRequest(mode=name, name="base", hostname="basehost")
    base = "f" * 64
    netcontainer.prepare(manager, base, spec, req)
    try:
        joined: dict = {"hostname": "j", "linux": {"namespaces": [{"type": "pid"}, {"type": "network"}]},
                        "mounts": [{"destination": "/etc/hosts", "source": "/x", "type": "bind"}]}
        jreq = netcontainer.NetworkRequest(mode=f"container:{base}")
        with pytest.raises(errdefs.FailedPrecondition, match=f"^cannot join network of a non running container: {base}$"):
            netcontainer.prepare(manager, "9" * 64, dict(joined), jreq, running=lambda cid: False)
        assert netcontainer.prepare(manager, "9" * 64, joined, jreq, running=lambda cid: cid == base) == []
        ns = [n for n in joined["linux"]["namespaces"] if n["type"] == "network"]
        assert ns == [{"type": "network", "path": f"/var/run/netns/{manager.netns_prefix}{base[:12]}"}]
        assert joined["hostname"] == "basehost"
        srcs = {m["destination"]: m["source"] for m in joined["mounts"]}
        assert srcs["/etc/hosts"] == str(manager.state / base / "hosts")
        assert srcs["/etc/hostname"] == str(manager.state / base / "hostname")
        assert not manager.store.container_endpoints("9" * 64)
        netcontainer.release(manager, "9" * 64)  # the joiner's release leaves the base alone
        assert manager.store.container_endpoints(base)
        assert Path(ns[0]["path"]).exists()
    finally:
        netcontainer.release(manager, base)
    with pytest.raises(errdefs.FailedPrecondition, match="non running container"):
        netcontainer.prepare(manager, "9" * 64, {"linux": {}}, netcontainer.NetworkRequest(mode=f"container:{base}"))
    manager.remove(name)
    assert subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.count(base[:12]) == 0


def test_dual_stack_cleanup_after_daemon_restart(manager: NetworkManager, tracker: Tracker, tmp_path: Path,
                                                 v6check) -> None:
    """A container that died with the daemon: its IPv6 masquerading rules and both leases still go."""
    name = f"pytest-{tracker.token}-d6"
    doc = manager.create(name, subnet=["10.215.44.0/24", "fd00:215:4::/64"], ipv6=True)
    ns_dead = tracker.netns_path("dead")
    dead = manager.attach("b" * 64, name, ns_dead)
    assert dead.ip6
    marker = manager._cni_name(doc) + '\\"'
    assert marker in ip6tables_rules()
    sh(["ip", "netns", "del", ns_dead.rsplit("/", 1)[1]])
    restarted = NetworkManager(tmp_path / "root", tmp_path / "state", cni_path=manager.cni_path,
                               default_bridge=manager.default_bridge, default_subnet=manager.default_subnet,
                               pool=manager.pool)
    assert restarted.cleanup_stale(set()) == ["b" * 64]
    assert marker not in ip6tables_rules()
    assert leases(manager) == []
    manager.remove(name)
