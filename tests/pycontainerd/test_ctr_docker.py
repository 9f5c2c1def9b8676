"""Interop: the same verbs against Docker Engine 20.10 (Debian's docker.io) and pyctr, comparing the
output shapes: `ps`/`images` headers and `--format '{{json .}}'` key sets, `inspect` key sets of a
container and an image, and a few error texts. dockerd runs on private paths with no bridge and no
iptables rules (so it leaves nothing on the host) and is stopped by its pid."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.pycontainerd.daemon_fixture import kill_leftovers, unmount_under
from tests.pycontainerd.test_ctr_support import Ctr, busybox_archive, remove_cgroups, short_daemon
from tests.support import require


@pytest.fixture
def dockerd(tmp_path):
    binary = require("dockerd")
    client = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else require("docker")
    d = Path(tempfile.mkdtemp(prefix="dk", dir="/tmp"))
    sock = d / "docker.sock"
    log = open(tmp_path / "dockerd.log", "wb")
    proc = subprocess.Popen([binary, "--data-root", str(d / "data"), "--exec-root", str(d / "exec"), "-H",
                             f"unix://{sock}", "--pidfile", str(d / "docker.pid"), "--bridge=none",
                             "--iptables=false", "--ip-masq=false", "--ip-forward=false"],
                            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    env = {**os.environ, "DOCKER_HOST": f"unix://{sock}"}

    def docker(*args: str, check: bool = False) -> subprocess.CompletedProcess:
        r = subprocess.run([client, *args], capture_output=True, text=True, env=env, timeout=120)
        assert not check or r.returncode == 0, r
        return r

    try:
        deadline = time.time() + 60
        while docker("version").returncode != 0:
            assert proc.poll() is None, (tmp_path / "dockerd.log").read_text()[-3000:]
            assert time.time() < deadline, "dockerd did not start"
            time.sleep(0.2)
        yield docker
    finally:
        try:
            ids = docker("ps", "-aq").stdout.split()
            if ids:
                docker("rm", "-f", *ids)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            kill_leftovers([str(d)])
            unmount_under([str(d)])
            shutil.rmtree(d, ignore_errors=True)
            remove_cgroups("docker")  # dockerd's cgroupfs parent (empty once its containers are gone)


def _keys(doc: dict, path: str = "") -> set[str]:
    """Every key path of a JSON document, maps of user data (Labels, Env…) not descended into."""
    out = set()
    for k, v in doc.items():
        p = f"{path}.{k}" if path else k
        out.add(p)
        if isinstance(v, dict) and k in ("State", "Config", "HostConfig", "RootFS", "Metadata"):
            out |= _keys(v, p)
    return out


def test_shapes_match_docker(dockerd, tmp_path):
    archive = busybox_archive(tmp_path / "img")
    with short_daemon(tmp_path / "pcd") as pcd:
        ours = Ctr(pcd, "dk")
        try:
            shapes = {}
            for name, run in (("docker", lambda *a: dockerd(*a)), ("pyctr", lambda *a: ours.proc(*a))):
                out = lambda *a: getattr(run(*a), "stdout", None) if name == "docker" else run(*a).out  # noqa: E731
                status = lambda *a: getattr(run(*a), "returncode", None) if name == "docker" else run(*a).status  # noqa
                assert "Loaded image: busybox:latest" in out("load", "-i", str(archive))
                cid = out("run", "-d", "--name", "ia", "busybox", "sleep", "100").strip()
                assert re.fullmatch(r"[0-9a-f]{64}", cid)
                assert out("run", "--name", "ib", "busybox", "echo", "hi") == "hi\n"
                assert status("run", "--rm", "busybox", "sh", "-c", "exit 7") == 7
                assert status("run", "--rm", "busybox", "nosuchcmd") == 127
                ps = out("ps", "-a").splitlines()
                shapes[name] = {
                    "ps_header": re.split(r" {3,}", ps[0]),
                    "ps_rows": len(ps) - 1,
                    "ps_keys": set(json.loads(out("ps", "-a", "-l", "--format", "{{json .}}"))),
                    "ps_status": [re.sub(r"\d+ seconds?|Less than a second|About a minute", "T", line) for line in
                                  out("ps", "-a", "--format", "{{.Names}} {{.Status}}").splitlines()],
                    "images_header": re.split(r" {3,}", out("images").splitlines()[0]),
                    "images_keys": set(json.loads(out("images", "--format", "{{json .}}"))),
                    "container": json.loads(out("inspect", "ia"))[0],
                    "image": json.loads(out("image", "inspect", "busybox"))[0],
                    "inspect_fmt": out("inspect", "-f", "{{.Name}} {{.State.Status}} {{.Config.Cmd}}", "ia"),
                    "rm_error": run("rm", "nosuch"),
                    "ids": (cid, out("images", "-q").strip()),
                }
        finally:
            for cid in ours("ps", "-aq", "--no-trunc").out.split():
                ours("rm", "-f", cid)
            remove_cgroups("dk")
    d, p = shapes["docker"], shapes["pyctr"]
    assert p["ps_header"] == d["ps_header"] == ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS",
                                                  "NAMES"]
    assert p["ps_rows"] == d["ps_rows"] == 2  # ia, ib (--rm removed the others, even nosuchcmd's)
    assert p["ps_keys"] == d["ps_keys"]
    assert sorted(p["ps_status"]) == sorted(d["ps_status"]), (p["ps_status"], d["ps_status"])
    assert p["images_header"] == d["images_header"]
    assert p["images_keys"] == d["images_keys"]
    # NetworkDisabled is set only because this dockerd has no bridge (omitempty otherwise)
    missing = _keys(d["container"]) - _keys(p["container"]) - {"Config.NetworkDisabled"}
    assert not missing, missing
    assert list(p["container"]) == list(d["container"])
    assert list(p["container"]["State"]) == list(d["container"]["State"])
    assert not _keys(d["image"]) - _keys(p["image"]), _keys(d["image"]) - _keys(p["image"])
    assert p["inspect_fmt"] == d["inspect_fmt"] == "/ia running [sleep 100]\n"
    assert p["container"]["Config"]["Cmd"] == d["container"]["Config"]["Cmd"]
    assert p["container"]["Path"] == d["container"]["Path"] and p["container"]["Args"] == d["container"]["Args"]
    assert p["image"]["RootFS"] == d["image"]["RootFS"]  # same layers, by diff id
    assert p["image"]["Id"] == d["image"]["Id"]          # the image id is the config digest in both
    assert p["ids"][1] == d["ids"][1]
    assert p["rm_error"].err == d["rm_error"].stderr == "Error: No such container: nosuch\n"
