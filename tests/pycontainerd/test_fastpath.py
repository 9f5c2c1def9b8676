"""pyctr's fast path: the daemon's combined calls (docs/protocol.md, "Combined calls") and `run --rm` on them.

Containers.Create with {snapshot, unique_label, brief}, Tasks.Attach with {create, start},
Containers.Delete with {force, remove_anonymous_volumes}, label filters with quoted keys; the name race
(concurrent creates of one name: exactly one wins) and atomicity (a refused create leaves no snapshot,
lease or record)."""

from __future__ import annotations

import base64
import threading
import uuid

import pytest

from pycontainerd import errdefs
from pycontainerd.client import Client
from pycontainerd.ctr.backend import NAME_LABEL, STATE_EXT
from tests.pycontainerd.test_ctr_support import Ctr, busybox_archive, remove_cgroups, short_daemon

IMAGE = "docker.io/library/busybox:latest"


@pytest.fixture(scope="module")
def pcd(tmp_path_factory):
    with short_daemon(tmp_path_factory.mktemp("fast")) as d:
        yield d


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return busybox_archive(tmp_path_factory.mktemp("bb"))


@pytest.fixture
def ctr(pcd, archive):
    c = Ctr(pcd, "f" + uuid.uuid4().hex[:2])  # short: console socket paths embed it
    c.remove_all()
    assert c("load", "-i", str(archive)).status == 0
    try:
        yield c
    finally:
        c.remove_all()
        assert c("ps", "-a", "-q").out == ""
        assert remove_cgroups(c.namespace) == []


@pytest.fixture
def client(pcd, ctr) -> Client:
    return pcd.new_client(ctr.namespace)


def _container(client: Client, cid: str, name: str, args: list[str] | None = None) -> dict:
    """A record as pyctr makes it, minimal: busybox's spec with `args`."""
    from pycontainerd import ocispec

    cfg = client.call("Images", "Config", {"name": IMAGE})
    spec = ocispec.generate(cfg["config"], ocispec.SpecOptions(args=args or ["true"]), client.namespace, cid)
    return {"id": cid, "image": IMAGE, "spec": spec, "labels": {NAME_LABEL: name}}


def _create(client: Client, cid: str, name: str, args: list[str] | None = None, **extra) -> dict:
    chain = client.call("Images", "Config", {"name": IMAGE})["chain_id"]
    params = {"container": _container(client, cid, name, args), "unique_label": NAME_LABEL,
              "snapshot": {"key": cid, "parent": chain}, **extra}
    return client.call("Containers", "Create", params)["container"]


def _snapshot_keys(client: Client) -> set[str]:
    return {i["name"] for i in client.call("Snapshots", "List").get("info", [])}


def test_images_config_answers_the_image(client):
    cfg = client.call("Images", "Config", {"name": IMAGE})
    assert cfg["image"]["name"] == IMAGE
    assert cfg["image"]["target"]["digest"] == cfg["manifest_descriptor"]["digest"]


def test_create_prepares_the_snapshot_with_the_record(client):
    cid = uuid.uuid4().hex * 2
    chain = client.call("Images", "Config", {"name": IMAGE})["chain_id"]
    row = _create(client, cid, "fast-one", brief=True)
    assert "spec" not in row and "extensions" not in row  # brief: not the 30 KB we sent
    assert (row["id"], row["snapshot_key"], row["snapshotter"]) == (cid, cid, "overlayfs")
    assert row["labels"] == {NAME_LABEL: "fast-one"} and row["created_at"]
    info = client.call("Snapshots", "Stat", {"key": cid})["info"]
    assert (info["kind"], info["parent"]) == ("active", chain)
    full = client.call("Containers", "Get", {"id": cid})["container"]
    assert full["spec"]["process"]["args"] == ["true"]
    assert client.call("Leases", "List")["leases"] == []  # the daemon's own step: no lease left
    client.call("Containers", "Delete", {"id": cid, "cleanup_snapshot": True})
    assert cid not in _snapshot_keys(client)


def test_unique_label_refuses_a_name_in_use_and_leaves_nothing(client):
    first, second = uuid.uuid4().hex * 2, uuid.uuid4().hex * 2
    _create(client, first, "taken")
    before = _snapshot_keys(client)
    with pytest.raises(errdefs.AlreadyExists) as exc:
        _create(client, second, "taken")
    assert str(exc.value) == f'name "taken" is already in use by container "{first}"'
    assert _snapshot_keys(client) == before and second not in before
    with pytest.raises(errdefs.NotFound):
        client.call("Containers", "Get", {"id": second})
    assert client.call("Leases", "List")["leases"] == []
    # a record created without unique_label is still found by the index (built from the records)
    client.call("Containers", "Delete", {"id": first, "cleanup_snapshot": True})
    _create(client, second, "taken")
    client.call("Containers", "Delete", {"id": second, "cleanup_snapshot": True})


def test_failed_create_leaves_no_snapshot_lease_or_record(client):
    cid = uuid.uuid4().hex * 2
    before = _snapshot_keys(client)
    params = {"container": _container(client, cid, "nope"), "unique_label": NAME_LABEL,
              "snapshot": {"key": cid, "parent": "sha256:" + "0" * 64}}
    with pytest.raises(errdefs.Error):
        client.call("Containers", "Create", params)  # no such parent
    assert _snapshot_keys(client) == before
    with pytest.raises(errdefs.NotFound):
        client.call("Containers", "Get", {"id": cid})
    assert client.call("Leases", "List")["leases"] == []
    # a snapshot key in use: refused, and the snapshot that holds the key is left alone
    chain = client.call("Images", "Config", {"name": IMAGE})["chain_id"]
    client.call("Snapshots", "Prepare", {"key": cid, "parent": chain})
    with pytest.raises(errdefs.AlreadyExists):
        _create(client, cid, "nope")
    with pytest.raises(errdefs.NotFound):
        client.call("Containers", "Get", {"id": cid})
    assert client.call("Snapshots", "Stat", {"key": cid})["info"]["kind"] == "active"
    client.call("Snapshots", "Remove", {"key": cid})
    # and the name it asked for is free
    _create(client, cid, "nope")
    client.call("Containers", "Delete", {"id": cid, "cleanup_snapshot": True})


def test_concurrent_creates_of_one_name_exactly_one_wins(pcd, client):
    ids = [uuid.uuid4().hex * 2 for _ in range(6)]
    results: dict[str, object] = {}

    def one(cid: str) -> None:
        c = Client(pcd.address, namespace=client.namespace, timeout=60)
        try:
            results[cid] = _create(c, cid, "racer")["id"]
        except errdefs.Error as exc:
            results[cid] = exc
        finally:
            c.close()

    threads = [threading.Thread(target=one, args=(cid,)) for cid in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    winners = [cid for cid, r in results.items() if r == cid]
    assert len(results) == 6 and len(winners) == 1, results
    for cid, r in results.items():
        if cid != winners[0]:
            assert isinstance(r, errdefs.AlreadyExists) and str(r) == \
                f'name "racer" is already in use by container "{winners[0]}"'
            assert cid not in _snapshot_keys(client)
    client.call("Containers", "Delete", {"id": winners[0], "cleanup_snapshot": True})


def test_pyctr_name_race_one_conflict(ctr):
    """Two `pyctr create --name` at once: one id, one docker Conflict (status 125)."""
    outs: list = []
    threads = [threading.Thread(target=lambda: outs.append(ctr.proc("create", "--name", "same", "busybox")))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    ok = [r for r in outs if r.status == 0]
    bad = [r for r in outs if r.status != 0]
    assert len(ok) == 1 and len(bad) == 1, outs
    winner = ok[0].out.strip()
    assert bad[0].status == 125
    assert bad[0].err == (f'pyctr: Error response from daemon: Conflict. The container name "/same" is already in use '
                          f'by container "{winner}". You have to remove (or rename) that container to be able to reuse '
                          "that name.\nSee 'pyctr create --help'.\n")
    assert ctr.ok("ps", "-a", "-q", "--no-trunc").split() == [winner]


def test_name_index_follows_rename_and_rm(ctr):
    cid = ctr.ok("create", "--name", "old", "busybox").strip()
    ctr.ok("rename", "old", "new")
    other = ctr.ok("create", "--name", "old", "busybox").strip()  # free again
    r = ctr("create", "--name", "new", "busybox")
    assert r.status == 125 and f'is already in use by container "{cid}"' in r.err
    ctr.ok("rm", cid)
    ctr.ok("rm", ctr.ok("create", "--name", "new", "busybox").strip())
    ctr.ok("rm", other)


def test_attach_creates_and_starts_and_records(client):
    cid = uuid.uuid4().hex * 2
    _create(client, cid, "attached", ["sh", "-c", "echo hi; echo err >&2; exit 3"])
    call = client.duplex("Tasks", "Attach", {"container_id": cid, "create": {"container_id": cid},
                                             "start": {"state_extension": STATE_EXT}})
    frames = list(call)
    result = call.result()
    assert frames[0] == {"attached": True} and frames[1]["started"]["pid"] > 0
    out = b"".join(base64.b64decode(f["data"]) for f in frames if f.get("stream") == "stdout")
    err = b"".join(base64.b64decode(f["data"]) for f in frames if f.get("stream") == "stderr")
    assert (out, err, result["exit_status"]) == (b"hi\n", b"err\n", 3)
    state = client.call("Containers", "Get", {"id": cid})["container"]["extensions"][STATE_EXT]
    assert state["StartedAt"].endswith("Z") and (state["FinishedAt"], state["Error"], state["ExitCode"]) == ("", "", 0)
    assert client.call("Tasks", "Get", {"container_id": cid})["process"]["status"] == "stopped"
    client.call("Containers", "Delete", {"id": cid, "cleanup_snapshot": True, "force": True})
    with pytest.raises(errdefs.NotFound):
        client.call("Tasks", "Get", {"container_id": cid})


def test_attach_start_failure_deletes_the_task(client):
    cid = uuid.uuid4().hex * 2
    _create(client, cid, "nostart", ["/no/such/binary"])
    call = client.duplex("Tasks", "Attach", {"container_id": cid, "create": {"container_id": cid}, "start": True})
    frames = []
    with pytest.raises(errdefs.Error) as exc:
        for f in call:
            frames.append(f)
    assert "no such file" in str(exc.value).lower() or "not found" in str(exc.value).lower()
    assert not any("started" in f for f in frames)
    with pytest.raises(errdefs.NotFound):
        client.call("Tasks", "Get", {"container_id": cid})
    client.call("Containers", "Delete", {"id": cid, "cleanup_snapshot": True})


def test_attach_refuses_create_for_an_exec(client):
    with pytest.raises(errdefs.InvalidArgument):
        list(client.duplex("Tasks", "Attach", {"container_id": "x", "exec_id": "e", "start": True}))


def test_delete_force_takes_task_volumes_snapshot_and_record(ctr, client):
    cid = ctr.ok("run", "-d", "-v", "/data", "busybox", "sleep", "100").strip()
    volume = client.call("Volumes", "UsedBy", {"container_id": cid})["volumes"]
    assert len(volume) == 1
    client.call("Containers", "Delete", {"id": cid, "cleanup_snapshot": True, "force": True,
                                         "remove_anonymous_volumes": True})
    with pytest.raises(errdefs.NotFound):
        client.call("Containers", "Get", {"id": cid})
    with pytest.raises(errdefs.NotFound):
        client.call("Tasks", "Get", {"container_id": cid})
    assert cid not in _snapshot_keys(client)
    assert volume[0] not in ctr.ok("volume", "ls", "-q").split()


def test_delete_without_force_still_refuses_a_task(ctr, client):
    cid = ctr.ok("run", "-d", "busybox", "sleep", "100").strip()
    with pytest.raises(errdefs.FailedPrecondition):
        client.call("Containers", "Delete", {"id": cid, "cleanup_snapshot": True})
    ctr.ok("rm", "-f", cid)


def test_list_filters_quoted_label_keys(ctr, client):
    a = ctr.ok("create", "--name", "fa", "busybox").strip()
    b = ctr.ok("create", "--name", "fb", "busybox").strip()
    rows = client.call("Containers", "List", {"filters": [f'labels."{NAME_LABEL}"==fb']})["containers"]
    assert [r["id"] for r in rows] == [b]
    rows = client.call("Containers", "List", {"filters": [f'labels."{NAME_LABEL}"~="^f"']})["containers"]
    assert sorted(r["id"] for r in rows) == sorted([a, b])
    ctr.ok("rm", a, b)


def test_run_rm_on_the_fast_path(ctr):
    r = ctr("run", "--rm", "--name", "quick", "busybox", "sh", "-c", "echo out; exit 7")
    assert (r.status, r.out, r.err) == (7, "out\n", "")
    assert ctr.ok("ps", "-a", "-q") == ""
    r = ctr("run", "--rm", "busybox", "/no/such/thing")
    assert r.status == 127 and "failed to create shim task" in r.err
    assert ctr.ok("ps", "-a", "-q") == ""
    cid = ctr.ok("create", "--name", "held", "busybox").strip()
    r = ctr("run", "--rm", "--name", "held", "busybox", "true")
    assert r.status == 125 and f'"/held" is already in use by container "{cid}"' in r.err
    ctr.ok("rm", cid)


def test_start_creates_starts_and_records(client):
    cid = uuid.uuid4().hex * 2
    _create(client, cid, "detached", ["sleep", "30"])
    client.call("Containers", "Update", {"container": {"id": cid, "labels": {"pyctr/manually-stopped": "true"}},
                                         "update_mask": ["labels.pyctr/manually-stopped"]})
    pid = client.call("Tasks", "Start", {"container_id": cid, "create": {"container_id": cid},
                                         "record": {"state_extension": STATE_EXT,
                                                    "clear_labels": ["pyctr/manually-stopped"]}})["pid"]
    assert pid > 0 and client.call("Tasks", "Get", {"container_id": cid})["process"]["status"] == "running"
    row = client.call("Containers", "Get", {"id": cid})["container"]
    assert "pyctr/manually-stopped" not in row["labels"] and row["labels"][NAME_LABEL] == "detached"
    assert row["extensions"][STATE_EXT]["StartedAt"].endswith("Z")
    client.call("Containers", "Delete", {"id": cid, "cleanup_snapshot": True, "force": True})
    assert cid not in _snapshot_keys(client)


def test_start_failure_deletes_the_task_it_created(client):
    cid = uuid.uuid4().hex * 2
    _create(client, cid, "nostart2", ["/no/such/binary"])
    with pytest.raises(errdefs.Error):
        client.call("Tasks", "Start", {"container_id": cid, "create": {"container_id": cid}, "record": True})
    with pytest.raises(errdefs.NotFound):
        client.call("Tasks", "Get", {"container_id": cid})
    assert STATE_EXT not in client.call("Containers", "Get", {"id": cid})["container"]["extensions"]
    client.call("Containers", "Delete", {"id": cid, "cleanup_snapshot": True})


def test_update_merge_keeps_the_other_fields(client):
    cid = uuid.uuid4().hex * 2
    _create(client, cid, "merged")
    client.call("Containers", "Update", {"container": {"id": cid, "extensions": {STATE_EXT: {"RestartCount": 2}}},
                                         "update_mask": [f"extensions.{STATE_EXT}"]})
    reply = client.call("Containers", "Update", {"container": {"id": cid, "extensions": {
        STATE_EXT: {"ExitCode": 3, "FinishedAt": "x"}}}, "merge": True})["container"]
    assert "spec" not in reply and reply["id"] == cid
    state = client.call("Containers", "Get", {"id": cid})["container"]["extensions"][STATE_EXT]
    assert state == {"RestartCount": 2, "ExitCode": 3, "FinishedAt": "x"}
    reply = client.call("Containers", "Update", {"container": {"id": cid, "labels": {"k": "v"}},
                                                 "update_mask": ["labels.k"], "brief": True})["container"]
    assert "spec" not in reply and "extensions" not in reply and reply["labels"]["k"] == "v"
    with pytest.raises(errdefs.NotFound):
        client.call("Containers", "Update", {"container": {"id": "nosuch", "extensions": {STATE_EXT: {}}},
                                             "merge": True})
    client.call("Containers", "Delete", {"id": cid, "cleanup_snapshot": True})


def test_run_detached_and_start_attached_on_the_fast_path(ctr):
    import json

    cid = ctr.ok("run", "-d", "--name", "bg", "busybox", "sleep", "30").strip()
    state = json.loads(ctr.ok("inspect", "bg"))[0]["State"]
    assert state["Running"] and state["StartedAt"] != "0001-01-01T00:00:00Z" and state["Error"] == ""
    ctr.ok("rm", "-f", cid)
    r = ctr("run", "-d", "--name", "bad", "busybox", "/no/such/thing")
    assert r.status == 127 and "failed to create shim task" in r.err
    state = json.loads(ctr.ok("inspect", "bad"))[0]["State"]
    assert (state["Status"], state["ExitCode"], state["Running"]) == ("created", 127, False)
    assert "no such file" in state["Error"].lower() or "not found" in state["Error"].lower()
    ctr.ok("rm", "bad")
    cid = ctr.ok("create", "--name", "again", "busybox", "sh", "-c", "echo ran; exit 4").strip()
    for _ in range(2):  # the second start deletes the stopped task first
        r = ctr("start", "-a", "again")
        assert (r.status, r.out) == (4, "ran\n")
        state = json.loads(ctr.ok("inspect", "again"))[0]["State"]
        assert (state["Status"], state["ExitCode"]) == ("exited", 4) and state["FinishedAt"] >= state["StartedAt"]
    ctr.ok("rm", cid)
    # a --rm -d container that exited is reaped (one combined delete) when next listed
    ctr.ok("run", "-d", "--rm", "busybox", "true")
    import time

    deadline = time.monotonic() + 20
    while ctr.ok("ps", "-a", "-q") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ctr.ok("ps", "-a", "-q") == ""
