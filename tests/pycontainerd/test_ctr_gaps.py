"""pyctr's once-refused docker flags, checked against what docker 20.10 printed for the same commands:
ps -s / inspect -s sizes, images --filter, logs --details, stats NET I/O, detach keys, events --since/--until."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest

from pycontainerd.ctr.execlogs import details_prefix, log_attrs
from pycontainerd.ctr.images import _go_path_match
from pycontainerd.ctr.observe import docker_timestamp
from pycontainerd.ctr.stdio import EscapeProxy, parse_detach_keys
from pycontainerd.events import RECENT_EVENTS, EventBus
from tests.pycontainerd.daemon_fixture import REPO
from tests.pycontainerd.test_ctr_support import Ctr, busybox_archive, env, remove_cgroups, short_daemon
from tests.support import run_on_pty

# `docker images` / `docker ps -s` header lines as docker 20.10 printed them
IMAGES_HEADER = "REPOSITORY   TAG       IMAGE ID       CREATED        SIZE"
DETAILS_LINE = "FOO=x,a=1,b=2 hi\n"   # docker logs --details of -l a=1 -l b=2 --log-opt labels=b,a -e FOO=x --log-opt env=FOO


@pytest.fixture(scope="module")
def pcd(tmp_path_factory):
    with short_daemon(tmp_path_factory.mktemp("gaps")) as d:
        yield d


@pytest.fixture(scope="module")
def ctr(pcd, tmp_path_factory):
    base = tmp_path_factory.mktemp("gapimg")
    c = Ctr(pcd, "g" + uuid.uuid4().hex[:1])
    assert c("load", "-i", str(busybox_archive(base / "bb"))).status == 0
    assert c("load", "-i", str(busybox_archive(base / "lb", {"Cmd": ["sh"], "Labels": {"foo": "bar"}},
                                               "lbl:latest"))).status == 0
    try:
        yield c
    finally:
        c.remove_all()
        assert c("ps", "-a", "-q").out == ""
        assert remove_cgroups(c.namespace) == []


def _name() -> str:
    return "g" + uuid.uuid4().hex[:8]


def test_helpers_as_docker():
    assert parse_detach_keys("ctrl-p,ctrl-q") == b"\x10\x11" and parse_detach_keys("ctrl-a,x") == b"\x01x"
    assert parse_detach_keys("ctrl-\\,ctrl-_") == b"\x1c\x1f"
    with pytest.raises(ValueError, match="^Unknown character: 'foo'$"):
        parse_detach_keys("foo")
    e = EscapeProxy(b"\x10\x11")
    assert e.feed(b"\x10") == (b"", False) and e.feed(b"a") == (b"\x10a", False)
    assert e.feed(b"x\x10\x10") == (b"x\x10", False) and e.feed(b"\x11rest") == (b"", True)
    assert _go_path_match("bb*", "bb2") and _go_path_match("*box", "busybox") and _go_path_match("bb2:v*", "bb2:v1")
    assert not _go_path_match("*", "library/busybox") and _go_path_match("[a-c]b", "bb")
    assert details_prefix({}) == " " and details_prefix({"a": "x,y"}) == "a=x%2Cy "
    docker = {"HostConfig": {"LogConfig": {"Config": {"labels": "b,a", "env": "FOO"}}},
              "Config": {"Labels": {"a": "1", "b": "2", "c": "3"}, "Env": ["FOO=x", "BAR=y"]}}
    assert details_prefix(log_attrs(docker)) + "hi\n" == DETAILS_LINE
    now = 1_700_000_000.0
    assert docker_timestamp("10m", now) == now - 600 and docker_timestamp("1700000000.5", now) == 1700000000.5
    assert docker_timestamp("2023-11-14T22:13:20Z", now) == now and docker_timestamp("", now) is None
    with pytest.raises(Exception, match='^failed to parse value as time or duration: "foo"$'):
        docker_timestamp("foo", now)


def test_event_bus_keeps_the_last_events_for_replay():
    async def scenario():
        bus = EventBus()
        for i in range(RECENT_EVENTS + 10):
            bus.publish("ns", "/tasks/start", {"n": i})
        sub, backlog = bus.subscribe_with_backlog(['event.n~="^(5|200)$"'])
        assert [e["event"]["n"] for e in backlog] == [200]  # 0-9 fell out of the ring, 5 with them
        bus.publish("ns", "/tasks/start", {"n": 5})
        assert (await asyncio.wait_for(sub.queue.get(), 5))["event"]["n"] == 5
        bus.unsubscribe(sub)
    asyncio.run(scenario())


def test_ps_and_inspect_sizes(ctr):
    busy, idle = _name(), _name()
    assert ctr("run", "-d", "--network", "none", "--name", busy, "busybox", "sh", "-c",
               "dd if=/dev/zero of=/f bs=1000 count=1234 2>/dev/null; ln /f /g; ln -s /f /h; mkdir /d; "
               "touch /ready; sleep 300").status == 0
    assert ctr("create", "--network", "none", "--name", idle, "busybox", "true").status == 0
    deadline = time.monotonic() + 20
    while ctr("exec", busy, "test", "-e", "/ready").status != 0:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    # docker: `SIZE` last, "1.23MB (virtual 3.22MB)"; the link counted once, the symlink's 2 bytes, no dirs
    out = ctr("ps", "-a", "-s", "--filter", f"name={busy}").out.splitlines()
    assert out[0].split()[-1] == "SIZE" and out[1].endswith("   1.23MB (virtual " + out[1].split("(virtual ")[1])
    rw, rootfs = ctr("inspect", "-s", "-f", "{{.SizeRw}} {{.SizeRootFs}}", busy).out.split()
    image = int(ctr("inspect", "-f", "{{.Size}}", "busybox").out)
    assert int(rw) == 1234002 and int(rootfs) == 1234002 + image
    assert ctr("ps", "-a", "--filter", f"name={idle}", "--format", "{{.Size}}").out.startswith("0B (virtual ")
    keys = list(json.loads(ctr("inspect", "-s", idle).out)[0])
    assert keys[keys.index("GraphDriver") + 1:keys.index("GraphDriver") + 3] == ["SizeRw", "SizeRootFs"]
    assert "SizeRw" not in json.loads(ctr("inspect", idle).out)[0]
    assert ctr("inspect", "-f", "{{json .SizeRw}}", idle).out == "null\n"


def test_images_filters(ctr):
    assert ctr("tag", "busybox", "bb2:v1").status == 0
    def names(flt: str) -> list[str]:
        r = ctr("images", "-f", flt, "--format", "{{.Repository}}:{{.Tag}}")
        assert r.status == 0, r
        return sorted(r.out.split())
    assert names("dangling=true") == [] and names("dangling=false") == ["bb2:v1", "busybox:latest", "lbl:latest"]
    assert names("label=foo") == names("label=foo=bar") == ["lbl:latest"] and names("label=foo=baz") == []
    assert names("reference=bb*") == ["bb2:v1"] and names("reference=*box") == ["busybox:latest"]
    assert names("reference=bb2:v*") == ["bb2:v1"] and names("before=lbl") == [] and names("since=busybox") == []
    empty = ctr("images", "-f", "dangling=true")
    assert empty.out == "REPOSITORY   TAG       IMAGE ID   CREATED   SIZE\n"
    for flt, status, err in (("dangling=foo", 1, "Error response from daemon: Invalid filter 'dangling=[foo]'\n"),
                             ("foo=bar", 1, "Error response from daemon: Invalid filter 'foo'\n"),
                             ("before=nonexist", 1, "Error response from daemon: No such image: nonexist:latest\n"),
                             ("x", 125, 'invalid argument "x" for "-f, --filter" flag: bad format of filter '
                                        "(expected name=value)\nSee 'pyctr images --help'.\n")):
        r = ctr("images", "-f", flt)
        assert (r.status, r.err) == (status, err), (flt, r)
    assert ctr("rmi", "bb2:v1").status == 0


def test_logs_details(ctr):
    plain, attrs = _name(), _name()
    assert ctr("run", "--network", "none", "--name", plain, "busybox", "echo", "hi").status == 0
    assert ctr("run", "--network", "none", "--name", attrs, "-l", "a=1", "-l", "b=2", "--log-opt", "labels=b,a",
               "-e", "FOO=x", "--log-opt", "env=FOO", "busybox", "echo", "hi").status == 0
    assert ctr("logs", "--details", plain).out == " hi\n"
    assert ctr("logs", "--details", attrs).out == DETAILS_LINE
    stamped = ctr("logs", "--details", "-t", attrs).out
    assert stamped.endswith("Z " + DETAILS_LINE) and stamped[:4].isdigit()


def test_stats_net_io(ctr):
    net, none = _name(), _name()
    assert ctr("run", "-d", "--name", net, "busybox", "sh", "-c",
               "ping -c 3 -W 1 $(ip route | awk '/default/{print $3}'); touch /ready; sleep 300").status == 0
    assert ctr("run", "-d", "--network", "none", "--name", none, "busybox", "sleep", "300").status == 0
    deadline = time.monotonic() + 20
    while ctr("exec", net, "test", "-e", "/ready").status != 0:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    rows = dict(line.split(" ", 1) for line in ctr("stats", "--no-stream", "--format", "{{.Name}} {{.NetIO}}",
                                                   net, none).out.splitlines())
    assert rows[none] == "0B / 0B"
    rx, tx = rows[net].split(" / ")
    assert rx.endswith("B") and rx != "0B" and tx != "0B", rows  # three pings and their replies at least
    header = ctr("stats", "--no-stream", none).out.splitlines()[0]
    assert "NET I/O" in header and header.index("NET I/O") > header.index("MEM %")


def _drive(argv: list[str], steps: list[tuple[bytes | float, bytes]], timeout: float = 30) -> tuple[int, bytes]:
    """argv on a fresh pty; each step types its bytes once its trigger (output bytes, or seconds) is reached."""
    return run_on_pty(argv, timeout, steps=steps, env=env(), cwd=REPO)


def test_detach_keys_as_docker(ctr):
    a, b_, c_ = _name(), _name(), _name()
    run = ["run", "-it", "--network", "none"]
    # docker 20.10: run -it detaches silently with status 0; attach/exec print "read escape sequence", status 1
    assert _drive(ctr.argv(*run, "--name", a, "busybox", "sh", "-c", "echo ready; sleep 300"),
                  [(b"ready", b"\x10\x11")]) == (0, b"ready\r\n")
    assert ctr("inspect", "-f", "{{.State.Running}}", a).out == "true\n"
    assert _drive(ctr.argv("attach", a), [(1.5, b"\x10\x11")]) == (1, b"read escape sequence\r\n")
    assert _drive(ctr.argv("exec", "-it", a, "sh", "-c", "echo ready; sleep 300"),
                  [(b"ready", b"\x10\x11")]) == (1, b"ready\r\nread escape sequence\r\n")
    assert _drive(ctr.argv(*run, "--detach-keys", "ctrl-a,x", "--name", b_, "busybox", "sh", "-c",
                           "echo ready; sleep 300"), [(b"ready", b"\x01x")]) == (0, b"ready\r\n")
    assert _drive(ctr.argv("attach", "--detach-keys", "ctrl-b", b_), [(1.5, b"\x02")]) == \
        (1, b"read escape sequence\r\n")
    assert _drive(ctr.argv("attach", "--detach-keys", "foo", b_), []) == \
        (1, b"unable to upgrade to tcp, received 400\r\n")
    # without a terminal the keys are the process's input (docker: `^Pabc` echoed by cat, then `\x10abc`)
    status, out = _drive(ctr.argv("run", "-i", "--network", "none", "--name", c_, "busybox", "sh", "-c",
                                  "echo ready; cat"), [(b"ready", b"\x10\x11abc\n"), (1.0, b"\x04")])
    assert status == 0 and out.endswith(b"\x10abc\r\n"), out
    # docker start -ai: detached silently, status 0
    e = _name()
    assert ctr("create", "-it", "--network", "none", "--name", e, "busybox", "sh", "-c",
               "echo ready; sleep 300").status == 0
    assert _drive(ctr.argv("start", "-ai", e), [(b"ready", b"\x10\x11")]) == (0, b"ready\r\n")
    assert ctr("inspect", "-f", "{{.State.Running}}", e).out == "true\n"
    # run -it --rm: detached, it runs on; the daemon removes it once it exits
    d = _name()
    assert _drive(ctr.argv(*run, "--rm", "--name", d, "busybox", "sh", "-c", "echo ready; sleep 300"),
                  [(b"ready", b"\x10\x11")])[0] == 0
    assert ctr("kill", d).status == 0
    deadline = time.monotonic() + 20
    while ctr("ps", "-a", "-q", "--filter", f"name={d}").out:
        assert time.monotonic() < deadline, "run -it --rm detached was not removed after it exited"
        time.sleep(0.2)


def test_events_since_until_replay(ctr):
    name = _name()
    t0 = time.time()
    assert ctr("run", "--rm", "--network", "none", "--name", name, "busybox", "true").status == 0
    t1 = time.time()
    r = ctr("events", "--since", f"{t0:.3f}", "--until", f"{t1 + 0.5:.3f}", "--filter", f"container={name}")
    assert r.status == 0, r
    lines = r.out.splitlines()
    # docker: `<RFC3339Nano> container create <id> (image=busybox, name=…)` … `destroy`, in order
    assert [ln.split()[2] for ln in lines] == ["create", "start", "die", "destroy"], lines
    assert all(ln.endswith(f"(image=busybox, name={name})") for ln in lines[:2] + lines[3:]), lines
    assert lines[2].endswith(f"(exitCode=0, image=busybox, name={name})"), lines
    # --until alone replays everything kept up to then, and a past --until ends at once
    every = ctr("events", "--until", "0s").out.splitlines()
    assert len(every) >= 4 and every[-len(lines):][0].split()[2] == "create"
    bad = ctr("events", "--since", "foo")
    assert (bad.status, bad.err) == (1, 'failed to parse value as time or duration: "foo"\n')
