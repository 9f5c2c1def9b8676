"""pyctr end to end against a pycontainerd daemon: docker's verbs, output shapes, errors and exit codes.

One daemon serves the module; each test has its own namespace (so its own images and containers) and
removes its containers at the end (checked: no task, shim or mount left)."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import tarfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.pycontainerd.test_ctr_support import Ctr, busybox_archive, env, remove_cgroups, short_daemon
from tests.pycontainerd.daemon_fixture import REPO, running_registry

HEX64 = re.compile(r"^[0-9a-f]{64}$")
# docker 20.10's key sets, recorded from `docker inspect` of a container and an image
CONTAINER_KEYS = ["Id", "Created", "Path", "Args", "State", "Image", "ResolvConfPath", "HostnamePath", "HostsPath",
                  "LogPath", "Name", "RestartCount", "Driver", "Platform", "MountLabel", "ProcessLabel",
                  "AppArmorProfile", "ExecIDs", "HostConfig", "GraphDriver", "Mounts", "Config", "NetworkSettings"]
STATE_KEYS = ["Status", "Running", "Paused", "Restarting", "OOMKilled", "Dead", "Pid", "ExitCode", "Error",
              "StartedAt", "FinishedAt"]
CONFIG_KEYS = ["Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr", "Tty", "OpenStdin",
               "StdinOnce", "Env", "Cmd", "Image", "Volumes", "WorkingDir", "Entrypoint", "OnBuild", "Labels"]
IMAGE_KEYS = ["Id", "RepoTags", "RepoDigests", "Parent", "Comment", "Created", "Container", "ContainerConfig",
              "DockerVersion", "Author", "Config", "Architecture", "Os", "Size", "VirtualSize", "GraphDriver",
              "RootFS", "Metadata"]
PS_JSON_KEYS = {"Command", "CreatedAt", "ID", "Image", "Labels", "LocalVolumes", "Mounts", "Names", "Networks",
                "Ports", "RunningFor", "Size", "State", "Status"}
IMAGES_JSON_KEYS = {"Containers", "CreatedAt", "CreatedSince", "Digest", "ID", "Repository", "SharedSize", "Size",
                    "Tag", "UniqueSize", "VirtualSize"}


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    return busybox_archive(tmp_path_factory.mktemp("bb"))


@pytest.fixture(scope="module")
def stopsig_archive(tmp_path_factory) -> Path:
    return busybox_archive(tmp_path_factory.mktemp("bbsig"), {
        "Cmd": ["sh"], "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "StopSignal": "SIGUSR1"}, "sigbox:latest")


@pytest.fixture(scope="module")
def pcd(tmp_path_factory):
    with short_daemon(tmp_path_factory.mktemp("ctrd")) as d:
        yield d


@pytest.fixture
def ctr(pcd, archive):
    c = Ctr(pcd, "m" + uuid.uuid4().hex[:2])  # short: console socket paths embed it
    # a short name may repeat across tests of this module: start from an empty namespace
    c.remove_all()
    for name in c("images", "--format", "{{.Repository}}:{{.Tag}}").out.split():
        c("rmi", "-f", name)
    r = c("load", "-i", str(archive))
    assert r.status == 0 and r.out == "Loaded image: busybox:latest\n", r
    try:
        yield c
    finally:
        c.remove_all()
        assert c("ps", "-a", "-q").out == ""
        tasks = Path(pcd.state) / "tasks" / c.namespace
        assert not tasks.exists() or not any(tasks.iterdir())
        with open("/proc/self/mountinfo") as f:
            assert not [line for line in f if str(tasks) in line]
        assert remove_cgroups(c.namespace) == []


def test_images_tag_inspect_save_rmi(ctr, tmp_path):
    r = ctr("images")
    lines = r.out.splitlines()
    assert lines[0] == "REPOSITORY   TAG       IMAGE ID       CREATED        SIZE"
    assert re.match(r"^busybox      latest    [0-9a-f]{12}   56 years ago   \d+(\.\d+)?[kM]B$", lines[1]), lines
    image_id = ctr.ok("images", "-q").strip()
    assert re.fullmatch(r"[0-9a-f]{12}", image_id)
    row = json.loads(ctr.ok("images", "--format", "{{json .}}"))
    assert set(row) == IMAGES_JSON_KEYS and row["Repository"] == "busybox" and row["ID"] == image_id
    assert ctr.ok("images", "--format", "{{.Repository}}:{{.Tag}}") == "busybox:latest\n"
    assert ctr("tag", "busybox", "example.com/team/bb:v1").status == 0
    assert ctr.ok("images", "--format", "{{.Repository}} {{.Tag}} {{.ID}}").splitlines() == \
        ["busybox latest " + image_id, "example.com/team/bb v1 " + image_id]
    [doc] = json.loads(ctr.ok("inspect", "busybox"))
    assert list(doc) == IMAGE_KEYS
    assert doc["Id"].startswith("sha256:" + image_id) and doc["RepoTags"] == ["busybox:latest",
                                                                            "example.com/team/bb:v1"]
    assert doc["RootFS"]["Type"] == "layers" and len(doc["RootFS"]["Layers"]) == 1 and doc["Os"] == "linux"
    assert ctr.ok("image", "inspect", "-f", "{{.Config.Cmd}} {{json .RootFS.Type}}", "busybox") == '[sh] "layers"\n'
    out = tmp_path / "saved.tar"
    assert ctr("save", "-o", str(out), "example.com/team/bb:v1").status == 0
    with tarfile.open(out) as t:
        manifest = json.load(t.extractfile("manifest.json"))
    assert manifest[0]["RepoTags"] == ["example.com/team/bb:v1"]
    r = ctr("rmi", "example.com/team/bb:v1")
    assert (r.status, r.out) == (0, "Untagged: example.com/team/bb:v1\n")
    r = ctr("rmi", "nosuch")
    assert (r.status, r.err) == (1, "Error: No such image: nosuch\n")
    # a load of what we saved brings the tag back
    r = ctr("load", "-i", str(out))
    assert r.out == "Loaded image: example.com/team/bb:v1\n"
    ctr.ok("create", "--name", "user", "busybox")
    r = ctr("rmi", "busybox")
    assert r.status == 1 and re.fullmatch(
        r'Error response from daemon: conflict: unable to remove repository reference "busybox" \(must force\) - '
        r"container [0-9a-f]{12} is using its referenced image [0-9a-f]{12}\n", r.err), r.err


def test_run_foreground_exit_codes_and_errors(ctr, tmp_path):
    r = ctr.proc("run", "--name", "fg", "busybox", "echo", "hello")
    assert (r.status, r.out) == (0, "hello\n"), r
    assert ctr.proc("run", "--rm", "busybox", "sh", "-c", "echo err >&2; exit 3").status == 3
    r = ctr.proc("run", "--rm", "busybox", "sh", "-c", "echo err >&2; exit 3")
    assert (r.out, r.err) == ("", "err\n")
    r = ctr("run", "busybox", "nosuchcmd")
    assert r.status == 127 and r.err.startswith("pyctr: Error response from daemon: failed to create shim task: ")
    assert 'exec: "nosuchcmd": executable file not found in $PATH' in r.err
    r = ctr("run", "busybox", "/etc/passwd")
    assert r.status == 126 and "permission denied" in r.err
    r = ctr("run", "--name", "fg", "busybox", "true")
    fg = ctr.ok("inspect", "-f", "{{.Id}}", "fg").strip()
    assert r.status == 125 and r.err == (
        f'pyctr: Error response from daemon: Conflict. The container name "/fg" is already in use by container '
        f'"{fg}". You have to remove (or rename) that container to be able to reuse that name.\n'
        "See 'pyctr run --help'.\n")
    r = ctr.proc("run", "--badflag", "busybox")
    assert (r.status, r.err) == (125, "unknown flag: --badflag\nSee 'pyctr run --help'.\n")
    # flags that shape the process
    envfile = tmp_path / "env"
    envfile.write_text("# comment\nA=1\n\nB=two words\n")
    r = ctr.proc("run", "--rm", "--env-file", str(envfile), "-e", "C=3", "-w", "/tmp", "-u", "1000:1000",
                 "busybox", "sh", "-c", 'echo "$A|$B|$C"; pwd; id -u; id -g')
    assert r.out == "1|two words|3\n/tmp\n1000\n1000\n", r
    assert ctr.proc("run", "--rm", "--entrypoint", "echo", "busybox", "a", "b").out == "a b\n"
    r = ctr.proc("run", "--rm", "--read-only", "busybox", "touch", "/x")
    assert r.status == 1 and "Read-only file system" in r.err
    r = ctr.proc("run", "--rm", "--cap-drop", "CHOWN", "busybox", "chown", "1", "/tmp")
    assert r.status == 1
    r = ctr.proc("run", "--rm", "--memory", "64m", "--pids-limit", "50", "--cpus", "0.5", "busybox", "true")
    assert r.status == 0, r
    # -i: our stdin is the container's
    r = ctr.proc("run", "--rm", "-i", "busybox", "sh", "-c", "tr a-z A-Z; echo done", input="piped text\n")
    assert r.out == "PIPED TEXT\ndone\n", r
    # start -ai: a created container with stdin open, started attached, twice
    ctr.ok("create", "-i", "--name", "upper", "busybox", "sh", "-c", "tr a-z A-Z; exit 4")
    for text in ("first\n", "second\n"):
        r = ctr.proc("start", "-ai", "upper", input=text)
        assert (r.status, r.out) == (4, text.upper()), r
    ctr.ok("rm", "upper")
    # --rm removed them all; fg and the two that could not start stay, as docker's
    names = ctr.ok("ps", "-a", "--format", "{{.Names}}\t{{.Status}}").splitlines()
    assert len(names) == 3 and "fg\tExited (0) " in "\n".join(names)
    assert sum(1 for n in names if n.endswith("\tCreated")) == 2
    [doc] = json.loads(ctr.ok("inspect", "fg"))
    assert list(doc) == CONTAINER_KEYS and list(doc["State"]) == STATE_KEYS
    assert list(doc["Config"])[:len(CONFIG_KEYS)] == CONFIG_KEYS
    assert doc["Name"] == "/fg" and doc["State"]["Status"] == "exited" and doc["State"]["ExitCode"] == 0
    assert doc["Path"] == "echo" and doc["Args"] == ["hello"] and doc["Config"]["Image"] == "busybox"


def test_detached_lifecycle(ctr):
    r = ctr("run", "-d", "--name", "web", "-l", "app=web", "busybox", "sh", "-c",
            "trap 'exit 9' TERM; echo started; while true; do sleep 0.1; done")
    cid = r.out.strip()
    assert r.status == 0 and HEX64.match(cid), r
    ctr.ok("create", "--name", "idle", "busybox", "true")
    out = ctr.ok("ps").splitlines()
    assert re.split(r" {3,}", out[0]) == ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert out[0].startswith("CONTAINER ID   IMAGE     COMMAND   ") and len(out) == 2
    assert re.match(rf'^{cid[:12]}   busybox   "sh -c trap \'exit 9\'…"   .* ago +Up .+   web$', out[1]), out
    assert ctr.ok("ps", "-q") == cid[:12] + "\n"
    assert ctr.ok("ps", "-q", "--no-trunc") == cid + "\n"
    assert len(ctr.ok("ps", "-aq").split()) == 2
    assert ctr.ok("ps", "-a", "-f", "status=created", "--format", "{{.Names}}") == "idle\n"
    assert ctr.ok("ps", "-a", "-f", "label=app=web", "--format", "{{.Names}}") == "web\n"
    assert ctr.ok("ps", "-a", "-f", "name=id", "--format", "{{.Names}} {{.State}}") == "idle created\n"
    assert ctr.ok("ps", "-l", "--format", "{{.Names}}") == "idle\n"
    assert ctr.ok("ps", "-n", "2", "--format", "{{.Names}}") == "idle\nweb\n"
    row = json.loads(ctr.ok("ps", "--format", "{{json .}}"))
    assert set(row) == PS_JSON_KEYS and row["Labels"] == "app=web" and row["State"] == "running"
    assert ctr.ok("inspect", "-f", "{{.State.Status}} {{.State.Running}} {{.Name}}", "web") == "running true /web\n"
    pid = int(ctr.ok("inspect", "-f", "{{.State.Pid}}", "web"))
    assert pid > 0 and os.path.exists(f"/proc/{pid}")
    # exec
    r = ctr.proc("exec", "-e", "X=1", "-w", "/etc", "-u", "1000", "web", "sh", "-c", "echo $X $(pwd) $(id -u); exit 4")
    assert (r.status, r.out) == (4, "1 /etc 1000\n"), r
    assert ctr.proc("exec", "-i", "web", "cat", input="abc").out == "abc"
    assert ctr("exec", "-d", "web", "sh", "-c", "echo detached > /tmp/d").status == 0
    r = ctr("exec", "web", "nosuch")
    assert r.status == 126 and r.err.startswith("OCI runtime exec failed: exec failed: ") and \
        'exec: "nosuch": executable file not found in $PATH' in r.err and r.err.endswith(": unknown\n"), r
    # logs
    deadline = time.time() + 5
    while "started" not in ctr.ok("logs", "web") and time.time() < deadline:
        time.sleep(0.1)
    assert ctr.ok("logs", "web") == "started\n"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z started\n", ctr.ok("logs", "-t", "web"))
    assert ctr.ok("logs", "--tail", "0", "web") == ""
    assert ctr.ok("logs", "--since", "1h", "web") == "started\n"
    # top, stats
    top = ctr.ok("top", "web").splitlines()
    assert top[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert any(line.split()[1] == str(pid) for line in top[1:])
    stats = ctr.ok("stats", "--no-stream").splitlines()
    assert re.split(r" {3,}", stats[0]) == ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O",
                                            "BLOCK I/O", "PIDS"]
    assert re.match(rf"^{cid[:12]}   web       \d+\.\d\d% +[\d.]+[KMG]?i?B / [\d.]+[KMG]iB +\d+\.\d\d% +"
                    r"[\d.]+k?B / [\d.]+k?B", stats[1]), stats  # NET I/O: the bridge's real bytes
    # pause / unpause
    assert ctr("pause", "web").out == "web\n"
    assert ctr.ok("ps", "--format", "{{.Status}}").endswith("(Paused)\n")
    assert ctr.ok("inspect", "-f", "{{.State.Status}} {{.State.Paused}}", "web") == "paused true\n"
    assert ctr("pause", "web").err == f"Error response from daemon: Container {cid} is already paused\n"
    assert ctr("unpause", "web").out == "web\n"
    assert ctr("unpause", "web").err == f"Error response from daemon: Container {cid} is not paused\n"
    # rename
    assert ctr("rename", "web", "site").status == 0
    r = ctr("rename", "site", "idle")
    assert r.status == 1 and 'The container name "/idle" is already in use' in r.err
    # rm of a running container is refused
    r = ctr("rm", "site")
    assert (r.status, r.err) == (1, f"Error response from daemon: You cannot remove a running container {cid}. "
                                    "Stop the container before attempting removal or force remove\n")
    # stop: SIGTERM, which the trap turns into exit 9
    t0 = time.time()
    assert ctr("stop", "site").out == "site\n"
    assert time.time() - t0 < 8
    assert ctr.ok("wait", "site") == "9\n"
    assert ctr.ok("ps", "-a", "-f", "name=site", "--format", "{{.Status}}").startswith("Exited (9) ")
    assert ctr.ok("ps", "-a", "-f", "exited=9", "--format", "{{.Names}}") == "site\n"
    [doc] = json.loads(ctr.ok("inspect", "site"))
    assert doc["State"]["Status"] == "exited" and doc["State"]["ExitCode"] == 9 and doc["State"]["Pid"] == 0
    assert doc["State"]["FinishedAt"] != "0001-01-01T00:00:00Z"
    assert ctr.ok("logs", "site") == "started\n"  # logs stay after the exit
    # start again, then kill -s
    assert ctr("start", "site").out == "site\n"
    assert ctr.ok("inspect", "-f", "{{.State.Running}}", "site") == "true\n"
    assert ctr("kill", "-s", "SIGKILL", "site").out == "site\n"  # pid 1 ignores signals it has no trap for
    assert ctr.ok("wait", "site") == "137\n"
    r = ctr("kill", "site")
    assert (r.status, r.err) == (1, f"Error response from daemon: Cannot kill container: site: Container {cid} "
                                    "is not running\n")
    # start -a of a created container streams its output
    r = ctr.proc("start", "-a", "idle")
    assert r.status == 0
    assert ctr("rm", "site", "idle").out == "site\nidle\n"


def test_concurrent_runs_one_name(ctr):
    procs = [subprocess.Popen(ctr.argv("create", "--name", "same", "busybox"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=REPO, env=env()) for _ in range(4)]
    results = [(p.wait(60), p.stdout.read(), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert sorted(r[0] for r in results) == [0, 125, 125, 125], results
    assert all('The container name "/same" is already in use' in r[2] for r in results if r[0] == 125)
    assert ctr.ok("ps", "-a", "--format", "{{.Names}}") == "same\n"


def test_network_and_mount_flags_recorded(ctr, tmp_path):
    """-p/-v/--mount/--tmpfs/--network… land in the docker document the daemon's network and volume
    hooks read (HostConfig, Config.ExposedPorts, NetworkingConfig), checked by their parsers first."""
    cid = ctr.ok("create", "--name", "netbox", "-p", "127.0.0.1:8080:80", "-p", "53/udp", "--expose", "9000",
                 "-v", f"{tmp_path}:/host:ro", "--mount", "type=volume,source=data,target=/data", "--tmpfs",
                 "/scratch:size=1m", "--network-alias", "web", "--dns", "10.0.0.1", "--add-host", "db:10.0.0.2",
                 "busybox").strip()
    [doc] = json.loads(ctr.ok("inspect", cid))
    hc = doc["HostConfig"]
    assert hc["PortBindings"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}],
                                  "53/udp": [{"HostIp": "", "HostPort": ""}]}
    assert set(doc["Config"]["ExposedPorts"]) == {"80/tcp", "53/udp", "9000/tcp"}
    assert hc["Binds"] == [f"{tmp_path}:/host:ro"] and hc["Tmpfs"] == {"/scratch": "size=1m"}
    assert hc["Mounts"] == [{"Type": "volume", "Source": "data", "Target": "/data"}]
    assert hc["Dns"] == ["10.0.0.1"] and hc["ExtraHosts"] == ["db:10.0.0.2"] and hc["NetworkMode"] == "default"
    r = ctr("create", "-p", "notaport", "busybox")
    assert r.status == 125 and r.err.startswith("pyctr: Error response from daemon: ") and "notaport" in r.err, r
    r = ctr("create", "-v", "/a:/same", "-v", "/b:/same", "busybox")
    assert r.status == 125 and "/same" in r.err, r
    assert ctr.ok("ps", "-a", "--format", "{{.Names}} {{.Networks}}") == "netbox bridge\n"


def test_stop_timeout_and_stopsignal(ctr, stopsig_archive):
    ctr.ok("load", "-i", str(stopsig_archive))
    ctr.ok("run", "-d", "--name", "deaf", "busybox", "sleep", "1000")
    t0 = time.time()
    assert ctr("stop", "-t", "1", "deaf").status == 0
    took = time.time() - t0
    assert 0.9 < took < 6, took
    assert ctr.ok("wait", "deaf") == "137\n"  # pid 1 ignores SIGTERM: SIGKILL after the timeout
    ctr.ok("run", "-d", "--name", "sig", "sigbox", "sh", "-c", "trap 'exit 7' USR1; trap 'exit 8' TERM; "
           "while true; do sleep 0.1; done")
    time.sleep(0.3)
    assert ctr("stop", "sig").status == 0
    assert ctr.ok("wait", "sig") == "7\n"  # the image's STOPSIGNAL
    assert ctr.ok("inspect", "-f", "{{.Config.StopSignal}}", "sig") == "SIGUSR1\n"


def test_cp_both_ways_stays_inside(ctr, tmp_path):
    ctr.ok("run", "-d", "--name", "box", "busybox", "sh", "-c", "ln -s / /escape; ln -s /etc/passwd /link; "
           "mkdir -p /data/sub; echo inner > /data/sub/f; sleep 1000")
    time.sleep(0.5)
    src = tmp_path / "in.txt"
    src.write_text("from host\n")
    assert ctr("cp", str(src), "box:/tmp/").status == 0
    assert ctr.proc("exec", "box", "cat", "/tmp/in.txt").out == "from host\n"
    # through the container's absolute symlink: lands in its / , never the host's
    host_target = Path("/tmp") / f"pyctr-escape-{uuid.uuid4().hex}"
    assert ctr("cp", str(src), f"box:/escape{host_target}").status == 0
    assert not host_target.exists()
    assert ctr.proc("exec", "box", "cat", str(host_target)).out == "from host\n"
    # a copied tree meeting a container's symlink to / half way down stays inside too
    tree = tmp_path / "tree"
    (tree / "escape" / "tmp").mkdir(parents=True)
    (tree / "escape" / "tmp" / host_target.name).write_text("deep\n")
    assert ctr("cp", str(tree) + "/.", "box:/").status == 0
    assert not host_target.exists()
    assert ctr.proc("exec", "box", "cat", str(host_target)).out == "deep\n"
    assert ctr("cp", str(tree), "box:/").status == 0
    assert ctr.proc("exec", "box", "cat", f"/tree/escape/tmp/{host_target.name}").out == "deep\n"
    # out: a directory, a symlink kept as a link, -L followed inside the container
    assert ctr("cp", "box:/data", str(tmp_path / "data")).status == 0
    assert (tmp_path / "data" / "sub" / "f").read_text() == "inner\n"
    assert ctr("cp", "box:/link", str(tmp_path / "link")).status == 0
    assert os.readlink(tmp_path / "link") == "/etc/passwd"
    assert ctr("cp", "-L", "box:/link", str(tmp_path / "passwd")).status == 0
    assert (tmp_path / "passwd").read_text() == ctr.proc("exec", "box", "cat", "/etc/passwd").out
    r = ctr("cp", "box:/nosuch", str(tmp_path))
    assert (r.status, r.err) == (1, "Error: No such container:path: box:/nosuch\n")
    r = ctr("cp", str(src), "box:/nodir/sub/x")
    assert (r.status, r.err) == (1, "Error: No such container:path: box:/nodir/sub\n")
    r = ctr("cp", str(tmp_path / "absent"), "box:/")
    assert (r.status, r.err) == (1, f"lstat {tmp_path / 'absent'}: no such file or directory\n")
    # a created container (no task): through its snapshot mounted for the copy
    ctr.ok("create", "--name", "cold", "busybox")
    assert ctr("cp", str(src), "cold:/in.txt").status == 0
    assert ctr("cp", "cold:/in.txt", str(tmp_path / "back.txt")).status == 0
    assert (tmp_path / "back.txt").read_text() == "from host\n"
    r = ctr.proc("start", "-a", "cold")
    assert (r.status, r.out) == (0, ""), r


def test_errors_as_docker(ctr, pcd):
    cases = {
        ("rm", "nosuch"): "Error: No such container: nosuch\n",
        ("stop", "nosuch"): "Error response from daemon: No such container: nosuch\n",
        ("logs", "nosuch"): "Error: No such container: nosuch\n",
        ("exec", "nosuch", "ls"): "Error: No such container: nosuch\n",
        ("start", "nosuch"): "Error response from daemon: No such container: nosuch\n"
                             "Error: failed to start containers: nosuch\n",
        ("kill", "nosuch"): "Error response from daemon: Cannot kill container: nosuch: No such container: nosuch\n",
        ("inspect", "nosuch"): "Error: No such object: nosuch\n",
        ("wait", "nosuch"): "Error response from daemon: No such container: nosuch\n",
        ("pause", "nosuch"): "Error response from daemon: No such container: nosuch\n",
        ("top", "nosuch"): "Error response from daemon: No such container: nosuch\n",
        ("rename", "nosuch", "x"): "Error response from daemon: No such container: nosuch\n"
                                   "Error: failed to rename container named nosuch\n",
        ("attach", "nosuch"): "Error: No such container: nosuch\n",
        ("cp", "nosuch:/a", "/tmp/x"): "Error: No such container:path: nosuch:/a\n",
        ("rmi", "nosuch"): "Error: No such image: nosuch\n",
    }
    for args, err in cases.items():
        r = ctr(*args)
        assert (r.status, r.err) == (1, err), (args, r)
    assert ctr("inspect", "nosuch").out == "[]\n"
    ctr.ok("create", "--name", "cc", "busybox")
    cid = ctr.ok("inspect", "-f", "{{.Id}}", "cc").strip()
    assert ctr("exec", "cc", "ls").err == f"Error response from daemon: Container {cid} is not running\n"
    assert ctr("pause", "cc").err == f"Error response from daemon: Container {cid} is not running\n"
    r = ctr("nosuchverb")
    assert (r.status, r.err) == (1, "pyctr: 'nosuchverb' is not a pyctr command.\nSee 'pyctr --help'\n")
    r = ctr.proc("ps", "--bad")
    assert (r.status, r.err) == (125, "unknown flag: --bad\nSee 'pyctr ps --help'.\n")
    gone = f"/tmp/pyctr-nosock-{uuid.uuid4().hex[:8]}.sock"
    r = Ctr(pcd, "x")
    r.base = ["-H", f"unix://{gone}"]
    res = r("ps")
    assert (res.status, res.err) == (1, f"Cannot connect to the pycontainerd daemon at unix://{gone}. "
                                        "Is the daemon running?\n")
    res = r("run", "busybox")
    assert res.status == 125 and res.err.startswith("pyctr: Cannot connect to the pycontainerd daemon at ")


def _pty_session(argv: list[str], steps: list[tuple[bytes, bytes]], timeout: float = 20) -> tuple[int, bytes]:
    """Run argv on a new pty; for each step wait for `expect` in the output, then type `send`."""
    child, fd = pty.fork()
    if child == 0:  # pyctr on the pty's slave as its terminal
        os.chdir(REPO)
        os.execve(argv[0], argv, env())
    out = b""
    try:
        for expect, send in steps:
            end = time.time() + timeout
            while expect not in out and time.time() < end:
                ready, _, _ = select.select([fd], [], [], 0.1)
                if ready:
                    try:
                        data = os.read(fd, 4096)
                    except OSError:
                        break
                    if not data:
                        break
                    out += data
            assert expect in out, out
            os.write(fd, send)
        _, status = os.waitpid(child, 0)
        return os.waitstatus_to_exitcode(status), out
    finally:
        try:
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(fd)


def test_tty_session_through_pty(ctr):
    status, out = _pty_session(ctr.argv("run", "-it", "--rm", "--name", "term", "busybox", "sh"), [
        (b"# ", b"echo $((6*7)); tty; echo $TERM\r"), (b"xterm", b"exit 5\r")])
    assert status == 5 and b"42\r\n" in out and b"/dev/pts/" in out, out
    assert ctr.ok("ps", "-aq") == ""  # --rm
    # exec -it into a running container
    ctr.ok("run", "-d", "--name", "host", "busybox", "sleep", "1000")
    status, out = _pty_session(ctr.argv("exec", "-it", "host", "sh"), [
        (b"# ", b"echo pid=$$ && tty\r"), (b"/dev/pts/", b"exit 2\r")])
    assert status == 2 and b"pid=" in out, out


def test_signals_proxied_in_foreground(ctr):
    p = subprocess.Popen(ctr.argv("run", "--rm", "busybox", "sh", "-c",
                                  "trap 'echo got; exit 3' INT; echo ready; while true; do sleep 0.1; done"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env())
    try:
        assert p.stdout.readline() == "ready\n"
        p.send_signal(signal.SIGINT)
        assert p.wait(20) == 3
        assert p.stdout.read() == "got\n"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_events_info_version_prune(ctr, pcd):
    ev = subprocess.Popen(ctr.argv("events", "-f", "type=container"), stdout=subprocess.PIPE, text=True, cwd=REPO,
                          env=env())
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(ev.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        time.sleep(1.5)
        ctr.ok("run", "--name", "evt", "busybox", "true")
        cid = ctr.ok("inspect", "-f", "{{.Id}}", "evt").strip()
        ctr.ok("rm", "evt")
        deadline = time.time() + 10
        while len(lines) < 4 and time.time() < deadline:
            time.sleep(0.1)
    finally:
        ev.kill()
        ev.wait()
        reader.join(5)
    actions = [line.split()[2] for line in lines]
    assert actions == ["create", "start", "die", "destroy"], lines
    assert re.fullmatch(rf"\d{{4}}-\d\d-\d\dT[\d:.]+Z container die {cid} \(exitCode=0, image=busybox, name=evt\)\n",
                        lines[2])
    info = ctr.ok("info")
    assert " Containers: 0\n" in info and " Images: 1\n" in info and f" Namespace: {ctr.namespace}\n" in info
    assert ctr.ok("info", "--format", "{{.Namespace}} {{.Images}}") == f"{ctr.namespace} 1\n"
    version = ctr.ok("version")
    assert version.startswith("Client:\n Version:") and "\nServer: pycontainerd\n" in version
    assert ctr.ok("version", "--format", "{{.Client.ApiVersion}}") == "1.41\n"
    # prunes
    ctr.ok("run", "--name", "done", "busybox", "true")
    ctr.ok("run", "-d", "--name", "alive", "busybox", "sleep", "100")
    r = ctr("container", "prune", "-f")
    assert r.out.startswith("Deleted Containers:\n") and r.out.endswith("Total reclaimed space: 0B\n")
    assert ctr.ok("ps", "-a", "--format", "{{.Names}}") == "alive\n"
    r = ctr("image", "prune", "-a", "-f")
    assert "Deleted Images:" not in r.out  # busybox is in use
    ctr.ok("rm", "-f", "alive")
    r = ctr("system", "prune", "-a", "-f")
    assert "untagged: busybox:latest\ndeleted: sha256:" in r.out and "Total reclaimed space: " in r.out
    assert ctr.ok("images", "-q") == ""


def test_pull_push_import_and_run_pulls(ctr, tmp_path):
    with running_registry(tmp_path) as reg:
        ref = reg.ref("team/bb", "v1")
        ctr.ok("tag", "busybox", ref)
        r = ctr("push", ref)
        assert r.status == 0 and r.out.startswith(f"The push refers to repository [{ref.rsplit(':', 1)[0]}]\n"), r
        assert re.search(r"^v1: digest: sha256:[0-9a-f]{64} size: \d+$", r.out, re.M)
        ctr.ok("rmi", ref)
        r = ctr("pull", ref)
        assert r.status == 0, r
        assert r.out.startswith("v1: Pulling from team/bb\n") and r.out.endswith(
            f"Status: Downloaded newer image for {ref}\n{ref}\n"), r.out
        r = ctr("pull", ref)
        assert r.out.endswith(f"Status: Image is up to date for {ref}\n{ref}\n") and "Pull complete" not in r.out
        ref2 = reg.ref("team/bb", "latest")
        ctr.ok("tag", "busybox", ref2)
        ctr.ok("push", ref2)
        ctr.ok("rmi", ref2)
        short = ref2.rsplit(":", 1)[0]
        r = ctr.proc("run", "--rm", short, "echo", "pulled")
        assert r.status == 0 and r.out.endswith("pulled\n") and \
            r.err.startswith(f"Unable to find image '{ref2}' locally\n"), r
    r = ctr("run", "--rm", "127.0.0.1:1/none:x")
    assert r.status == 125 and r.err.startswith("Unable to find image '127.0.0.1:1/none:x' locally\n")
    # import: a rootfs tarball as an image
    rootfs_tar = tmp_path / "rootfs.tar"
    cid = ctr.ok("create", "busybox").strip()
    with tarfile.open(rootfs_tar, "w") as t:
        t.add(str(Path(__file__).parent / "__init__.py"), "hello.txt")
        t.add("/bin/busybox", "bin/busybox")
    r = ctr("import", "-c", 'CMD ["/bin/busybox", "cat", "/hello.txt"]', str(rootfs_tar), "imported:v1")
    assert r.status == 0 and re.fullmatch(r"sha256:[0-9a-f]{64}\n", r.out), r
    assert ctr.proc("run", "--rm", "imported:v1").status == 0
    ctr.ok("rm", cid)


def test_attach_follow_stats_and_daemon_restart(ctr, pcd):
    # attach: the output from now on, then the container's exit status (the first line comes late enough for
    # `pyctr attach` to have attached even on a loaded 2-core CI machine)
    ctr.ok("run", "-d", "--name", "talker", "busybox", "sh", "-c",
           "sleep 5; echo one; sleep 0.5; echo two >&2; exit 3")
    r = ctr.proc("attach", "talker")
    assert (r.status, r.out, r.err) == (3, "one\n", "two\n"), r
    # logs -f follows until the container exits
    ctr.ok("run", "-d", "--name", "ticker", "busybox", "sh", "-c", "for i in 1 2 3; do echo t$i; sleep 0.3; done")
    r = ctr.proc("logs", "-f", "ticker")
    assert (r.status, r.out) == (0, "t1\nt2\nt3\n"), r
    # run -d --rm: gone once it exited
    ctr.ok("run", "-d", "--rm", "--name", "brief", "busybox", "true")
    deadline = time.time() + 10
    while "brief" in ctr.ok("ps", "-a", "--format", "{{.Names}}") and time.time() < deadline:
        time.sleep(0.2)
    assert "brief" not in ctr.ok("ps", "-a", "--format", "{{.Names}}")
    # stats without --no-stream redraws until interrupted
    ctr.ok("run", "-d", "--name", "long", "busybox", "sh", "-c", "echo before; while true; do sleep 0.2; done")
    p = subprocess.Popen(ctr.argv("stats", "long"), stdout=subprocess.PIPE, text=True, cwd=REPO, env=env())
    time.sleep(3)
    p.send_signal(signal.SIGINT)
    out = p.communicate(timeout=20)[0]
    assert out.count("CONTAINER ID   NAME") >= 2 and "\033[2J" in out, out
    # the daemon restarts: the container keeps running, its logs continue, stop still works
    pid = ctr.ok("inspect", "-f", "{{.State.Pid}}", "long")
    pcd.restart()
    assert ctr.ok("inspect", "-f", "{{.State.Pid}}", "long") == pid
    assert ctr.ok("ps", "--format", "{{.Names}} {{.State}}") == "long running\n"
    assert ctr.proc("exec", "long", "echo", "after").out == "after\n"
    assert ctr.ok("logs", "long") == "before\n"
    assert ctr("stop", "-t", "1", "long").status == 0
    assert ctr.ok("wait", "long") == "137\n"
