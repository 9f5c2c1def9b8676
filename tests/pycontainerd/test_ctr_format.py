"""pyctr's pure parts: Go-template subset, docker's tables, human sizes and durations, names, secure join."""

from __future__ import annotations

import os

import pytest

from pycontainerd.ctr import cp, formatting, humanize, names
from pycontainerd.ctr.backend import ContainerView


def test_templates():
    obj = {"Name": "/web", "State": {"Status": "running", "Pid": 7}, "Config": {"Cmd": ["sh", "-c", "x"],
           "Labels": {"a": "b"}, "Env": None}, "Flag": True, "Html": "<&>"}
    r = formatting.render
    assert r("{{.State.Status}}", obj) == "running"
    assert r("{{ .State.Pid }}:{{.Flag}}", obj) == "7:true"
    assert r("{{json .Config}}", obj) == '{"Cmd":["sh","-c","x"],"Labels":{"a":"b"},"Env":null}'
    assert r("{{json .Html}}", obj) == '"<&>"'  # docker 20.10.24's json: SetEscapeHTML(false)
    assert r("{{.Config.Cmd}} {{.Config.Labels}} {{.Config.Env}}", obj) == "[sh -c x] map[a:b] <no value>"
    assert r('{{index .Config.Labels "a"}} {{upper .Name}} {{join .Config.Cmd ","}}', obj) == "b /WEB sh,-c,x"
    assert r("{{.Name | json}}", obj) == '"/web"'
    assert r("a\\tb", obj) == "a\tb"
    assert r("{{.Missing}}", obj) == "<no value>"
    with pytest.raises(formatting.TemplateError):
        r("{{nosuchfunc .Name}}", obj)


def test_tables_as_docker_tabwriter():
    rows = [{"ID": "abc", "Image": "busybox", "Names": "x"}, {"ID": "defghi", "Image": "a/long/image:tag",
                                                              "Names": "y"}]
    out = []
    formatting.print_rows("table {{.ID}}\t{{.Image}}\t{{.Names}}", rows,
                          {"ID": "CONTAINER ID", "Image": "IMAGE", "Names": "NAMES"}, out.append)
    assert "".join(out) == ("CONTAINER ID   IMAGE              NAMES\n"
                            "abc            busybox            x\n"
                            "defghi         a/long/image:tag   y\n")
    out.clear()
    formatting.print_rows("{{.ID}}", rows, {}, out.append)
    assert out == ["abc\n", "defghi\n"]


def test_human_units():
    assert humanize.human_size(1985570) == "1.99MB"
    assert humanize.human_size(0) == "0B"
    assert humanize.human_size(999) == "999B"
    assert humanize.human_size(123_456_789) == "123MB"
    assert humanize.bytes_size(316 * 1024) == "316KiB"
    assert humanize.human_duration(0.5) == "Less than a second"
    assert humanize.human_duration(1) == "1 second"
    assert humanize.human_duration(59) == "59 seconds"
    assert humanize.human_duration(61) == "About a minute"
    assert humanize.human_duration(5 * 60) == "5 minutes"
    assert humanize.human_duration(3600) == "About an hour"
    assert humanize.human_duration(5 * 3600) == "5 hours"
    assert humanize.human_duration(3 * 86400) == "3 days"
    assert humanize.human_duration(56 * 365.25 * 86400) == "56 years"
    assert humanize.rfc3339nano(0) == "0001-01-01T00:00:00Z"
    assert humanize.parse_time("2026-11-23T17:34:57.962993772Z") == pytest.approx(
        humanize.parse_time("2026-11-23T18:34:57.962993772+01:00"))
    assert humanize.rfc3339nano(humanize.parse_time("2020-01-02T03:04:05.5Z")) == "2020-01-02T03:04:05.5Z"
    assert humanize.parse_duration("1m30s") == 90


def test_status_texts():
    now = 1_000_000.0
    created = {"id": "a" * 64, "labels": {}, "extensions": {"pyctr/docker": {"Created": humanize.rfc3339nano(now - 9)}}}
    assert ContainerView(created).status_text(now) == "Created"
    running = dict(created, extensions={**created["extensions"],
                                        "pyctr/state": {"StartedAt": humanize.rfc3339nano(now - 3)}})
    assert ContainerView(running, {"status": "running", "pid": 5}).status_text(now) == "Up 3 seconds"
    assert ContainerView(running, {"status": "paused"}).status_text(now) == "Up 3 seconds (Paused)"
    stopped = {"status": "stopped", "exit_status": 137, "exited_at": humanize.rfc3339nano(now - 65)}
    assert ContainerView(running, stopped).status_text(now) == "Exited (137) About a minute ago"


def test_names_and_ids():
    cid = names.new_id()
    assert len(cid) == 64 and int(cid, 16) >= 0 and not cid[:12].isdigit()
    for _ in range(50):
        n = names.random_name()
        left, right = n.split("_")
        assert left in names.LEFT and right in names.RIGHT and n != "boring_wozniak"
    assert names.NAME_RE.match("web-1.x") and not names.NAME_RE.match("-x") and not names.NAME_RE.match("a")


def test_secure_join_never_escapes(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    os.symlink("/", root / "escape")
    os.symlink("../../../../..", root / "etc" / "up")
    os.symlink("/etc/passwd", root / "pw")
    assert cp.secure_join(str(root), "/escape/etc/shadow") == str(root / "etc" / "shadow")
    assert cp.secure_join(str(root), "/etc/up/tmp/x") == str(root / "tmp" / "x")
    assert cp.secure_join(str(root), "../../x") == str(root / "x")
    assert cp.secure_join(str(root), "/pw") == str(root / "etc" / "passwd")
    assert cp.secure_join(str(root), "/..") == str(root)
