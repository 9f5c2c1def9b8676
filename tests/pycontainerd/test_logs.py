"""json-file logs: docker's record format, line assembly, rotation, and the reader behind `logs`."""

from __future__ import annotations

import json
import re
import threading
import time

import pytest

from pycontainerd.logs import JSONFileWriter, log_files, parse_size, parse_time, read_logs, rfc3339nano

RFC3339NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")


def records(path) -> list[dict]:
    return [json.loads(line) for line in open(path, "rb").read().splitlines()]


def test_records_are_dockers_json_file(tmp_path):
    path = tmp_path / "c-json.log"
    w = JSONFileWriter(str(path))
    w.write("stdout", b"hello\nwor")
    w.write("stderr", b"oops\n")
    w.write("stdout", b"ld\n\xff\n")
    w.write("stdout", b"no newline")
    w.close()
    rows = records(path)
    assert [(r["stream"], r["log"]) for r in rows] == [
        ("stdout", "hello\n"), ("stderr", "oops\n"), ("stdout", "world\n"), ("stdout", "\ufffd\n"),
        ("stdout", "no newline")]
    assert all(list(r) == ["log", "stream", "time"] for r in rows)  # dockerd's key order
    assert all(RFC3339NANO.match(r["time"]) for r in rows)
    assert open(path, "rb").read().startswith(b'{"log":"hello\\n","stream":"stdout","time":"')


def test_long_lines_split_as_partial_messages(tmp_path):
    path = tmp_path / "c-json.log"
    w = JSONFileWriter(str(path))
    w.write("stdout", b"x" * 40000 + b"\n")
    w.close()
    rows = records(path)
    assert [len(r["log"]) for r in rows] == [16384, 16384, 40000 - 32768 + 1]
    assert "".join(r["log"] for r in rows) == "x" * 40000 + "\n"


def test_rotation_keeps_max_file_files(tmp_path):
    path = tmp_path / "c-json.log"
    w = JSONFileWriter(str(path), max_size=1000, max_file=3)
    for i in range(200):
        w.write("stdout", f"line {i}\n".encode())
    w.close()
    files = log_files(str(path))
    assert [f.rsplit("/", 1)[1] for f in files] == ["c-json.log.2", "c-json.log.1", "c-json.log"]
    assert not (tmp_path / "c-json.log.3").exists()
    for f in files:
        assert (tmp_path / f).stat().st_size <= 1000
    got = [e.log for e in read_logs(str(path))]
    assert got[-1] == "line 199\n"
    numbers = [int(line.split()[1]) for line in got]
    assert numbers == list(range(numbers[0], 200))  # oldest dropped, the rest in order, nothing twice
    assert numbers[0] > 0


def test_rotation_with_one_file_truncates(tmp_path):
    path = tmp_path / "c-json.log"
    w = JSONFileWriter(str(path), max_size=300, max_file=1)
    for i in range(50):
        w.write("stdout", f"line {i}\n".encode())
    w.close()
    assert log_files(str(path)) == [str(path)]
    assert path.stat().st_size <= 300
    assert [e.log for e in read_logs(str(path))][-1] == "line 49\n"


def test_reader_tail_since_and_torn_lines(tmp_path):
    path = tmp_path / "c-json.log"
    w = JSONFileWriter(str(path))
    for i in range(10):
        w.write("stdout", f"{i}\n".encode())
    w.close()
    assert [e.log for e in read_logs(str(path), tail=3)] == ["7\n", "8\n", "9\n"]
    assert list(read_logs(str(path), tail=0)) == []
    entries = list(read_logs(str(path)))
    cut = entries[5].timestamp()
    assert [e.log for e in read_logs(str(path), since=cut)][0] == "5\n"
    assert [e.log for e in read_logs(str(path), until=cut)][-1] == "5\n"
    with open(path, "ab") as f:
        f.write(b'{"log":"torn')  # a writer killed mid-record
    assert len(list(read_logs(str(path)))) == 10


def test_follow_sees_new_lines_and_rotation(tmp_path):
    path = tmp_path / "c-json.log"
    w = JSONFileWriter(str(path), max_size=400, max_file=5)
    w.write("stdout", b"first\n")
    done = threading.Event()
    got: list[str] = []

    def reader():
        for e in read_logs(str(path), follow=True, stop=done.is_set, poll=0.02):
            got.append(e.log)

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(60):
            w.write("stdout", f"n{i}\n".encode())
            if i % 10 == 0:
                time.sleep(0.05)
    finally:
        w.close()
        time.sleep(0.1)
        done.set()
        t.join(10)
    assert got[0] == "first\n"
    assert got[1:] == [f"n{i}\n" for i in range(60)]


def test_time_and_size_parsing():
    t = rfc3339nano(1_700_000_000_123_456_789)
    assert t == "2023-11-14T22:13:20.123456789Z"
    assert rfc3339nano(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"
    assert abs(parse_time(t) - 1_700_000_000.123456) < 1e-5
    assert parse_size("10m") == 10 << 20 and parse_size("1k") == 1024 and parse_size(None) == -1
    with pytest.raises(ValueError):
        parse_size("ten")
    with pytest.raises(ValueError):
        parse_time("yesterday")
