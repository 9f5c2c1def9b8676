"""`make demo`: the toolchain's main job end to end on this machine — build, push, pull, run.

Everything runs under a temp dir on 127.0.0.1 and is removed at the end. Each step uses the tool a user
would: pybuild, pyregistry, pyctr/pycontainerd, pyrunc.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

BIN = Path(sys.executable).parent
BUSYBOX = "/bin/busybox"
DEMO_BRIDGE = "pyctr-demo0"
DOCKERFILE = """\
FROM base
RUN echo "built by pybuild on $(uname -m)" > /etc/motd
COPY hello.sh /usr/local/bin/hello
CMD ["hello"]
"""
HELLO_SH = """\
#!/bin/sh
cat /etc/motd
echo "hello from a container run by pyrunc: $(id -un) in $(pwd), pid $$"
"""


def step(n: int, text: str) -> None:
    print(f"\n==> [{n}] {text}", flush=True)


def note(text: str) -> None:
    print(f"    {text}", flush=True)


def have(tool: str) -> bool:
    """A tool is there when `make install` made its console script."""
    return (BIN / tool).exists()


def run(*args: str, **kw) -> subprocess.CompletedProcess:
    print("    $ " + " ".join(str(a) for a in args), flush=True)
    return subprocess.run([str(a) for a in args], check=True, **kw)


def busybox_rootfs(root: Path) -> Path:
    (root / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    for rel in subprocess.run([BUSYBOX, "--list-full"], check=True, capture_output=True, text=True).stdout.split():
        target = root / rel
        if not (target.exists() or target.is_symlink()):
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to("/bin/busybox")
    for d in ("proc", "sys", "dev", "tmp", "etc", "root", "usr/local/bin"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    (root / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_registry(work: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = open(work / "pyregistry.log", "wb")
    proc = subprocess.Popen([BIN / "pyregistry", "serve", "--addr", f"127.0.0.1:{port}", "--root", work / "registry"],
                            stdout=log, stderr=subprocess.STDOUT)
    for _ in range(100):
        try:
            if requests.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code == 200:
                return proc, f"127.0.0.1:{port}"
        except requests.ConnectionError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"demo: pyregistry did not start; see {work / 'pyregistry.log'}")


def start_daemon(work: Path) -> tuple[subprocess.Popen, str]:
    sock = str(work / "d.sock")
    log = open(work / "pycontainerd.log", "wb")
    # The demo's own bridge, removed at the end, so that the demo leaves nothing on the host.
    proc = subprocess.Popen([BIN / "pycontainerd", "--root", work / "root", "--state", work / "state",
                             "--address", sock, "--runtime", BIN / "pyrunc", "--bridge", DEMO_BRIDGE],
                            stdout=log, stderr=subprocess.STDOUT)
    for _ in range(200):
        if os.path.exists(sock):
            return proc, sock
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"demo: pycontainerd did not start; see {work / 'pycontainerd.log'}")


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main() -> int:
    if not os.path.exists(BUSYBOX):
        print("demo: /bin/busybox is missing: apt-get install busybox-static (make test installs it)", file=sys.stderr)
        return 1
    from pyoci import image
    from pyoci.layout import Layout
    from pyoci.registry import copy

    work = Path(tempfile.mkdtemp(prefix="pyoci-demo-"))
    registry = daemon = None
    todo: list[str] = []
    try:
        step(1, "base image: Debian's busybox-static as a one-layer OCI image (pyoci)")
        base = Layout.init(work / "base")
        built = image.build_from_rootfs(base, busybox_rootfs(work / "rootfs"), "busybox",
                                        container_config={"Cmd": ["sh"], "Env": ["PATH=/usr/local/bin:/bin:/usr/bin"]})
        note(f"{work / 'base'}:busybox  {built.manifest['digest']}")

        app = work / "app"
        if have("pybuild"):
            step(2, "build the app image from a Dockerfile (pybuild)")
            ctx = work / "context"
            ctx.mkdir()
            (ctx / "Dockerfile").write_text(DOCKERFILE)
            (ctx / "hello.sh").write_text(HELLO_SH)
            (ctx / "hello.sh").chmod(0o755)
            run(BIN / "pybuild", "build", "--progress", "plain", "--cache-dir", work / "cache",
                "--build-context", f"base=oci-layout://{work / 'base'}:busybox",
                "--output", f"type=oci,dest={app},tar=false", "-t", "demo/hello:1", ctx)
            app_layout, app_tag = Layout.open(app), Layout.open(app).tags()[0]
        else:
            step(2, "build the app image (pybuild is still to come: pyoci builds it from a rootfs)")
            todo.append("pybuild (Dockerfile build)")
            rootfs = work / "rootfs"
            (rootfs / "etc" / "motd").write_text("built by pyoci\n")
            (rootfs / "usr" / "local" / "bin" / "hello").write_text(HELLO_SH)
            (rootfs / "usr" / "local" / "bin" / "hello").chmod(0o755)
            app_layout, app_tag = Layout.init(app), "1"
            image.build_from_rootfs(app_layout, rootfs, app_tag, container_config={
                "Cmd": ["hello"], "Env": ["PATH=/usr/local/bin:/bin:/usr/bin"]})
        app_layout.validate()
        desc = app_layout.resolve(app_tag)
        note(f"image {app}:{app_tag} validated against the OCI schemas: {desc['digest']}")

        if not have("pyregistry"):
            raise SystemExit("demo: pyregistry is missing: run `make install`")
        step(3, "push it to a pyregistry started for the demo on 127.0.0.1")
        registry, host = start_registry(work)
        ref = f"{host}/demo/hello:1"
        copy.push(app_layout, app_tag, ref)
        note(f"pushed {ref}")

        if have("pycontainerd"):
            step(4, "pull it with pyctr through a pycontainerd daemon started for the demo (runtime: pyrunc)")
            # the runtime leaves the namespace's parent cgroup (`/default`, as runc under containerd does): note
            # which hierarchies had one so that the demo removes only its own
            cgroups_before = set(Path("/sys/fs/cgroup").glob("*/default"))
            daemon, sock = start_daemon(work)
            ctr = [BIN / "pyctr", "--address", sock]
            run(*ctr, "pull", ref)
            run(*ctr, "images")
            step(5, "run it: pyctr run --rm (pycontainerd -> shim -> pyrunc)")
            result = subprocess.run([*map(str, ctr), "run", "--rm", ref], capture_output=True, text=True, timeout=120)
        else:
            step(4, "pull it back (pyoci's registry client; pycontainerd is missing)")
            todo.append("pycontainerd + pyctr")
            pulled = Layout.init(work / "pulled")
            got = copy.pull(ref, pulled, "1")
            note(f"pulled {ref}: {got['digest']}")
            step(5, "unpack it into a bundle and run it with pyrunc")
            image.unpack(pulled, "1", work / "bundle", progress=note)
            result = subprocess.run([BIN / "pyrunc", "--root", work / "state", "run", "-b", work / "bundle", "pyoci-demo"],
                                    capture_output=True, text=True, timeout=60)
        for line in result.stdout.splitlines():
            note(f"| {line}")
        if result.returncode != 0:
            print(f"demo: the container failed (exit {result.returncode}): {result.stderr.strip()}", file=sys.stderr)
            return 1
        print("\ndemo: build -> push -> pull -> run done.")
        if todo:
            print("still to come: " + "; ".join(todo))
        return 0
    finally:
        if daemon is not None:
            stop(daemon)
            subprocess.run(["ip", "link", "delete", DEMO_BRIDGE], capture_output=True)
            for cg in set(Path("/sys/fs/cgroup").glob("*/default")) - cgroups_before:
                try:
                    cg.rmdir()  # only when empty: a container still in it keeps it
                except OSError:
                    pass
        if registry is not None:
            stop(registry)
        # Whatever a failed step left mounted under the work dir goes before the dir does.
        subprocess.run(["umount", "-R", "--lazy", str(work / "state")], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
