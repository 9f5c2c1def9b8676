"""TaskManager in-process (no socket server): the hooks other subsystems plug in, and recovery."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import uuid
from pathlib import Path

from pycontainerd import errdefs
from pycontainerd.tasks import TaskManager
from pyoci.runtime import default_spec
from tests.pycontainerd.daemon_fixture import default_runtime, kill_leftovers, unmount_under
from tests.support import make_busybox_rootfs


class FakeDaemon:
    """What TaskManager uses of the daemon: paths, the runtime, container records, events."""

    def __init__(self, base: Path, rootfs: Path, namespace: str) -> None:
        self.root = base / "root"
        self.state = base / "state"
        self.runtime = default_runtime()
        self.address = str(base / "d.sock")
        self.rootfs = rootfs
        self.namespace = namespace
        self.events: list[tuple[str, str, dict]] = []
        self.containers = self
        self.records: dict[str, dict] = {}

    def get(self, namespace: str, cid: str) -> dict:
        if cid not in self.records:
            raise errdefs.NotFound(f"container {cid}: not found")
        return self.records[cid]

    def add(self, cid: str, args: list[str]) -> None:
        spec = default_spec()
        spec["process"].update(terminal=False, args=args)
        spec["root"] = {"path": str(self.rootfs), "readonly": False}
        spec["linux"]["cgroupsPath"] = f"/{self.namespace}/{cid}"
        self.records[cid] = {"id": cid, "spec": spec, "snapshot_key": "", "labels": {"app": "x"}}

    def publish(self, namespace: str, topic: str, event: dict | None = None) -> None:
        self.events.append((namespace, topic, event or {}))


def test_hooks_and_recovery():
    base = Path(tempfile.mkdtemp(prefix="ltm-", dir="/tmp"))
    namespace = "tm" + uuid.uuid4().hex[:8]
    daemon = FakeDaemon(base, make_busybox_rootfs(base / "rootfs"), namespace)
    calls: list[tuple] = []

    def on_create(ns, cid, spec, container):
        calls.append(("create", ns, cid, container["labels"]["app"]))
        spec["hostname"] = "hooked"  # a hook may edit the spec the runtime gets

    async def scenario() -> None:
        m = TaskManager(daemon)
        m.create_hooks.append(on_create)
        m.release_hooks.append(lambda ns, cid: calls.append(("release", ns, cid)))
        m.exit_hooks.append(lambda ns, cid, exit: calls.append(("exit", ns, cid, exit["exit_status"])))
        daemon.add("h1", ["sh", "-c", "hostname; exit 3"])
        task = await m.create(namespace, "h1", {})
        await task.client.call("start", {})
        await asyncio.wait_for(task.exited.wait(), 30)
        assert task.exit["exit_status"] == 3
        await m.delete(namespace, "h1")
        log = daemon.root / "containers" / namespace / "h1" / "h1-json.log"
        assert json.loads(log.read_text().splitlines()[0])["log"] == "hooked\n"
        assert calls == [("create", namespace, "h1", "x"), ("exit", namespace, "h1", 3),
                         ("release", namespace, "h1")]
        topics = [t for _, t, _ in daemon.events]
        assert topics == ["/tasks/create", "/tasks/exit", "/tasks/delete"]
        # a failing create hook fails the create, and what it may have made is released
        calls.clear()

        def refuse(ns, cid, spec, container):
            raise errdefs.FailedPrecondition("no network for you")

        m.create_hooks.append(refuse)
        daemon.add("h2", ["true"])
        try:
            await m.create(namespace, "h2", {})
            raise AssertionError("create should have failed")
        except errdefs.FailedPrecondition:
            pass
        assert calls[-1] == ("release", namespace, "h2") and not m.bundle(namespace, "h2").exists()
        m.create_hooks.remove(refuse)
        # recovery: a new manager (a restarted daemon) finds the live shim, and cleans a dead one's bundle
        daemon.add("live", ["sleep", "100"])
        live = await m.create(namespace, "live", {})
        await live.client.call("start", {})
        daemon.add("dead", ["sleep", "100"])
        dead = await m.create(namespace, "dead", {})
        await m.close()
        kill_leftovers([str(dead.bundle)])  # its shim and container die while no daemon watches
        m2 = TaskManager(daemon)
        m2.release_hooks.append(lambda ns, cid: calls.append(("release", ns, cid)))
        await m2.recover()
        assert set(m2.tasks) == {(namespace, "live")}
        assert ("release", namespace, "dead") in calls and not dead.bundle.exists()
        state = await m2.state(namespace, "live")
        assert state["status"] == "running" and state["pid"] == live.pid
        await m2.delete(namespace, "live", force=True)
        await m2.close()

    try:
        asyncio.run(scenario())
    finally:
        kill_leftovers([str(base)])
        unmount_under([str(base)])
        for d in Path("/sys/fs/cgroup").glob(f"*/{namespace}"):
            for child in [c for c in d.iterdir() if c.is_dir()] + [d]:
                try:
                    child.rmdir()
                except OSError:
                    pass
        shutil.rmtree(base, ignore_errors=True)
